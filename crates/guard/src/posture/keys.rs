//! `[access_keys]` in the posture (CXone's published API, spec-real §3): a key older than
//! `max_age_days` (or of unknown age: cxguard did not create it) is rotated to the
//! posture's `deliver` target, an active key unused for `max_unused_days` is
//! deactivated. The plan reads the keys and cxguard's own record of them (when it
//! created each, which rotations are under way); the apply runs `accesskeys rotate`'s
//! own job for each key, so a crash resumes exactly as that command does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file::{AccessKeysPosture, relative};
use crate::Result;
use crate::accesskeys::{History, Request, Target, VaultConfig};

/// `[access_keys]`, checked.
#[derive(Debug, Clone)]
pub struct AccessKeys {
    /// A key older than this (or of unknown age) is rotated.
    pub max_age_days: Option<u32>,
    /// An active key unused this long is deactivated.
    pub max_unused_days: Option<u32>,
    /// The delivery target, `{user}` not yet replaced (file paths made relative to the
    /// posture file).
    pub deliver: Option<String>,
    /// How long an old key stays active after its replacement works.
    pub grace: Duration,
    /// When an old key is deleted after it is deactivated.
    pub delete_after: Option<Duration>,
    /// Keys left alone.
    pub unmanaged: BTreeSet<String>,
}

impl AccessKeys {
    /// The target a key of `user` is delivered to, or why there is none.
    pub fn target(&self, user: Option<&str>) -> std::result::Result<Target, String> {
        let Some(t) = &self.deliver else {
            return Err("access_keys.deliver is not set".into());
        };
        let text = if t.contains("{user}") {
            let user = user.ok_or("its user is unknown, and deliver names {user}")?;
            if user.is_empty()
                || user.contains("..")
                || !user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!(
                    "its user id {user:?} cannot be put in a target name"
                ));
            }
            t.replace("{user}", user)
        } else {
            t.clone()
        };
        Target::parse(&text).map_err(|e| e.to_string())
    }
}

/// Checks `[access_keys]`; paths are relative to the posture file at `path`.
pub(super) fn load(f: AccessKeysPosture, path: &Path, problems: &mut Vec<String>) -> AccessKeys {
    let at = "access_keys";
    for (name, v) in [
        ("max_age_days", f.max_age_days),
        ("max_unused_days", f.max_unused_days),
    ] {
        if v == Some(0) {
            problems.push(format!("{at}.{name}: must be at least 1"));
        }
    }
    if f.max_age_days.is_none() && f.max_unused_days.is_none() {
        problems.push(format!(
            "{at}: give max_age_days, max_unused_days or both (the section asks for nothing)"
        ));
    }
    if f.max_age_days.is_some() && f.deliver.is_none() {
        problems.push(format!(
            "{at}.deliver: needed with max_age_days (where a rotated key's secret goes: file:…, vault:… or exec:…)"
        ));
    }
    let deliver = f.deliver.map(|d| match d.strip_prefix("file:") {
        Some(p) if !p.is_empty() => {
            format!("file:{}", relative(path, Path::new(p)).display())
        }
        _ => d,
    });
    if let Some(d) = &deliver
        && let Err(e) = Target::parse(&d.replace("{user}", "user"))
    {
        problems.push(format!(
            "{at}.deliver: {}",
            e.to_string().trim_start_matches("--deliver: ")
        ));
    }
    let mut duration = |name: &str, v: Option<String>| {
        v.and_then(
            |t| match crate::parsing::duration(&format!("{at}.{name}"), &t) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            },
        )
    };
    let grace = duration("grace", f.grace).unwrap_or_default();
    let delete_after = duration("delete_after", f.delete_after);
    AccessKeys {
        max_age_days: f.max_age_days,
        max_unused_days: f.max_unused_days,
        deliver,
        grace,
        delete_after,
        unmanaged: f.unmanaged.into_iter().collect(),
    }
}

/// A key to rotate or deactivate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyChange {
    /// The key's id.
    pub key: String,
    /// Its user.
    pub user: Option<String>,
    /// `rotate` or `deactivate`.
    pub action: String,
    /// Why, in a few words.
    pub reason: String,
    /// Where a rotated key goes (its label; none for a deactivation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<String>,
}

/// What one key calls for.
enum Verdict {
    Unchanged(String),
    Finding(String),
    Change(AccessKeyChange),
}

