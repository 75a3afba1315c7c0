//! The posture plan: the tenant read once, read-only, and each protection asked for its
//! part. Changes are what `apply` will do; findings need a person and are not changes.
//! A saved plan records the tenant versions it was made against, a digest, and the
//! ledger's Ed25519 signature over its canonical JSON: `apply` refuses a plan that was
//! edited or signed by another key, re-derives every action from the posture and the
//! tenant as they are, and applies only when the plan confirms exactly those.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::load::{Contacts as ContactsPosture, Posture, Secrets as SecretsPosture, Source};
use crate::{Error, Result};

/// The saved plan's format (2: signed).
pub const FORMAT: u32 = 2;

/// What a plan's signature is bound to ([`ledger::AuditKey::sign_document`]).
pub const SIGNED_AS: &str = "cxguard-posture-plan";

/// The ledger's signature over a saved plan's canonical JSON (without this member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanSignature {
    /// The audit key's id.
    pub key_id: String,
    /// Ed25519, base64.
    pub value: String,
}

/// A widget whose security policy changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetChange {
    /// Its id.
    pub widget: String,
    /// The ETag the plan was made against.
    pub etag: String,
    /// The change, in one line.
    pub summary: String,
}

/// A table whose columns are encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableChange {
    /// `DS/TABLE`.
    pub table: String,
    /// The columns to encrypt.
    pub columns: Vec<String>,
    /// The indexes to mask.
    pub masked_indexes: Vec<String>,
    /// The columns encrypted when the plan was made (what a stale check compares).
    pub encrypted_before: Vec<String>,
}

/// A secret due for rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretChange {
    /// Its id.
    pub secret: String,
    /// The version the plan was made against.
    pub version: u64,
    /// Its age.
    pub age_days: i64,
    /// The maximum age that applies to it.
    pub max_age_days: u32,
    /// The data actions that use it.
    pub dependents: Vec<String>,
}

/// Contacts past retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactsChange {
    /// Contacts last updated before this (RFC 3339) are in scope.
    pub cutoff: String,
    /// Contacts in scope not yet in their target state (at least this many when
    /// `estimated`).
    pub pending: u64,
    /// Contacts examined.
    pub examined: u64,
    /// Whether the count stopped at `--max-contacts`.
    pub estimated: bool,
    /// The `--max-contacts` the count was made with (a re-count for `apply` uses it).
    #[serde(default)]
    pub max_contacts: u64,
}

/// A plan, as printed and as saved with `--out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PosturePlan {
    /// The format ([`FORMAT`]).
    pub format: u32,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// SHA-256 of the posture file it was made from.
    pub posture_sha256: String,
    /// Widgets to change.
    pub webchat: Vec<WidgetChange>,
    /// Tables to encrypt.
    pub datastore: Vec<TableChange>,
    /// Secrets to rotate.
    pub secrets: Vec<SecretChange>,
    /// Contacts to anonymize.
    pub contacts: Option<ContactsChange>,
    /// Access keys to rotate or deactivate (CXone's published API; absent when none, so
    /// a plan of the tutorials' sections reads and signs as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_keys: Vec<super::keys::AccessKeyChange>,
    /// Data policies to create (CXone's published API; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_policies: Vec<crate::policies::compare::PolicyCreate>,
    /// Declared data policies that differ from the live ones: the API cannot change
    /// them, so they are reported, not applied (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_policy_drift: Vec<crate::policies::compare::Drift>,
    /// Resources already as declared.
    pub unchanged: Vec<String>,
    /// What needs a person; not changes.
    pub findings: Vec<String>,
    /// SHA-256 of the canonical JSON of everything above.
    #[serde(default)]
    pub digest: String,
    /// The ledger's signature, in a saved plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<PlanSignature>,
}

impl PosturePlan {
    /// Changes `apply` would make.
    pub fn changes(&self) -> usize {
        self.webchat.len()
            + self.datastore.len()
            + self.secrets.len()
            + self.access_keys.len()
            + self.data_policies.len()
            + usize::from(self.contacts.as_ref().is_some_and(|c| c.pending > 0))
    }

    /// Whether the tenant differs from the posture: changes to make, or drift that
    /// cannot be applied (`plan --detailed-exitcode` exits 2 on either).
    pub fn differs(&self) -> bool {
        self.changes() > 0 || !self.data_policy_drift.is_empty()
    }

