//! CXone's GDPR erasure requests (spec §9; spec-real §5): a real route of real tenants,
//! below `api_endpoint` on CXone's published API.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::transport::{Base, Call};
use crate::{Client, Result};

/// What identifies the person whose data the platform erases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubjectKind {
    /// An email address.
    Email,
    /// An E.164 phone number.
    #[serde(rename = "PHONENO")]
    Phone,
    /// A CXone user id.
    User,
}

impl SubjectKind {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Email => "EMAIL",
            SubjectKind::Phone => "PHONENO",
            SubjectKind::User => "USER",
        }
    }
}

/// The privacy API (spec §9), from [`Client::privacy`].
#[derive(Clone, Copy)]
pub struct Privacy<'a> {
    pub(crate) client: &'a Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    request_id: String,
}

impl Privacy<'_> {
    /// Files an erasure request for `identifier` (already normalized: an address, or
    /// E.164) and returns the platform's `requestId`. The platform erases recordings,
    /// transcripts and interaction history asynchronously. A repeat is harmless (spec
    /// §9: it gets a new `requestId`), so a lost answer is retried.
    pub async fn erasure(self, identifier: &str, kind: SubjectKind) -> Result<String> {
        let body = serde_json::json!({
            "subjectIdentifier": identifier,
            "subjectIdentifierType": kind.as_str(),
        });
        // The same path on both surfaces: below `api_endpoint` on CXone's (spec-real §5).
        let base = if self.client.settings().is_cxone() {
            Base::Api
        } else {
            Base::Tenant
        };
        let c = Call::new(Method::POST, &["privacy", "v1", "erasure"])
            .on(base)
            .idempotent_by_nature()
            .json(&body)?;
        Ok(self
            .client
            .execute(c)
            .await?
            .decode::<Accepted>("erasure request")?
            .request_id)
    }
}
