//! `cxguard contacts anonymize | reveal`: pseudonymize, mask, encrypt or erase personal
//! data in contact records, and decrypt a format-preserved field for a subject-access
//! request.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Args, Subcommand};
use guard::anonymize::{self, Options, Policy, Progress, Selection};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};
use crate::progress::{Bar, Total};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct ContactsArgs {
    #[command(subcommand)]
    pub command: ContactsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Apply a masking policy to selected contacts: validated first, journaled, resumable.
    Anonymize(AnonymizeArgs),
    /// Decrypt a field the policy encrypted (FF1), for a subject-access request.
    Reveal {
        /// The contact id.
        id: String,
        /// The encrypted field (phone, or customFields.<name>).
        #[arg(long)]
        field: String,
        /// The policy whose key encrypted it.
        #[arg(long)]
        policy: PathBuf,
        /// The FF1 derivation it was written with (v1 before cxguard 0.2, v2 since);
        /// by default, what the ledger recorded when it was encrypted.
        #[arg(long, value_name = "v1|v2")]
        derivation: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["ids", "updated_before", "all"])))]
pub struct AnonymizeArgs {
    /// The masking policy (TOML).
    #[arg(long)]
    pub policy: PathBuf,
    /// Contacts listed in FILE, one id a line (e.g. erasure requests).
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// Contacts last updated before DATE (YYYY-MM-DD or RFC 3339): a retention cut-off.
    #[arg(long, value_name = "DATE")]
    pub updated_before: Option<String>,
    /// Every contact.
    #[arg(long)]
    pub all: bool,
    /// Show the plan (counts, fields, redacted examples) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Client-side cap in requests/s (the tenant's RateLimit headers are followed anyway).
    #[arg(long, value_name = "PER_SEC")]
    pub max_rate: Option<u32>,
    /// PATCHes in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Contacts per listing page (1 to 1000).
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// Resume this job (a rerun with the same policy and selection resumes by itself).
    #[arg(long, value_name = "JOB")]
    pub resume: Option<String>,
}

pub(crate) fn read_policy(
    path: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Input,
            format!("cannot read the policy {}: {e}", path.display()),
        )
    })?;
    Policy::parse(&text, path, env).map_err(|errors| {
        CliError::new(
            Exit::Input,
            format!(
                "the policy does not validate; nothing was changed:\n  {}",
                errors.join("\n  ")
            ),
        )
    })
}

fn selection(args: &AnonymizeArgs) -> Result<Selection, CliError> {
    if let Some(path) = &args.ids {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(
                Exit::Input,
                format!("--ids: cannot read {}: {e}", path.display()),
            )
        })?;
        return Selection::from_ids_text(&text, &path.display().to_string())
            .map_err(CliError::from);
    }
    if let Some(d) = &args.updated_before {
        return Selection::updated_before(d, time::OffsetDateTime::now_utc())
            .map_err(CliError::from);
    }
    Ok(Selection::All)
}

pub async fn run(ctx: &Context, args: ContactsArgs) -> Result<Exit, CliError> {
    match args.command {
        ContactsCommand::Anonymize(a) => anonymize_cmd(ctx, a).await,
        ContactsCommand::Reveal {
            id,
            field,
            policy,
            derivation,
        } => reveal(ctx, &id, &field, &policy, derivation.as_deref()).await,
    }
}

/// The flags that are checked on their own, before any call.
fn check_flags(a: &AnonymizeArgs) -> Result<cxone::PageSize, CliError> {
    if a.concurrency == 0 || a.concurrency > 256 {
        return Err(CliError::usage(format!(
            "--concurrency: {} is not from 1 to 256",
            a.concurrency
        )));
    }
    let page_size = cxone::PageSize::new(a.page_size)
        .map_err(|e| CliError::usage(format!("--page-size: {e}")))?;
    if a.max_rate == Some(0) {
        return Err(CliError::usage(
            "--max-rate: 0 would send nothing; omit it for no cap",
        ));
    }
    if a.dry_run && a.resume.is_some() {
        return Err(CliError::usage(
            "--dry-run and --resume contradict each other",
        ));
    }
    Ok(page_size)
}

