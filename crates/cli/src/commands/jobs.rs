//! `cxguard jobs list | show ID`: the job journal.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::store::{self, Access};

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The most recent jobs with their item counts.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One job: its parameters, counts, and the items that are not done.
    Show {
        id: String,
        /// Items to list at most.
        #[arg(long, default_value_t = 50)]
        items: i64,
    },
}

pub async fn run(ctx: &Context, args: JobsArgs) -> Result<Exit, CliError> {
    let ledger = store::open(ctx, Access::Read).await?;
    match args.command {
        JobsCommand::List { limit } => {
            let jobs = ledger.jobs(limit.max(1)).await?;
            match ctx.output {
                Output::Json => print_json(&jobs),
                Output::Text => {
                    let mut t = table(&[
                        "id",
                        "kind",
                        "status",
                        "done",
                        "failed",
                        "in flight",
                        "pending",
                        "updated",
                    ]);
                    for j in &jobs {
                        t.add_row(vec![
                            j.id.clone(),
                            j.kind.clone(),
                            j.status.clone(),
                            j.done.to_string(),
                            j.failed.to_string(),
                            j.in_flight.to_string(),
                            j.pending.to_string(),
                            j.updated_at.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
        }
        JobsCommand::Show { id, items } => {
            let job = ledger
                .job(&id)
                .await
                .map_err(|e| CliError::usage(e.to_string()))?;
            let mut open_items = ledger
                .job_items(&id, Some(ledger::ItemState::Failed), items)
                .await?;
            open_items.extend(
                ledger
                    .job_items(&id, Some(ledger::ItemState::InFlight), items)
                    .await?,
            );
            match ctx.output {
                Output::Json => print_json(&json!({"job": job, "unfinishedItems": open_items})),
                Output::Text => {
                    println!(
                        "job {} ({}), {} by {}",
                        job.id, job.kind, job.status, job.actor
                    );
                    println!("  created {}, updated {}", job.created_at, job.updated_at);
                    println!("  parameters {}", job.params);
                    println!(
                        "  items: {} done, {} failed, {} in flight, {} pending",
                        job.done, job.failed, job.in_flight, job.pending
                    );
                    if !open_items.is_empty() {
                        let mut t = table(&["item", "state", "attempts", "last error"]);
                        for i in &open_items {
                            t.add_row(vec![
                                i.key.clone(),
                                i.state.clone(),
                                i.attempts.to_string(),
                                i.last_error.clone().unwrap_or_default(),
                            ]);
                        }
                        println!("{t}");
                    }
                }
            }
        }
    }
    Ok(Exit::Ok)
}
