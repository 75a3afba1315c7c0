//! `cxguard webchat plan | apply | export | drift`: webchat security policies as a file
//! (spec §7, tutorial 004), validated before any call, planned as a diff, applied with
//! the widget's real ETag.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use guard::webchat::{self, Policy, WidgetPlan};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct WebchatArgs {
    #[command(subcommand)]
    pub command: WebchatCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebchatCommand {
    /// Show what applying the policy file would change, widget by widget.
    Plan {
        /// The policy file (TOML, one [widgets.ID] table per widget).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Exit 2 when there are changes (0 when none), for CI.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Put each widget that differs from the policy file, with If-Match.
    Apply {
        /// The policy file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
    },
    /// Write the tenant's policies as a policy file, on stdout.
    Export {
        /// Only this widget.
        #[arg(long, value_name = "ID")]
        widget: Option<String>,
    },
    /// `plan --detailed-exitcode`, quiet: one line per drifted widget, exit 2 on drift.
    Drift {
        /// The policy file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
    },
}

fn read_policy(path: &Path) -> Result<Policy, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Input,
            format!("cannot read the policy {}: {e}", path.display()),
        )
    })?;
    Policy::parse(&text, path)
        .map_err(|e| CliError::new(Exit::Input, format!("{e}\nnothing was changed")))
}

pub async fn run(ctx: &Context, args: WebchatArgs) -> Result<Exit, CliError> {
    match args.command {
        WebchatCommand::Plan {
            policy,
            detailed_exitcode,
        } => plan_cmd(ctx, &policy, detailed_exitcode, false).await,
        WebchatCommand::Drift { policy } => plan_cmd(ctx, &policy, true, true).await,
        WebchatCommand::Apply { policy } => apply_cmd(ctx, &policy).await,
        WebchatCommand::Export { widget } => export_cmd(ctx, widget.as_deref()).await,
    }
}

async fn plan_cmd(
    ctx: &Context,
    path: &Path,
    detailed: bool,
    drift: bool,
) -> Result<Exit, CliError> {
    let policy = read_policy(path)?;
    let target = tenant::connect(ctx, tenant::Needs::reading(webchat::READ_SCOPES)).await?;
    let plans = webchat::plan(&target.client, &policy).await?;
    let changed: Vec<&WidgetPlan> = plans.iter().filter(|p| !p.changes.is_empty()).collect();
    match ctx.output {
        Output::Json => print_json(&json!({"widgets": plans, "changed": changed.len()})),
        Output::Text if drift => {
            for p in &changed {
                println!("drift {}: {}", p.widget, p.changes.summary());
            }
        }
        Output::Text => {
            for p in &plans {
                show(p);
            }
            println!("{} of {} widget(s) to change", changed.len(), plans.len());
        }
    }
    Ok(if detailed && !changed.is_empty() {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// One widget's diff, as `terraform plan` would show it.
pub(crate) fn show(p: &WidgetPlan) {
    let c = &p.changes;
    if c.is_empty() {
        println!("  {} ({}): no changes", p.widget, p.name);
        return;
    }
    println!("~ {} ({})", p.widget, p.name);
    for o in &c.origins_added {
        println!("    + origin {o}");
    }
    for o in &c.origins_removed {
        println!("    - origin {o}");
    }
    if c.origins_reordered {
        println!("    ~ origins reordered");
    }
    for a in &c.authentication {
        println!("    ~ {a}");
    }
    for r in &c.rules_added {
        println!("    + rule {r}");
    }
    for r in &c.rules_removed {
        println!("    - rule {r}");
    }
    for r in &c.rules_changed {
        println!("    ~ rule {r}");
    }
    if c.rules_reordered {
        println!("    ~ rules reordered (the first match applies)");
    }
}

async fn apply_cmd(ctx: &Context, path: &Path) -> Result<Exit, CliError> {
    let policy = read_policy(path)?;
    let target = tenant::connect(ctx, tenant::Needs::writing(webchat::SCOPES)).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let deliverer = store::start_delivery(ctx, &ledger)?;
    let actor = crate::commands::contacts::actor();
    let r = webchat::apply(&target.client, &ledger, &policy, &actor).await;
    deliverer.stop().await;
    let report = r?;
    match ctx.output {
        Output::Json => print_json(&report),
        Output::Text => {
            for w in &report.widgets {
                match (w.outcome, &w.error) {
                    ("changed", _) => {
                        crate::output::say(format!(
                            "{}: deployed ({})",
                            w.widget,
                            w.changes.summary()
                        ));
                        println!(
                            "    configDigest {}",
                            w.config_digest.as_deref().unwrap_or("-")
                        );
                    }
                    ("unchanged", _) => println!("{}: no changes", w.widget),
                    (_, Some(e)) => crate::output::say(format!("{}: FAILED: {e}", w.widget)),
                    (o, None) => println!("{}: {o}", w.widget),
                }
            }
            println!(
                "{} changed, {} failed (job {}{})",
                report.changed(),
                report.failed(),
                report.job_id,
                if report.resumed { ", resumed" } else { "" }
            );
        }
    }
    if report.failed() > 0 {
        let names: Vec<&str> = report
            .widgets
            .iter()
            .filter(|w| w.outcome == "failed")
            .map(|w| w.widget.as_str())
            .collect();
        return Err(CliError::new(
            Exit::Failed,
            format!("not applied to {}", names.join(", ")),
        ));
    }
    Ok(Exit::Ok)
}

async fn export_cmd(ctx: &Context, widget: Option<&str>) -> Result<Exit, CliError> {
    if let Some(w) = widget {
        ledger::details::check_identifier("--widget", w)
            .map_err(|e| CliError::usage(e.to_string()))?;
    }
    let target = tenant::connect(ctx, tenant::Needs::reading(webchat::READ_SCOPES)).await?;
    let e = webchat::export::export(&target.client, widget)
        .await
        .map_err(|e| match e {
            guard::Error::Api(a) if a.status() == Some(404) => CliError::new(
                Exit::Input,
                format!(
                    "--widget: the tenant has no widget {}",
                    widget.unwrap_or("")
                ),
            ),
            other => other.into(),
        })?;
    match ctx.output {
        Output::Json => {
            print_json(&json!({"widgets": e.widgets, "policy": e.toml, "findings": e.findings}))
        }
        Output::Text => print!("{}", e.toml),
    }
    for f in &e.findings {
        ctx.note(format!(
            "finding: {f} (cxguard would refuse to deploy this)"
        ));
    }
    Ok(Exit::Ok)
}
