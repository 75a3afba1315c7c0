//! `cxguard datastore encrypt DS/TABLE --columns …` and `cxguard datastore coverage`:
//! column encryption of Data Store tables (spec §5, tutorial 002), planned and validated
//! before any write, and coverage for CI.

use clap::{Args, Subcommand};
use guard::encrypt::{self, Classifier, Request, TableRef};
use serde_json::json;

use crate::config::{DatastoreFile, DatastoreTableFile};
use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json};
use crate::store::{self, Access};
use crate::tenant;

#[derive(Debug, Args)]
pub struct DatastoreArgs {
    #[command(subcommand)]
    pub command: DatastoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum DatastoreCommand {
    /// Turn on AES-256-GCM encryption for columns of a table (plan, then apply).
    Encrypt(EncryptArgs),
    /// Encrypted/total columns and the sensitive columns still in clear, per table.
    Coverage(CoverageArgs),
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The table, as DATASTORE/TABLE (its settings may come from [[datastore.tables]]).
    pub table: String,
    /// Columns to encrypt, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Compliance regime: GDPR, HIPAA or PCI (default GDPR).
    #[arg(long)]
    pub compliance: Option<String>,
    /// Rotate the key automatically every N days, 1 to 365 (default 90).
    #[arg(long, conflicts_with = "manual_rotation")]
    pub rotation_days: Option<u32>,
    /// Rotate the key only when asked.
    #[arg(long)]
    pub manual_rotation: bool,
    /// Mask writable indexes that cover a column to encrypt.
    #[arg(long)]
    pub mask_indexes: bool,
    /// The URL the tenant calls back after the change (e.g. https://host/v1/kms/callback/TOKEN).
    #[arg(long)]
    pub kms_callback: Option<String>,
    /// sync (the tenant calls back before answering, and rolls back if that fails) or async.
    #[arg(long, requires = "kms_callback")]
    pub sync_mode: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Tables as DATASTORE/TABLE (default: those in [[datastore.tables]]).
    pub tables: Vec<String>,
    /// Exit 2 when a sensitive column is not encrypted (for CI).
    #[arg(long)]
    pub fail_on_unencrypted: bool,
}

const READING: &[&str] = &["data_management:read"];

pub async fn run(ctx: &Context, args: DatastoreArgs) -> Result<Exit, CliError> {
    match args.command {
        DatastoreCommand::Encrypt(a) => encrypt_cmd(ctx, a).await,
        DatastoreCommand::Coverage(a) => coverage_cmd(ctx, a).await,
    }
}

pub(crate) fn classifier(d: &DatastoreFile) -> Classifier {
    d.classifier()
}

/// The request from the flags, falling back to the table's `[[datastore.tables]]` entry.
fn request(a: &EncryptArgs, d: &DatastoreFile) -> Result<Request, CliError> {
    let flags = DatastoreTableFile {
        table: a.table.clone(),
        columns: a.columns.clone(),
        compliance: a.compliance.clone(),
        rotation_days: a.rotation_days,
        manual_rotation: a.manual_rotation,
        mask_indexes: a.mask_indexes,
        kms_callback: a.kms_callback.clone(),
        sync_mode: a.sync_mode.clone(),
    };
    Ok(guard::encrypt::config::request(&flags, d)?)
}

async fn encrypt_cmd(ctx: &Context, a: EncryptArgs) -> Result<Exit, CliError> {
    let empty = DatastoreFile::default();
    let d = ctx.config.file.datastore.as_ref().unwrap_or(&empty);
    let req = request(&a, d)?;
    let classifier = classifier(d);
    let needs = if a.dry_run {
        tenant::Needs::reading(READING)
    } else {
        tenant::Needs::writing(encrypt::SCOPES)
    };
    let target = tenant::connect(ctx, needs).await?;
    let client = &target.client;
    let (table, indexes) = req.table.read(client).await.map_err(|e| match e.status() {
        Some(404) => CliError::new(Exit::Input, format!("{}: {e}", req.table)),
        _ => e.into(),
    })?;
    let plan = encrypt::plan(&table, &indexes, &req, &classifier).map_err(|problems| {
        CliError::new(
            Exit::Input,
            format!(
                "{} cannot be encrypted as asked ({} problem{}):\n  {}",
                req.table,
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("\n  ")
            ),
        )
    })?;
    if a.dry_run {
        show_plan(ctx, &plan);
        return Ok(Exit::Ok);
    }
    let ledger = store::open(ctx, Access::Write).await?;
    let resuming = encrypt::apply::unfinished(&ledger, &req).await?.is_some();
    if plan.is_noop() && !resuming {
        match ctx.output {
            Output::Json => print_json(&json!({"plan": plan, "result": "nothing to do"})),
            Output::Text => println!(
                "{}: nothing to do — {} already encrypted as asked",
                plan.table,
                plan.skipped.join(", ")
            ),
        }
        return Ok(Exit::Ok);
    }
    if ctx.output == Output::Text {
        show_plan(ctx, &plan);
    }
    let deliverer = store::start_delivery(ctx, &ledger)?;
    let actor = crate::commands::contacts::actor();
    let r = encrypt::apply(client, &ledger, &req, &plan, &table, &classifier, &actor).await;
    deliverer.stop().await;
    let report = r?;
    match ctx.output {
        Output::Json => print_json(&json!({"plan": plan, "report": report})),
        Output::Text => println!(
            "encrypted {} in {} (key version {}{}); coverage now {}/{} columns, {}/{} sensitive (job {}{})",
            report.columns.join(", "),
            report.table,
            report.key_version,
            if report.masked_indexes.is_empty() {
                String::new()
            } else {
                format!(", masked {}", report.masked_indexes.join(", "))
            },
            report.coverage.encrypted,
            report.coverage.total,
            report.coverage.sensitive_encrypted,
            report.coverage.sensitive_total,
            report.job_id,
            if report.resumed { ", resumed" } else { "" }
        ),
    }
    Ok(Exit::Ok)
}

fn show_plan(ctx: &Context, plan: &encrypt::Plan) {
    match ctx.output {
        Output::Json => print_json(&json!({"plan": plan})),
        Output::Text => {
            println!("plan for {}:", plan.table);
            if plan.columns.is_empty() {
                println!("  nothing to encrypt");
            } else {
                println!(
                    "  encrypt {} with AES-256-GCM ({}, key rotation {}{})",
                    plan.columns.join(", "),
                    plan.compliance,
                    plan.rotation,
                    if plan.rotation == "AUTOMATIC" {
                        format!(" every {} days", plan.rotation_days)
                    } else {
                        String::new()
                    }
                );
            }
            if !plan.skipped.is_empty() {
                println!("  already encrypted as asked: {}", plan.skipped.join(", "));
            }
            if !plan.masked_indexes.is_empty() {
                println!("  mask indexes {}", plan.masked_indexes.join(", "));
            }
            println!(
                "  coverage {}/{} → {}/{} columns, sensitive {}/{} → {}/{}",
                plan.before.encrypted,
                plan.before.total,
                plan.after.encrypted,
                plan.after.total,
                plan.before.sensitive_encrypted,
                plan.before.sensitive_total,
                plan.after.sensitive_encrypted,
                plan.after.sensitive_total
            );
            if !plan.after.sensitive_in_clear.is_empty() {
                println!(
                    "  sensitive columns still in clear after: {}",
                    plan.after.sensitive_in_clear.join(", ")
                );
            }
            println!("  query risk: {}", plan.risk);
            for r in &plan.risk_reasons {
                println!("    {r}");
            }
            if let Some(h) = &plan.kms_callback_host {
                println!("  KMS callback: {h}");
            }
        }
    }
}

async fn coverage_cmd(ctx: &Context, a: CoverageArgs) -> Result<Exit, CliError> {
    let empty = DatastoreFile::default();
    let d = ctx.config.file.datastore.as_ref().unwrap_or(&empty);
    let names: Vec<String> = if a.tables.is_empty() {
        d.tables.iter().map(|t| t.table.clone()).collect()
    } else {
        a.tables.clone()
    };
    if names.is_empty() {
        return Err(CliError::usage(
            "name a table (DATASTORE/TABLE), or list them in [[datastore.tables]]",
        ));
    }
    let refs = names
        .iter()
        .map(|n| TableRef::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    let classifier = classifier(d);
    let target = tenant::connect(ctx, tenant::Needs::reading(READING)).await?;
    let mut rows = Vec::new();
    let mut in_clear = 0usize;
    for r in &refs {
        let t = target
            .client
            .datastores()
            .table(&r.datastore, &r.table)
            .await
            .map_err(|e| match e.status() {
                Some(404) => CliError::new(Exit::Input, format!("{r}: {e}")),
                _ => e.into(),
            })?;
        let c = encrypt::Coverage::of(&t.columns, &Default::default(), &classifier);
        in_clear += c.sensitive_in_clear.len();
        let keys = encrypt::KeyRotation::of(&t.columns);
        rows.push((r.to_string(), c, keys));
    }
    match ctx.output {
        Output::Json => print_json(&json!({
            "tables": rows.iter().map(|(t, c, k)| json!({"table": t, "coverage": c, "keys": k})).collect::<Vec<_>>()
        })),
        Output::Text => {
            for (t, c, k) in &rows {
                println!(
                    "{t}: {}/{} columns encrypted, {}/{} sensitive",
                    c.encrypted, c.total, c.sensitive_encrypted, c.sensitive_total
                );
                if !c.sensitive_in_clear.is_empty() {
                    println!("  sensitive in clear: {}", c.sensitive_in_clear.join(", "));
                }
                for key in k {
                    println!("  key rotation {}", key.describe());
                }
            }
        }
    }
    if a.fail_on_unencrypted && in_clear > 0 {
        return Ok(Exit::Findings);
    }
    Ok(Exit::Ok)
}