async fn anonymize_cmd(ctx: &Context, a: AnonymizeArgs) -> Result<Exit, CliError> {
    // Validate everything before any call.
    let policy = read_policy(&a.policy, ctx.env())?;
    let sel = selection(&a)?;
    let page_size = check_flags(&a)?;
    let scopes: &[&str] = if a.dry_run {
        &["contact:read"]
    } else {
        &["contact:read", "contact:write"]
    };
    let target = tenant::connect(
        ctx,
        tenant::Needs {
            max_rate: a.max_rate,
            writes: !a.dry_run,
            scopes,
        },
    )
    .await?;
    let opts = Options {
        concurrency: a.concurrency,
        page_size,
        actor: actor(),
        resume: a.resume.clone(),
        ..Default::default()
    };

    if a.dry_run {
        let plan = anonymize::dry_run(&target.client, &policy, &sel, &opts, 3)
            .await
            .map_err(CliError::from)?;
        print_dry_run(ctx, &plan);
        return Ok(Exit::Ok);
    }

    let ledger = store::open(ctx, Access::Write).await?;
    let deliverer = store::start_delivery(ctx, &ledger)?;
    let progress = Arc::new(Progress::default());
    let bar = {
        let client = target.client.clone();
        let start = client.stats().rate_limited;
        let total = if matches!(sel, Selection::Ids(_)) {
            Total::Known
        } else {
            Total::Unknown
        };
        Bar::start(ctx.quiet, "contacts", total, progress.clone(), move || {
            client.stats().rate_limited - start
        })
    };
    let result = anonymize::run(&target.client, &ledger, &policy, &sel, &opts, progress).await;
    bar.finish().await;
    let delivered = deliverer.stop().await;
    let report = result.map_err(CliError::from)?;

    print_report(ctx, &report, &delivered, &ledger).await;
    anonymize_exit(&report)
}

/// What a dry run found, values redacted.
fn print_dry_run(ctx: &Context, plan: &anonymize::DryRun) {
    match ctx.output {
        Output::Json => print_json(&json!({"dryRun": plan})),
        Output::Text => {
            println!(
                "dry run: {} contacts examined; {} would change, {} already in their target state, {} not found, {} cannot be transformed",
                plan.examined, plan.would_change, plan.unchanged, plan.not_found, plan.errors
            );
            let mut t = table(&["field", "contacts that would change"]);
            for (f, n) in &plan.fields {
                t.add_row(vec![f.clone(), n.to_string()]);
            }
            println!("{t}");
            for ex in &plan.examples {
                println!("example {} (values redacted):", ex.id);
                for c in &ex.changes {
                    println!("  {:<28} {:<13} {} → {}", c.field, c.op, c.before, c.after);
                }
            }
            for e in &plan.first_errors {
                println!("cannot transform {}: {}", e.id, e.error);
            }
        }
    }
}

