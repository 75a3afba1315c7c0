//! The report as one self-contained HTML file, rendered from the facts with maud (which
//! escapes every tenant-supplied string). Charts are inline SVG written with the same
//! templates: each has a title and a description, and a data table beside it in
//! `<details>`, so a screen reader and a printout carry the same facts. No script, no
//! external resource; a strict CSP says so to the browser.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::facts::*;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; margin: 0 auto; max-width: 1000px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; border-bottom: 2px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
.meta { color: #57606a; } .mono { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; margin: 16px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 12px; border-top-width: 6px; }
.card .v { font-size: 28px; font-weight: 700; } .card .m { color: #57606a; font-size: 12px; }
.ok { border-top-color: #1a7f37; } .drift { border-top-color: #bf8700; } .findings { border-top-color: #cf222e; } .never { border-top-color: #8c959f; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eaeef2; }
.intact { background: #dafbe1; } .broken { background: #ffebe9; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; } th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { background: #f6f8fa; } details { margin: 6px 0 16px; } summary { cursor: pointer; color: #0969da; }
svg { max-width: 100%; height: auto; } .empty { color: #57606a; font-style: italic; }
@media print {
  @page { size: A4; margin: 16mm; }
  body { max-width: none; padding: 0; }
  section { break-before: page; } section.first { break-before: auto; }
  details { display: block; } details > summary { display: none; } details[open] > *, details > * { display: block; }
  a { color: inherit; text-decoration: none; }
}
"#;

fn status_class(s: &str) -> &'static str {
    match s {
        "ok" => "ok",
        "drift" => "drift",
        "findings" => "findings",
        _ => "never",
    }
}

/// A horizontal bar chart: one bar per row, `value` against `limit` (a tick).
fn bars(
    id: &str,
    title: &str,
    desc: &str,
    rows: &[(String, f64, Option<f64>, bool)],
    unit: &str,
) -> Markup {
    let max = rows
        .iter()
        .map(|(_, v, l, _)| v.max(l.unwrap_or(0.0)))
        .fold(1.0f64, f64::max);
    let (label_w, bar_w, row_h) = (220.0, 560.0, 26.0);
    let height = row_h * rows.len().max(1) as f64 + 10.0;
    let x = |v: f64| label_w + v / max * bar_w;
    html! {
        svg role="img" aria-labelledby={(id) "-t " (id) "-d"} viewBox={"0 0 820 " (height)} width="820" height=(height) {
            title id={(id) "-t"} { (title) }
            desc id={(id) "-d"} { (desc) }
            @for (i, (label, v, limit, bad)) in rows.iter().enumerate() {
                @let y = 5.0 + i as f64 * row_h;
                text x="0" y=(y + 17.0) font-size="12" fill="#1b1f24" { (label) }
                rect x=(label_w) y=(y + 4.0) width=((x(*v) - label_w).max(1.0)) height="16" fill=(if *bad { "#cf222e" } else { "#2da44e" }) {}
                @if let Some(l) = limit {
                    line x1=(x(*l)) x2=(x(*l)) y1=(y) y2=(y + row_h) stroke="#1b1f24" stroke-dasharray="3 2" {}
                }
                text x=(x(*v) + 4.0) y=(y + 17.0) font-size="11" fill="#57606a" { (format!("{v:.0}{unit}")) }
            }
        }
    }
}

/// A column chart of counts per day.
fn per_day(
    id: &str,
    title: &str,
    desc: &str,
    days: &std::collections::BTreeMap<String, u64>,
) -> Markup {
    if days.is_empty() {
        return html! { p.empty { "Nothing in the period." } };
    }
    let max = days.values().copied().max().unwrap_or(1).max(1) as f64;
    let n = days.len() as f64;
    let w = (760.0 / n).min(60.0);
    html! {
        svg role="img" aria-labelledby={(id) "-t " (id) "-d"} viewBox="0 0 820 200" width="820" height="200" {
            title id={(id) "-t"} { (title) }
            desc id={(id) "-d"} { (desc) }
            line x1="40" x2="810" y1="170" y2="170" stroke="#8c959f" {}
            @for (i, (d, c)) in days.iter().enumerate() {
                @let h = *c as f64 / max * 150.0;
                @let x0 = 45.0 + i as f64 * w;
                rect x=(x0) y=(170.0 - h) width=((w - 4.0).max(2.0)) height=(h.max(1.0)) fill="#0969da" {}
                text x=(x0) y="186" font-size="10" fill="#57606a" { (d.get(5..).unwrap_or(d)) }
                text x=(x0) y=(165.0 - h) font-size="10" fill="#1b1f24" { (c) }
            }
        }
    }
}

/// Encryption coverage as stacked bars: sensitive encrypted, sensitive in clear, other.
fn coverage(tables: &[TableCoverage]) -> Markup {
    let row_h = 30.0;
    let height = row_h * tables.len().max(1) as f64 + 30.0;
    html! {
        svg role="img" aria-labelledby="cov-t cov-d" viewBox={"0 0 820 " (height)} width="820" height=(height) {
            title id="cov-t" { "Encryption coverage per table" }
            desc id="cov-d" { "For each table, stacked: sensitive columns encrypted (green), sensitive columns in clear (red), other columns (grey)." }
            @for (i, t) in tables.iter().enumerate() {
                @let total = (t.sensitive_encrypted + t.sensitive_in_clear + t.other).max(1) as f64;
                @let y = 5.0 + i as f64 * row_h;
                @let a = t.sensitive_encrypted as f64 / total * 520.0;
                @let b = t.sensitive_in_clear as f64 / total * 520.0;
                @let c = t.other as f64 / total * 520.0;
                text x="0" y=(y + 17.0) font-size="12" { (t.table) }
                rect x="280" y=(y + 4.0) width=(a) height="18" fill="#2da44e" {}
                rect x=(280.0 + a) y=(y + 4.0) width=(b) height="18" fill="#cf222e" {}
                rect x=(280.0 + a + b) y=(y + 4.0) width=(c) height="18" fill="#d0d7de" {}
            }
            text x="280" y=(height - 6.0) font-size="11" fill="#57606a" { "green: sensitive encrypted · red: sensitive in clear · grey: other" }
        }
    }
}

pub fn render(r: &Report) -> String {
    page(
        &r.tenant,
        html! {
            (header_part(&r.audit, r))
            (summary_part(r))
            (secrets_part(r))
            (contacts_part(r))
            (datastores_part(r))
            (webchat_part(r))
            (identity_part(r))
            (delivery_part(&r.delivery))
        },
    )
}

/// One self-contained page: the strict CSP, the inline style, `body`.
pub(super) fn page(subject: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "cxguard compliance report — " (subject) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// The title, the tenant and period, and the audit chain's head.
fn header_part(a: &Audit, r: &Report) -> Markup {
    html! {
    header {
        h1 { "Data-protection report" }
        p.meta {
            "Tenant " span.mono { (r.tenant) } " · generated " (r.generated_at) " by cxguard " (r.version)
            br; "Period " (r.period.since) " to " (r.period.until)
        }
        p #audit-head {
            "Audit chain: "
            @if a.intact { span.badge.intact { "intact" } } @else { span.badge.broken { "NOT INTACT" } }
            " — " (a.entries) " entries, " (a.checkpoints) " signed checkpoint(s), head "
            span.mono data-head { (a.head_seq) ":" (a.head_hash.as_deref().unwrap_or("-")) }
            ", signing key " span.mono { (a.key_id) }
            @if let Some(b) = &a.broken { br; "Broken at " (b) }
            br; "To check later that nothing up to this head changed: " span.mono { (a.verify_command) }
        }
    }
    }
}

/// One card per protection.
fn summary_part(r: &Report) -> Markup {
    html! {
    section.first #summary {
        h2 { "Summary" }
        div.cards {
            @for c in &r.summary {
                div class={"card " (status_class(c.status))} data-metric=(c.metric) data-value=(c.value) {
                    div { strong { (c.protection) } " " span.badge { (c.status) } }
                    div.v { (c.value) }
                    div.m { (c.metric) }
                }
            }
        }
    }
    }
}

/// Secret ages against their maximum, and rotations.
fn secrets_part(r: &Report) -> Markup {
    html! {
    section #secrets {
        h2 { "Secrets" }
        @let rows: Vec<(String, f64, Option<f64>, bool)> = r.secrets.items.iter().map(|s| (s.id.clone(), s.age_days.max(0) as f64, Some(f64::from(s.max_age_days)), s.overdue)).collect();
        @if rows.is_empty() { p.empty { "No secrets." } } @else {
            (bars("sec", "Secret age against its maximum", "One bar per secret: its age in days; the dashed line is its maximum age; red bars are overdue.", &rows, " d"))
        }
        details {
            summary { "Data" }
            table { tr { th { "secret" } th { "name" } th { "age (days)" } th { "max (days)" } th { "overdue" } }
                @for s in &r.secrets.items { tr { td.mono { (s.id) } td { (s.name) } td { (s.age_days) } td { (s.max_age_days) } td { @if s.overdue { "yes" } @else { "no" } } } } }
        }
        h3 { "Rotation history" }
        @if r.secrets.rotations.is_empty() { p.empty { "No rotation in the period." } } @else {
            table { tr { th { "when" } th { "secret" } th { "result" } }
                @for x in &r.secrets.rotations { tr { td { (x.at) } td.mono { (x.secret) } td { (x.result) } } } }
        }
    }
    }
}

/// Contacts anonymized per day, and the jobs.
fn contacts_part(r: &Report) -> Markup {
    html! {
    section #contacts {
        h2 { "Contacts" }
        @if let Some(n) = r.contacts.past_retention { p { "Contacts past retention not yet anonymized: " strong { (n) } } }
        (per_day("anon", "Contacts anonymized per day", "One column per day (UTC): the contacts anonymized that day.", &r.contacts.per_day))
        details { summary { "Data" }
            table { tr { th { "day" } th { "contacts" } } @for (d, c) in &r.contacts.per_day { tr { td { (d) } td { (c) } } } } }
        h3 { "Jobs" }
        @if r.contacts.jobs.is_empty() { p.empty { "No anonymize job in the period." } } @else {
            table { tr { th { "job" } th { "started" } th { "status" } th { "done" } th { "failed" } }
                @for j in &r.contacts.jobs { tr { td.mono { (j.id) } td { (j.started) } td { (j.status) } td { (j.done) } td { (j.failed) } } } }
        }
    }
    }
}

/// Sensitive columns encrypted and in clear, per table.
fn datastores_part(r: &Report) -> Markup {
    html! {
    section #datastores {
        h2 { "Data stores" }
        @if r.datastores.is_empty() { p.empty { "No table named (give --table, or [[datastore.tables]])." } } @else {
            (coverage(&r.datastores))
            details { summary { "Data" }
                table { tr { th { "table" } th { "sensitive encrypted" } th { "sensitive in clear" } th { "other" } th { "in clear" } }
                    @for t in &r.datastores { tr { td.mono { (t.table) } td { (t.sensitive_encrypted) } td { (t.sensitive_in_clear) } td { (t.other) } td { (t.in_clear.join(", ")) } } } } }
        }
    }
    }
}