    /// The digest of the plan without its digest and signature.
    pub fn compute_digest(&self) -> String {
        let mut p = self.clone();
        p.digest = String::new();
        p.signature = None;
        let v = serde_json::to_value(&p).unwrap_or_default();
        crate::sha256_hex(&crate::webchat::plan::canonical_json(&v))
    }

    /// What the signature covers: the canonical JSON (JCS) of the whole plan but its
    /// signature, digest included.
    pub fn signed_body(&self) -> String {
        let mut p = self.clone();
        p.signature = None;
        let v = serde_json::to_value(&p).unwrap_or_default();
        crate::webchat::plan::canonical_json(&v)
    }
}

/// The retention cut-off for `now`: midnight UTC, `days` before, so a plan and its
/// apply on the same day agree, and a rerun resumes the same job.
pub fn cutoff(now: time::OffsetDateTime, days: u32) -> time::OffsetDateTime {
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    midnight - time::Duration::days(i64::from(days))
}

/// What a plan reads besides the posture and the tenant.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    /// The environment, for value sources named by variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The retention cut-off, when not today's.
    pub cutoff_at: Option<time::OffsetDateTime>,
    /// The `[identity]` key id cxguard is configured with.
    pub identity_configured: Option<&'a str>,
    /// What the ledger knows of the access keys (needed by `[access_keys]`).
    pub access_keys: Option<&'a crate::accesskeys::History>,
}

/// Reads the tenant and plans every section. `problems` are the posture's own; a
/// section the tenant's API surface does not have, and tables that cannot be encrypted
/// as declared, add theirs, and any problem at all is invalid posture (exit 65), every
/// one named, before anything but the tables is read.
pub async fn plan(
    client: &cxone::Client,
    posture: &Posture,
    max_contacts: u64,
    known: &Known<'_>,
    mut problems: Vec<String>,
) -> Result<PosturePlan> {
    let Known {
        env,
        cutoff_at,
        identity_configured,
        ..
    } = *known;
    let now = time::OffsetDateTime::now_utc();
    let mut p = PosturePlan {
        format: FORMAT,
        created_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        posture_sha256: posture.digest.clone(),
        webchat: Vec::new(),
        datastore: Vec::new(),
        secrets: Vec::new(),
        contacts: None,
        access_keys: Vec::new(),
        data_policies: Vec::new(),
        data_policy_drift: Vec::new(),
        unchanged: Vec::new(),
        findings: Vec::new(),
        digest: String::new(),
        signature: None,
    };

    let before = problems.len();
    surface_problems(client.settings().is_cxone(), posture, &mut problems);
    // Tables first: a table that cannot take its columns is invalid posture (on a
    // surface that has tables).
    if problems.len() == before {
        plan_tables(client, posture, &mut p, &mut problems).await?;
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "{} does not validate ({} problem{}); nothing was changed:\n  {}",
            posture.path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }

    if let Some(policy) = &posture.webchat {
        plan_webchat(client, policy, &mut p).await?;
    }
    if let Some(s) = &posture.secrets {
        plan_secrets(client, s, env, now, &mut p).await?;
    }
    if let Some(c) = &posture.contacts {
        let cut = cutoff_at.unwrap_or_else(|| cutoff(now, c.retention_days));
        plan_contacts(client, c, cut, max_contacts, &mut p).await?;
    }
    if let Some(want) = &posture.identity_key_id {
        plan_identity(want, identity_configured, &mut p);
    }
    if let Some(ak) = &posture.access_keys {
        let empty = crate::accesskeys::History::default();
        let history = known.access_keys.unwrap_or(&empty);
        let k = super::keys::plan(client, ak, history, now).await?;
        p.access_keys = k.changes;
        p.unchanged.extend(k.unchanged);
        p.findings.extend(k.findings);
    }
    if let Some(declared) = &posture.data_policies {
        plan_data_policies(client, declared, &mut p).await?;
    }
    p.digest = p.compute_digest();
    Ok(p)
}

