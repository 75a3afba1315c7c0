//! The KMS callback receiver: `POST /v1/kms/callback/{token}` is the `callbackUrl`
//! cxguard gives the tenant with a column-encryption change (spec §5, tutorial 002).
//!
//! The token in the path is a capability: 32 random bytes, configured only as their
//! SHA-256 and compared in constant time against every configured token; an unknown
//! token gets the same 404 as an unknown route. The body is checked field by field
//! (400), its algorithm must be AES-256-GCM (422), and the change must be one cxguard
//! asked for — an encryption job in the ledger for this table and column set (409
//! otherwise, so a SYNC change nobody made through cxguard is rolled back). A verified
//! callback is audited once per tenant idempotency key and key version; a repeat answers
//! the same.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use guard::encrypt::callback::{self, Callback, Found, Unmatched};
use ledger::{Details, NewEntry, Outcome};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{ApiKey, parse_digest};
use crate::observe::CallerSlot;
use crate::problem::{self, FieldError, Problem};
use crate::routes::json_object;
use crate::schema::{KmsErrors, KmsVerified};

/// What every KMS callback token starts with, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "cxk_";

/// The header a tenant marks retries of one callback with.
const IDEMPOTENCY_KEY: &str = "x-idempotency-key";

/// A new callback token and the digest to configure.
pub fn generate() -> Result<(String, String), String> {
    crate::auth::generate_with_prefix(TOKEN_PREFIX)
}

/// The configured callback tokens, ready to check.
pub(crate) struct Tokens {
    entries: Vec<(Arc<str>, [u8; 32])>,
}

impl Tokens {
    /// Validates the configured tokens (none is allowed: every callback is then 404).
    pub(crate) fn new(tokens: &[ApiKey]) -> Result<Self, String> {
        let mut entries: Vec<(Arc<str>, [u8; 32])> = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ledger::details::check_identifier("token id", &t.id)
                .map_err(|e| format!("kms.callback_tokens[{i}].id: {e}"))?;
            if entries.iter().any(|(id, _)| **id == *t.id) {
                return Err(format!(
                    "kms.callback_tokens[{i}].id: {:?} is used twice",
                    t.id
                ));
            }
            let digest = parse_digest(&t.sha256).ok_or_else(|| {
                format!(
                    "kms.callback_tokens[{i}].sha256: must be the 64 hex characters that `cxguard keys api --kms` prints"
                )
            })?;
            entries.push((Arc::from(t.id.as_str()), digest));
        }
        Ok(Tokens { entries })
    }

    /// The id of the token presented, comparing with every one without stopping early.
    fn check(&self, presented: &str) -> Option<Arc<str>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (id, d) in &self.entries {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(id.clone());
            }
        }
        found
    }
}

fn field_errors(errors: Vec<callback::Invalid>) -> Problem {
    Problem::invalid(
        errors
            .into_iter()
            .map(|e| FieldError {
                field: e.field,
                message: e.message,
            })
            .collect(),
    )
}

fn ledger_unavailable(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "KMS callback: the ledger failed");
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger-unavailable",
        "The callback cannot be checked",
        "the audit ledger is unavailable; retry",
    );
    p.retry_after = Some(1);
    p
}

/// The tenant's key for this callback, or one derived from what it reports (a tenant
/// that sends none still gets one audit entry per change).
fn request_key(headers: &HeaderMap, cb: &Callback) -> String {
    match headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
    {
        Some(k) => format!("tenant:{k}"),
        None => {
            let mut cols = cb.columns.clone();
            cols.sort();
            format!(
                "derived:{}:{}:{}",
                cb.table_id,
                cb.key_version,
                cols.join(",")
            )
        }
    }
}

