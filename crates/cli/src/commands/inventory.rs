//! `cxguard inventory`: what the target tenant holds, read-only. Against a real tenant
//! it reads contacts only up to `--max-contacts`, so it stays cheap on a large tenant.

use clap::Args;
pub use guard::inventory::{Inventory, TargetInfo, gather};

use crate::context::Context;
use crate::exit::{CliError, Exit};
use crate::output::{Output, print_json, table};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Data Store tables to include, as DATASTORE/TABLE (the API cannot list them).
    #[arg(long = "table", value_name = "DS/TABLE", value_parser = parse_table)]
    pub tables: Vec<(String, String)>,
    /// Read at most this many contacts to count and profile them.
    #[arg(long, default_value_t = 10_000)]
    pub max_contacts: u64,
}

fn parse_table(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ds, t)) if !ds.is_empty() && !t.is_empty() && !t.contains('/') => {
            Ok((ds.into(), t.into()))
        }
        _ => Err(format!("{s:?} is not DATASTORE/TABLE")),
    }
}

pub fn print_text(inv: &Inventory) {
    println!("Target: {} ({})", inv.target.base_url, inv.target.kind);
    println!();
    print_contacts(&inv.contacts);
    print_secrets(inv);
    print_tables(&inv.tables);
    match inv.guests {
        Some(n) => println!("Web-messaging guests: {n}"),
        None => println!("Web-messaging guests: not listable through the API"),
    }
    println!();
    print_widgets(&inv.widgets);
}

/// How many contacts hold each personal field.
fn print_contacts(c: &guard::inventory::ContactSummary) {
    println!(
        "Contacts: {}{}  (with first name {}, last name {}, email {}, phone {})",
        c.counted,
        if c.more {
            "+ (stopped at the limit)"
        } else {
            ""
        },
        c.with_first_name,
        c.with_last_name,
        c.with_email,
        c.with_phone
    );
    if !c.custom_fields.is_empty() {
        let fields: Vec<String> = c
            .custom_fields
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  custom fields: {}", fields.join(", "));
    }
    println!();
}

/// Secrets with their dependents, then the data actions.
fn print_secrets(inv: &Inventory) {
    println!("Secrets: {}", inv.secrets.len());
    let mut t = table(&[
        "id",
        "name",
        "format",
        "version",
        "age (days)",
        "dependents",
    ]);
    for s in &inv.secrets {
        t.add_row(vec![
            s.id.clone(),
            s.name.clone(),
            s.format.clone(),
            s.version.to_string(),
            s.age_days.map_or("?".into(), |d| d.to_string()),
            if s.dependents.is_empty() {
                "-".into()
            } else {
                s.dependents.join(", ")
            },
        ]);
    }
    println!("{t}");
    println!();
    println!("Data actions: {}", inv.data_actions.len());
    let mut t = table(&["id", "name", "status", "secrets"]);
    for a in &inv.data_actions {
        t.add_row(vec![
            a.id.clone(),
            a.name.clone(),
            a.status.clone(),
            a.secrets.join(", "),
        ]);
    }
    println!("{t}");
    println!();
}

/// Each table's encryption and indexes.
fn print_tables(tables: &[guard::inventory::TableRow]) {
    println!("Data Store tables: {}", tables.len());
    let mut t = table(&[
        "table",
        "columns",
        "encrypted",
        "sensitive in clear",
        "key rotation",
        "indexes",
    ]);
    for r in tables {
        t.add_row(vec![
            format!("{}/{} ({})", r.datastore, r.id, r.name),
            r.columns.to_string(),
            format!(
                "{} of max {}: {}",
                r.encrypted.len(),
                r.max_encrypted.map_or("?".into(), |m| m.to_string()),
                r.encrypted.join(", ")
            ),
            format!(
                "{} of {} sensitive: {}",
                r.coverage.sensitive_in_clear.len(),
                r.coverage.sensitive_total,
                r.coverage.sensitive_in_clear.join(", ")
            ),
            r.key_rotation
                .iter()
                .map(|k| k.describe())
                .collect::<Vec<_>>()
                .join("; "),
            r.indexes.join("; "),
        ]);
    }
    println!("{t}");
    println!();
}

/// Each webchat widget's policy in numbers.
fn print_widgets(widgets: &[guard::inventory::WidgetRow]) {
    println!("Webchat widgets: {}", widgets.len());
    let mut t = table(&[
        "id",
        "name",
        "version",
        "origins",
        "rules",
        "token required",
    ]);
    for w in widgets {
        t.add_row(vec![
            w.id.clone(),
            w.name.clone(),
            w.version.clone().unwrap_or_default(),
            w.origins.to_string(),
            w.rules.to_string(),
            if w.require_token {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    println!("{t}");
}

pub async fn run(ctx: &Context, args: InventoryArgs) -> Result<Exit, CliError> {
    let crate::tenant::Connected { client, sim } =
        crate::tenant::connect(ctx, Default::default()).await?;
    if client.settings().is_cxone() {
        return super::cxone_inventory::run(ctx, &client).await;
    }
    let mut tables = args.tables.clone();
    if tables.is_empty() && sim.is_some() {
        tables.push(("ds-customer".into(), "tbl-customer-profiles".into()));
    }
    let empty = crate::config::DatastoreFile::default();
    let classifier =
        super::datastore::classifier(ctx.config.file.datastore.as_ref().unwrap_or(&empty));
    let mut inv = gather(&client, &tables, &classifier, args.max_contacts).await?;
    if let Some(sim) = &sim {
        inv.target.kind = "embedded-emulator";
        inv.guests = sim.control().state()["counts"]["guests"].as_u64();
    }
    match ctx.output {
        Output::Json => print_json(&inv),
        Output::Text => print_text(&inv),
    }
    Ok(Exit::Ok)
}

/// Connects to read the tenant's overview (widgets, tables, secrets) and resolves the
/// tables to cover: those named, else `[[datastore.tables]]`, else the emulator's demo
/// table (the API cannot list tables). For `export` and `report`.
pub async fn overview(
    ctx: &crate::context::Context,
    named: &[String],
) -> Result<(crate::tenant::Connected, Vec<guard::encrypt::TableRef>), CliError> {
    let mut tables = named
        .iter()
        .map(|t| guard::encrypt::TableRef::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let target = crate::tenant::connect(
        ctx,
        crate::tenant::Needs::reading(&[
            "webchat:widgets:read",
            "data_management:read",
            "integration:secret:read",
        ]),
    )
    .await?;
    if tables.is_empty() {
        if let Some(d) = &ctx.config.file.datastore {
            for t in &d.tables {
                tables.push(guard::encrypt::TableRef::parse(&t.table)?);
            }
        }
        if tables.is_empty() && target.sim.is_some() {
            tables.push(guard::encrypt::TableRef::parse(
                "ds-customer/tbl-customer-profiles",
            )?);
        }
    }
    Ok((target, tables))
}