/// `[[data_policies]]`: the missing ones to create; drift and unmanaged policies as
/// findings (the API cannot change them).
async fn plan_data_policies(
    client: &cxone::Client,
    declared: &[crate::policies::Declared],
    p: &mut PosturePlan,
) -> Result<()> {
    let dp = crate::policies::compare::plan(client, declared).await?;
    p.data_policies = dp.create;
    p.findings.extend(dp.drift.iter().map(|d| d.describe()));
    p.data_policy_drift = dp.drift;
    p.unchanged.extend(dp.unchanged);
    p.findings.extend(dp.unmanaged);
    p.findings.extend(dp.not_creatable);
    Ok(())
}

/// The sections the tenant's API surface does not have: the tutorials' protections on
/// CXone's published API, access keys on the tutorials' routes.
fn surface_problems(cxone: bool, posture: &Posture, problems: &mut Vec<String>) {
    if cxone {
        let tutorial = [
            ("secrets", posture.secrets.is_some()),
            ("contacts", posture.contacts.is_some()),
            ("datastore", !posture.tables.is_empty()),
            ("webchat", posture.webchat.is_some()),
            ("identity", posture.identity_key_id.is_some()),
        ];
        for (section, _) in tutorial.iter().filter(|(_, present)| *present) {
            problems.push(format!(
                "[{section}]: the tutorials' routes, which CXone does not publish (api = \"cxone\"): remove the section, or keep it in a posture for a tenant with api = \"tutorial\""
            ));
        }
    } else {
        for (section, what, present) in [
            (
                "[access_keys]",
                "access keys",
                posture.access_keys.is_some(),
            ),
            (
                "[[data_policies]]",
                "data policies",
                posture.data_policies.is_some(),
            ),
        ] {
            if present {
                problems.push(format!(
                    "{section}: {what} are CXone's published API; set [tenant] api = \"cxone\""
                ));
            }
        }
    }
}

