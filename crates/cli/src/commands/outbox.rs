//! `cxguard outbox status | deliver | retry ID | purge --delivered | new-secret`: the
//! webhook outbox.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::config;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::store::{self, Access};

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Counts of pending, delivered, dead and skipped events, and the dead ones.
    Status,
    /// Deliver due events once; with --until-empty, keep going until none is pending
    /// (exit 75 if some still are after --max-wait).
    Deliver {
        #[arg(long)]
        until_empty: bool,
        /// With --until-empty: wait at most this long for retries that fall due later.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        max_wait: u64,
    },
    /// Single events, oldest first: --status pending|delivered|dead|skipped, --type T.
    List {
        #[arg(long)]
        status: Option<String>,
        /// An event type, e.g. contact.anonymized.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a dead or skipped event due again, with a fresh retry schedule.
    Retry { id: String },
    /// Delete delivered events.
    Purge {
        #[arg(long, required = true)]
        delivered: bool,
    },
    /// Print a new random whsec_ signing secret for a webhook endpoint.
    NewSecret,
}

pub async fn run(ctx: &Context, args: OutboxArgs) -> Result<Exit, CliError> {
    match args.command {
        OutboxCommand::NewSecret => {
            let s = ledger::webhooks::WebhookSecret::generate_text()?;
            match ctx.output {
                Output::Json => print_json(&json!({"secret": s})),
                Output::Text => println!("{s}"),
            }
        }
        OutboxCommand::Status => status(ctx).await?,
        OutboxCommand::List {
            status,
            event_type,
            limit,
        } => list(ctx, status.as_deref(), event_type.as_deref(), limit).await?,
        OutboxCommand::Deliver {
            until_empty,
            max_wait,
        } => deliver(ctx, until_empty, max_wait).await?,
        OutboxCommand::Retry { id } => {
            let ledger = store::open(ctx, Access::Read).await?;
            ledger
                .retry_event(&id)
                .await
                .map_err(|e| CliError::usage(e.to_string()))?;
            match ctx.output {
                Output::Json => print_json(&json!({"id": id, "status": "pending"})),
                Output::Text => ctx.note(format!("{id} is due again")),
            }
        }
        OutboxCommand::Purge { delivered: _ } => {
            let ledger = store::open(ctx, Access::Read).await?;
            let n = ledger.purge_delivered().await?;
            match ctx.output {
                Output::Json => print_json(&json!({"purged": n})),
                Output::Text => println!("purged {n} delivered event(s)"),
            }
        }
    }
    Ok(Exit::Ok)
}

/// `outbox status`: the counts, the groups by endpoint, type, status and error.
async fn status(ctx: &Context) -> Result<(), CliError> {
    let ledger = store::open(ctx, Access::Read).await?;
    let st = ledger.outbox_status().await?;
    let groups = ledger.outbox_groups().await?;
    let dead = ledger.outbox_events(Some("dead"), 50).await?;
    let skipped = ledger.outbox_events(Some("skipped"), 50).await?;
    match ctx.output {
        Output::Json => {
            print_json(&json!({"status": st, "groups": groups, "dead": dead, "skipped": skipped}))
        }
        Output::Text => print_status(&st, &groups),
    }
    Ok(())
}

fn print_status(st: &ledger::OutboxStatus, groups: &[ledger::OutboxGroup]) {
    let total = st.pending + st.delivered + st.dead + st.skipped;
    println!(
        "outbox: {total} events = {} pending + {} delivered + {} dead + {} skipped",
        st.pending, st.delivered, st.dead, st.skipped
    );
    if !groups.is_empty() {
        let mut t = table(&[
            "endpoint",
            "type",
            "status",
            "events",
            "oldest",
            "last error",
        ]);
        for g in groups {
            let mut err = g.last_error.clone().unwrap_or_default();
            if err.chars().count() > 60 {
                err = err.chars().take(59).collect::<String>() + "…";
            }
            t.add_row(vec![
                g.kind.clone(),
                g.event_type.clone(),
                g.status.clone(),
                g.count.to_string(),
                g.oldest.clone(),
                err,
            ]);
        }
        println!("{t}");
    }
    if st.pending > 0 {
        println!("deliver pending events with: cxguard outbox deliver --until-empty");
    }
    if st.dead + st.skipped > 0 {
        println!(
            "see them one by one with: cxguard outbox list --status dead (or skipped); retry one with: cxguard outbox retry ID"
        );
    }
}

/// `outbox list`: events one by one, filtered.
async fn list(
    ctx: &Context,
    status: Option<&str>,
    event_type: Option<&str>,
    limit: i64,
) -> Result<(), CliError> {
    if let Some(s) = status
        && !["pending", "delivered", "dead", "skipped"].contains(&s)
    {
        return Err(CliError::usage(format!(
            "--status: {s:?} is not pending, delivered, dead or skipped"
        )));
    }
    let ledger = store::open(ctx, Access::Read).await?;
    let events = ledger.outbox_list(status, event_type, limit).await?;
    match ctx.output {
        Output::Json => print_json(&events),
        Output::Text => {
            let mut t = table(&[
                "id",
                "endpoint",
                "type",
                "status",
                "attempts",
                "created",
                "last error",
            ]);
            for e in &events {
                t.add_row(vec![
                    e.id.clone(),
                    e.kind.clone(),
                    e.event_type.clone(),
                    e.status.clone(),
                    e.attempts.to_string(),
                    e.created_at.clone(),
                    e.last_error.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

/// `outbox deliver`: one round, or rounds until empty or `max_wait` seconds.
async fn deliver(ctx: &Context, until_empty: bool, max_wait: u64) -> Result<(), CliError> {
    let cfg = config::delivery(&ctx.config, ctx.env())?;
    let ledger = store::open(ctx, Access::Read).await?;
    let lease_secs = cfg.lease.as_secs();
    let d = ledger::deliver::Deliverer::new(ledger.clone(), cfg)?;
    let (total, left) = if until_empty {
        d.until_empty(Duration::from_secs(max_wait)).await?
    } else {
        let r = d.round().await?;
        (r, ledger.outbox_status().await?.pending)
    };
    match ctx.output {
        Output::Json => print_json(&json!({"result": total, "pending": left})),
        Output::Text => println!(
            "delivered {}, retrying {}, dead {}, skipped {}; {} still pending",
            total.delivered, total.retrying, total.dead, total.skipped, left
        ),
    }
    if total.dead > 0 {
        return Err(CliError::new(
            Exit::Failed,
            format!(
                "{} event(s) went to dead letter; see `cxguard outbox status`",
                total.dead
            ),
        ));
    }
    if until_empty && left > 0 {
        // Exit 0 would tell a script the outbox is empty when it is not.
        return Err(CliError::new(
            Exit::TempFail,
            format!(
                "{left} event(s) still pending after --max-wait {max_wait}: each waits for its next retry, or for the lease of a deliverer that stopped mid-round to expire ({lease_secs} s); run again later, or see `cxguard outbox status`"
            ),
        ));
    }
    Ok(())
}
