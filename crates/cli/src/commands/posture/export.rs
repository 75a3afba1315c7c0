//! `cxguard export`: the live tenant as a posture file — secrets with their ages (the
//! maximum age left for you to fill in), tables with their encrypted columns, and the
//! webchat policies (through `webchat export`). `export` then `plan` shows no changes
//! for webchat and tables. On CXone's published API: the data policies
//! (`[[data_policies]]`), exactly as they are, so `plan` then shows none.

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
    let out = if crate::surface::speaks_cxone(ctx) {
        // CXone's published API: the data policies, exactly as the tenant has them.
        let target = crate::tenant::connect(ctx, crate::tenant::Needs::reading(&[])).await?;
        let live = target.client.policies().list().await?;
        guard::policies::export(&live)
    } else {
        let (target, refs) = crate::commands::inventory::overview(ctx, &a.tables).await?;
        let exported = guard::posture::export::export(&target.client, &refs).await?;
        for f in &exported.findings {
            ctx.note(format!(
                "finding: {f} (cxguard would refuse to deploy this)"
            ));
        }
        exported.toml
    };
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
