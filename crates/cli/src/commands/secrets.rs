//! `cxguard secrets list | due`: Integration secrets, their age and their dependents.
//! (Rotation itself is not built yet.)

use clap::{Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::{Context, tenant};

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Every secret: id, name, format, version, last update, age and dependent Data Actions.
    List,
    /// Secrets older than the policy, for cron and CI: exit code 2 when there are any.
    Due {
        /// The oldest a secret may be: 90d, 12h, 2w, 3600s.
        #[arg(long, value_name = "AGE")]
        max_age: String,
    },
}

pub async fn run(
    ctx: &Context,
    args: SecretsArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Exit, CliError> {
    match args.command {
        SecretsCommand::List => {
            let target = tenant::connect(ctx, env, None).await?;
            let client = &target.client;
            let secrets = client.secrets().list().await?;
            let refs = futures_util::stream::iter(
                secrets.iter().map(|s| client.secrets().references(&s.id)),
            )
            .buffered(8)
            .try_collect::<Vec<_>>()
            .await?;
            let now = time::OffsetDateTime::now_utc();
            let rows: Vec<serde_json::Value> = secrets
                .iter()
                .zip(&refs)
                .map(|(s, r)| {
                    let age = time::OffsetDateTime::parse(&s.updated_at, &time::format_description::well_known::Rfc3339)
                        .ok()
                        .map(|u| (now - u).whole_days());
                    json!({
                        "id": s.id, "name": s.name, "format": s.format, "version": s.version,
                        "updatedAt": s.updated_at, "ageDays": age,
                        "dependents": r.iter().map(|d| d.data_action_id.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            match ctx.output {
                Output::Json => print_json(&rows),
                Output::Text => {
                    let mut t = table(&[
                        "id",
                        "name",
                        "format",
                        "version",
                        "last update",
                        "age (days)",
                        "dependents",
                    ]);
                    for r in &rows {
                        let deps: Vec<&str> = r["dependents"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|d| d.as_str())
                            .collect();
                        t.add_row(vec![
                            r["id"].as_str().unwrap_or_default().to_string(),
                            r["name"].as_str().unwrap_or_default().to_string(),
                            r["format"].as_str().unwrap_or_default().to_string(),
                            r["version"].to_string(),
                            r["updatedAt"].as_str().unwrap_or_default().to_string(),
                            r["ageDays"].as_i64().map_or("?".into(), |d| d.to_string()),
                            if deps.is_empty() {
                                "-".into()
                            } else {
                                deps.join(", ")
                            },
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(Exit::Ok)
        }
        SecretsCommand::Due { max_age } => {
            let age = guard::secrets::parse_age(&max_age)
                .map_err(|e| CliError::usage(format!("--max-age: {e}")))?;
            let target = tenant::connect(ctx, env, None).await?;
            let secrets = target.client.secrets().list().await?;
            let due = guard::secrets::due(&secrets, age, time::OffsetDateTime::now_utc());
            match ctx.output {
                Output::Json => print_json(&json!({"maxAge": max_age, "due": due})),
                Output::Text => {
                    if due.is_empty() {
                        println!("no secret is older than {max_age}");
                    } else {
                        let mut t = table(&["id", "name", "version", "last update", "age (days)"]);
                        for d in &due {
                            t.add_row(vec![
                                d.id.clone(),
                                d.name.clone(),
                                d.version.to_string(),
                                d.updated_at.clone(),
                                if d.age_days == i64::MAX {
                                    "unknown".into()
                                } else {
                                    d.age_days.to_string()
                                },
                            ]);
                        }
                        println!("{t}");
                        println!("{} secret(s) older than {max_age}", due.len());
                    }
                }
            }
            Ok(if due.is_empty() {
                Exit::Ok
            } else {
                Exit::Findings
            })
        }
    }
}
