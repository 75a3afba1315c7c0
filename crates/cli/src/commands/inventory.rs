//! `cxguard inventory`: what the target tenant holds, read-only. Against a real tenant
//! it reads contacts only up to `--max-contacts`, so it stays cheap on a large tenant.

use std::collections::BTreeMap;

use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::Context;
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    pub kind: &'static str,
    pub base_url: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactSummary {
    /// Contacts read (at most the limit).
    pub counted: u64,
    /// True when the limit stopped the count.
    pub more: bool,
    pub with_first_name: u64,
    pub with_last_name: u64,
    pub with_email: u64,
    pub with_phone: u64,
    /// Custom field name → contacts that have it.
    pub custom_fields: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRow {
    pub id: String,
    pub name: String,
    pub format: String,
    pub version: u64,
    pub updated_at: String,
    pub age_days: Option<i64>,
    pub dependents: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub secrets: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    pub datastore: String,
    pub id: String,
    pub name: String,
    pub columns: usize,
    pub encrypted: Vec<String>,
    pub max_encrypted: Option<u32>,
    pub indexes: Vec<String>,
    /// Encrypted and sensitive columns, and the sensitive ones still in clear by name.
    pub coverage: guard::encrypt::Coverage,
    /// The key rotation directives of the encrypted columns.
    pub key_rotation: Vec<guard::encrypt::KeyRotation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetRow {
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    pub origins: usize,
    pub rules: usize,
    pub require_token: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub target: TargetInfo,
    pub contacts: ContactSummary,
    pub secrets: Vec<SecretRow>,
    pub data_actions: Vec<ActionRow>,
    pub tables: Vec<TableRow>,
    /// Only known where something can count them (the emulator); the API cannot list guests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests: Option<u64>,
    pub widgets: Vec<WidgetRow>,
}

fn age_days(updated_at: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(updated_at, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((time::OffsetDateTime::now_utc() - t).whole_days())
}

/// Reads the inventory with a handful of concurrent requests.
pub async fn gather(
    client: &cxone::Client,
    tables: &[(String, String)],
    classifier: &guard::encrypt::Classifier,
    max_contacts: u64,
) -> Result<Inventory, CliError> {
    let contacts = async {
        let mut summary = ContactSummary::default();
        let page_size = cxone::PageSize::new(max_contacts.clamp(1, 1000) as u32)
            .unwrap_or(cxone::PageSize::DEFAULT);
        let mut stream = Box::pin(client.contacts().list().page_size(page_size).stream());
        while let Some(c) = stream.try_next().await? {
            if summary.counted == max_contacts {
                summary.more = true;
                break;
            }
            summary.counted += 1;
            summary.with_first_name += u64::from(c.first_name.is_some());
            summary.with_last_name += u64::from(c.last_name.is_some());
            summary.with_email += u64::from(c.email.is_some());
            summary.with_phone += u64::from(c.phone.is_some());
            for (k, v) in &c.custom_fields {
                if !v.is_null() {
                    *summary.custom_fields.entry(k.clone()).or_insert(0) += 1;
                }
            }
        }
        Ok::<_, cxone::Error>(summary)
    };
    let secrets = async {
        let list = client.secrets().list().await?;
        let refs =
            futures_util::stream::iter(list.iter().map(|s| client.secrets().references(&s.id)))
                .buffered(8)
                .try_collect::<Vec<_>>()
                .await?;
        let rows: Vec<SecretRow> = list
            .into_iter()
            .zip(refs)
            .map(|(s, r)| SecretRow {
                age_days: age_days(&s.updated_at),
                id: s.id,
                name: s.name,
                format: s.format.to_string(),
                version: s.version,
                updated_at: s.updated_at,
                dependents: r.into_iter().map(|x| x.data_action_id).collect(),
            })
            .collect();
        let mut action_ids: Vec<String> = rows
            .iter()
            .flat_map(|r| r.dependents.iter().cloned())
            .collect();
        action_ids.sort();
        action_ids.dedup();
        let actions =
            futures_util::stream::iter(action_ids.iter().map(|id| client.data_actions().get(id)))
                .buffered(8)
                .try_collect::<Vec<_>>()
                .await?;
        let actions = actions
            .into_iter()
            .map(|a| ActionRow {
                id: a.id,
                name: a.name,
                status: format!("{:?}", a.status).to_lowercase(),
                secrets: a.secret_ids,
            })
            .collect();
        Ok::<_, cxone::Error>((rows, actions))
    };
    let tables = async {
        let mut rows = Vec::new();
        for (ds, t) in tables {
            let (table, indexes) = tokio::try_join!(
                client.datastores().table(ds, t),
                client.datastores().indexes(ds, t)
            )?;
            let coverage =
                guard::encrypt::Coverage::of(&table.columns, &Default::default(), classifier);
            let key_rotation = guard::encrypt::KeyRotation::of(&table.columns);
            rows.push(TableRow {
                coverage,
                key_rotation,
                datastore: ds.clone(),
                id: table.id,
                name: table.name,
                columns: table.columns.len(),
                encrypted: table
                    .columns
                    .iter()
                    .filter(|c| c.encrypted)
                    .map(|c| c.name.clone())
                    .collect(),
                max_encrypted: table.metadata.max_encrypted_fields,
                indexes: indexes
                    .iter()
                    .map(|i| {
                        format!(
                            "{}({}){}",
                            i.name,
                            i.columns.join(","),
                            if i.read_only { " ro" } else { "" }
                        )
                    })
                    .collect(),
            });
        }
        Ok::<_, cxone::Error>(rows)
    };
    let widgets = async {
        let list = client.webchat().list().await?;
        Ok::<_, cxone::Error>(
            list.into_iter()
                .map(|w| WidgetRow {
                    id: w.id,
                    name: w.name,
                    version: w.settings.version,
                    origins: w.settings.security_policies.cors_origins.len(),
                    rules: w.settings.security_policies.rules.len(),
                    require_token: w.settings.security_policies.authentication.require_token,
                })
                .collect::<Vec<_>>(),
        )
    };
    let (contacts, (secrets, data_actions), tables, widgets) =
        tokio::try_join!(contacts, secrets, tables, widgets)?;
    Ok(Inventory {
        target: TargetInfo {
            kind: "tenant",
            base_url: client.settings().base_url.to_string(),
        },
        contacts,
        secrets,
        data_actions,
        tables,
        guests: None,
        widgets,
    })
}

pub fn print_text(inv: &Inventory) {
    println!("Target: {} ({})", inv.target.base_url, inv.target.kind);
    println!();
    let c = &inv.contacts;
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
    println!("Data Store tables: {}", inv.tables.len());
    let mut t = table(&[
        "table",
        "columns",
        "encrypted",
        "sensitive in clear",
        "key rotation",
        "indexes",
    ]);
    for r in &inv.tables {
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
    match inv.guests {
        Some(n) => println!("Web-messaging guests: {n}"),
        None => println!("Web-messaging guests: not listable through the API"),
    }
    println!();
    println!("Webchat widgets: {}", inv.widgets.len());
    let mut t = table(&[
        "id",
        "name",
        "version",
        "origins",
        "rules",
        "token required",
    ]);
    for w in &inv.widgets {
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

pub async fn run(
    ctx: &Context,
    args: InventoryArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Exit, CliError> {
    let crate::tenant::Connected { client, sim } =
        crate::tenant::connect(ctx, env, Default::default()).await?;
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
    ctx: &crate::Context,
    env: &dyn Fn(&str) -> Option<String>,
    named: &[String],
) -> Result<(crate::tenant::Connected, Vec<guard::encrypt::TableRef>), CliError> {
    let mut tables = named
        .iter()
        .map(|t| guard::encrypt::TableRef::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let target = crate::tenant::connect(
        ctx,
        env,
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
