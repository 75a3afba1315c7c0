//! `cxguard export`: the live tenant as a posture file — secrets with their ages (the
//! maximum age left for you to fill in), tables with their encrypted columns, and the
//! webchat policies (through `webchat export`). `export` then `plan` shows no changes
//! for webchat and tables.

use std::path::PathBuf;

use clap::Args;

use crate::context::Context;
use crate::exit::{CliError, Exit};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the posture here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Tables to export (DS/TABLE; the API cannot list them). Default: the
    /// `[[datastore.tables]]` of cxguard.toml, or the emulator's demo table.
    #[arg(long = "table", value_name = "DS/TABLE")]
    pub tables: Vec<String>,
}

pub async fn export_cmd(ctx: &Context, a: ExportArgs) -> Result<Exit, CliError> {
    let (target, refs) = crate::commands::inventory::overview(ctx, &a.tables).await?;
    let exported = guard::posture::export::export(&target.client, &refs).await?;
    for f in &exported.findings {
        ctx.note(format!(
            "finding: {f} (cxguard would refuse to deploy this)"
        ));
    }
    let out = exported.toml;
    match &a.out {
        Some(p) => {
            std::fs::write(p, &out).map_err(|e| {
                CliError::new(Exit::Failed, format!("cannot write {}: {e}", p.display()))
            })?;
            ctx.note(format!("wrote {}", p.display()));
        }
        None => print!("{out}"),
    }
    Ok(Exit::Ok)
}
