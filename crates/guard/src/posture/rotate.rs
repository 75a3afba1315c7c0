//! Posture's secret rotation: one due secret rotated from its source, with its previous
//! value at hand for a rollback, resumed (not repeated) after an interruption.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::file::Generate;
use super::load::{Secrets, Source};
use super::plan::SecretChange;
use crate::{Error, Result};

/// A generated value's two files: `{write_to}.next` and `{write_to}`.
type Generated = (PathBuf, PathBuf);

/// `{write_to}.next` (where a generated value waits until it is live) and `{write_to}`.
fn next_of(g: &Generate, id: &str) -> Result<Generated> {
    let path = crate::rotate::secrets::path_for_id(&g.write_to, id).map_err(Error::Invalid)?;
    Ok((PathBuf::from(format!("{}.next", path.display())), path))
}

/// Rotates one due secret from its source, its previous value at hand for a rollback.
/// After an interruption: an unfinished rotation is resumed with the same value, and a
/// rotation that finished is not done twice.
pub(super) async fn rotate_one(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    s: &Secrets,
    change: &SecretChange,
    planned_at: &str,
    actor: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String> {
    let id = change.secret.as_str();
    // An id from the tenant that cannot name a file is refused before anything.
    if let Some(Source::Generate(g)) = s.source(id) {
        next_of(g, id)?;
    }
    let unfinished = ledger.running_job(crate::rotate::JOB_KIND, id).await?;
    if unfinished.is_none()
        && let Some(done) = rotated_since_plan(client, ledger, s, change, planned_at).await?
    {
        return Ok(done);
    }
    let previous = s
        .previous(id, env)
        .ok_or_else(|| Error::Invalid("its current value is not at hand for a rollback".into()))?;
    let (value, generated) = new_value(client, s, id, unfinished.is_some(), env).await?;
    if value.expose_secret().is_empty() {
        return Err(Error::Invalid("the new value is empty".into()));
    }
    let req = crate::rotate::Request {
        secret_id: id.to_string(),
        value,
        format: None,
        previous: Some(previous),
        no_rollback: false,
        actor: actor.to_string(),
    };
    let r = match &unfinished {
        Some(job) => crate::rotate::resume(client, ledger, job, &req).await?,
        None => {
            let plan = crate::rotate::plan(client, &req).await?;
            crate::rotate::apply(client, ledger, &plan, &req).await?
        }
    };
    settle(id, r.ended, generated.as_ref())
}

/// With no unfinished rotation: a secret whose version moved since the plan was either
/// rotated by an interrupted run after the plan (then what it became, and its generated
/// value moved into place) or changed by someone else (an error).
async fn rotated_since_plan(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    s: &Secrets,
    change: &SecretChange,
    planned_at: &str,
) -> Result<Option<String>> {
    let id = change.secret.as_str();
    let now = crate::rotate::fetch(client, id).await?;
    if now.version == change.version {
        return Ok(None);
    }
    let rfc3339 = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    let rotated = ledger
        .jobs_of(crate::rotate::JOB_KIND, ledger::JobStatus::Done, 50)
        .await?
        .into_iter()
        .any(|j| j.params["secret_id"] == id && rfc3339(&j.created_at) >= rfc3339(planned_at));
    if !rotated {
        return Err(Error::Failed(format!(
            "changed since the plan (version {} now, {} planned)",
            now.version, change.version
        )));
    }
    // Rotated by the interrupted run; its value may still wait in `.next`.
    if let Some(Source::Generate(g)) = s.source(id) {
        let (next, path) = next_of(g, id)?;
        if next.exists() {
            std::fs::rename(&next, &path).map_err(|e| {
                Error::Failed(format!(
                    "{} could not replace {}: {e}",
                    next.display(),
                    path.display()
                ))
            })?;
        }
    }
    Ok(Some(format!(
        "{id} rotated to version {} (in the interrupted run)",
        now.version
    )))
}

/// The value to send, from the secret's source. A generated value is written to
/// `{write_to}.next` before it is sent, and takes the place of `{write_to}` (the next
/// rotation's previous value) once it is live; a resumed rotation reads it back.
async fn new_value(
    client: &cxone::Client,
    s: &Secrets,
    id: &str,
    resuming: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(SecretString, Option<Generated>)> {
    let no_source = || Error::Invalid("no value source".into());
    match s.source(id) {
        Some(Source::Generate(g)) if resuming => {
            let (next, path) = next_of(g, id)?;
            let v = std::fs::read_to_string(&next).map_err(|e| {
                Error::Failed(format!(
                    "the interrupted rotation's value {} cannot be read: {e}",
                    next.display()
                ))
            })?;
            Ok((SecretString::from(v), Some((next, path))))
        }
        Some(Source::Generate(g)) => {
            let secret = crate::rotate::fetch(client, id).await?;
            let format = match g.charset.as_deref() {
                Some("base64") => cxone::models::SecretFormat::Base64,
                Some(_) => cxone::models::SecretFormat::Raw,
                None => secret.format,
            };
            let (next, path) = next_of(g, id)?;
            let v = crate::rotate::generate(format, g.length.unwrap_or(40))?;
            crate::values::write_new(
                &format!(
                    "secrets generate.write_to of {id} (if it exists, an earlier rotation was interrupted and the value in it may be live)"
                ),
                &next,
                &v,
            )?;
            Ok((v, Some((next, path))))
        }
        Some(Source::File(f)) => Ok((
            crate::values::read("value_file", Some(f), None, env)?.ok_or_else(no_source)?,
            None,
        )),
        Some(Source::Env(v)) => Ok((
            crate::values::read("value_env", None, Some(v), env)?.ok_or_else(no_source)?,
            None,
        )),
        None => Err(no_source()),
    }
}

/// What a rotation ended as; a live generated value takes its file's place, a rolled
/// back one is removed.
fn settle(id: &str, ended: crate::rotate::Ended, generated: Option<&Generated>) -> Result<String> {
    match ended {
        crate::rotate::Ended::Rotated { version } => {
            if let Some((next, path)) = generated {
                std::fs::rename(next, path).map_err(|e| {
                    Error::Failed(format!(
                        "{id} rotated to version {version}, but {} could not replace {}: {e}; move it yourself, it holds the live value",
                        next.display(),
                        path.display()
                    ))
                })?;
            }
            Ok(format!("{id} rotated to version {version}"))
        }
        crate::rotate::Ended::RolledBack { .. } => {
            if let Some((next, _)) = generated {
                let _ = std::fs::remove_file(next);
            }
            Err(Error::Failed(
                "a dependent rejected the new value; rolled back".into(),
            ))
        }
        crate::rotate::Ended::Broken { .. } => {
            Err(Error::Failed("broken: see `cxguard jobs show`".into()))
        }
    }
}
