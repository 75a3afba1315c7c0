//! Applying a posture plan: each protection's own apply, in a fixed order — webchat,
//! encryption, secrets, retention — each a journaled job. A saved plan is checked
//! against the tenant first (a resource changed since is named, nothing is done), and
//! only what it lists is applied. One audit entry opens the run and one closes it,
//! naming the plan digest; a failure in one protection does not hide the others.

use std::sync::Arc;

use ledger::{Details, NewEntry, Outcome};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::load::{Posture, Source};
use super::plan::PosturePlan;
use crate::exit::{CliError, Exit};

/// How one protection's part went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartResult {
    pub protection: &'static str,
    /// `applied`, `nothing to do` or `failed`.
    pub status: &'static str,
    pub detail: String,
}

/// Resources changed in the tenant since `saved` was made, named.
pub async fn stale(client: &cxone::Client, saved: &PosturePlan) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    for w in &saved.webchat {
        match client.webchat().get(&w.widget).await {
            Ok((_, etag)) if etag == w.etag => {}
            Ok((_, etag)) => out.push(format!(
                "webchat widget {}: ETag {} now, {} when planned",
                w.widget, etag, w.etag
            )),
            Err(e) => out.push(format!("webchat widget {}: {e}", w.widget)),
        }
    }
    for t in &saved.datastore {
        let r = guard::encrypt::TableRef::parse(&t.table)?;
        let table = client.datastores().table(&r.datastore, &r.table).await?;
        let now: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.encrypted)
            .map(|c| c.name.clone())
            .collect();
        if now != t.encrypted_before {
            out.push(format!(
                "datastore table {}: encrypted columns are {:?} now, {:?} when planned",
                t.table, now, t.encrypted_before
            ));
        }
    }
    if !saved.secrets.is_empty() {
        let list = client.secrets().list().await?;
        for s in &saved.secrets {
            match list.iter().find(|x| x.id == s.secret) {
                Some(x) if x.version == s.version => {}
                Some(x) => out.push(format!(
                    "secret {}: version {} now, {} when planned",
                    s.secret, x.version, s.version
                )),
                None => out.push(format!("secret {}: gone", s.secret)),
            }
        }
    }
    Ok(out)
}

