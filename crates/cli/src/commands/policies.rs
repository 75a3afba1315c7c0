//! `cxguard policies runs | evidence` (api = "cxone"): the runs of the tenant's data
//! policies with status, result summary and findings, followed to a final status; and a
//! run's evidence report, downloaded and recorded in the audit log (`guard::policies`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use guard::policies::runs::{Filter, RunView};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, say};
use crate::store::{self, Access};

#[derive(Debug, Args)]
pub struct PoliciesArgs {
    #[command(subcommand)]
    pub command: PoliciesCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// The policies' runs, newest first: status, result summary, findings (a run that
    /// FAILED, SEARCH_FAILED or PARTIALLY_SUCCEEDED, or waits for approval too long).
    /// Exit 0, or 2 when a run is a finding.
    Runs(RunsArgs),
    /// Download a run's evidence report to DIR (mode 0600, never overwriting) and record
    /// its SHA-256 and size in the audit log.
    Evidence {
        /// The run (policy instance) id.
        #[arg(value_name = "INSTANCE")]
        instance: String,
        /// The directory to write into (created, mode 0700, if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this policy's runs (by name).
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// Only runs begun on or after DATE (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Follow running runs until each has ended (a run waiting for approval is not
    /// waited for).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait follows at most (30s, 10m, 2h).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub timeout: String,
    /// A run waiting for approval longer than this many hours is a finding.
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub approval_hours: u32,
}

/// Connects to the tenant; refused unless it speaks CXone's published API.
async fn connect(ctx: &Context, writes: bool) -> Result<crate::tenant::Connected, CliError> {
    let needs = if writes {
        crate::tenant::Needs::writing(&[])
    } else {
        crate::tenant::Needs::reading(&[])
    };
    crate::tenant::connect_cxone(ctx, needs, "data policies").await
}

pub async fn run(ctx: &Context, a: PoliciesArgs) -> Result<Exit, CliError> {
    match a.command {
        PoliciesCommand::Runs(r) => runs(ctx, r).await,
        PoliciesCommand::Evidence { instance, out } => evidence(ctx, &instance, &out).await,
    }
}

async fn runs(ctx: &Context, a: RunsArgs) -> Result<Exit, CliError> {
    let since = a
        .since
        .as_deref()
        .map(|s| guard::parsing::date_or_time("--since", s))
        .transpose()?;
    let timeout = guard::parsing::duration("--timeout", &a.timeout)?;
    let filter = Filter {
        policy: a.policy.clone(),
        since,
        approval_hours: a.approval_hours,
    };
    let target = connect(ctx, false).await?;
    let mut list = guard::policies::runs::list(&target.client, &filter).await?;
    if let Some(p) = &a.policy
        && list.is_empty()
    {
        ctx.note(format!("no runs of a policy named {p:?}"));
    }
    if a.wait {
        let quiet = ctx.quiet;
        guard::policies::runs::wait(
            &target.client,
            &mut list,
            a.approval_hours,
            std::time::Duration::from_millis(500),
            timeout,
            &|r: &RunView| {
                if !quiet {
                    let pct = r
                        .summary
                        .as_ref()
                        .and_then(|s| s.progress)
                        .map_or(String::new(), |p| format!(" {p:>3}%"));
                    eprintln!("  {} {}: {}{pct}", r.policy_name, r.run_id, r.status);
                }
            },
        )
        .await?;
    }
    match ctx.output {
        Output::Json => print_json(&json!({"runs": list})),
        Output::Text => print_runs(&list),
    }
    Ok(if list.iter().any(|r| r.finding.is_some()) {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

fn print_runs(list: &[RunView]) {
    for r in list {
        let s = r.summary.as_ref();
        let n = |v: Option<i64>| v.map_or("-".to_string(), |x| x.to_string());
        say(format!(
            "{} {} ({}): {} — {} done, {} failed, {} partial, {} held{}",
            r.created.as_deref().unwrap_or("?"),
            r.run_id,
            r.policy_name,
            r.status,
            n(s.and_then(|s| s.success_count)),
            n(s.and_then(|s| s.failure_count)),
            n(s.and_then(|s| s.partial_count)),
            n(s.and_then(|s| s.litigation_hold_count)),
            r.finding
                .as_deref()
                .map_or(String::new(), |f| format!("\n  ! {f}"))
        ));
    }
    let findings = list.iter().filter(|r| r.finding.is_some()).count();
    say(format!("{} run(s), {findings} finding(s)", list.len()));
}

async fn evidence(ctx: &Context, instance: &str, out: &std::path::Path) -> Result<Exit, CliError> {
    if instance.is_empty()
        || instance.len() > 128
        || !instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(CliError::new(
            Exit::Input,
            "INSTANCE: not a policy run id (1–128 of A-Z a-z 0-9 - _ .)",
        ));
    }
    if !out.exists() {
        std::fs::create_dir_all(out).map_err(|e| {
            CliError::new(
                Exit::Failed,
                format!("--out: cannot create {}: {e}", out.display()),
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700));
        }
    }
    let target = connect(ctx, true).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let e = guard::policies::evidence::download(
        &target.client,
        &ledger,
        &crate::commands::contacts::actor(),
        instance,
        out,
    )
    .await?;
    match ctx.output {
        Output::Json => print_json(&e),
        Output::Text => say(format!(
            "wrote {} ({} bytes, sha256 {}); audit entry {}",
            e.path.display(),
            e.bytes,
            e.sha256,
            e.audit_seq
        )),
    }
    Ok(Exit::Ok)
}