/// A run's report as short lines (≤ 100 columns) whose counts add up, and its events.
async fn print_report(
    ctx: &Context,
    report: &anonymize::Report,
    delivered: &ledger::deliver::Delivered,
    ledger: &ledger::Ledger,
) {
    match ctx.output {
        Output::Json => print_json(&json!({"report": report, "webhooks": delivered})),
        Output::Text => {
            use crate::progress::thousands as n;
            // Short lines (≤ 100 columns) whose counts add up.
            println!(
                "job {}{}",
                report.job_id,
                if report.resumed { " (resumed)" } else { "" }
            );
            println!(
                "  {} contacts in {:.1} s ({}/s) = {} changed + {} unchanged + {} failed + {} not found",
                n(report.processed),
                report.seconds,
                n(report.contacts_per_s.round() as u64),
                n(report.changed),
                n(report.unchanged),
                n(report.failed),
                n(report.not_found)
            );
            println!(
                "  {} PATCHes ({}/s); latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                n(report.patches),
                n(report.patches_per_s.round() as u64),
                report.latency.p50_ms,
                report.latency.p95_ms,
                report.latency.p99_ms
            );
            println!(
                "  {} rate-limited, {} retries",
                n(report.http_429),
                n(report.retries)
            );
            let mut line = String::from("  fields changed:");
            for (k, v) in &report.fields {
                let item = format!(" {k} {},", n(*v));
                if line.len() + item.len() > 100 {
                    println!("{}", line.trim_end_matches(','));
                    line = String::from("   ");
                }
                line.push_str(&item);
            }
            if !report.fields.is_empty() {
                println!("{}", line.trim_end_matches(','));
            }
            let pending = ledger.outbox_status().await.map(|o| o.pending).unwrap_or(0);
            for line in crate::output::events_lines(delivered, pending) {
                println!("{line}");
            }
        }
    }
}

/// A run's exit: 1 listing the contacts that failed or were not found.
fn anonymize_exit(report: &anonymize::Report) -> Result<Exit, CliError> {
    if report.failed + report.not_found > 0 {
        let mut msg = format!(
            "{} contact(s) failed and {} were not found; rerun the same command to retry them (job {}):",
            report.failed, report.not_found, report.job_id
        );
        for f in report.failures.iter().take(50) {
            msg.push_str(&format!("\n  {}: {}", f.id, f.error));
        }
        if report.failures.len() > 50 {
            msg.push_str(&format!(
                "\n  … and {} more (cxguard jobs show {})",
                report.failures.len() - 50,
                report.job_id
            ));
        }
        return Err(CliError::new(Exit::Failed, msg));
    }
    Ok(Exit::Ok)
}

async fn reveal(
    ctx: &Context,
    id: &str,
    field: &str,
    policy: &std::path::Path,
    derivation: Option<&str>,
) -> Result<Exit, CliError> {
    let env = ctx.env();
    let policy = read_policy(policy, env)?;
    let parsed = guard::anonymize::policy::Field::parse(field)
        .map_err(|e| CliError::usage(format!("--field: {e}")))?;
    let derivation = derivation
        .map(guard::anonymize::transform::FpeVersion::parse)
        .transpose()
        .map_err(|e| CliError::usage(format!("--derivation: {e}")))?;
    // Checked before any call; reveal checks it again, from the same function.
    guard::anonymize::reveal::encryption_key(&policy, &parsed)
        .map_err(|e| CliError::usage(format!("--field: {e}")))?;
    let target = tenant::connect(ctx, tenant::Needs::reading(&["contact:read"])).await?;
    let ledger = store::open(ctx, Access::Write).await?;
    let revealed = guard::anonymize::reveal::reveal(
        &target.client,
        &ledger,
        &policy,
        id,
        &parsed,
        &actor(),
        derivation,
    )
    .await
    .map_err(CliError::from)?;
    ctx.note(format!(
        "revealed {field} of {id} with key {} ({}); recorded in the audit log; handle it as personal data",
        revealed.key_id,
        revealed.derivation.label()
    ));
    use secrecy::ExposeSecret;
    match ctx.output {
        Output::Json => {
            print_json(&json!({"id": id, "field": field, "value": revealed.value.expose_secret()}))
        }
        Output::Text => println!("{}", revealed.value.expose_secret()),
    }
    Ok(Exit::Ok)
}

/// Who runs the job, for the audit trail: `cxguard@<host>` or `$CXGUARD_ACTOR`.
pub(crate) fn actor() -> String {
    let raw = std::env::var("CXGUARD_ACTOR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("cxguard@{}", host.trim())
        });
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-:/#".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if clean.is_empty() {
        "cxguard".into()
    } else {
        clean
    }
}
