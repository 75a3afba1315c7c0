//! A saved plan: signed with the ledger's audit key when saved, its signature checked
//! before anything else when read, and confirmed against the plan re-derived at apply
//! (every action compared, section by section) — never the source of an action.

use super::load::Posture;
use super::plan::{
    ContactsChange, FORMAT, PlanSignature, PosturePlan, SIGNED_AS, SecretChange, TableChange,
    WidgetChange,
};
use crate::{Error, Result};

impl PosturePlan {
    /// The plan `now` (re-derived from the posture and the tenant as they are), when this
    /// saved plan confirms exactly its actions; otherwise refused as stale
    /// ([`Error::Invalid`], exit 65) with each difference listed. The plan applied is
    /// always `now`: a saved plan is a confirmation, never the source of an action.
    pub fn confirm(&self, now: PosturePlan) -> Result<PosturePlan> {
        let changed = self.differences(&now);
        if changed.is_empty() {
            return Ok(now);
        }
        Err(Error::Invalid(format!(
            "the plan is stale: the posture and the tenant now yield other actions; nothing was applied:\n  {}\nmake a new plan with `cxguard plan --out`",
            changed.join("\n  ")
        )))
    }

    /// This plan signed with `ledger`'s audit key, as `plan --out` saves it.
    pub fn signed(&self, ledger: &ledger::Ledger) -> Result<PosturePlan> {
        let mut saved = self.clone();
        saved.signature = None;
        let (key_id, value) = ledger.sign_document(SIGNED_AS, &saved.signed_body())?;
        saved.signature = Some(PlanSignature { key_id, value });
        Ok(saved)
    }

    /// Every action in `self` (a saved plan) that `now` (the plan re-derived from the
    /// posture and the tenant as they are) does not yield, and every one `now` yields
    /// that `self` lacks, named. Findings and unchanged resources are not actions.
    pub fn differences(&self, now: &PosturePlan) -> Vec<String> {
        let mut out = Vec::new();
        compare(
            &mut out,
            "webchat widget",
            "change",
            &self.webchat,
            &now.webchat,
            |w| &w.widget,
            widget_differs,
        );
        compare(
            &mut out,
            "datastore table",
            "change",
            &self.datastore,
            &now.datastore,
            |t| &t.table,
            table_differs,
        );
        compare(
            &mut out,
            "secret",
            "rotation",
            &self.secrets,
            &now.secrets,
            |s| &s.secret,
            secret_differs,
        );
        compare(
            &mut out,
            "access key",
            "action",
            &self.access_keys,
            &now.access_keys,
            |k| &k.key,
            super::keys::differs,
        );
        out.extend(contacts_differ(&self.contacts, &now.contacts));
        out
    }
}

/// The resources of one section in `saved` and `now`, matched by `id`: one missing from
/// either side, or one whose planned change `differs`, is named.
fn compare<T>(
    out: &mut Vec<String>,
    what: &str,
    noun: &str,
    saved: &[T],
    now: &[T],
    id: impl Fn(&T) -> &String,
    differs: impl Fn(&T, &T) -> Option<String>,
) {
    let keyed = |v: &[T]| -> std::collections::BTreeMap<String, usize> {
        v.iter()
            .enumerate()
            .map(|(i, x)| (id(x).clone(), i))
            .collect()
    };
    let (a, b) = (keyed(saved), keyed(now));
    for (key, &i) in &a {
        match b.get(key) {
            None => out.push(format!("{what} {key}: in the plan, no {noun} due now")),
            Some(&j) => {
                if let Some(d) = differs(&now[j], &saved[i]) {
                    out.push(format!("{what} {key}: {d}"));
                }
            }
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!(
            "{what} {key}: a {noun} is due now, not in the plan"
        ));
    }
}

fn widget_differs(n: &WidgetChange, w: &WidgetChange) -> Option<String> {
    if n.etag != w.etag {
        Some(format!("ETag {} now, {} in the plan", n.etag, w.etag))
    } else if n.summary != w.summary {
        Some(format!(
            "the change is \"{}\" now, \"{}\" in the plan",
            n.summary, w.summary
        ))
    } else {
        None
    }
}

fn table_differs(n: &TableChange, t: &TableChange) -> Option<String> {
    if n.encrypted_before != t.encrypted_before {
        Some(format!(
            "encrypted columns are {:?} now, {:?} in the plan",
            n.encrypted_before, t.encrypted_before
        ))
    } else if n.columns != t.columns || n.masked_indexes != t.masked_indexes {
        Some(format!(
            "encrypt {:?} (mask {:?}) now, {:?} (mask {:?}) in the plan",
            n.columns, n.masked_indexes, t.columns, t.masked_indexes
        ))
    } else {
        None
    }
}

