//! The demo's summary as text: one line per step's outcome.

use super::Ran;
use super::inventory;

/// The inventory, then one line per step.
pub(super) fn text(client: &cxone::Client, ran: &Ran) {
    let a = &ran.anonymized;
    inventory::print_text(&ran.inv);
    let s = client.stats();
    println!();
    println!(
        "client: {} API requests, {} token request(s), {} retries, {} rate-limited",
        s.requests, s.token_requests, s.retries, s.rate_limited
    );
    println!(
        "anonymize (job {}): {} contacts updated before 2024-01-01 — {} changed ({}), {} already anonymized, {} failed; {:.0} contacts/s",
        a.job_id,
        a.processed,
        a.changed,
        a.fields
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        a.unchanged,
        a.failed,
        a.contacts_per_s
    );
    rotations(ran);
    identity(&ran.identity);
    encryption(&ran.encrypted);
    rest(ran);
}

fn rotations(ran: &Ran) {
    for r in [&ran.rotated, &ran.rolled_back] {
        match &r.ended {
            guard::rotate::Ended::Rotated { version } => println!(
                "rotate {}: version {version}, every dependent compiled and passed (job {})",
                r.secret_id, r.job_id
            ),
            guard::rotate::Ended::RolledBack { rejected, version } => println!(
                "rotate {}: rejected by {}, rolled back to the previous value (version {version}), dependents pass again (job {})",
                r.secret_id,
                rejected.keys().cloned().collect::<Vec<_>>().join(", "),
                r.job_id
            ),
            guard::rotate::Ended::Broken { .. } => {
                println!("rotate {}: broken", r.secret_id)
            }
        }
    }
}

fn identity(i: &super::service::IdentityDemo) {
    println!(
        "identity: {} guests linked over HTTP at {}; {} and {} {}; a bad identifier got {} naming `{}`, a request without an API key got {}",
        i.linked.len(),
        i.url,
        i.linked[0],
        i.linked[1],
        if i.same_pseudonym {
            "hold one pseudonym (one person, spelt two ways)"
        } else {
            "hold DIFFERENT pseudonyms for one person (a bug)"
        },
        i.invalid_status,
        i.invalid_field,
        i.unauthenticated_status
    );
}

fn encryption(e: &super::encrypt::EncryptDemo) {
    println!(
        "encrypt {}: {} columns with AES-256-GCM (key version {}, masked {}); KMS callback {}; coverage {}/{} → {}/{} columns, sensitive {}/{} → {}/{}{}",
        e.plan.table,
        e.report.columns.len(),
        e.report.key_version,
        e.report.masked_indexes.join(", "),
        if e.callback_verified {
            "verified by the service before the tenant committed"
        } else {
            "NOT verified (a bug)"
        },
        e.plan.before.encrypted,
        e.plan.before.total,
        e.coverage.encrypted,
        e.coverage.total,
        e.plan.before.sensitive_encrypted,
        e.plan.before.sensitive_total,
        e.coverage.sensitive_encrypted,
        e.coverage.sensitive_total,
        e.key_rotation
            .iter()
            .find(|k| k.columns.first() == e.report.columns.first())
            .map(|k| format!("; key rotation {}", k.describe()))
            .unwrap_or_default()
    );
}

/// Webchat, posture, the subject request and the audit chain.
fn rest(ran: &Ran) {
    let (w, p, r, v) = (&ran.webchat, &ran.posture, &ran.erased, &ran.verdict);
    let changed: Vec<String> = w
        .report
        .widgets
        .iter()
        .filter(|w| w.outcome == "changed")
        .map(|w| format!("{} ({})", w.widget, w.changes.summary()))
        .collect();
    println!(
        "webchat: exported {} widget(s); applied {}; the pattern {:?} was refused: {}",
        w.exported.len(),
        if changed.is_empty() {
            "nothing".to_string()
        } else {
            changed.join(", ")
        },
        w.refused_pattern,
        w.refusal
    );
    println!(
        "posture: plan {} to change ({} finding(s)) → apply ({}) → plan {} to change",
        p.planned,
        p.findings,
        p.results
            .iter()
            .map(|r| format!("{} {}", r.protection, r.status))
            .collect::<Vec<_>>()
            .join(", "),
        p.after
    );
    println!(
        "subject request {}: {} contact(s) anonymized, {} guest attribute(s) deleted, platform erasure {}; receipt audit head {}",
        r.reference,
        r.contacts.len(),
        r.guests.len(),
        r.platform.request_id.as_deref().unwrap_or("skipped"),
        r.audit_head
    );
    println!(
        "audit: {} entries, {} signed checkpoint(s), chain {} (key {})",
        v.entries,
        v.checkpoints,
        if v.is_intact() { "intact" } else { "BROKEN" },
        v.key_id
    );
}
