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
use guard::encrypt::callback::{self, Callback, Refusal, Verdict};
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
    let tenant_key = headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok());
    let key = cb.request_key(tenant_key);
    let verdict = state
        .kms_receiver
        .verify(&state.ledger, &state.audit, &cb, &actor, &key)
        .await
        .map_err(ledger_unavailable)?;
    let answer = Json(KmsVerified {
        status: "VERIFIED".into(),
        permission_hash: cb.permission_hash(),
    });
    match verdict {
        Verdict::Verified(found) => {
            tracing::info!(table = %cb.table_id, key_version = cb.key_version, job = %found.job_id, "KMS callback verified");
            state.metrics.kms("verified");
            Ok(answer)
        }
        Verdict::Repeat => {
            state.metrics.kms("repeat");
            Ok(answer)
        }
        Verdict::Refused(why @ Refusal::WrongAlgorithm) => {
            state.metrics.kms("wrong_algorithm");
            Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong-algorithm",
                "Wrong algorithm",
                why.detail(&cb),
            ))
        }
        Verdict::Refused(why @ Refusal::NotRequested(_)) => {
            state.metrics.kms("not_ours");
            Err(Problem::new(
                StatusCode::CONFLICT,
                "not-requested",
                "cxguard did not ask for this change",
                why.detail(&cb),
            ))
        }
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