/// Each widget's policy, drift and findings.
fn webchat_part(r: &Report) -> Markup {
    html! {
    section #webchat {
        h2 { "Webchat" }
        @for w in &r.webchat {
            h3 { (w.name) " " span.mono { "(" (w.id) ")" } }
            p { "Token required: " @if w.require_token { "yes, " (w.token_expiry_minutes) " min" } @else { "no" }
                " · drift: " @match w.drift { Some(true) => "yes", Some(false) => "no", None => "not declared" }
                " · last deployed digest: " span.mono { (w.last_digest.as_deref().unwrap_or("never deployed by cxguard")) } }
            p { "Origins: " @for (i, o) in w.origins.iter().enumerate() { @if i > 0 { ", " } span.mono { (o) } } }
            table { tr { th { "rule" } th { "action" } th { "pattern" } }
                @for x in &w.rules { tr { td.mono { (x.id) } td { (x.action) } td.mono { (x.pattern) } } } }
            @for f in &w.findings { p { "Finding: " (f) } }
        }
    }
    }
}

/// Guest links per day and by outcome.
fn identity_part(r: &Report) -> Markup {
    html! {
    section #identity {
        h2 { "Identity" }
        (per_day("links", "Guest links per day", "One column per day (UTC): guests linked to a returning person that day.", &r.identity.per_day))
        details { summary { "Data" }
            table { tr { th { "outcome" } th { "count" } } @for (o, c) in &r.identity.outcomes { tr { td { (o) } td { (c) } } } } }
    }
    }
}

/// Webhook delivery.
pub(super) fn delivery_part(d: &Delivery) -> Markup {
    html! {
    section #delivery {
        h2 { "Delivery" }
        table { tr { th { "delivered" } th { "pending" } th { "dead-lettered" } th { "skipped (no endpoint)" } }
            tr { td { (d.delivered) } td { (d.pending) } td { (d.dead) } td { (d.skipped) } } }
        @if !d.pending_by_kind.is_empty() {
            p { "Pending by endpoint: " @for (k, n) in &d.pending_by_kind { span.mono { (k) } " " (n) "; " } }
        }
    }
    }
}
