//! rotate: two-phase rotation of an Integration secret with its dependent Data Actions
//! verified, and an automatic rollback when one rejects the new value.
//!
//! Phases, each journaled (items of a `rotate` job) and audited:
//! 1. *create* — the pending rotation, holding hashes only;
//! 2. *set* — PUT with the verification matrix (compare-and-swap on the current hash; a
//!    409 means someone else rotated: stop, change nothing, never retry with a stale hash);
//! 3. *test* — recompile and test every dependent, a few at a time;
//! 4. *finish* — or, when a dependent rejected the value, *rollback*: PUT the previous
//!    value back (compare-and-swap on the new hash) and recompile and test again.
//!
//! A vault event (`secret_rotation`: id, status, hash — never the value) goes out on
//! finish and on rollback. `resume` finishes or rolls back a rotation interrupted in any
//! phase; the operator supplies the values again and their hashes are checked against
//! the journal.

use std::collections::BTreeMap;

use cxone::Client;
use cxone::models::{Secret, SecretFormat, SecretReference};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::{Error, Result, sha256_hex};
use secrets::check_value;

mod apply;
pub mod secrets;

pub use apply::{apply, resume};

/// The OAuth scopes a rotation uses: the secret, its dependents, and their recompile
/// and test.
pub const SCOPES: &[&str] = &[
    "integration:secret:read",
    "integration:secret:write",
    "integration:dataaction:read",
    "integration:dataaction:write",
];

/// The job kind in the journal.
pub const JOB_KIND: &str = "rotate";

/// What the operator asks for. Values are secrets: never printed, logged or journaled.
pub struct Request {
    /// The secret to rotate.
    pub secret_id: String,
    /// The new value.
    pub value: SecretString,
    /// The format of the new value; the secret's current format when `None`.
    pub format: Option<SecretFormat>,
    /// The current value, for a rollback.
    pub previous: Option<SecretString>,
    /// Rotate without a way back (the operator said so explicitly).
    pub no_rollback: bool,
    /// Who rotates it, for the audit trail.
    pub actor: String,
}

/// The validated plan: what will change and which actions will be tested.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The secret.
    pub secret_id: String,
    /// Its name.
    pub name: String,
    /// Its version now.
    pub version: u64,
    /// The format of the new value.
    pub format: SecretFormat,
    /// SHA-256 of the value now.
    pub previous_sha256: String,
    /// SHA-256 of the new value.
    pub proposed_sha256: String,
    /// The Data Actions that use it; each is recompiled and tested.
    pub dependents: Vec<SecretReference>,
    /// Whether a rollback path was given.
    pub rollback: bool,
}

/// How a rotation ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Ended {
    /// Every dependent compiled and passed against the new value.
    Rotated {
        /// The secret's version now.
        version: u64,
    },
    /// A dependent rejected the new value; the previous one is back and every dependent
    /// compiled and passed against it again.
    RolledBack {
        /// Data action id → why it rejected the new value.
        rejected: BTreeMap<String, String>,
        /// The secret's version now (the rollback is a rotation too).
        version: u64,
    },
    /// A dependent rejected the new value and there was no way back.
    Broken {
        /// Data action id → why it rejected the new value.
        rejected: BTreeMap<String, String>,
    },
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The job's id.
    pub job_id: String,
    /// The secret.
    pub secret_id: String,
    /// Whether this run resumed an interrupted rotation.
    pub resumed: bool,
    /// The data actions that use the secret: each was recompiled and tested.
    pub dependents: u64,
    /// How it ended.
    #[serde(flatten)]
    pub ended: Ended,
}

/// Validates the request against the tenant (reads only) and returns the plan.
pub async fn plan(client: &Client, req: &Request) -> Result<Plan> {
    let secret = fetch(client, &req.secret_id).await?;
    plan_for(client, &secret, req).await
}

/// The secret a rotation starts from; an unknown id is bad input.
pub async fn fetch(client: &Client, secret_id: &str) -> Result<Secret> {
    ledger::details::check_identifier("secret id", secret_id)?;
    match client.secrets().get(secret_id).await {
        Ok(s) => Ok(s),
        Err(e) if e.status() == Some(404) => Err(Error::Invalid(format!(
            "unknown secret id {secret_id:?}; `cxguard secrets list` shows them"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// [`plan`] for a secret already read (with `--generate`, the read that chose the format),
/// so it is read once.
pub async fn plan_for(client: &Client, secret: &Secret, req: &Request) -> Result<Plan> {
    if secret.id != req.secret_id {
        return Err(Error::Invalid(format!(
            "the secret read is {:?}, not {:?}",
            secret.id, req.secret_id
        )));
    }
    let format = req.format.unwrap_or(secret.format);
    check_value(format, req.value.expose_secret())
        .map_err(|e| Error::Invalid(format!("the new value: {e}")))?;
    let proposed = sha256_hex(req.value.expose_secret());
    if proposed.eq_ignore_ascii_case(&secret.value_sha256) {
        return Err(Error::Invalid(
            "the new value is identical to the current one (same SHA-256): nothing to rotate"
                .into(),
        ));
    }
    match &req.previous {
        Some(p) if !sha256_hex(p.expose_secret()).eq_ignore_ascii_case(&secret.value_sha256) => {
            return Err(Error::Invalid(
                "the previous value does not match the secret's current SHA-256: it cannot serve as the rollback".into(),
            ));
        }
        None if !req.no_rollback => {
            return Err(Error::Invalid(
                "no rollback path: give the current value (--previous-value-file or --previous-value-env), or pass --no-rollback to rotate without one".into(),
            ));
        }
        _ => {}
    }
    let dependents = client.secrets().references(&req.secret_id).await?;
    Ok(Plan {
        secret_id: secret.id.clone(),
        name: secret.name.clone(),
        version: secret.version,
        format,
        previous_sha256: secret.value_sha256.to_ascii_lowercase(),
        proposed_sha256: proposed,
        dependents,
        rollback: req.previous.is_some(),
    })
}

/// A new random value from the OS CSPRNG: `length` characters of base64url (raw) or a
/// padded base64 of `length` bytes.
pub fn generate(format: SecretFormat, length: usize) -> Result<SecretString> {
    use base64::Engine as _;
    if !(16..=3000).contains(&length) {
        return Err(Error::Invalid(format!(
            "--length: {length} is not from 16 to 3000"
        )));
    }
    let mut bytes = vec![0u8; length];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("the OS random generator failed: {e}")))?;
    let value = match format {
        SecretFormat::Raw => {
            let mut s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            s.truncate(length);
            s
        }
        SecretFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
        SecretFormat::Jwt => {
            return Err(Error::Invalid(
                "--generate makes raw or base64 values; a jwt must come from its issuer".into(),
            ));
        }
    };
    Ok(SecretString::from(value))
}
