//! `cxguard report` on CXone's published API (`api = "cxone"`): the audit chain's health
//! and the tenant's inventory as one section (access keys, DFO, data policies, completed
//! contacts, the 429s met), as one self-contained HTML file or the same facts as JSON.

use guard::inventory::real::{CxoneInventory, STALE_DAYS};
use maud::{Markup, html};
use serde::Serialize;

use super::facts::{Audit, Delivery, Period};
use super::{Format, ReportArgs};
use crate::context::Context;
use crate::exit::{CliError, Exit};

/// The report's facts on the real surface.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CxoneReport {
    pub generated_at: String,
    pub version: &'static str,
    pub api: &'static str,
    pub period: Period,
    pub audit: Audit,
    pub inventory: CxoneInventory,
    /// Each access key with its age (when cxguard created it), use and findings.
    pub access_keys: Vec<guard::accesskeys::KeyRow>,
    /// The data policies' runs in the period, with findings.
    pub policy_runs: Vec<guard::policies::runs::RunView>,
    /// The evidence reports the audit log records, with their digests.
    pub evidence: Vec<guard::policies::evidence::Recorded>,
    pub delivery: Delivery,
}

/// Gathers and writes the report; `verdict` is the ledger's, checked by the caller.
pub async fn run(
    ctx: &Context,
    a: &ReportArgs,
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    verdict: ledger::Verdict,
    since: time::OffsetDateTime,
    out: &std::path::Path,
) -> Result<Exit, CliError> {
    let now = time::OffsetDateTime::now_utc();
    let o = ledger.outbox_status().await?;
    let keys = guard::accesskeys::rows(
        &client.access_keys().list(None).await?,
        &guard::accesskeys::history(ledger).await?,
        guard::accesskeys::Thresholds {
            unused_days: STALE_DAYS,
            max_age_days: STALE_DAYS,
        },
        now,
    );
    let policy_runs = guard::policies::runs::list(
        client,
        &guard::policies::runs::Filter {
            policy: None,
            since: Some(since),
            approval_hours: 24,
        },
    )
    .await?;
    let evidence = guard::policies::evidence::recorded(ledger).await?;
    let report = CxoneReport {
        generated_at: super::gather::rfc3339(now),
        version: env!("CARGO_PKG_VERSION"),
        api: "cxone",
        period: Period {
            since: super::gather::rfc3339(since),
            until: super::gather::rfc3339(now),
        },
        audit: super::gather::audit(&verdict),
        inventory: guard::inventory::real::gather(client).await?,
        access_keys: keys,
        policy_runs,
        evidence,
        delivery: Delivery {
            delivered: o.delivered,
            pending: o.pending,
            dead: o.dead,
            skipped: o.skipped,
            pending_by_kind: o.pending_by_kind.clone(),
        },
    };
    let text = match a.format {
        Format::Html => render(&report),
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
    };
    std::fs::write(out, text)
        .map_err(|e| CliError::new(Exit::Failed, format!("cannot write {}: {e}", out.display())))?;
    super::announce(ctx, out, a.format)
}

fn render(r: &CxoneReport) -> String {
    super::html::page(
        &r.inventory.tenant.tenant_id,
        html! {
            (header(r))
            (access_keys(&r.inventory, &r.access_keys))
            (digital(&r.inventory))
            (policies(&r.inventory))
            (policy_runs(&r.policy_runs, &r.evidence))
            (super::html::delivery_part(&r.delivery))
        },
    )
}

fn header(r: &CxoneReport) -> Markup {
    let t = &r.inventory.tenant;
    let a = &r.audit;
    html! {
        header {
            h1 { "Data-protection report" }
            p.meta {
                "Tenant " span.mono { (t.tenant_id) } @if let Some(n) = &t.name { " (" (n) ")" }
                ", area " (t.area.as_deref().unwrap_or("?")) ", cluster " (t.cluster.as_deref().unwrap_or("?"))
                " — CXone's published API at " span.mono { (t.api) }
                br; "Generated " (r.generated_at) " by cxguard " (r.version) "; period " (r.period.since) " to " (r.period.until)
            }
            p #audit-head {
                "Audit chain: "
                @if a.intact { span.badge.intact { "intact" } } @else { span.badge.broken { "NOT INTACT" } }
                " — " (a.entries) " entries, head "
                span.mono data-head { (a.head_seq) ":" (a.head_hash.as_deref().unwrap_or("-")) }
                @if let Some(b) = &a.broken { br; "Broken at " (b) }
                br; "To check later: " span.mono { (a.verify_command) }
            }
            @if r.inventory.rate_limited > 0 {
                p { "The tenant answered 429 " (r.inventory.rate_limited) " time(s) while this was read; each was retried." }
            }
        }
    }
}

