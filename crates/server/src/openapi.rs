//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa) and
//! served at `/openapi.json`; a snapshot test keeps it from changing by accident.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::problem::{FieldError, Problem};
use crate::{kms, routes, schema, subjects};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cxguard",
        description = "Links web-messaging guests to a keyed pseudonym of their email or phone (HMAC-SHA256), erases one person's data on request, and verifies the KMS callbacks of Data Store column encryption, for NICE CXone tenants.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        routes::link_identity,
        routes::compat_link,
        kms::callback,
        subjects::erase_subject,
        subjects::erasure_status,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        openapi
    ),
    components(schemas(
        schema::IdentityRequest,
        schema::Kind,
        schema::CompatRequest,
        schema::LinkResponse,
        schema::CompatResponse,
        schema::Status,
        schema::KmsCallbackRequest,
        schema::ComplianceCheck,
        schema::KmsVerified,
        schema::ErasureRequest,
        schema::ErasureAccepted,
        schema::ErasureStatus,
        Problem,
        FieldError
    )),
    modifiers(&Security),
    tags(
        (name = "identity", description = "Link guests to returning people"),
        (name = "subjects", description = "Erase one person's data on request (GDPR Art. 17)"),
        (name = "kms", description = "Verify column-encryption changes the tenant reports"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
/// The OpenAPI document, built from the handlers' annotations.
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "An API key from `cxguard keys api`, configured by its SHA-256 in [[server.api_keys]]"
                .into(),
        );
        components.add_security_scheme("apiKey", SecurityScheme::Http(bearer));
    }
}

/// The limits the document states, each taken from the constant the code checks
/// against (utoipa's annotations take only literals), so the two cannot disagree:
/// `(schema, property, keyword, value)`.
fn limits() -> [(&'static str, &'static str, &'static str, usize); 6] {
    let identifier = guard::identity::MAX_IDENTIFIER_CHARS;
    [
        (
            "CompatRequest",
            "guest_id",
            "maxLength",
            guard::identity::MAX_GUEST_ID,
        ),
        ("IdentityRequest", "identifier", "maxLength", identifier),
        ("CompatRequest", "user_identifier", "maxLength", identifier),
        ("ErasureRequest", "identifier", "maxLength", identifier),
        (
            "ErasureRequest",
            "ref",
            "maxLength",
            guard::subject::MAX_REF,
        ),
        (
            "KmsCallback",
            "columns",
            "maxItems",
            guard::encrypt::callback::MAX_COLUMNS,
        ),
    ]
}

/// Writes [`limits`] into the document's schemas (in place, so the document keeps its
/// order), and answers how many it wrote.
fn set_limits(doc: &mut utoipa::openapi::OpenApi) -> usize {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = doc.components.as_mut() else {
        return 0;
    };
    let mut set = 0;
    for (schema, property, keyword, value) in limits() {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            continue;
        };
        match (object.properties.get_mut(property), keyword) {
            (Some(RefOr::T(Schema::Object(p))), "maxLength") => p.max_length = Some(value),
            (Some(RefOr::T(Schema::Array(p))), "maxItems") => p.max_items = Some(value),
            _ => continue,
        }
        set += 1;
    }
    set
}

/// The document as pretty JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let _ = set_limits(&mut doc);
        doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", content_type = "application/json")))]
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    /// Each limit lands where the document states it: a schema or property renamed
    /// would otherwise leave the annotation's literal unchecked.
    #[test]
    fn every_limit_is_taken_from_its_constant() {
        use utoipa::OpenApi as _;
        let mut doc = super::ApiDoc::openapi();
        assert_eq!(super::set_limits(&mut doc), super::limits().len());
        let v: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        for (schema, property, keyword, value) in super::limits() {
            let at = format!("/components/schemas/{schema}/properties/{property}/{keyword}");
            assert_eq!(
                v.pointer(&at).and_then(|x| x.as_u64()),
                Some(value as u64),
                "{at}"
            );
        }
    }
}