/// Applies `plan` (already checked) and returns each protection's result.
pub async fn apply(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    posture: &Posture,
    plan: &PosturePlan,
    actor: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PartResult>, CliError> {
    let run = format!("plan-{}", &plan.digest[..16]);
    ledger
        .append(NewEntry::new(
            actor,
            "posture.apply.start",
            &run,
            Outcome::Success,
            Details::new()
                .sha256("plan_sha256", &plan.digest)?
                .sha256("posture_sha256", &plan.posture_sha256)?
                .count("changes", plan.changes() as u64),
        )?)
        .await?;
    let mut results = Vec::new();

    // 1. webchat: only the widgets the plan lists.
    results.push(match &posture.webchat {
        Some(policy) if !plan.webchat.is_empty() => {
            let mut sub = policy.clone();
            sub.widgets
                .retain(|id, _| plan.webchat.iter().any(|w| &w.widget == id));
            sub.digest = guard::sha256_hex(&format!("{}\n{}", policy.digest, plan.digest));
            match guard::webchat::apply(client, ledger, &sub, actor).await {
                Ok(r) if r.failed() == 0 => part(
                    "webchat",
                    "applied",
                    format!("{} widget(s) changed (job {})", r.changed(), r.job_id),
                ),
                Ok(r) => part(
                    "webchat",
                    "failed",
                    r.widgets
                        .iter()
                        .filter_map(|w| w.error.as_ref().map(|e| format!("{}: {e}", w.widget)))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(e) => part("webchat", "failed", e.to_string()),
            }
        }
        _ => part("webchat", "nothing to do", String::new()),
    });

    // 2. encryption.
    let classifier = guard::encrypt::Classifier::default();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for t in &plan.datastore {
        let Some(req) = posture
            .tables
            .iter()
            .find(|r| r.table.to_string() == t.table)
        else {
            failed.push(format!("{}: not in the posture any more", t.table));
            continue;
        };
        let outcome = async {
            let (table, indexes) = tokio::try_join!(
                client
                    .datastores()
                    .table(&req.table.datastore, &req.table.table),
                client
                    .datastores()
                    .indexes(&req.table.datastore, &req.table.table),
            )?;
            let p = guard::encrypt::plan(&table, &indexes, req, &classifier)
                .map_err(|ps| guard::Error::Invalid(ps.join("; ")))?;
            guard::encrypt::apply(client, ledger, req, &p, &table, &classifier, actor).await
        }
        .await;
        match outcome {
            Ok(r) => done.push(format!("{} (key version {})", t.table, r.key_version)),
            Err(e) => failed.push(format!("{}: {e}", t.table)),
        }
    }
    results.push(summarize("encryption", &done, &failed));

    // 3. secrets.
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if let Some(s) = &posture.secrets {
        for change in &plan.secrets {
            match rotate_one(client, ledger, s, &change.secret, actor, env).await {
                Ok(d) => done.push(d),
                Err(e) => failed.push(format!("{}: {e}", change.secret)),
            }
        }
    }
    results.push(summarize("secrets", &done, &failed));

    // 4. retention.
    results.push(match (&posture.contacts, &plan.contacts) {
        (Some(c), Some(planned)) if planned.pending > 0 => {
            let cut = time::OffsetDateTime::parse(
                &planned.cutoff,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| CliError::new(Exit::Input, format!("the plan's cutoff: {e}")))?;
            let opts = guard::anonymize::Options {
                actor: actor.to_string(),
                ..Default::default()
            };
            let progress = Arc::new(guard::job::Progress::default());
            match guard::anonymize::run(
                client,
                ledger,
                &c.policy,
                &guard::anonymize::Selection::UpdatedBefore(cut),
                &opts,
                progress,
            )
            .await
            {
                Ok(r) if r.failed == 0 => part(
                    "retention",
                    "applied",
                    format!(
                        "{} contact(s) anonymized, {} already were (job {})",
                        r.changed, r.unchanged, r.job_id
                    ),
                ),
                Ok(r) => part(
                    "retention",
                    "failed",
                    format!("{} contact(s) failed (job {})", r.failed, r.job_id),
                ),
                Err(e) => part("retention", "failed", e.to_string()),
            }
        }
        _ => part("retention", "nothing to do", String::new()),
    });

    let any_failed = results.iter().any(|r| r.status == "failed");
    let mut details = Details::new().sha256("plan_sha256", &plan.digest)?;
    for r in &results {
        details = details.label(
            match r.protection {
                "webchat" => "webchat",
                "encryption" => "encryption",
                "secrets" => "secrets",
                _ => "retention",
            },
            r.status,
        );
    }
    ledger
        .append(NewEntry::new(
            actor,
            "posture.apply.finish",
            &run,
            if any_failed {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            details,
        )?)
        .await?;
    Ok(results)
}

fn part(protection: &'static str, status: &'static str, detail: String) -> PartResult {
    PartResult {
        protection,
        status,
        detail,
    }
}

fn summarize(protection: &'static str, done: &[String], failed: &[String]) -> PartResult {
    match (done.is_empty(), failed.is_empty()) {
        (true, true) => part(protection, "nothing to do", String::new()),
        (_, false) => part(
            protection,
            "failed",
            failed
                .iter()
                .chain(done.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (false, true) => part(protection, "applied", done.join("; ")),
    }
}

/// Rotates one due secret from its source, its previous value at hand for a rollback.
async fn rotate_one(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    s: &super::load::Secrets,
    id: &str,
    actor: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, CliError> {
    let previous = s.previous(id, env).ok_or_else(|| {
        CliError::new(
            Exit::Input,
            "its current value is not at hand for a rollback",
        )
    })?;
    // A generated value is written to `{write_to}.next` before it is sent, and takes the
    // place of `{write_to}` (the next rotation's previous value) once it is live.
    let mut generated: Option<(std::path::PathBuf, std::path::PathBuf)> = None;
    let value: SecretString = match s.source(id) {
        Some(Source::Generate(g)) => {
            let secret = guard::rotate::fetch(client, id).await?;
            let format = match g.charset.as_deref() {
                Some("base64") => cxone::models::SecretFormat::Base64,
                Some(_) => cxone::models::SecretFormat::Raw,
                None => secret.format,
            };
            let v = guard::rotate::generate(format, g.length.unwrap_or(40))?;
            let path = std::path::PathBuf::from(g.write_to.replace("{id}", id));
            let next = std::path::PathBuf::from(format!("{}.next", path.display()));
            crate::commands::secrets::write_new_value(
                &format!(
                    "secrets generate.write_to of {id} (if it exists, an earlier rotation was interrupted and the value in it may be live)"
                ),
                &next,
                &v,
            )?;
            generated = Some((next, path));
            v
        }
        Some(Source::File(f)) => SecretString::from(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    CliError::new(Exit::Input, format!("cannot read {}: {e}", f.display()))
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        Some(Source::Env(v)) => SecretString::from(
            env(v).ok_or_else(|| CliError::new(Exit::Input, format!("{v} is not set")))?,
        ),
        None => return Err(CliError::new(Exit::Input, "no value source")),
    };
    if value.expose_secret().is_empty() {
        return Err(CliError::new(Exit::Input, "the new value is empty"));
    }
    let req = guard::rotate::Request {
        secret_id: id.to_string(),
        value,
        format: None,
        previous: Some(previous),
        no_rollback: false,
        actor: actor.to_string(),
    };
    let plan = guard::rotate::plan(client, &req).await?;
    let r = guard::rotate::apply(client, ledger, &plan, &req).await?;
    match r.ended {
        guard::rotate::Ended::Rotated { version } => {
            if let Some((next, path)) = &generated {
                std::fs::rename(next, path).map_err(|e| {
                    CliError::new(
                        Exit::Failed,
                        format!(
                            "{id} rotated to version {version}, but {} could not replace {}: {e}; move it yourself, it holds the live value",
                            next.display(),
                            path.display()
                        ),
                    )
                })?;
            }
            Ok(format!("{id} rotated to version {version}"))
        }
        guard::rotate::Ended::RolledBack { .. } => {
            if let Some((next, _)) = &generated {
                let _ = std::fs::remove_file(next);
            }
            Err(CliError::new(
                Exit::Failed,
                "a dependent rejected the new value; rolled back",
            ))
        }
        guard::rotate::Ended::Broken { .. } => Err(CliError::new(
            Exit::Failed,
            "broken: see `cxguard jobs show`",
        )),
    }
}
