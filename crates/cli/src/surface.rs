//! Which command runs on which API surface, in one table (the README's is checked
//! against it). On `api = "cxone"`, a command whose API CXone does not publish exits 78
//! before it sends anything, saying why and what to use instead: it never pretends.

use crate::config;
use crate::context::Context;
use crate::exit::CliError;

/// One command and the surfaces it runs on.
pub struct Row {
    /// The command, as typed.
    pub command: &'static str,
    /// The tutorial surface's spec sections it uses (`spec/cxone-api.md`).
    pub tutorial: &'static str,
    /// On CXone's published API: the sections it uses (`spec/cxone-real.md`), or why not
    /// and what to use instead.
    pub cxone: Result<&'static str, (&'static str, &'static str)>,
}

/// Every command that talks to a tenant.
pub const TABLE: &[Row] = &[
    Row {
        command: "doctor",
        tutorial: "§2",
        cxone: Ok("§2 (discovery), a read per area: §3, §4, §6, §7"),
    },
    Row {
        command: "inventory",
        tutorial: "§3–§7",
        cxone: Ok("§3 access keys, §4 DFO, §6 data policies, §7 ACD"),
    },
    Row {
        command: "accesskeys",
        tutorial: "no: access keys are CXone's API only",
        cxone: Ok("§2 (the new key's token), §3"),
    },
    Row {
        command: "digital",
        tutorial: "no: DFO is CXone's API only",
        cxone: Ok("§4 DFO cases and messages (removals paced by §4.1)"),
    },
    Row {
        command: "contacts",
        tutorial: "§4",
        cxone: Err((
            "CXone publishes no route that edits a completed voice contact (spec-real §7.4)",
            "erase a person with `subject erase` (DFO, and the platform erasure for the voice side) or a data policy",
        )),
    },
    Row {
        command: "secrets",
        tutorial: "§3",
        cxone: Err((
            "CXone publishes no API for Integration Hub secrets",
            "rotate the access keys integrations sign in with (`accesskeys rotate`)",
        )),
    },
    Row {
        command: "datastore",
        tutorial: "§5",
        cxone: Err((
            "CXone publishes no API for Data Store column encryption",
            "keep `api = \"tutorial\"` for a server of the tutorials' routes",
        )),
    },
    Row {
        command: "webchat",
        tutorial: "§7",
        cxone: Err((
            "CXone publishes no API for webchat widget security policies",
            "keep `api = \"tutorial\"` for a server of the tutorials' routes",
        )),
    },
    Row {
        command: "guests",
        tutorial: "§6",
        cxone: Ok(
            "§4.3e: the guest is a DFO customer, the pseudonym its `[identity] attribute` custom field (`digital setup` defines it)",
        ),
    },
    Row {
        command: "subject",
        tutorial: "§4, §6, §9",
        cxone: Ok(
            "§4 DFO customers, cases, messages; §7 completed contacts; §5 the platform erasure (`find`, `export`, `erase`, `verify`)",
        ),
    },
    Row {
        command: "policies",
        tutorial: "no: data policies are CXone's API only",
        cxone: Ok("§6.5–6.8 runs and their evidence reports"),
    },
    Row {
        command: "plan",
        tutorial: "§3–§7",
        cxone: Ok(
            "§3 access keys (`[access_keys]`), §6 data policies (`[[data_policies]]`); the tutorials' sections are refused",
        ),
    },
    Row {
        command: "apply",
        tutorial: "§3–§7",
        cxone: Ok(
            "§3 access keys (`[access_keys]`), §6 data policies (`[[data_policies]]`); the tutorials' sections are refused",
        ),
    },
    Row {
        command: "export",
        tutorial: "§3, §5, §7",
        cxone: Ok("§6 the data policies, as `[[data_policies]]`"),
    },
    Row {
        command: "status",
        tutorial: "§3–§7",
        cxone: Ok("§3 access keys, §6 data policies and their runs (findings of the last 30 days)"),
    },
    Row {
        command: "report",
        tutorial: "§3–§7",
        cxone: Ok("§2 discovery; the inventory (§3, §4, §6, §7) as its section"),
    },
    Row {
        command: "serve",
        tutorial: "§5, §6, §9",
        cxone: Ok(
            "§4.3e identity links to DFO customers; §4, §5, §7 subject erasure (`[subjects]`)",
        ),
    },
];

/// Whether this run's tenant speaks CXone's published API, from the configuration alone
/// (no file read, no request). `--sim` runs on the emulator's tutorial surface.
pub fn speaks_cxone(ctx: &Context) -> bool {
    if ctx.sim {
        return false;
    }
    let empty = config::TenantFile::default();
    let t = ctx.config.file.tenant.as_ref().unwrap_or(&empty);
    config::api_of(t, t.issuer.as_deref()) == config::ApiKind::Cxone
}

/// Refuses `command` (exit 78) when the configured tenant speaks CXone's published API
/// and the command's API is not on it. `--sim` runs on the emulator's tutorial surface.
pub fn check(ctx: &Context, command: &str) -> Result<(), CliError> {
    let Some(row) = TABLE.iter().find(|r| r.command == command) else {
        return Ok(());
    };
    if !speaks_cxone(ctx) {
        return Ok(());
    }
    match row.cxone {
        Ok(_) => Ok(()),
        Err((why, instead)) => Err(CliError::config(format!(
            "tenant.api: `{command}` is not available on api = \"cxone\": {why} (it uses {} of the tutorials' routes); nothing was sent. Instead: {instead}",
            row.tutorial
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_line(r: &Row) -> String {
        let cxone = match r.cxone {
            Ok(sections) => sections.to_string(),
            Err((why, _)) => format!("no: {why}"),
        };
        format!("| `{}` | {} | {} |", r.command, r.tutorial, cxone)
    }

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = include_str!("../../../README.md");
        let expected: Vec<String> = TABLE.iter().map(row_line).collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|l| !readme.contains(l.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "README's surface table differs; its rows should read:\n{}",
            expected.join("\n")
        );
    }
}
