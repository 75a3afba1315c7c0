//! `subject export`: the access request.

use std::path::PathBuf;

use super::files::{manifest_name, receipt_name, write_new};
use super::{Channels, SEARCHING, Who, search, subjects};
use crate::commands::contacts::actor;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, say};
use crate::store::{self, Access};
use crate::tenant;

/// `subject export`: find, gather, write each file and its manifest, audit.
pub(super) async fn export(
    ctx: &Context,
    who: &Who,
    channels: &Channels,
    out: &std::path::Path,
    policy: Option<&PathBuf>,
    page_size: u32,
) -> Result<Exit, CliError> {
    let page_size = cxone::PageSize::new(page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    let (identity, subjects) = subjects(ctx, who, channels)?;
    let cxone = crate::surface::speaks_cxone(ctx);
    let since = super::real::since(None)?;
    let keys = match policy {
        Some(p) => Some(super::read_erase_policy(ctx, p, cxone)?),
        None => None,
    };
    prepare_out(out, &subjects)?;
    let matcher = guard::subject::Matcher::new(
        &subjects,
        identity.normalizer(),
        &keys
            .as_ref()
            .map(|k| k.pseudonymize_keys())
            .unwrap_or_default(),
    );
    let target = tenant::connect(ctx, SEARCHING).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let mut written = Vec::new();
    if cxone {
        let found = super::real::search(&target, &subjects, &matcher, since).await?;
        for (s, f) in subjects.iter().zip(&found.subjects) {
            let doc = guard::subject::export::gather_real(&target.client, f, since)
                .await
                .map_err(crate::exit::without_tenant_words)?;
            written.push(write_one(&ledger, s, &doc, out).await?);
        }
    } else {
        let found = search(&target, &ledger, &identity, &subjects, &matcher, page_size).await?;
        for (s, f) in subjects.iter().zip(&found.subjects) {
            let doc = guard::subject::export::gather(&target.client, f)
                .await
                .map_err(crate::exit::without_tenant_words)?;
            written.push(write_one(&ledger, s, &doc, out).await?);
        }
    }
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"exports": written})),
        Output::Text => {
            for w in &written {
                let counts = if cxone {
                    format!(
                        "{} DFO customer(s), {} case(s), {} message(s), {} completed contact(s)",
                        w["customers"], w["cases"], w["messages"], w["completedContacts"]
                    )
                } else {
                    format!("{} contact(s), {} guest(s)", w["contacts"], w["guests"])
                };
                say(format!(
                    "{}: wrote {} ({counts}), SHA-256 {}",
                    w["reference"].as_str().unwrap_or_default(),
                    w["file"].as_str().unwrap_or_default(),
                    w["sha256"].as_str().unwrap_or_default()
                ));
                say(format!(
                    "  manifest {}",
                    w["manifest"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    Ok(Exit::Ok)
}

/// `--out` made (mode 0700) if missing; every file the export would write is new.
fn prepare_out(
    out: &std::path::Path,
    subjects: &[guard::subject::Subject],
) -> Result<(), CliError> {
    if !out.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(out).map_err(|e| {
            CliError::new(
                Exit::Input,
                format!("--out: cannot create {}: {e}", out.display()),
            )
        })?;
    }
    super::files::check_distinct_names(subjects, "--out")?;
    for s in subjects {
        for f in [receipt_name(&s.reference), manifest_name(&s.reference)] {
            if out.join(&f).exists() {
                return Err(CliError::new(
                    Exit::Input,
                    format!(
                        "--out: {} exists; exports are never overwritten; nothing was read",
                        out.join(f).display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One person's export and manifest written, the intent audited before the write and
/// the file's digest after it.
async fn write_one(
    ledger: &ledger::Ledger,
    s: &guard::subject::Subject,
    doc: &guard::subject::export::Export,
    out: &std::path::Path,
) -> Result<serde_json::Value, CliError> {
    let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    let name = receipt_name(&s.reference);
    // The intent first: a crash after the write leaves an entry for the file.
    guard::subject::export::record_intent(ledger, &actor(), s, &name, &manifest_name(&s.reference))
        .await
        .map_err(CliError::from)?;
    write_new(&out.join(&name), &bytes)?;
    let sha = guard::sha256_hex_bytes(&bytes);
    let manifest = serde_json::json!({
        "reference": s.reference,
        "generatedAt": doc.generated_at,
        "files": [{"name": name, "bytes": bytes.len(), "sha256": sha}],
    });
    write_new(
        &out.join(manifest_name(&s.reference)),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    doc.record_written(ledger, &actor(), s, &name, &sha)
        .await
        .map_err(CliError::from)?;
    Ok(serde_json::json!({
        "reference": s.reference,
        "file": out.join(&name).display().to_string(),
        "manifest": out.join(manifest_name(&s.reference)).display().to_string(),
        "sha256": sha,
        "contacts": doc.contacts.len(),
        "guests": doc.guests.len(),
        "customers": doc.customers.len(),
        "cases": doc.cases.len(),
        "messages": doc.messages.len(),
        "completedContacts": doc.completed_contacts.len(),
    }))
}
