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

/// The document as pretty JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", content_type = "application/json")))]
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}
