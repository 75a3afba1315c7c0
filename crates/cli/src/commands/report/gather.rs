//! Gathering the report's facts: the tenant read once (read-only), the ledger read and
//! verified, and — when a posture is declared — its plan for drift and findings.

use std::collections::BTreeMap;

use super::facts::*;
use crate::commands::posture::PosturePlan;
use crate::exit::CliError;

/// What the report is gathered from.
pub struct Sources<'a> {
    pub client: &'a cxone::Client,
    pub ledger: &'a ledger::Ledger,
    pub verdict: ledger::Verdict,
    pub plan: Option<PosturePlan>,
    pub tables: Vec<guard::encrypt::TableRef>,
    pub since: time::OffsetDateTime,
    pub max_age_days: u32,
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Entries of `operation` (a prefix with `*`) since `since`.
async fn entries(
    ledger: &ledger::Ledger,
    operation: &str,
    since: &str,
) -> Result<Vec<ledger::AuditEntry>, CliError> {
    Ok(ledger
        .entries(
            &ledger::Filter {
                operation: Some(operation.into()),
                since: Some(since.into()),
                ..Default::default()
            }
            .validate()?,
        )
        .await?)
}

fn day(at: &str) -> String {
    at.chars().take(10).collect()
}

pub async fn gather(s: Sources<'_>) -> Result<Report, CliError> {
    let now = time::OffsetDateTime::now_utc();
    let since = rfc3339(s.since);
    let audit = audit(&s.verdict);
    let secrets = secrets(&s, now, &since).await?;
    let (contacts, kinds_run) = contacts(&s, &since).await?;
    let datastores = datastores(&s).await?;
    let webchat = webchat(&s).await?;
    let identity = identity(&s, &since).await?;
    let o = s.ledger.outbox_status().await?;
    let delivery = Delivery {
        delivered: o.delivered,
        pending: o.pending,
        dead: o.dead,
        skipped: o.skipped,
        pending_by_kind: o.pending_by_kind.clone(),
    };
    let summary = cards(
        &s,
        &secrets,
        &contacts,
        &datastores,
        &webchat,
        &identity,
        &kinds_run,
    );
    Ok(Report {
        generated_at: rfc3339(now),
        version: env!("CARGO_PKG_VERSION"),
        tenant: s.client.settings().base_url.to_string(),
        period: Period {
            since,
            until: rfc3339(now),
        },
        audit,
        summary,
        secrets,
        contacts,
        datastores,
        webchat,
        identity,
        delivery,
    })
}

/// The audit chain's verdict and the command that checks it again.
pub(super) fn audit(v: &ledger::Verdict) -> Audit {
    Audit {
        intact: v.is_intact(),
        entries: v.entries,
        checkpoints: v.checkpoints,
        head_seq: v.last_seq,
        head_hash: v.last_hash.clone(),
        key_id: v.key_id.clone(),
        broken: v
            .broken
            .as_ref()
            .map(|b| format!("entry {}: {}", b.seq, b.reason)),
        verify_command: format!(
            "cxguard audit verify --expect-head {}:{}",
            v.last_seq,
            v.last_hash.as_deref().unwrap_or("-")
        ),
    }
}

/// Secrets: ages against the maximum (the posture's, else --max-age-days), and the
/// rotations in the period.
async fn secrets(
    s: &Sources<'_>,
    now: time::OffsetDateTime,
    since: &str,
) -> Result<Secrets, CliError> {
    let list = s.client.secrets().list().await?;
    let max_for = |id: &str| {
        s.plan
            .as_ref()
            .and_then(|p| {
                p.secrets
                    .iter()
                    .find(|x| x.secret == id)
                    .map(|x| x.max_age_days)
            })
            .unwrap_or(s.max_age_days)
    };
    let items: Vec<SecretAge> = list
        .iter()
        .map(|x| {
            let age = time::OffsetDateTime::parse(
                &x.updated_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| (now - t).whole_days())
            .unwrap_or(i64::MAX);
            let max = max_for(&x.id);
            SecretAge {
                id: x.id.clone(),
                name: x.name.clone(),
                age_days: age,
                max_age_days: max,
                overdue: age > i64::from(max),
            }
        })
        .collect();
    let mut rotations = Vec::new();
    for e in entries(s.ledger, "secret.rotate.*", since).await? {
        let result = match e.operation.as_str() {
            "secret.rotate.finish" => "rotated",
            "secret.rotate.rollback" => "rolled back",
            _ => continue,
        };
        rotations.push(Rotation {
            at: e.at.clone(),
            secret: e.target.clone(),
            result,
        });
    }

    Ok(Secrets {
        max_age_days: s.max_age_days,
        items,
        rotations,
    })
}

/// Contacts anonymized per day and the anonymize jobs of the period; with them, the
/// kinds of job ever run (one listing of the journal serves both).
async fn contacts(
    s: &Sources<'_>,
    since: &str,
) -> Result<(Contacts, std::collections::BTreeSet<String>), CliError> {
    let mut per_day = BTreeMap::new();
    for e in entries(s.ledger, "contact.anonymize", since).await? {
        if e.outcome == "success" {
            *per_day.entry(day(&e.at)).or_insert(0) += 1;
        }
    }
    // One listing of the journal serves the anonymize jobs and the "never run" cards.
    let all_jobs = s.ledger.jobs(500).await?;
    let kinds_run: std::collections::BTreeSet<String> =
        all_jobs.iter().map(|j| j.kind.clone()).collect();
    let mut jobs = Vec::new();
    for j in all_jobs {
        if j.kind == guard::anonymize::JOB_KIND && j.created_at.as_str() >= since {
            jobs.push(Job {
                id: j.id,
                status: j.status,
                started: j.created_at,
                done: j.done,
                failed: j.failed,
            });
        }
    }
    let past_retention = s
        .plan
        .as_ref()
        .and_then(|p| p.contacts.as_ref().map(|c| c.pending));

    Ok((
        Contacts {
            per_day,
            jobs,
            past_retention,
        },
        kinds_run,
    ))
}

