//! The request and response bodies of the service, as its OpenAPI document shows them.
//! Handlers read a body field by field (to name every bad field at once) and build these
//! types from what they read; the document is generated from the same types.

// Doc comments on these types are not just for rustdoc: utoipa publishes them as the
// descriptions in `/openapi.json`, which a snapshot test pins. Fields without one are
// described by their `#[schema]` attributes (examples, patterns, limits) instead.
#![allow(missing_docs)]

use guard::identity::IdentifierKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;

/// Body of `POST /v1/guests/{guestId}/identity`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// The guest's email address or phone number, as they typed it. It is normalized
    /// and hashed with the identity key; it is never stored, logged or returned.
    #[schema(min_length = 1, max_length = 320, example = "ann.lee@example.com")]
    pub identifier: String,
    /// How to read `identifier`: `auto` is an email if it contains `@`, else a phone.
    #[schema(default = "auto")]
    pub kind: Option<Kind>,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Email,
    Phone,
    Auto,
}

/// Body of the tutorial-compatible `POST /api/update-guest-attributes`.
#[derive(Debug, ToSchema)]
pub struct CompatRequest {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9._-]{1,128}$",
        example = "g-000001"
    )]
    pub guest_id: String,
    #[schema(min_length = 1, max_length = 320, example = "ann.lee@example.com")]
    pub user_identifier: String,
}

/// What a link did. Never the identifier, never the pseudonym.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkResponse {
    #[schema(example = "g-000001")]
    pub guest_id: String,
    /// The guest attribute that holds the pseudonym.
    #[schema(example = "hashed_user_id")]
    pub attribute: String,
    /// The id of the key the pseudonym was made with.
    #[schema(example = "guest-id-2026")]
    pub key_id: String,
}

/// What the tutorial's route answered, plus the fields of [`LinkResponse`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatResponse {
    #[schema(example = "success")]
    pub status: String,
    pub guest_id: String,
    pub attribute: String,
    pub key_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

impl From<IdentifierKind> for Kind {
    fn from(k: IdentifierKind) -> Self {
        match k {
            IdentifierKind::Email => Kind::Email,
            IdentifierKind::Phone => Kind::Phone,
            IdentifierKind::Auto => Kind::Auto,
        }
    }
}

impl From<Kind> for IdentifierKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Email => IdentifierKind::Email,
            Kind::Phone => IdentifierKind::Phone,
            Kind::Auto => IdentifierKind::Auto,
        }
    }
}

/// The errors both link endpoints answer with (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum LinkErrors {
    /// A field is invalid; `field` names it
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// No or an unknown API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The tenant has no such guest
    #[response(status = 404, content_type = "application/problem+json")]
    UnknownGuest(Problem),
    /// The body is over 16 KiB
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// This API key is over its rate limit; see Retry-After
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The tenant failed and retries ran out
    #[response(status = 502, content_type = "application/problem+json")]
    UpstreamFailed(Problem),
    /// The link was made but could not be recorded; retry
    #[response(status = 503, content_type = "application/problem+json")]
    AuditUnavailable(Problem),
}

/// Body of `POST /v1/kms/callback/{token}`: what the tenant posts after a column
/// encryption change (its `externalKmsPayload`, spec §5).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = KmsCallback)]
pub struct KmsCallbackRequest {
    /// The table the change was made to.
    #[schema(example = "tbl-customer-profiles")]
    pub table_id: String,
    /// The columns the change encrypted.
    #[schema(min_items = 1, max_items = 500, example = json!(["email", "phone"]))]
    pub columns: Vec<String>,
    /// The key version the change produced.
    #[schema(minimum = 1, example = 2)]
    pub key_version: u64,
    pub compliance_check: ComplianceCheck,
}

/// The tenant's compliance check of the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplianceCheck {
    /// Must be `AES-256-GCM`; anything else is refused with 422.
    #[schema(example = "AES-256-GCM")]
    pub algorithm: String,
}

/// The answer to a verified KMS callback.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsVerified {
    /// Always `VERIFIED`.
    #[schema(example = "VERIFIED")]
    pub status: String,
    /// SHA-256 of `{tableId}:{keyVersion}:{number of columns}`, as hex (the tutorial's
    /// formula, for compatibility).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub permission_hash: String,
}

/// The errors the KMS callback answers with (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum KmsErrors {
    /// A field is invalid; `errors` names each
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// No such callback token (the same answer as an unknown route)
    #[response(status = 404, content_type = "application/problem+json")]
    UnknownToken(Problem),
    /// cxguard did not ask for this change: no encryption job for this table and these
    /// columns, or a key version not newer than one already verified
    #[response(status = 409, content_type = "application/problem+json")]
    NotOurs(Problem),
    /// The body is over 16 KiB
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// The algorithm is not AES-256-GCM
    #[response(status = 422, content_type = "application/problem+json")]
    WrongAlgorithm(Problem),
    /// The ledger is unavailable, so the callback cannot be checked or recorded; retry
    #[response(status = 503, content_type = "application/problem+json")]
    LedgerUnavailable(Problem),
}

/// Body of `POST /v1/subjects/erasure`.
#[derive(Debug, ToSchema)]
pub struct ErasureRequest {
    /// The person's email address or phone number. It is normalized as the identity
    /// endpoint does and held only in memory until the platform erasure is filed; it is
    /// never stored, logged or returned.
    #[schema(min_length = 1, max_length = 320, example = "ann.lee@example.com")]
    pub identifier: String,
    /// How to read `identifier`: `auto` is an email if it contains `@`, else a phone.
    #[schema(default = "auto")]
    pub kind: Option<Kind>,
    /// The request's reference (a ticket id): how the receipt names the person.
    #[schema(
        rename = "ref",
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9._:#/-]{1,128}$",
        example = "DSR-2026-0042"
    )]
    pub reference: String,
}

/// A queued erasure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureAccepted {
    /// The erasure job.
    #[schema(example = "subject.erase-20261129T231500Z-7f3a9c")]
    pub job_id: String,
    #[schema(example = "queued")]
    pub status: String,
    /// Where its status and receipt are (also the `Location` header).
    pub status_url: String,
}

/// An erasure job's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureStatus {
    pub job_id: String,
    /// `queued`, `running`, `failed` (the job stays open: POST the same request again to
    /// resume it) or `done`.
    #[schema(example = "done")]
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    /// Why it failed, or why a running job is not running here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Once done: the receipt (`subject erase`'s, as the README shows it): the reference,
    /// pseudonym and key id, the contacts and guests changed, the platform erasure, the
    /// audit sequence numbers of each step and the audit head.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<serde_json::Value>,
}

/// The errors `POST /v1/subjects/erasure` answers with (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum ErasureErrors {
    /// A field is invalid; `errors` names each
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// No or an unknown API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Subject erasure is not enabled on this service ([subjects] policy)
    #[response(status = 404, content_type = "application/problem+json")]
    NotEnabled(Problem),
    /// The body is over 16 KiB
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
    /// This API key is over its rate limit; see Retry-After
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// The queue is full, or the ledger is unavailable; nothing was queued; see Retry-After
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}