fn judge(
    k: &cxone::accesskeys::AccessKey,
    ak: &AccessKeys,
    history: &History,
    now: time::OffsetDateTime,
) -> Verdict {
    let id = k.access_key_id.clone().unwrap_or_default();
    let shown = format!("access key {id}");
    if let Some(job) = history.rotating.get(&id) {
        return Verdict::Unchanged(format!(
            "{shown} (rotation {job} under way; `cxguard accesskeys finish` completes it)"
        ));
    }
    if !k.is_active.unwrap_or(false) {
        return Verdict::Unchanged(format!("{shown} (inactive)"));
    }
    let days = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (now - t).whole_days())
    };
    let age = history.age_days(&id, now);
    let unused = k.last_used_date.as_deref().and_then(days).or(age);
    let change = |action: &str, reason: String, deliver: Option<String>| {
        Verdict::Change(AccessKeyChange {
            key: id.clone(),
            user: k.user_id.clone(),
            action: action.into(),
            reason,
            deliver,
        })
    };
    if let Some(max) = ak.max_unused_days {
        match unused {
            Some(d) if d >= i64::from(max) => {
                return change(
                    "deactivate",
                    format!(
                        "{} {d} days (max {max})",
                        if k.last_used_date.is_some() {
                            "unused for"
                        } else {
                            "never used in"
                        }
                    ),
                    None,
                );
            }
            None => {
                return Verdict::Finding(format!(
                    "{shown}: never used and of unknown age; deactivate it if nothing needs it"
                ));
            }
            Some(_) => {}
        }
    }
    let Some(max) = ak.max_age_days else {
        return Verdict::Unchanged(shown);
    };
    let reason = match age {
        Some(a) if a <= i64::from(max) => return Verdict::Unchanged(shown),
        Some(a) => format!("{a} days old (max {max})"),
        None => format!("age unknown: not created by cxguard (max {max} days)"),
    };
    match ak.target(k.user_id.as_deref()) {
        Ok(t) => change("rotate", reason, Some(t.label())),
        Err(why) => Verdict::Finding(format!("{shown} is due ({reason}) but: {why}")),
    }
}

/// The access-key part of a posture plan.
#[derive(Debug, Default)]
pub(super) struct KeysPlan {
    pub(super) changes: Vec<AccessKeyChange>,
    pub(super) unchanged: Vec<String>,
    pub(super) findings: Vec<String>,
}

/// Each managed key's verdict; rotations that would land on one target are findings
/// instead (one target holds one key).
pub(super) async fn plan(
    client: &cxone::Client,
    ak: &AccessKeys,
    history: &History,
    now: time::OffsetDateTime,
) -> Result<KeysPlan> {
    let mut p = KeysPlan::default();
    let keys = client.access_keys().list(None).await?;
    let mut changes = Vec::new();
    for k in &keys {
        if k.access_key_id
            .as_deref()
            .is_some_and(|id| ak.unmanaged.contains(id))
        {
            continue;
        }
        match judge(k, ak, history, now) {
            Verdict::Unchanged(u) => p.unchanged.push(u),
            Verdict::Finding(f) => p.findings.push(f),
            Verdict::Change(c) => changes.push(c),
        }
    }
    let mut by_target: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &changes {
        if let Some(d) = &c.deliver {
            *by_target.entry(d).or_default() += 1;
        }
    }
    let shared: BTreeSet<String> = by_target
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, _)| t.to_string())
        .collect();
    for c in changes {
        match &c.deliver {
            Some(d) if shared.contains(d) => p.findings.push(format!(
                "access key {} is due ({}) but another due key would be delivered to {d} too: put {{user}} in access_keys.deliver, or rotate them one by one with `cxguard accesskeys rotate`",
                c.key, c.reason
            )),
            _ => p.changes.push(c),
        }
    }
    Ok(p)
}

/// What a saved plan's access-key action and the one re-derived now differ in.
pub(super) fn differs(n: &AccessKeyChange, s: &AccessKeyChange) -> Option<String> {
    if n.action != s.action {
        Some(format!("{} now, {} in the plan", n.action, s.action))
    } else if n.deliver != s.deliver {
        Some(format!(
            "delivered to {} now, {} in the plan",
            n.deliver.as_deref().unwrap_or("-"),
            s.deliver.as_deref().unwrap_or("-")
        ))
    } else {
        None
    }
}

/// What applying a key's action works with.
pub(super) struct Applying<'a> {
    pub(super) client: &'a cxone::Client,
    pub(super) ledger: &'a ledger::Ledger,
    pub(super) vault: Option<&'a VaultConfig>,
    pub(super) actor: &'a str,
}

/// Runs one planned key's action: a rotation is `accesskeys rotate`'s own journaled
/// job (a rerun joins it), a deactivation is audited once. What was done, in a line.
pub(super) async fn apply_one(
    with: &Applying<'_>,
    ak: &AccessKeys,
    c: &AccessKeyChange,
) -> Result<String> {
    let Applying {
        client,
        ledger,
        actor,
        vault,
    } = *with;
    if c.action == "deactivate" {
        crate::accesskeys::deactivate(client, ledger, &c.key, actor, &c.reason).await?;
        return Ok(format!("{} deactivated ({})", c.key, c.reason));
    }
    let target = ak
        .target(c.user.as_deref())
        .map_err(|why| crate::Error::Invalid(format!("access_keys.deliver: {why}")))?;
    if Some(target.label()) != c.deliver {
        return Err(crate::Error::Invalid(format!(
            "the target is {} now, {} in the plan",
            target.label(),
            c.deliver.as_deref().unwrap_or("-")
        )));
    }
    let req = Request {
        key_id: c.key.clone(),
        target,
        grace: ak.grace,
        delete_after: ak.delete_after,
        actor: actor.to_string(),
    };
    if crate::accesskeys::already_rotated(client, ledger, &c.key).await? {
        return Ok(format!("{} (already rotated)", c.key));
    }
    let r = crate::accesskeys::rotate(client, ledger, vault, &req).await?;
    Ok(format!(
        "{} → {} ({}{})",
        c.key,
        r.new_key.as_deref().unwrap_or("-"),
        r.status,
        r.deactivate_at
            .as_deref()
            .map_or(String::new(), |d| format!("; old key deactivated at {d}"))
    ))
}
