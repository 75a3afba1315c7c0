//! `cxguard status`: one screen for an operator — per protection, the last successful
//! apply and whether the tenant has drifted from the posture now, the findings, and the
//! health of the outbox and the audit log.

use std::path::PathBuf;

use clap::Args;
use guard::posture::status;
use serde_json::json;

use super::scopes;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The posture file to check drift against (skipped when it does not exist).
    #[arg(long, value_name = "FILE", default_value = "posture.toml")]
    pub posture: PathBuf,
}

pub async fn status_cmd(ctx: &Context, a: StatusArgs) -> Result<Exit, CliError> {
    let ledger = store::open(ctx, Access::Read).await?;
    let cxone = crate::surface::speaks_cxone(ctx);
    let mut rows = status::last_successes(&ledger, cxone).await?;
    let mut findings = Vec::new();
    let mut posture_note = None;
    if cxone {
        // The data policies' runs of the last 30 days that need a person.
        let target = tenant::connect(ctx, tenant::Needs::reading(&[])).await?;
        let since = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        let runs = guard::policies::runs::list(
            &target.client,
            &guard::policies::runs::Filter {
                policy: None,
                since: Some(since),
                approval_hours: 24,
            },
        )
        .await?;
        findings.extend(runs.iter().filter_map(|r| {
            r.finding
                .as_ref()
                .map(|f| format!("data policy {:?}, run {}: {f}", r.policy_name, r.run_id))
        }));
    }
    if a.posture.is_file() || ctx.config.file.posture.is_some() {
        let (posture, problems) = super::load_for(ctx, &a.posture)?;
        let reading = scopes(ctx, &posture, false);
        let target = tenant::connect(ctx, tenant::Needs::reading(&reading)).await?;
        let p = super::plan_now(ctx, &target.client, &posture, 10_000, problems).await?;
        status::set_drift(&mut rows, &posture, &p);
        findings.extend(p.findings);
    } else {
        posture_note = Some(format!(
            "{} not found: drift not checked",
            a.posture.display()
        ));
    }
    let outbox = ledger.outbox_status().await?;
    let audit = audit_health(ctx, &ledger).await;
    let intact = audit["intact"] != false;
    match ctx.output {
        Output::Json => print_json(&json!({
            "protections": rows,
            "findings": findings,
            "posture": posture_note,
            "outbox": outbox,
            "audit": audit,
        })),
        Output::Text => print_text(&rows, posture_note.as_deref(), &findings, &outbox, &audit),
    }
    Ok(if intact { Exit::Ok } else { Exit::Failed })
}

/// The chain's health as `audit verify` states it, as JSON: intact, or where it breaks,
/// or why it could not be verified.
async fn audit_health(ctx: &Context, ledger: &ledger::Ledger) -> serde_json::Value {
    match store::verifying_key(ctx, None) {
        Ok(key) => match store::verify_chain(ctx, ledger, &key, None).await {
            Ok(v) => {
                let mut a = json!({"entries": v.entries, "checkpoints": v.checkpoints, "intact": v.is_intact()});
                if let Some(b) = &v.broken {
                    a["broken"] = json!({"seq": b.seq, "reason": b.reason});
                }
                a
            }
            Err(e) => json!({"intact": false, "error": e.message}),
        },
        Err(e) => json!({"intact": null, "error": format!("not verified: {}", e.message)}),
    }
}

fn print_text(
    rows: &[status::Protection],
    posture_note: Option<&str>,
    findings: &[String],
    outbox: &ledger::OutboxStatus,
    audit: &serde_json::Value,
) {
    println!("{:<12} {:<32} drift", "protection", "last successful apply");
    for r in rows {
        println!(
            "{:<12} {:<32} {}",
            r.name,
            r.last_success.as_deref().unwrap_or("never"),
            match r.drift {
                None => "not declared".to_string(),
                Some(0) => "no".to_string(),
                Some(n) => format!("yes ({n} to change)"),
            }
        );
    }
    if let Some(n) = posture_note {
        println!("{n}");
    }
    println!("findings: {}", findings.len());
    for f in findings {
        println!("  ! {f}");
    }
    println!(
        "outbox: {} pending, {} dead, {} skipped{}",
        outbox.pending,
        outbox.dead,
        outbox.skipped,
        outbox
            .oldest_pending
            .as_deref()
            .map(|t| format!(" (oldest since {t})"))
            .unwrap_or_default()
    );
    println!(
        "audit: {}",
        if audit["intact"] == true {
            format!(
                "{} entries, {} checkpoint(s), chain intact",
                audit["entries"], audit["checkpoints"]
            )
        } else if let Some(b) = audit.get("broken") {
            format!(
                "BROKEN at entry {}: {}",
                b["seq"],
                b["reason"].as_str().unwrap_or_default()
            )
        } else {
            format!(
                "NOT VERIFIED: {}",
                audit["error"].as_str().unwrap_or("the chain is broken")
            )
        }
    );
}