/// Each named table's sensitive columns, encrypted or in clear.
async fn datastores(s: &Sources<'_>) -> Result<Vec<TableCoverage>, CliError> {
    let classifier = guard::encrypt::Classifier::default();
    let mut datastores = Vec::new();
    for r in &s.tables {
        let t = s.client.datastores().table(&r.datastore, &r.table).await?;
        let c = guard::encrypt::Coverage::of(&t.columns, &Default::default(), &classifier);
        datastores.push(TableCoverage {
            table: r.to_string(),
            sensitive_encrypted: c.sensitive_encrypted,
            sensitive_in_clear: c.sensitive_in_clear.len(),
            other: c.total - c.sensitive_total,
            in_clear: c.sensitive_in_clear,
        });
    }

    Ok(datastores)
}

/// Each widget's policy, findings, last deployed digest and drift from the posture.
async fn webchat(s: &Sources<'_>) -> Result<Vec<Widget>, CliError> {
    let mut webchat = Vec::new();
    let deployed = entries(s.ledger, "webchat.policy_deploy", "1970-01-01T00:00:00Z").await?;
    for w in s.client.webchat().list().await? {
        let sp = &w.settings.security_policies;
        let last_digest = deployed
            .iter()
            .rev()
            .find(|e| e.target == w.id && e.outcome == "success")
            .and_then(|e| e.details["digest_after"].as_str().map(str::to_string));
        let drift = s.plan.as_ref().and_then(|p| {
            let declared = p.webchat.iter().any(|c| c.widget == w.id)
                || p.unchanged
                    .iter()
                    .any(|u| u == &format!("webchat {}", w.id));
            declared.then(|| p.webchat.iter().any(|c| c.widget == w.id))
        });
        webchat.push(Widget {
            findings: guard::webchat::policy::findings(&w.id, sp),
            id: w.id.clone(),
            name: w.name.clone(),
            origins: sp.cors_origins.clone(),
            rules: sp
                .rules
                .iter()
                .map(|r| Rule {
                    id: r.id.clone(),
                    action: r.action.clone(),
                    pattern: r.pattern.clone(),
                })
                .collect(),
            require_token: sp.authentication.require_token,
            token_expiry_minutes: sp.authentication.token_expiry_minutes,
            last_digest,
            drift,
        });
    }

    Ok(webchat)
}

/// Guest links per day and by outcome.
async fn identity(s: &Sources<'_>, since: &str) -> Result<Identity, CliError> {
    let mut links_per_day = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for e in entries(s.ledger, guard::identity::OPERATION, since).await? {
        *outcomes.entry(e.outcome.clone()).or_insert(0) += 1;
        if e.outcome == "success" {
            *links_per_day.entry(day(&e.at)).or_insert(0) += 1;
        }
    }

    Ok(Identity {
        per_day: links_per_day,
        outcomes,
    })
}

/// The summary cards, one per protection.
fn cards(
    s: &Sources<'_>,
    secrets: &Secrets,
    contacts: &Contacts,
    datastores: &[TableCoverage],
    webchat: &[Widget],
    identity: &Identity,
    kinds_run: &std::collections::BTreeSet<String>,
) -> Vec<Card> {
    let overdue = secrets.items.iter().filter(|i| i.overdue).count() as u64;
    let in_clear: u64 = datastores.iter().map(|t| t.sensitive_in_clear as u64).sum();
    let widgets_flagged = webchat
        .iter()
        .filter(|w| w.drift == Some(true) || !w.findings.is_empty())
        .count() as u64;
    let links: u64 = identity.per_day.values().sum();
    let never = |kind: &str| !kinds_run.contains(kind);
    let card = |protection, metric, value: u64, bad: bool, drift: bool, never_run: bool| Card {
        protection,
        status: if drift {
            "drift"
        } else if bad {
            "findings"
        } else if never_run {
            "never run"
        } else {
            "ok"
        },
        metric,
        value,
    };
    let plan = s.plan.as_ref();
    vec![
        card(
            "secrets",
            "secrets overdue",
            overdue,
            overdue > 0,
            plan.is_some_and(|p| !p.secrets.is_empty()),
            never(guard::rotate::JOB_KIND),
        ),
        card(
            "contacts",
            "contacts past retention not anonymized",
            contacts.past_retention.unwrap_or(0),
            false,
            contacts.past_retention.is_some_and(|n| n > 0),
            never(guard::anonymize::JOB_KIND),
        ),
        card(
            "data stores",
            "sensitive columns in clear",
            in_clear,
            in_clear > 0,
            plan.is_some_and(|p| !p.datastore.is_empty()),
            never(guard::encrypt::JOB_KIND),
        ),
        card(
            "webchat",
            "widgets drifted or with unsafe rules",
            widgets_flagged,
            webchat.iter().any(|w| !w.findings.is_empty()),
            webchat.iter().any(|w| w.drift == Some(true)),
            never(guard::webchat::JOB_KIND),
        ),
        card(
            "identity",
            "guest links in the period",
            links,
            false,
            false,
            links == 0 && identity.outcomes.is_empty(),
        ),
    ]
}
