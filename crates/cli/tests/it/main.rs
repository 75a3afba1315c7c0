//! The `cxguard` binary as a user runs it: exit codes, messages, and output formats.

mod anonymize;
mod commands;
mod cxone_api;
mod cxone_digital;
mod cxone_policies;
mod cxone_posture;
mod cxone_subject;
mod datastore;
mod doctor;
mod errors;
mod guests;
mod hardening;
mod harness;
mod ledger_commands;
mod openbao;
mod posture;
mod report;
mod rotate;
mod schemas;
mod subject;
mod trust;
mod webchat;

use std::process::{Command, Output};

/// Runs `cxguard` with `args` in `dir`, with a clean CXGUARD_* environment plus `env`.
pub fn cxguard(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxguard"));
    // What it keeps in the temporary directory (the demo's ledger and report) goes
    // with the test's directory.
    cmd.args(args).current_dir(dir).env("TMPDIR", dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("CXGUARD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cxguard runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A text report as operators read it: every line fits 100 columns, and every line that
/// states a total (`N things … = a x + b y + …`) adds up. Returns how many such lines
/// there were, so a caller can insist on its own.
pub fn assert_report_fits_and_adds_up(out: &str) -> usize {
    let num = |w: &str| -> Option<u64> {
        let w = w.trim_matches(|c: char| c == '(' || c == ')' || c == ',' || c == ':');
        if w.is_empty() || !w.chars().all(|c| c.is_ascii_digit() || c == ',') {
            return None;
        }
        w.replace(',', "").parse().ok()
    };
    let mut sums = 0;
    for line in out.lines() {
        assert!(
            line.chars().count() <= 100,
            "over 100 columns ({}): {line:?}",
            line.chars().count()
        );
        let Some((left, right)) = line.split_once(" = ") else {
            continue;
        };
        let total = left
            .split_whitespace()
            .find_map(num)
            .unwrap_or_else(|| panic!("no total before '=': {line:?}"));
        let parts: u64 = right.split_whitespace().filter_map(num).sum();
        assert_eq!(parts, total, "the counts add up: {line:?}");
        sums += 1;
    }
    sums
}
