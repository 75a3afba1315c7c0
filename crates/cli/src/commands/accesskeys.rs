//! `cxguard accesskeys list | rotate | finish` (api = "cxone"): the tenant's access keys
//! with their findings, and their rotation delivered to a file, OpenBao/Vault or a
//! command (`guard::accesskeys`).

use std::time::Duration;

use clap::{Args, Subcommand};
use guard::accesskeys::{Report, Request, Target, Thresholds};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};

#[derive(Debug, Args)]
pub struct AccessKeysArgs {
    #[command(subcommand)]
    pub command: AccessKeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccessKeysCommand {
    /// Every key: user, agent, active, last used, age, and findings (exit 2 with any).
    List {
        /// A key unused this many days is a finding.
        #[arg(long, default_value_t = 90)]
        unused_days: i64,
        /// A key older than this many days (or of unknown age) is a finding.
        #[arg(long, default_value_t = 90)]
        max_age_days: i64,
    },
    /// Replace a key: create, deliver, verify, deactivate the old one (after --grace),
    /// delete it (after --delete-after). Resumes an interrupted rotation of the key.
    Rotate {
        /// The key to replace.
        #[arg(long, value_name = "ID")]
        key: String,
        /// Where the new key goes: file:/path, vault:MOUNT/PATH or exec:COMMAND.
        #[arg(long, value_name = "TARGET")]
        deliver: String,
        /// How long the old key stays active after the new one works (e.g. 0, 30m, 24h).
        #[arg(long, default_value = "0")]
        grace: String,
        /// Delete the old key this long after it is deactivated (default: never).
        #[arg(long, value_name = "DURATION")]
        delete_after: Option<String>,
    },
    /// Complete every rotation whose grace or deletion has come (for cron).
    Finish,
}

/// `90`, `90s`, `30m`, `24h`, `7d` (`guard::parsing::duration`), a usage error otherwise.
fn duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    guard::parsing::duration(flag, text).map_err(|e| CliError::usage(e.to_string()))
}

pub async fn run(ctx: &Context, a: AccessKeysArgs) -> Result<Exit, CliError> {
    // Everything the command line says is checked before connecting.
    let rotate = match &a.command {
        AccessKeysCommand::Rotate {
            key,
            deliver,
            grace,
            delete_after,
        } => Some(Request {
            key_id: key.clone(),
            target: Target::parse(deliver).map_err(|e| CliError::usage(e.to_string()))?,
            grace: duration("--grace", grace)?,
            delete_after: delete_after
                .as_deref()
                .map(|d| duration("--delete-after", d))
                .transpose()?,
            actor: crate::commands::contacts::actor(),
        }),
        _ => None,
    };
    let vault = crate::config::vault(&ctx.config, ctx.env())?;
    let target = crate::tenant::connect_cxone(ctx, Default::default(), "access keys").await?;
    let ledger = crate::store::open(ctx, crate::store::Access::Write).await?;
    match (a.command, rotate) {
        (
            AccessKeysCommand::List {
                unused_days,
                max_age_days,
            },
            _,
        ) => {
            let keys = target.client.access_keys().list(None).await?;
            let history = guard::accesskeys::history(&ledger).await?;
            let rows = guard::accesskeys::rows(
                &keys,
                &history,
                Thresholds {
                    unused_days,
                    max_age_days,
                },
                time::OffsetDateTime::now_utc(),
            );
            print_rows(ctx, &rows);
            Ok(if rows.iter().any(|r| !r.findings.is_empty()) {
                Exit::Findings
            } else {
                Exit::Ok
            })
        }
        (AccessKeysCommand::Rotate { .. }, Some(req)) => {
            let _deliverer = crate::store::start_delivery(ctx, &ledger)?;
            let r =
                guard::accesskeys::rotate(&target.client, &ledger, vault.as_ref(), &req).await?;
            print_reports(ctx, &[r]);
            Ok(Exit::Ok)
        }
        _ => {
            let rs = guard::accesskeys::finish_due(
                &target.client,
                &ledger,
                vault.as_ref(),
                &crate::commands::contacts::actor(),
            )
            .await?;
            print_reports(ctx, &rs);
            Ok(Exit::Ok)
        }
    }
}

fn print_rows(ctx: &Context, rows: &[guard::accesskeys::KeyRow]) {
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({ "keys": rows })),
        Output::Text => {
            let mut t = table(&[
                "id",
                "user",
                "agent",
                "active",
                "last used",
                "age (days)",
                "findings",
            ]);
            for r in rows {
                t.add_row(vec![
                    r.id.clone(),
                    r.user_id.clone().unwrap_or_default(),
                    r.agent_id.map_or(String::new(), |a| a.to_string()),
                    if r.active { "yes".into() } else { "no".into() },
                    r.last_used.clone().unwrap_or_else(|| "never".into()),
                    r.age_days.map_or("unknown".into(), |a| a.to_string()),
                    r.findings.join("; "),
                ]);
            }
            println!("{t}");
        }
    }
}

fn print_reports(ctx: &Context, rs: &[Report]) {
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({ "rotations": rs })),
        Output::Text => {
            if rs.is_empty() {
                println!("no rotation waiting");
            }
            for r in rs {
                println!(
                    "{}: {} → {} delivered to {} ({}); old key deactivated at {}{}",
                    r.job_id,
                    r.old_key,
                    r.new_key.as_deref().unwrap_or("-"),
                    r.target
                        .split_once(':')
                        .map_or(r.target.as_str(), |(k, _)| if k == "exec" {
                            "exec"
                        } else {
                            r.target.as_str()
                        }),
                    r.status,
                    r.deactivate_at.as_deref().unwrap_or("-"),
                    r.delete_at
                        .as_deref()
                        .map_or(String::new(), |d| format!(", deleted at {d}"))
                );
            }
        }
    }
}
