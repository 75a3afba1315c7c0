//! `cxguard report`: where the tenant stands, what was done and when, and that the record
//! of it is intact — one self-contained HTML file for compliance officers and auditors,
//! or the same facts as JSON. Read-only: the tenant is read, the ledger read and verified.

mod facts;
mod gather;
mod html;
mod published;

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::store::{self, Access};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Html,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write it (default: report.html, or report.json with --format json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The period's start (RFC 3339 or a date; default: 30 days ago).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// html (one self-contained file) or json (the same facts).
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// Tables to cover (DS/TABLE); default: [[datastore.tables]], or the emulator's.
    #[arg(long = "table", value_name = "DS/TABLE")]
    pub tables: Vec<String>,
    /// The posture to check drift against (when it exists).
    #[arg(long, value_name = "FILE", default_value = "posture.toml")]
    pub posture: PathBuf,
    /// The maximum secret age when no posture declares one, in days.
    #[arg(long, default_value_t = 90)]
    pub max_age_days: u32,
}

fn parse_since(text: &str) -> Result<time::OffsetDateTime, CliError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            CliError::usage(format!(
                "--since: {text:?} is not an RFC 3339 time or a date such as 2026-01-31"
            ))
        })
}

pub async fn run(ctx: &Context, a: ReportArgs) -> Result<Exit, CliError> {
    let since = match &a.since {
        Some(s) => parse_since(s)?,
        None => time::OffsetDateTime::now_utc() - time::Duration::days(30),
    };
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from(match a.format {
            Format::Html => "report.html",
            Format::Json => "report.json",
        })
    });
    let ledger = store::open(ctx, Access::Read).await?;
    let verdict = verdict(ctx, &ledger).await?;
    if crate::surface::speaks_cxone(ctx) {
        let target = crate::tenant::connect(ctx, Default::default()).await?;
        return published::run(ctx, &a, &target.client, &ledger, verdict, since, &out).await;
    }
    let (target, tables) = crate::commands::inventory::overview(ctx, &a.tables).await?;
    let plan = crate::commands::posture::plan_if_declared(ctx, &target.client, &a.posture).await?;
    let report = gather::gather(gather::Sources {
        client: &target.client,
        ledger: &ledger,
        verdict,
        plan,
        tables,
        since,
        max_age_days: a.max_age_days,
    })
    .await?;
    write(&out, &report, a.format)?;
    announce(ctx, &out, a.format)
}

/// The ledger's verdict; a ledger with nothing recorded yet has nothing to verify.
async fn verdict(ctx: &Context, ledger: &ledger::Ledger) -> Result<ledger::Verdict, CliError> {
    let empty = ledger
        .entries(&ledger::Filter {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .is_empty();
    let verdict = match store::verifying_key(ctx, None) {
        Ok(key) => store::verify_chain(ctx, ledger, &key, None).await?,
        // Nothing recorded yet, so nothing to verify: the report says so.
        Err(_) if empty => ledger::Verdict {
            entries: 0,
            checkpoints: 0,
            last_seq: 0,
            last_hash: None,
            key_id: "none yet".into(),
            broken: None,
        },
        Err(e) => return Err(e),
    };
    Ok(verdict)
}

/// Says where the report is: its path, or (JSON) its path, size and digest.
fn announce(ctx: &Context, out: &std::path::Path, format: Format) -> Result<Exit, CliError> {
    match ctx.output {
        crate::output::Output::Json => {
            // For a pipeline: where it is and its digest, to archive beside it.
            let bytes = std::fs::read(out).map_err(|e| {
                CliError::new(
                    Exit::Failed,
                    format!("cannot read back {}: {e}", out.display()),
                )
            })?;
            crate::output::print_json(&serde_json::json!({
                "path": out.display().to_string(),
                "format": match format { Format::Html => "html", Format::Json => "json" },
                "bytes": bytes.len(),
                "sha256": guard::sha256_hex_bytes(&bytes),
            }));
        }
        crate::output::Output::Text => ctx.note(format!("wrote {}", out.display())),
    }
    Ok(Exit::Ok)
}

/// Writes the report in `format` to `out`.
pub fn write(
    out: &std::path::Path,
    report: &facts::Report,
    format: Format,
) -> Result<(), CliError> {
    let text = match format {
        Format::Html => html::render(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
    };
    std::fs::write(out, text)
        .map_err(|e| CliError::new(Exit::Failed, format!("cannot write {}: {e}", out.display())))
}

/// The demo's report, written as `report.html` in `dir`, beside the demo's ledger.
pub async fn demo(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    verdict: ledger::Verdict,
    dir: &std::path::Path,
) -> Result<PathBuf, CliError> {
    let report = gather::gather(gather::Sources {
        client,
        ledger,
        verdict,
        plan: None,
        tables: vec![guard::encrypt::TableRef::parse(
            "ds-customer/tbl-customer-profiles",
        )?],
        since: time::OffsetDateTime::now_utc() - time::Duration::days(30),
        max_age_days: 90,
    })
    .await?;
    let out = dir.join("report.html");
    write(&out, &report, Format::Html)?;
    write(&dir.join("report.json"), &report, Format::Json)?;
    Ok(out)
}
