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

/// `line` broken between words into lines of at most `width` columns, the continuation
/// lines indented four spaces deeper than the first (a word longer than a line is cut
/// with [`fit`]).
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let lead = line.len() - line.trim_start().len();
    let indent = " ".repeat(lead + 4);
    let mut out = Vec::new();
    let mut cur = line[..lead].to_string();
    let mut empty = true;
    for word in line.split_whitespace() {
        let add = if empty { 0 } else { 1 } + word.chars().count();
        if !empty && cur.chars().count() + add > width {
            out.push(std::mem::replace(&mut cur, indent.clone()));
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        cur.push_str(word);
        empty = false;
    }
    out.push(cur);
    out.into_iter().map(|l| fit(&l, width)).collect()
}

/// Prints `line` wrapped to 100 columns.
pub fn say(line: impl AsRef<str>) {
    for l in wrap(line.as_ref(), 100) {
        println!("{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_short_lines_and_breaks_long_ones_between_words() {
        assert_eq!(wrap("  short line", 100), vec!["  short line"]);
        let long = format!(
            "~ secret s: rotate; recompile and test {}",
            "da-x, ".repeat(30)
        );
        let lines = wrap(long.trim_end(), 40);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert!(lines[1].starts_with("    da-x"), "{lines:?}");
        let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(words.join(" "), long.trim_end());
    }
}
