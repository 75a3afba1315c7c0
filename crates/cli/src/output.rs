//! How results are shown: text tables for people, JSON for pipelines.

use comfy_table::{Table, presets};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// A table with the house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    t
}

/// Prints `value` as one JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
    }
}

/// The report lines about the webhook events a run sent, whose counts add up, and, when
/// events wait in the outbox, the command that delivers them.
pub fn events_lines(sent: &ledger::deliver::Delivered, pending: u64) -> Vec<String> {
    use crate::progress::thousands as n;
    let mut lines = vec![format!(
        "  webhook events sent by this run: {} delivered + {} skipped + {} retrying + {} dead",
        n(sent.delivered),
        n(sent.skipped),
        n(sent.retrying),
        n(sent.dead)
    )];
    if pending > 0 {
        lines.push(format!(
            "  {} event(s) pending in the outbox: cxguard outbox deliver --until-empty",
            n(pending)
        ));
    }
    lines
}

/// `line` cut to `width` columns, ending in `…` when it was cut.
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}
