//! The `cxguard` binary as a user runs it: exit codes, messages, and output formats.

mod anonymize;
mod commands;
mod datastore;
mod doctor;
mod errors;
mod guests;
mod hardening;
mod harness;
mod ledger_commands;
mod posture;
mod report;
mod rotate;
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
