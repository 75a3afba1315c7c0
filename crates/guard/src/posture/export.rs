//! `cxguard export`: the live tenant as a posture file — secrets with their ages (the
//! maximum age left for a person to fill in), tables with their encrypted columns, and
//! the webchat policies (through `webchat export`). `export` then `plan` shows no
//! changes for webchat and tables.

use crate::Result;
use crate::encrypt::TableRef;
use crate::webchat::export::toml_string;

/// A tenant's posture as a posture file, and what in it cxguard would refuse to deploy.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The posture file's text.
    pub toml: String,
    /// Findings on the live webchat policies.
    pub findings: Vec<String>,
}

/// Reads the tenant (secrets, the named tables, every widget) and writes its posture.
pub async fn export(client: &cxone::Client, refs: &[TableRef]) -> Result<Exported> {
    let mut out = String::from(
        "# The posture of a CXone tenant, exported by `cxguard export`.\n\
         # `cxguard plan` compares the tenant with it; `cxguard apply` makes it so.\n",
    );

    secrets(client, &mut out).await?;
    for r in refs {
        table(client, r, &mut out).await?;
    }
    let w = crate::webchat::export::export(client, None).await?;
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
    Ok(Exported {
        toml: out,
        findings: w.findings,
    })
}

/// `[secrets]`: each secret as a comment with its age; the maximum age left to fill in.
async fn secrets(client: &cxone::Client, out: &mut String) -> Result<()> {
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
    Ok(())
}

/// One `[[datastore.tables]]`: its encrypted columns and the settings they share (the
/// first one's, which plan checks against every column).
async fn table(client: &cxone::Client, r: &TableRef, out: &mut String) -> Result<()> {
    let t = client.datastores().table(&r.datastore, &r.table).await?;
    let encrypted: Vec<&cxone::models::Column> = t.columns.iter().filter(|c| c.encrypted).collect();
    out.push_str(&format!(
        "\n[[datastore.tables]]\ntable = {}\n",
        toml_string(&r.to_string())
    ));
    out.push_str(&format!(
        "columns = [{}]\n",
        encrypted
            .iter()
            .map(|c| toml_string(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(cfg) = encrypted
        .first()
        .and_then(|c| c.encryption_configuration.as_ref())
    {
        if let Some(m) = cfg["complianceMode"].as_str() {
            out.push_str(&format!("compliance = {}\n", toml_string(m)));
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
    Ok(())
}
