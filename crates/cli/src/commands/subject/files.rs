//! The files subject requests write — receipts and exports, each mode 0600 and never
//! overwriting — and the receipt as text.

use crate::exit::{CliError, Exit};
use crate::output::say;

/// A receipt as text: what was found and changed, the platform request, the audit
/// entries of each step and the head they verify to. No identifier.
pub(super) fn print_receipt(r: &guard::subject::Receipt) {
    say(format!("receipt for {} (job {})", r.reference, r.job_id));
    say(format!("  pseudonym {} (key {})", r.pseudonym, r.key_id));
    if !r.records_found {
        say(if r.digital.is_some() {
            "  no records found: no DFO customer, case or completed contact held this person"
        } else {
            "  no records found: no contact or linked guest held this person"
        });
    }
    if let Some(d) = &r.digital {
        print_digital(d);
    }
    if !r.contacts.is_empty() {
        let list: Vec<String> = r
            .contacts
            .iter()
            .map(|c| {
                let f: Vec<&str> = c.fields.keys().copied().collect();
                format!("{} ({})", c.id, f.join(", "))
            })
            .collect();
        say(format!(
            "  contacts anonymized: {} by job {}: {}",
            r.contacts.len(),
            r.anonymize_job.as_deref().unwrap_or("-"),
            list.join(", ")
        ));
    }
    if !r.guests.is_empty() {
        say(format!(
            "  guests whose identity attribute was deleted: {}",
            r.guests.join(", ")
        ));
    }
    match r.platform.request_id.as_deref() {
        Some(id) => say(format!("  platform erasure: submitted, request {id}")),
        None => say("  platform erasure: skipped (--skip-platform-erasure: filed separately)"),
    }
    if let Some(n) = r.notice {
        say(format!("  note: {n}"));
    }
    // In the order the steps ran.
    let steps: Vec<String> = [
        "find", "contacts", "guest", "digital", "messages", "fields", "notes", "link", "platform",
    ]
    .iter()
    .filter_map(|step| {
        let seqs = r.audit.get(*step)?;
        let s: Vec<String> = seqs.iter().map(i64::to_string).collect();
        Some(format!("{step} {}", s.join(" ")))
    })
    .collect();
    say(format!("  audit entries: {}", steps.join("; ")));
    say(format!("  audit head at the end: {}", r.audit_head));
}

/// The DFO part of a receipt (CXone's published API).
fn print_digital(d: &guard::subject::erase::DigitalErased) {
    if !d.customers.is_empty() {
        say(format!("  DFO customers: {}", d.customers.join(", ")));
    }
    if !d.cases.is_empty() {
        say(format!(
            "  DFO cases: {}; {} message(s) with content and author name removed (reason GDPR) by job {}",
            d.cases.join(", "),
            d.messages.len(),
            d.digital_job.as_deref().unwrap_or("-")
        ));
    }
    for f in &d.fields {
        say(format!("  field changed: {f}"));
    }
    if !d.links.is_empty() {
        say(format!(
            "  identity links deleted from: {}",
            d.links.join(", ")
        ));
    }
    if !d.voice_contacts.is_empty() {
        say(format!(
            "  completed contacts the platform erasure covers: {}",
            d.voice_contacts.join(", ")
        ));
    }
}

/// The file name of a reference's receipt: its characters that are safe in a file name.
pub(super) fn receipt_name(reference: &str) -> String {
    let safe: String = reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.json", safe.trim_start_matches('.'))
}

pub(super) fn manifest_name(reference: &str) -> String {
    receipt_name(reference).replace(".json", ".manifest.json")
}

/// Two references whose files would have one name (`T/1` and `T_1`) are refused before
/// anything is written: the second file would be refused half-way, or overwrite.
pub(super) fn check_distinct_names(
    subjects: &[guard::subject::Subject],
    flag: &str,
) -> Result<(), CliError> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for s in subjects {
        let name = receipt_name(&s.reference);
        if let Some(first) = seen.insert(name.clone(), &s.reference) {
            return Err(CliError::new(
                Exit::Input,
                format!(
                    "{flag}: references {first} and {} would both be written to {name}; give them distinct refs; nothing was done",
                    s.reference
                ),
            ));
        }
    }
    Ok(())
}

/// Checked before anything is done: the directory exists and no receipt would be
/// overwritten.
pub(super) fn check_receipts_dir(
    dir: &std::path::Path,
    subjects: &[guard::subject::Subject],
) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::new(
            Exit::Input,
            format!("--receipts: {} is not a directory", dir.display()),
        ));
    }
    check_distinct_names(subjects, "--receipts")?;
    for s in subjects {
        let f = dir.join(receipt_name(&s.reference));
        if f.exists() {
            return Err(CliError::new(
                Exit::Input,
                format!(
                    "--receipts: {} exists; receipts are never overwritten (move it, or choose another directory); nothing was done",
                    f.display()
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn write_receipts(
    dir: &std::path::Path,
    receipts: &[guard::subject::Receipt],
) -> Result<(), CliError> {
    for r in receipts {
        let text = serde_json::to_vec_pretty(r).unwrap_or_default();
        write_new(&dir.join(receipt_name(&r.reference)), &text).map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("{} (the erasure is done; `cxguard audit show --operation 'subject.erase.*'` has it)", e.message),
            )
        })?;
    }
    Ok(())
}

/// Writes a new file, readable by its owner only; an existing one is never replaced.
pub(super) fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("cannot write {}: {e}", path.display()),
            )
        })
}