fn secret_differs(n: &SecretChange, s: &SecretChange) -> Option<String> {
    if n.version != s.version {
        Some(format!(
            "version {} now, {} in the plan",
            n.version, s.version
        ))
    } else if n.max_age_days != s.max_age_days {
        Some(format!(
            "max age {} days now, {} in the plan",
            n.max_age_days, s.max_age_days
        ))
    } else if n.dependents != s.dependents {
        Some(format!(
            "dependents {:?} now, {:?} in the plan",
            n.dependents, s.dependents
        ))
    } else {
        None
    }
}

/// The retention section: the cut-off first (a plan of another day), then the count.
fn contacts_differ(saved: &Option<ContactsChange>, now: &Option<ContactsChange>) -> Option<String> {
    let due = |c: &Option<ContactsChange>| c.clone().filter(|c| c.pending > 0);
    match (due(saved), due(now)) {
        (None, None) => None,
        (Some(p), None) => Some(format!(
            "contacts: the plan anonymizes {} contact(s) updated before {}; none are due now",
            p.pending, p.cutoff
        )),
        (None, Some(n)) => Some(format!(
            "contacts: {} contact(s) updated before {} are due now, none in the plan",
            n.pending, n.cutoff
        )),
        (Some(p), Some(n)) if p.cutoff != n.cutoff => Some(format!(
            "contacts.cutoff: {} now (the posture's retention from today), {} in the plan",
            n.cutoff, p.cutoff
        )),
        (Some(p), Some(n)) if (p.pending, p.estimated) != (n.pending, n.estimated) => {
            Some(format!(
                "contacts: {}{} due now, {}{} in the plan",
                if n.estimated { "at least " } else { "" },
                n.pending,
                if p.estimated { "at least " } else { "" },
                p.pending
            ))
        }
        _ => None,
    }
}

/// Most bytes a saved plan may have.
const MAX_PLAN_BYTES: u64 = 16 << 20;

/// The plan saved at `path`, its signature checked with `key` (the ledger's audit key's
/// public half) first, then its format and digest. Anything else is refused
/// ([`Error::Invalid`], exit 65) naming what failed: a plan that is not one, unsigned,
/// signed by another key, or edited after it was signed.
pub fn read_signed(path: &std::path::Path, key: &ledger::PublicKey) -> Result<PosturePlan> {
    let shown = path.display();
    let refuse = |why: String| {
        Error::Invalid(format!(
            "{shown}: {why}; nothing was applied (make a new plan with `cxguard plan --out`)"
        ))
    };
    let size = std::fs::metadata(path)
        .map_err(|e| Error::Invalid(format!("cannot read the plan {shown}: {e}")))?
        .len();
    if size > MAX_PLAN_BYTES {
        return Err(refuse(format!(
            "{size} bytes, more than a plan has ({MAX_PLAN_BYTES})"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read the plan {shown}: {e}")))?;
    let p: PosturePlan =
        serde_json::from_str(&text).map_err(|e| refuse(format!("not a cxguard plan: {e}")))?;
    let Some(sig) = &p.signature else {
        return Err(refuse(format!(
            "the plan is not signed (format {}; plans are signed with the ledger's audit key since format {FORMAT})",
            p.format
        )));
    };
    if sig.key_id != key.key_id() {
        return Err(refuse(format!(
            "the plan is signed by key {}, not by this ledger's audit key {}",
            sig.key_id,
            key.key_id()
        )));
    }
    if !key.verify_document(SIGNED_AS, &p.signed_body(), &sig.value) {
        return Err(refuse(format!(
            "the signature does not verify with audit key {}: the plan was edited after it was signed",
            key.key_id()
        )));
    }
    if p.format != FORMAT || p.compute_digest() != p.digest {
        return Err(refuse(
            "the plan's digest does not match its content".into(),
        ));
    }
    Ok(p)
}

/// Refuses a saved plan made from another version of the posture file than `posture`.
pub fn check_posture(
    saved: &PosturePlan,
    posture: &Posture,
    plan_path: &std::path::Path,
    posture_path: &std::path::Path,
) -> Result<()> {
    if saved.posture_sha256 != posture.digest {
        return Err(Error::Invalid(format!(
            "{}: the plan was made from another version of {}; make a new one",
            plan_path.display(),
            posture_path.display()
        )));
    }
    Ok(())
}
