//! What a tenant holds, read-only and cheaply (`cxguard inventory`, the demo, the
//! report): contacts profiled up to a limit, secrets with their ages and dependents,
//! data actions, tables with their encryption coverage, widgets. And the demo's record
//! of it as a journaled job.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use ledger::{Details, JobStatus, Ledger, NewEntry, NewJob, Outcome};
use serde::Serialize;

pub mod real;

/// What was read: a tenant or the embedded emulator, and where.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    /// `tenant` or `embedded-emulator`.
    pub kind: &'static str,
    /// The API base URL.
    pub base_url: String,
}

/// Contacts counted and profiled (which fields hold personal data).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactSummary {
    /// Contacts read (at most the limit).
    pub counted: u64,
    /// True when the limit stopped the count.
    pub more: bool,
    /// Contacts with a first name.
    pub with_first_name: u64,
    /// Contacts with a last name.
    pub with_last_name: u64,
    /// Contacts with an email.
    pub with_email: u64,
    /// Contacts with a phone number.
    pub with_phone: u64,
    /// Custom field name → contacts that have it.
    pub custom_fields: BTreeMap<String, u64>,
}

/// One Integration secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its value format.
    pub format: String,
    /// Its version.
    pub version: u64,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
    /// Days since then.
    pub age_days: Option<i64>,
    /// The data actions that use it.
    pub dependents: Vec<String>,
}

/// One data action and the secrets it references.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// The secrets it references.
    pub secrets: Vec<String>,
}

/// One Data Store table and its encryption.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    /// Its data store.
    pub datastore: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: usize,
    /// Its encrypted columns.
    pub encrypted: Vec<String>,
    /// How many columns may be encrypted at most, when the tenant says.
    pub max_encrypted: Option<u32>,
    /// Its indexes.
    pub indexes: Vec<String>,
    /// Encrypted and sensitive columns, and the sensitive ones still in clear by name.
    pub coverage: crate::encrypt::Coverage,
    /// The key rotation directives of the encrypted columns.
    pub key_rotation: Vec<crate::encrypt::KeyRotation>,
}

/// One webchat widget and its security policy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its version, when it has one.
    pub version: Option<String>,
    /// Allowed CORS origins.
    pub origins: usize,
    /// Security rules.
    pub rules: usize,
    /// Whether a chat token is required.
    pub require_token: bool,
}

/// What the tenant holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// What was read.
    pub target: TargetInfo,
    /// The contacts.
    pub contacts: ContactSummary,
    /// The secrets.
    pub secrets: Vec<SecretRow>,
    /// The data actions.
    pub data_actions: Vec<ActionRow>,
    /// The tables asked for.
    pub tables: Vec<TableRow>,
    /// Only known where something can count them (the emulator); the API cannot list guests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guests: Option<u64>,
    /// The widgets.
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
    classifier: &crate::encrypt::Classifier,
    max_contacts: u64,
) -> crate::Result<Inventory> {
    let contacts = contact_summary(client, max_contacts);
    let secrets = secret_rows(client);
    let tables = table_rows(client, tables, classifier);
    let widgets = widget_rows(client);
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

/// How many contacts (up to `max_contacts`) hold each personal field.
async fn contact_summary(
    client: &cxone::Client,
    max_contacts: u64,
) -> cxone::Result<ContactSummary> {
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
    Ok(summary)
}

/// Every secret with its age and dependents, and the data actions that use them.
async fn secret_rows(client: &cxone::Client) -> cxone::Result<(Vec<SecretRow>, Vec<ActionRow>)> {
    let list = client.secrets().list().await?;
    let refs = futures_util::stream::iter(list.iter().map(|s| client.secrets().references(&s.id)))
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
    Ok((rows, actions))
}

/// Each named table's encryption coverage, key rotation and indexes.
async fn table_rows(
    client: &cxone::Client,
    tables: &[(String, String)],
    classifier: &crate::encrypt::Classifier,
) -> cxone::Result<Vec<TableRow>> {
    let mut rows = Vec::new();
    for (ds, t) in tables {
        let (table, indexes) = tokio::try_join!(
            client.datastores().table(ds, t),
            client.datastores().indexes(ds, t)
        )?;
        let coverage =
            crate::encrypt::Coverage::of(&table.columns, &Default::default(), classifier);
        let key_rotation = crate::encrypt::KeyRotation::of(&table.columns);
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
    Ok(rows)
}

/// Each webchat widget's policy in numbers.
async fn widget_rows(client: &cxone::Client) -> cxone::Result<Vec<WidgetRow>> {
    let list = client.webchat().list().await?;
    Ok(list
        .into_iter()
        .map(|w| WidgetRow {
            id: w.id,
            name: w.name,
            version: w.settings.version,
            origins: w.settings.security_policies.cors_origins.len(),
            rules: w.settings.security_policies.rules.len(),
            require_token: w.settings.security_policies.authentication.require_token,
        })
        .collect::<Vec<_>>())
}

/// Records an inventory as a one-item job `kind` of `actor` (the demo's, in its
/// throw-away ledger), audited as `tenant.inventory` of `target`: counts only.
pub async fn record(
    ledger: &Ledger,
    inv: &Inventory,
    actor: &str,
    target: &str,
) -> crate::Result<String> {
    let job = ledger
        .create_job(NewJob {
            id: Ledger::new_job_id("demo"),
            kind: "demo",
            actor: actor.into(),
            params: Details::new().id("target", target)?,
            items: vec!["inventory".into()],
            fingerprint: None,
        })
        .await?;
    ledger.claim(&job, "inventory").await?;
    let details = Details::new()
        .count("contacts", inv.contacts.counted)
        .count("secrets", inv.secrets.len() as u64)
        .count("data_actions", inv.data_actions.len() as u64)
        .count("widgets", inv.widgets.len() as u64);
    ledger
        .settle(
            &job,
            "inventory",
            ledger::ItemOutcome::Done { result: None },
            vec![NewEntry::new(
                actor,
                "tenant.inventory",
                target,
                Outcome::Success,
                details,
            )?],
            vec![],
        )
        .await?;
    ledger
        .finish_job(
            &job,
            JobStatus::Done,
            NewEntry::new(actor, "job.finish", &job, Outcome::Success, Details::new())?,
        )
        .await?;
    Ok(job)
}