/// Each declared table's columns against the tenant's; a table that cannot take them is
/// a problem, a sensitive column left out a finding.
async fn plan_tables(
    client: &cxone::Client,
    posture: &Posture,
    p: &mut PosturePlan,
    problems: &mut Vec<String>,
) -> Result<()> {
    let classifier = crate::encrypt::Classifier::default();
    for req in &posture.tables {
        let (table, indexes) = match req.table.read(client).await {
            Ok(x) => x,
            Err(e) if e.status() == Some(404) => {
                problems.push(format!("datastore.tables ({}): {e}", req.table));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let tp = match crate::encrypt::plan(&table, &indexes, req, &classifier) {
            Err(ps) => {
                for x in ps {
                    problems.push(format!("datastore.tables ({}): {x}", req.table));
                }
                continue;
            }
            Ok(tp) => tp,
        };
        let declared: std::collections::BTreeSet<&str> =
            req.columns.iter().map(String::as_str).collect();
        for c in &tp.after.sensitive_in_clear {
            if !declared.contains(c.as_str()) {
                p.findings.push(format!(
                    "datastore {}: sensitive column {c} is not declared for encryption",
                    req.table
                ));
            }
        }
        if tp.is_noop() {
            p.unchanged.push(format!("datastore {}", req.table));
        } else {
            p.datastore.push(TableChange {
                table: req.table.to_string(),
                columns: tp.columns.clone(),
                masked_indexes: tp.masked_indexes.clone(),
                encrypted_before: table
                    .columns
                    .iter()
                    .filter(|c| c.encrypted)
                    .map(|c| c.name.clone())
                    .collect(),
            });
        }
    }
    Ok(())
}

/// Each widget's policy change, and findings on the live policy.
async fn plan_webchat(
    client: &cxone::Client,
    policy: &crate::webchat::Policy,
    p: &mut PosturePlan,
) -> Result<()> {
    let plans = crate::webchat::plan(client, policy).await?;
    for w in &plans {
        for f in crate::webchat::policy::findings(&w.widget, &w.current) {
            p.findings.push(format!("webchat (live): {f}"));
        }
        if w.changes.is_empty() {
            p.unchanged.push(format!("webchat {}", w.widget));
        } else {
            p.webchat.push(WidgetChange {
                widget: w.widget.clone(),
                etag: w.etag.clone(),
                summary: w.changes.summary(),
            });
        }
    }
    Ok(())
}

/// Each managed secret past its maximum age that can be rotated (a value source and the
/// current value at hand for a rollback); the others are findings.
async fn plan_secrets(
    client: &cxone::Client,
    s: &SecretsPosture,
    env: &dyn Fn(&str) -> Option<String>,
    now: time::OffsetDateTime,
    p: &mut PosturePlan,
) -> Result<()> {
    let list = client.secrets().list().await?;
    if s.max_age_days.is_none() && s.each.values().all(|e| e.max_age_days.is_none()) {
        p.findings.push(
            "secrets: no max_age_days: secret ages are not checked (set [secrets] max_age_days)"
                .into(),
        );
    }
    for secret in &list {
        if s.unmanaged.contains(&secret.id) {
            continue;
        }
        let Some(max) = s.max_age(&secret.id) else {
            continue;
        };
        let due = crate::rotate::secrets::due(
            std::slice::from_ref(secret),
            std::time::Duration::from_secs(u64::from(max) * 86_400),
            now,
        );
        let Some(d) = due.first() else {
            p.unchanged.push(format!("secret {}", secret.id));
            continue;
        };
        if let Some(finding) = unrotatable(s, &secret.id, d.age_days, max, env) {
            p.findings.push(finding);
            continue;
        }
        let dependents = client
            .secrets()
            .references(&secret.id)
            .await?
            .into_iter()
            .map(|r| r.data_action_id)
            .collect();
        p.secrets.push(SecretChange {
            secret: secret.id.clone(),
            version: secret.version,
            age_days: d.age_days,
            max_age_days: max,
            dependents,
        });
    }
    Ok(())
}

/// Why a secret due for rotation cannot be rotated, if it cannot.
fn unrotatable(
    s: &SecretsPosture,
    id: &str,
    age_days: i64,
    max: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let Some(source) = s.source(id) else {
        return Some(format!(
            "secret {id} is {age_days} days old (max {max}) and has no value source: add [secrets.each.{id}] value_file, value_env or generate"
        ));
    };
    let from_generate = matches!(source, Source::Generate(_));
    if let Source::Generate(g) = source
        && let Err(why) = crate::rotate::secrets::path_for_id(&g.write_to, id)
    {
        return Some(format!("secret {}: {why}", id.escape_debug()));
    }
    if s.previous(id, env).is_none() {
        return Some(format!(
            "secret {id} is {age_days} days old (max {max}) but its current value is not at hand for a rollback: set previous_file or previous_env{}",
            if from_generate {
                " (or keep the write_to file of the last rotation)"
            } else {
                ""
            }
        ));
    }
    None
}

/// How many contacts updated before the cut-off the policy would still change, counting
/// at most `max_contacts` (then the count is an estimate).
async fn plan_contacts(
    client: &cxone::Client,
    c: &ContactsPosture,
    cut: time::OffsetDateTime,
    max_contacts: u64,
    p: &mut PosturePlan,
) -> Result<()> {
    let mut examined = 0u64;
    let mut pending = 0u64;
    let mut estimated = false;
    let list = client
        .contacts()
        .list()
        .page_size(cxone::PageSize::DEFAULT_BULK)
        .updated_before(cut);
    let mut stream = Box::pin(list.stream());
    while let Some(contact) = stream.next().await {
        if examined >= max_contacts {
            estimated = true;
            break;
        }
        let contact = contact?;
        examined += 1;
        match crate::anonymize::transform::plan(&c.policy, &contact, &Default::default()) {
            Ok(x) if x.is_noop() => {}
            _ => pending += 1,
        }
    }
    if pending == 0 {
        p.unchanged.push("contacts retention".into());
    }
    p.contacts = Some(ContactsChange {
        cutoff: cut
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        pending,
        examined,
        estimated,
        max_contacts,
    });
    Ok(())
}

/// The API cannot say which key made a pseudonym; cxguard's own configuration can.
fn plan_identity(want: &str, configured: Option<&str>, p: &mut PosturePlan) {
    match configured {
        Some(have) if have == want => p.unchanged.push(format!("identity key {want}")),
        Some(have) => p.findings.push(format!(
            "identity: [identity] key in cxguard.toml is {have}, the posture expects {want}"
        )),
        None => p.findings.push(format!(
            "identity: no [identity] key in cxguard.toml; the posture expects {want}"
        )),
    }
}
