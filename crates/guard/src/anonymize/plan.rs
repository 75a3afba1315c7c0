//! The dry run: reads the selection and plans every contact with the pure transform,
//! writing nothing anywhere. What `--dry-run` shows.

use std::collections::BTreeMap;

use cxone::Client;
use cxone::models::Contact;
use futures_util::StreamExt;
use serde::Serialize;

use super::policy::Policy;
use super::selection::{Options, Selection};
use super::transform;
use crate::Result;
use crate::job::Failure;

/// What `--dry-run` shows: how many contacts, which fields, a few redacted examples.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Contacts read.
    pub examined: u64,
    /// Contacts the policy would change.
    pub would_change: u64,
    /// Contacts already in their target state.
    pub unchanged: u64,
    /// Ids the tenant does not have.
    pub not_found: u64,
    /// Contacts that could not be read or planned.
    pub errors: u64,
    /// Field → contacts where it would change.
    pub fields: BTreeMap<String, u64>,
    /// A few contacts' changes, values redacted.
    pub examples: Vec<Example>,
    /// The first errors.
    pub first_errors: Vec<Failure>,
}

/// One contact's planned changes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    /// The contact.
    pub id: String,
    /// What would change.
    pub changes: Vec<ExampleChange>,
}

/// One field's planned change, values redacted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExampleChange {
    /// The field.
    pub field: String,
    /// The operator (`erase`, `mask`, …).
    pub op: &'static str,
    /// The value now, redacted.
    pub before: String,
    /// The value it would get, redacted (a `replace` text shown as is).
    pub after: String,
}

/// Reads the selection and plans every contact, writing nothing anywhere.
pub async fn dry_run(
    client: &Client,
    policy: &Policy,
    selection: &Selection,
    opts: &Options,
    examples: usize,
) -> Result<DryRun> {
    let mut out = DryRun::default();
    let consider = |out: &mut DryRun, c: &Contact| consider(out, policy, c, examples);
    match selection {
        Selection::Ids(ids) => {
            let mut fetched = futures_util::stream::iter(ids.iter().cloned())
                .map(|id| async move { (id.clone(), client.contacts().get(&id).await) })
                .buffer_unordered(opts.concurrency.max(1));
            while let Some((id, r)) = fetched.next().await {
                out.examined += 1;
                match r {
                    Ok(c) => consider(&mut out, &c),
                    Err(e) if e.status() == Some(404) => out.not_found += 1,
                    Err(e) => {
                        out.errors += 1;
                        out.first_errors.push(Failure {
                            id,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        _ => {
            let mut list = client.contacts().list().page_size(opts.page_size);
            if let Selection::UpdatedBefore(t) = selection {
                list = list.updated_before(*t);
            }
            let mut stream = Box::pin(list.stream());
            while let Some(c) = stream.next().await {
                let c = c?;
                out.examined += 1;
                consider(&mut out, &c);
            }
        }
    }
    Ok(out)
}

/// Counts one contact's would-be outcome, keeping the first errors and `examples`
/// redacted examples.
fn consider(out: &mut DryRun, policy: &Policy, c: &Contact, examples: usize) {
    match transform::plan(policy, c, &BTreeMap::new()) {
        Err(e) => {
            out.errors += 1;
            if out.first_errors.len() < 20 {
                out.first_errors.push(Failure {
                    id: c.id.clone(),
                    error: e,
                });
            }
        }
        Ok(p) if p.is_noop() => out.unchanged += 1,
        Ok(p) => {
            out.would_change += 1;
            for ch in &p.changes {
                *out.fields.entry(ch.field.clone()).or_insert(0) += 1;
            }
            if out.examples.len() < examples {
                out.examples.push(Example {
                    id: c.id.clone(),
                    changes: p
                        .changes
                        .iter()
                        .map(|ch| ExampleChange {
                            field: ch.field.clone(),
                            op: ch.op,
                            before: transform::redact(ch.before.as_deref()),
                            after: if ch.op == "replace" {
                                format!("{:?}", ch.after.clone().unwrap_or_default())
                            } else {
                                transform::redact(ch.after.as_deref())
                            },
                        })
                        .collect(),
                });
            }
        }
    }
}