/// Verify a column-encryption change (the tenant's KMS callback).
///
/// The tenant posts here after encrypting columns with `externalKmsSync.callbackUrl` set
/// to this URL; with `syncMode: SYNC` it applies the change only if this answers 2xx.
/// The change must be one cxguard asked for: an encryption job in the ledger for this
/// table and these columns (running, or done with this key version).
#[utoipa::path(
    post,
    path = "/v1/kms/callback/{token}",
    tag = "kms",
    params(("token" = String, Path, description = "The callback token from `cxguard keys api --kms`, configured by its SHA-256 in [kms] callback_tokens")),
    request_body(content = crate::schema::KmsCallbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The change is one cxguard asked for, and is recorded", body = KmsVerified),
        KmsErrors,
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    Path(token): Path<String>,
    slot: Option<axum::Extension<CallerSlot>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<KmsVerified>, Problem> {
    let Some(token_id) = state.kms.check(&token) else {
        state.metrics.kms("unknown_token");
        return Err(problem::for_status(StatusCode::NOT_FOUND));
    };
    if let Some(axum::Extension(slot)) = slot {
        slot.set(Arc::from(format!("kms:{token_id}").as_str()));
    }
    let m = json_object(&headers, &body).inspect_err(|_| state.metrics.kms("invalid"))?;
    let cb = Callback::parse(&m).map_err(|e| {
        state.metrics.kms("invalid");
        field_errors(e)
    })?;
    let actor = format!("kms:{token_id}");
    if !cb.algorithm_ok() {
        state.metrics.kms("wrong_algorithm");
        refusal(&state, &actor, &cb, "wrong_algorithm").await;
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-algorithm",
            "Wrong algorithm",
            format!(
                "complianceCheck.algorithm must be {}; cxguard never asks for another",
                guard::encrypt::ALGORITHM
            ),
        ));
    }
    let key = request_key(&headers, &cb);
    let answer = Json(KmsVerified {
        status: "VERIFIED".into(),
        permission_hash: cb.permission_hash(),
    });
    // One check-and-record at a time, so two deliveries of one callback audit once.
    let _one = state.kms_lock.lock().await;
    let earlier = state
        .ledger
        .entries(&ledger::Filter {
            operation: Some(callback::AUDIT_OPERATION.into()),
            target: Some(cb.table_id.clone()),
            ..Default::default()
        })
        .await
        .map_err(ledger_unavailable)?;
    // A retry (the same tenant key) or a replay under another key: the same key version
    // and columns, which name one change of one table, were verified already.
    let columns: std::collections::BTreeSet<&str> = cb.columns.iter().map(String::as_str).collect();
    if earlier.iter().any(|e| {
        e.details["key_version"].as_u64() == Some(cb.key_version)
            && e.details["columns"].as_array().is_some_and(|a| {
                a.iter()
                    .filter_map(|c| c.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    == columns
            })
    }) {
        state.metrics.kms("repeat");
        return Ok(answer);
    }
    let found: Found = match callback::find_job(&state.ledger, &cb)
        .await
        .map_err(ledger_unavailable)?
    {
        Ok(f) => f,
        Err(why) => {
            state.metrics.kms("not_ours");
            refusal(&state, &actor, &cb, "no_matching_job").await;
            let detail = match why {
                Unmatched::NoJob => format!(
                    "cxguard has no encryption job for table {} with these {} column(s); a change made outside cxguard is refused",
                    cb.table_id,
                    cb.columns.len()
                ),
                Unmatched::StaleKeyVersion { newest } => format!(
                    "key version {} is not newer than version {newest}, already verified for table {}",
                    cb.key_version, cb.table_id
                ),
                Unmatched::NotInFlight { job_id, deadline } => format!(
                    "encryption job {job_id} for table {} has no PATCH in flight (its deadline was {deadline}); resume the job with `cxguard datastore encrypt` and the tenant calls back again",
                    cb.table_id
                ),
            };
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "not-requested",
                "cxguard did not ask for this change",
                detail,
            ));
        }
    };
    let entry = cb
        .audit_entry(&actor, &found, &key)
        .map_err(ledger_unavailable)?;
    state
        .audit
        .append(entry)
        .await
        .map_err(ledger_unavailable)?;
    tracing::info!(table = %cb.table_id, key_version = cb.key_version, job = %found.job_id, "KMS callback verified");
    state.metrics.kms("verified");
    Ok(answer)
}

/// Records a refused callback that carried a valid token: someone changed encryption in
/// the tenant without cxguard, or something posed as the tenant with a leaked token.
async fn refusal(state: &AppState, actor: &str, cb: &Callback, reason: &'static str) {
    let entry = Details::new()
        .ids("columns", &cb.columns)
        .map(|d| {
            d.count("key_version", cb.key_version)
                .label("reason", reason)
        })
        .and_then(|d| {
            NewEntry::new(
                actor,
                "datastore.kms_refused",
                &cb.table_id,
                Outcome::Failure,
                d,
            )
        });
    let result = match entry {
        Ok(e) => state.audit.append(e).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, table = %cb.table_id, "a refused KMS callback could not be recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_recognised_and_nothing_else() {
        let (token, digest) = generate().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() > 40);
        let t = Tokens::new(&[ApiKey {
            id: "tenant".into(),
            sha256: digest,
        }])
        .unwrap();
        assert_eq!(t.check(&token).as_deref(), Some("tenant"));
        assert!(t.check("cxk_other").is_none());
        assert!(t.check("").is_none());
        assert!(Tokens::new(&[]).unwrap().check(&token).is_none());
    }

    #[test]
    fn bad_token_configuration_names_the_entry() {
        let e = Tokens::new(&[ApiKey {
            id: "t".into(),
            sha256: "xyz".into(),
        }])
        .err()
        .unwrap();
        assert!(e.contains("kms.callback_tokens[0].sha256"), "{e}");
    }
}