fn access_keys(inv: &CxoneInventory, rows: &[guard::accesskeys::KeyRow]) -> Markup {
    let k = &inv.access_keys;
    html! {
        section.first #access-keys {
            h2 { "Access keys" }
            div.cards {
                div class="card ok" data-metric="active" { div.v { (k.active) } div.m { "active" } }
                div class={"card " (if k.unused_90_days > 0 { "findings" } else { "ok" })} data-metric="unused" {
                    div.v { (k.unused_90_days) } div.m { "active, unused for " (STALE_DAYS) " days" } }
                div class="card never" data-metric="never-used" { div.v { (k.never_used) } div.m { "never used" } }
                div class="card never" data-metric="inactive" { div.v { (k.inactive) } div.m { "inactive" } }
            }
            table { tr { th { "key" } th { "user" } th { "active" } th { "last used" } th { "age (days)" } th { "findings" } }
                @for r in rows { tr {
                    td.mono { (r.id) } td.mono { (r.user_id.as_deref().unwrap_or("")) }
                    td { @if r.active { "yes" } @else { "no" } }
                    td { (r.last_used.as_deref().unwrap_or("never")) }
                    td { (r.age_days.map_or("unknown (not created by cxguard)".to_string(), |a| a.to_string())) }
                    td { (r.findings.join("; ")) }
                } } }
        }
    }
}

fn digital(inv: &CxoneInventory) -> Markup {
    html! {
        section #digital {
            h2 { "Digital (DFO) and completed contacts" }
            p { (inv.customers) " customers; " (inv.completed_contacts_30_days) " contacts completed in the last 30 days." }
            table { tr { th { "case status" } th { "cases" } }
                @for (s, n) in &inv.cases_by_status { tr { td { (s) } td { (n) } } } }
            h3 { "Customer custom fields" }
            table { tr { th { "ident" } th { "label" } th { "type" } }
                @for f in &inv.custom_fields { tr { td.mono { (f.ident) } td { (f.label.as_deref().unwrap_or("")) } td { (f.kind.as_deref().unwrap_or("")) } } } }
        }
    }
}

fn policies(inv: &CxoneInventory) -> Markup {
    html! {
        section #policies {
            h2 { "Data policies" }
            @if inv.policies.is_empty() { p.empty { "No data policy." } } @else {
                table { tr { th { "policy" } th { "name" } th { "type" } th { "last run" } th { "at" } }
                    @for p in &inv.policies { tr {
                        td.mono { (p.id) } td { (p.name.as_deref().unwrap_or("")) } td { (p.kind.as_deref().unwrap_or("")) }
                        td { (p.last_run.as_deref().unwrap_or("never")) } td { (p.last_run_at.as_deref().unwrap_or("")) }
                    } } }
            }
        }
    }
}

/// Each run in the period: its result counts as a small bar, its finding, and the
/// evidence reports the audit log records with their digests.
fn policy_runs(
    runs: &[guard::policies::runs::RunView],
    evidence: &[guard::policies::evidence::Recorded],
) -> Markup {
    let bar = |r: &guard::policies::runs::RunView| {
        let s = r.summary.clone().unwrap_or_default();
        let total = s.total_entities.unwrap_or(0).max(1) as f64;
        let w = |n: Option<i64>| (n.unwrap_or(0) as f64 * 100.0 / total).round() as i64;
        (
            w(s.success_count),
            w(s.failure_count),
            w(s.partial_count),
            w(s.litigation_hold_count),
        )
    };
    html! {
        section #policy-runs {
            h2 { "Data-policy runs in the period" }
            @if runs.is_empty() { p.empty { "No run in the period." } } @else {
                table { tr { th { "run" } th { "policy" } th { "status" } th { "done / failed / partial / held" } th { "finding" } }
                    @for r in runs { tr {
                        td.mono { (r.run_id) } td { (r.policy_name) } td { (r.status) }
                        td {
                            @let (ok, bad, part, held) = bar(r);
                            div style="display:flex;width:10em;height:.8em;background:#eee" {
                                div style={"width:" (ok) "%;background:#2e7d32"} {}
                                div style={"width:" (bad) "%;background:#c62828"} {}
                                div style={"width:" (part) "%;background:#f9a825"} {}
                                div style={"width:" (held) "%;background:#1565c0"} {}
                            }
                            @if let Some(s) = &r.summary {
                                small { (s.success_count.unwrap_or(0)) " / " (s.failure_count.unwrap_or(0)) " / "
                                    (s.partial_count.unwrap_or(0)) " / " (s.litigation_hold_count.unwrap_or(0)) }
                            }
                        }
                        td { (r.finding.as_deref().unwrap_or("")) }
                    } } }
            }
            h3 { "Evidence reports" }
            @if evidence.is_empty() { p.empty { "None downloaded (cxguard policies evidence RUN --out DIR)." } } @else {
                table { tr { th { "run" } th { "policy" } th { "SHA-256" } th { "bytes" } th { "downloaded" } th { "audit entry" } }
                    @for e in evidence { tr {
                        td.mono { (e.run_id) } td.mono { (e.policy_id) } td.mono { (e.sha256) }
                        td { (e.bytes) } td { (e.at) } td { (e.seq) }
                    } } }
            }
        }
    }
}
