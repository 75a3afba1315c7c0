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
    let client = &target.client;
    let mut out = String::from(
        "# The posture of a CXone tenant, exported by `cxguard export`.\n\
         # `cxguard plan` compares the tenant with it; `cxguard apply` makes it so.\n",
    );

    let secrets = client.secrets().list().await?;
    out.push_str("\n[secrets]\n# max_age_days = 90    # fill in: the oldest a secret may get\n");
    out.push_str("# generate = { length = 40, write_to = \"/etc/cxguard/secrets/{id}.key\" }\n");
    let now = time::OffsetDateTime::now_utc();
    for s in &secrets {
        let age = time::OffsetDateTime::parse(
            &s.updated_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| format!("{} days old", (now - t).whole_days()))
        .unwrap_or_else(|_| "age unknown".into());
        out.push_str(&format!(
            "# {} ({}): {age}, version {}\n",
            s.id,
            s.name.replace(['\n', '\r'], " "),
            s.version
        ));
    }

    for r in &refs {
        let t = client.datastores().table(&r.datastore, &r.table).await?;
        let encrypted: Vec<&cxone::models::Column> =
            t.columns.iter().filter(|c| c.encrypted).collect();
        out.push_str(&format!(
            "\n[[datastore.tables]]\ntable = {}\n",
            guard::webchat::export::toml_string(&r.to_string())
        ));
        out.push_str(&format!(
            "columns = [{}]\n",
            encrypted
                .iter()
                .map(|c| guard::webchat::export::toml_string(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // The settings the encrypted columns share (the first one's, which plan checks
        // against every column).
        if let Some(cfg) = encrypted
            .first()
            .and_then(|c| c.encryption_configuration.as_ref())
        {
            if let Some(m) = cfg["complianceMode"].as_str() {
                out.push_str(&format!(
                    "compliance = {}\n",
                    guard::webchat::export::toml_string(m)
                ));
            }
            let d = &cfg["keyRotationDirective"];
            match (d["strategy"].as_str(), d["intervalDays"].as_u64()) {
                (Some("MANUAL"), _) => out.push_str("manual_rotation = true\n"),
                (_, Some(days)) => out.push_str(&format!("rotation_days = {days}\n")),
                _ => {}
            }
            if cfg["indexMaskingTrigger"].as_bool() == Some(true) {
                out.push_str("mask_indexes = true\n");
            }
        }
    }

    let w = guard::webchat::export::export(client, None).await?;
    for f in &w.findings {
        ctx.note(format!(
            "finding: {f} (cxguard would refuse to deploy this)"
        ));
    }
    // The webchat policy file, its tables nested under [webchat].
    out.push('\n');
    for line in w.toml.lines() {
        if let Some(rest) = line.strip_prefix("[[widgets.") {
            out.push_str(&format!("[[webchat.widgets.{rest}\n"));
        } else if let Some(rest) = line.strip_prefix("[widgets.") {
            out.push_str(&format!("[webchat.widgets.{rest}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
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
