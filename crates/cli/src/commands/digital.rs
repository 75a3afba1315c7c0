//! `cxguard digital anonymize` (api = "cxone"): the messages of DFO cases — content
//! and author name — removed by the policy's `[digital]` section, as one journaled,
//! resumable job (`guard::digital`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Args, Subcommand};
use guard::digital::Selection;
use guard::job::Progress;
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::progress::{Bar, Total};
use crate::store::{self, Access};

#[derive(Debug, Args)]
pub struct DigitalArgs {
    #[command(subcommand)]
    pub command: DigitalCommand,
}

#[derive(Debug, Subcommand)]
pub enum DigitalCommand {
    /// Remove the content and author names of DFO cases' messages, as the policy's
    /// [digital] section says; messages already removed are skipped, so a rerun
    /// changes nothing.
    Anonymize(AnonymizeArgs),
    /// Create the DFO customer custom field that holds the identity pseudonym
    /// ([identity] attribute, default hashed_user_id) when it is missing: text, not
    /// editable, not shown to agents. Running it again changes nothing.
    Setup,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["closed_before", "cases", "customer"])))]
pub struct AnonymizeArgs {
    /// The masking policy (its [digital] section).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Closed cases closed before DATE (YYYY-MM-DD or RFC 3339): retention.
    #[arg(long, value_name = "DATE")]
    pub closed_before: Option<String>,
    /// The cases in FILE, one case number per line.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// Every case of this DFO customer.
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
}

fn read(flag: &str, path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Input,
            format!("{flag}: cannot read {}: {e}", path.display()),
        )
    })
}

/// The selection the flags name, checked.
fn selection(a: &AnonymizeArgs) -> Result<Selection, CliError> {
    Ok(match (&a.closed_before, &a.cases, &a.customer) {
        (Some(d), _, _) => Selection::closed_before(d, time::OffsetDateTime::now_utc())?,
        (_, Some(f), _) => Selection::cases_file(&f.display().to_string(), &read("--cases", f)?)?,
        (_, _, Some(c)) => {
            if c.is_empty() || c.len() > 128 || c.contains(['/', '?', '#']) {
                return Err(CliError::new(
                    Exit::Input,
                    format!("--customer: {c:?} is not a DFO customer id"),
                ));
            }
            Selection::Customer(c.clone())
        }
        _ => unreachable!("clap requires one of the selection flags"),
    })
}

pub async fn run(ctx: &Context, a: DigitalArgs) -> Result<Exit, CliError> {
    match a.command {
        DigitalCommand::Anonymize(a) => anonymize(ctx, a).await,
        DigitalCommand::Setup => setup(ctx).await,
    }
}

/// Connects to the tenant for writing; refused unless it speaks CXone's published API.
async fn connect(ctx: &Context) -> Result<crate::tenant::Connected, CliError> {
    crate::tenant::connect_cxone(
        ctx,
        crate::tenant::Needs::writing(&[]),
        "digital conversations (DFO)",
    )
    .await
}

/// `digital setup`: the identity field's definition, created once.
async fn setup(ctx: &Context) -> Result<Exit, CliError> {
    let identity = crate::config::identity(&ctx.config, ctx.env())?;
    let target = connect(ctx).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let attribute = identity.attribute();
    let created = guard::digital::setup::setup(
        &target.client,
        &ledger,
        attribute,
        &crate::commands::contacts::actor(),
    )
    .await?;
    match ctx.output {
        Output::Json => print_json(&json!({"field": attribute, "created": created})),
        Output::Text if created => println!(
            "created the DFO customer custom field {attribute} (text, not shown to agents): links can be written"
        ),
        Output::Text => println!(
            "the DFO customer custom field {attribute} is defined already; nothing changed"
        ),
    }
    Ok(Exit::Ok)
}

async fn anonymize(ctx: &Context, a: AnonymizeArgs) -> Result<Exit, CliError> {
    // Everything the command line names is checked before connecting.
    let text = read("--policy", &a.policy)?;
    let policy = guard::digital::policy::load(&a.policy, &text, ctx.env())?;
    let sel = selection(&a)?;
    let target = connect(ctx).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let deliverer = store::start_delivery(ctx, &ledger)?;
    let progress = Arc::new(Progress::default());
    let bar = {
        let client = target.client.clone();
        let start = client.stats().rate_limited;
        Bar::start(
            ctx.quiet,
            "cases",
            Total::Unknown,
            progress.clone(),
            move || client.stats().rate_limited - start,
        )
    };
    let result = guard::digital::anonymize(
        &target.client,
        &ledger,
        &policy,
        &sel,
        &crate::commands::contacts::actor(),
        progress,
    )
    .await;
    bar.finish().await;
    let delivered = deliverer.stop().await;
    let r = result?;
    let budget = guard::digital::budget_use(&target.client, &r);
    print_report(ctx, &r, budget.as_ref(), &delivered);
    if r.failed + r.not_found > 0 {
        let ids: Vec<String> = r
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.id, f.error))
            .collect();
        return Err(CliError::new(
            Exit::Failed,
            format!(
                "{} case(s) failed or do not exist; rerun to retry them (job {}):\n  {}",
                r.failed + r.not_found,
                r.job_id,
                ids.join("\n  ")
            ),
        ));
    }
    Ok(Exit::Ok)
}

/// The run's report: JSON, or short lines whose counts add up.
fn print_report(
    ctx: &Context,
    r: &guard::job::Report,
    budget: Option<&guard::digital::BudgetUse>,
    delivered: &ledger::deliver::Delivered,
) {
    match ctx.output {
        Output::Json => print_json(&json!({"report": r, "budget": budget, "webhooks": delivered})),
        Output::Text => {
            use crate::progress::thousands as n;
            println!(
                "job {}{}",
                r.job_id,
                if r.resumed { " (resumed)" } else { "" }
            );
            println!(
                "  {} cases in {:.1} s = {} changed + {} unchanged + {} failed + {} not found",
                n(r.processed),
                r.seconds,
                n(r.changed),
                n(r.unchanged),
                n(r.failed),
                n(r.not_found)
            );
            println!(
                "  {} removals; {} requests, {} rate-limited ({:.2}%), {} retries",
                n(r.calls),
                n(r.requests),
                n(r.http_429),
                if r.requests == 0 {
                    0.0
                } else {
                    r.http_429 as f64 * 100.0 / r.requests as f64
                },
                n(r.retries)
            );
            for (k, v) in &r.fields {
                println!("  cases with {k} removed: {}", n(*v));
            }
            if let Some(b) = budget {
                println!(
                    "  DFO update budget: {} writes = {:.1}% of {}/h over the run; {:.2}% of requests answered 429",
                    n(b.writes),
                    b.percent_of_budget,
                    n(u64::from(b.per_hour)),
                    b.percent_429
                );
            }
        }
    }
}
