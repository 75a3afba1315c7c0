//! `cxguard guests link | backfill`: link web-messaging guests to a keyed pseudonym of
//! their email or phone, once or from a CSV file as a resumable job.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use guard::identity::IdentifierKind;
use guard::identity::backfill::{self, Progress};

use crate::commands::contacts::actor;
use crate::config;
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::progress::{Bar, Total};
use crate::store::{self, Access};
use crate::tenant;

/// What linking needs of its target: a tenant (or --sim) and the attribute-upsert scope.
const LINKING: tenant::Needs<'static> = tenant::Needs::writing(guard::identity::SCOPES);

#[derive(Debug, Args)]
pub struct GuestsArgs {
    #[command(subcommand)]
    pub command: GuestsCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Auto,
    Email,
    Phone,
}

impl From<KindArg> for IdentifierKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Auto => IdentifierKind::Auto,
            KindArg::Email => IdentifierKind::Email,
            KindArg::Phone => IdentifierKind::Phone,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GuestsCommand {
    /// Link one guest to a person: the keyed pseudonym of their email or phone becomes
    /// the guest's attribute ([identity] in cxguard.toml).
    Link {
        /// The web-messaging guest's id.
        #[arg(long, value_name = "GUEST_ID")]
        guest: String,
        /// The email or phone number; `-` reads it from stdin (keeps it out of shell
        /// history and the process list).
        #[arg(long, value_name = "EMAIL_OR_PHONE")]
        identifier: String,
        /// How to read the identifier: auto is an email if it has an @, else a phone.
        #[arg(long, value_enum, default_value_t = KindArg::Auto)]
        kind: KindArg,
    },
    /// Link many guests from a CSV file of guest_id,identifier lines, as a job that a
    /// rerun with the same file resumes.
    Backfill {
        /// CSV of guest_id,identifier lines; an optional header line and `#` comments.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// How to read the identifiers: auto is an email if it has an @, else a phone.
        #[arg(long, value_enum, default_value_t = KindArg::Auto)]
        kind: KindArg,
        /// Links in flight at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// Validate the file and show what would be linked; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Context, args: GuestsArgs) -> Result<Exit, CliError> {
    let identity = config::identity(&ctx.config, ctx.env())?;
    match args.command {
        GuestsCommand::Link {
            guest,
            identifier,
            kind,
        } => link(ctx, &identity, &guest, identifier, kind).await,
        GuestsCommand::Backfill {
            file,
            kind,
            concurrency,
            dry_run,
        } => backfill_cmd(ctx, &identity, &file, kind, concurrency.into(), dry_run).await,
    }
}

/// `guests link`: validate, connect, one `guard::identity::link`, print.
async fn link(
    ctx: &Context,
    identity: &guard::identity::Identity,
    guest: &str,
    identifier: String,
    kind: KindArg,
) -> Result<Exit, CliError> {
    let identifier = if identifier == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::new(Exit::Input, format!("cannot read stdin: {e}")))?;
        line
    } else {
        identifier
    };
    // Validate before connecting to anything.
    guard::identity::check_guest_id(guest)
        .map_err(|e| CliError::new(Exit::Input, format!("--guest: {}", e.message)))?;
    let (k, value) = identity
        .pseudonym("--identifier", &identifier, kind.into())
        .map_err(|e| CliError::new(Exit::Input, e.to_string()))?;
    let target = tenant::connect(ctx, LINKING).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let r = guard::identity::link(
        identity,
        &target.client,
        &ledger,
        guest,
        k,
        &value,
        &actor(),
    )
    .await?;
    r.audit?;
    let linked = r.linked;
    match ctx.output {
        Output::Json => print_json(&linked),
        Output::Text => println!(
            "linked {}: attribute {} holds the pseudonym made with key {}",
            linked.guest_id, linked.attribute, linked.key_id
        ),
    }
    Ok(Exit::Ok)
}

/// `guests backfill`: the whole file validated first, then one journaled job.
async fn backfill_cmd(
    ctx: &Context,
    identity: &guard::identity::Identity,
    file: &std::path::Path,
    kind: KindArg,
    concurrency: usize,
    dry_run: bool,
) -> Result<Exit, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::new(
            Exit::Input,
            format!("--file: cannot read {}: {e}", file.display()),
        )
    })?;
    let shown = file.display().to_string();
    let plan = backfill::plan(identity, &text, kind.into(), &shown).map_err(|errs| {
        CliError::new(
            Exit::Input,
            format!(
                "{} problem(s) in {shown}; nothing was linked:\n  {}",
                errs.len(),
                errs.join("\n  ")
            ),
        )
    })?;
    if dry_run {
        print_dry_run(ctx, identity, &plan);
        return Ok(Exit::Ok);
    }
    let target = tenant::connect(ctx, LINKING).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let progress = Arc::new(Progress::default());
    let bar = {
        let client = target.client.clone();
        let start = client.stats().rate_limited;
        Bar::start(
            ctx.quiet,
            "guests",
            Total::Known,
            progress.clone(),
            move || client.stats().rate_limited - start,
        )
    };
    let report = backfill::apply(
        &target.client,
        &ledger,
        identity,
        &plan,
        &backfill::Options {
            actor: actor(),
            concurrency,
        },
        progress,
    )
    .await;
    bar.finish().await;
    let report = report.map_err(CliError::from)?;
    match ctx.output {
        Output::Json => print_json(&report),
        Output::Text => print_backfill(&report),
    }
    Ok(if report.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What a backfill would do.
fn print_dry_run(ctx: &Context, identity: &guard::identity::Identity, plan: &backfill::Plan) {
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({
            "guests": plan.links.len(),
            "duplicates": plan.duplicates,
            "keyId": identity.key_id(),
            "attribute": identity.attribute(),
        })),
        Output::Text => println!(
            "dry run: {} guests would be linked (attribute {}, key {}); {} duplicate lines; nothing changed",
            plan.links.len(),
            identity.attribute(),
            identity.key_id(),
            plan.duplicates
        ),
    }
}

/// A backfill's report as short lines (≤ 100 columns) whose counts add up.
fn print_backfill(report: &backfill::Report) {
    use crate::progress::thousands as n;
    println!(
        "job {}{}",
        report.job_id,
        if report.resumed { " (resumed)" } else { "" }
    );
    let total = report.linked + report.already_done + report.failed.len() as u64;
    println!(
        "  {} guests in {:.1} s ({}/s) = {} linked + {} linked earlier + {} failed",
        n(total),
        report.seconds,
        n((report.linked as f64 / report.seconds.max(0.001)).round() as u64),
        n(report.linked),
        n(report.already_done),
        n(report.failed.len() as u64)
    );
    for f in report.failed.iter().take(50) {
        println!(
            "{}",
            crate::output::fit(&format!("  {}: {}", f.guest_id, f.error), 100)
        );
    }
    if report.failed.len() > 50 {
        println!("  … and {} more", n(report.failed.len() as u64 - 50));
    }
    if !report.failed.is_empty() {
        println!("  rerun the same command to retry the failed guests");
    }
}
