//! The API's routes: which path and method map to which handler, the scopes each needs,
//! the bucket it draws from, and helpers every handler shares (JSON bodies, `If-Match`).

pub(crate) mod contacts;
pub(crate) mod datastores;
pub(crate) mod guests;
pub(crate) mod integration;
pub(crate) mod oauth;
pub(crate) mod privacy;
pub(crate) mod webchat;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::Value;

use crate::problem::Reply;
use crate::state::SimState;

/// The header carrying an idempotency key (spec §5): read by the routes that honour it
/// and by the HTTP layer that replays a stored answer.
pub(crate) const IDEMPOTENCY_KEY: &str = "x-idempotency-key";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    SecretList,
    SecretGet(String),
    SecretPut(String),
    SecretReferences(String),
    DataActionGet(String),
    DataActionRecompile(String),
    DataActionTest(String),
    ContactList,
    ContactGet(String),
    ContactPatch(String),
    TableGet(String, String),
    TableIndexes(String, String),
    TableColumns(String, String),
    GuestCreate,
    GuestAttributesGet(String),
    GuestAttributesPatch(String),
    WidgetList,
    WidgetGet(String),
    WidgetPut(String),
    PrivacyErasure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketKind {
    Tenant,
    Webchat,
}

pub(crate) struct Matched {
    pub route: Route,
    /// "METHOD /path/{pattern}", the name counters use.
    pub pattern: &'static str,
    pub scopes: &'static [&'static str],
    pub bucket: BucketKind,
}

pub(crate) enum RouteMiss {
    NotFound,
    MethodNotAllowed(&'static str),
}

/// The request as handlers see it.
pub(crate) struct Ctx<'a> {
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&seg[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn match_route(method: &Method, path: &str) -> Result<Matched, RouteMiss> {
    use BucketKind::{Tenant, Webchat};
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let m = |route, pattern, scopes, bucket| {
        Ok(Matched {
            route,
            pattern,
            scopes,
            bucket,
        })
    };
    let wrong = |allow| Err(RouteMiss::MethodNotAllowed(allow));
    let is = |want: &Method| method == want;
    match segs.as_slice() {
        ["api", "v2", "integration", "secret"] => match () {
            _ if is(&Method::GET) => m(
                Route::SecretList,
                "GET /api/v2/integration/secret",
                &["integration:secret:read"],
                Tenant,
            ),
            _ => wrong("GET"),
        },
        ["api", "v2", "integration", "secret", id] => {
            let id = decode(id);
            if is(&Method::GET) {
                m(
                    Route::SecretGet(id),
                    "GET /api/v2/integration/secret/{id}",
                    &["integration:secret:read"],
                    Tenant,
                )
            } else if is(&Method::PUT) {
                m(
                    Route::SecretPut(id),
                    "PUT /api/v2/integration/secret/{id}",
                    &["integration:secret:write"],
                    Tenant,
                )
            } else {
                wrong("GET, PUT")
            }
        }
        ["api", "v2", "integration", "secret", id, "references"] => {
            if is(&Method::GET) {
                m(
                    Route::SecretReferences(decode(id)),
                    "GET /api/v2/integration/secret/{id}/references",
                    &["integration:dataaction:read"],
                    Tenant,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v2", "integration", "dataaction", id] => {
            if is(&Method::GET) {
                m(
                    Route::DataActionGet(decode(id)),
                    "GET /api/v2/integration/dataaction/{id}",
                    &["integration:dataaction:read"],
                    Tenant,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v2", "integration", "dataaction", id, "recompile"] => {
            if is(&Method::POST) {
                m(
                    Route::DataActionRecompile(decode(id)),
                    "POST /api/v2/integration/dataaction/{id}/recompile",
                    &["integration:dataaction:write"],
                    Tenant,
                )
            } else {
                wrong("POST")
            }
        }
        ["api", "v2", "integration", "dataaction", id, "test"] => {
            if is(&Method::POST) {
                m(
                    Route::DataActionTest(decode(id)),
                    "POST /api/v2/integration/dataaction/{id}/test",
                    &["integration:dataaction:read"],
                    Tenant,
                )
            } else {
                wrong("POST")
            }
        }
        ["api", "v1", "contacts"] => {
            if is(&Method::GET) {
                m(
                    Route::ContactList,
                    "GET /api/v1/contacts",
                    &["contact:read"],
                    Tenant,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v1", "contacts", id] => {
            let id = decode(id);
            if is(&Method::GET) {
                m(
                    Route::ContactGet(id),
                    "GET /api/v1/contacts/{id}",
                    &["contact:read"],
                    Tenant,
                )
            } else if is(&Method::PATCH) {
                m(
                    Route::ContactPatch(id),
                    "PATCH /api/v1/contacts/{id}",
                    &["contact:write"],
                    Tenant,
                )
            } else {
                wrong("GET, PATCH")
            }
        }
        ["api", "v2", "datastores", ds, "tables", t] => {
            if is(&Method::GET) {
                m(
                    Route::TableGet(decode(ds), decode(t)),
                    "GET /api/v2/datastores/{ds}/tables/{t}",
                    &["data_management:read"],
                    Tenant,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v2", "datastores", ds, "tables", t, "indexes"] => {
            if is(&Method::GET) {
                m(
                    Route::TableIndexes(decode(ds), decode(t)),
                    "GET /api/v2/datastores/{ds}/tables/{t}/indexes",
                    &["data_management:read"],
                    Tenant,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v2", "datastores", ds, "tables", t, "columns"] => {
            if is(&Method::PATCH) {
                m(
                    Route::TableColumns(decode(ds), decode(t)),
                    "PATCH /api/v2/datastores/{ds}/tables/{t}/columns",
                    &["data_management:write", "data_management:encrypt"],
                    Tenant,
                )
            } else {
                wrong("PATCH")
            }
        }
        ["api", "v2", "interactions", "guests"] => {
            if is(&Method::POST) {
                m(
                    Route::GuestCreate,
                    "POST /api/v2/interactions/guests",
                    &["interaction:guest:write"],
                    Tenant,
                )
            } else {
                wrong("POST")
            }
        }
        ["api", "v2", "interactions", "guests", g, "attributes"] => {
            let g = decode(g);
            if is(&Method::GET) {
                m(
                    Route::GuestAttributesGet(g),
                    "GET /api/v2/interactions/guests/{id}/attributes",
                    &["interaction:guest:read"],
                    Tenant,
                )
            } else if is(&Method::PATCH) {
                m(
                    Route::GuestAttributesPatch(g),
                    "PATCH /api/v2/interactions/guests/{id}/attributes",
                    &["interaction:guest:write"],
                    Tenant,
                )
            } else {
                wrong("GET, PATCH")
            }
        }
        ["api", "v2", "webchat", "widgets"] => {
            if is(&Method::GET) {
                m(
                    Route::WidgetList,
                    "GET /api/v2/webchat/widgets",
                    &["webchat:widgets:read"],
                    Webchat,
                )
            } else {
                wrong("GET")
            }
        }
        ["api", "v2", "webchat", "widgets", id] => {
            let id = decode(id);
            if is(&Method::GET) {
                m(
                    Route::WidgetGet(id),
                    "GET /api/v2/webchat/widgets/{id}",
                    &["webchat:widgets:read"],
                    Webchat,
                )
            } else if is(&Method::PUT) {
                m(
                    Route::WidgetPut(id),
                    "PUT /api/v2/webchat/widgets/{id}",
                    &["webchat:widgets:write"],
                    Webchat,
                )
            } else {
                wrong("GET, PUT")
            }
        }
        ["privacy", "v1", "erasure"] => {
            if is(&Method::POST) {
                m(
                    Route::PrivacyErasure,
                    "POST /privacy/v1/erasure",
                    &["privacy:erasure:write"],
                    Tenant,
                )
            } else {
                wrong("POST")
            }
        }
        _ => Err(RouteMiss::NotFound),
    }
}

pub(crate) async fn handle(s: &SimState, route: &Route, ctx: &Ctx<'_>) -> Reply {
    match route {
        Route::SecretList => integration::list_secrets(s),
        Route::SecretGet(id) => integration::get_secret(s, id),
        Route::SecretPut(id) => integration::rotate_secret(s, id, ctx),
        Route::SecretReferences(id) => integration::references(s, id),
        Route::DataActionGet(id) => integration::get_action(s, id),
        Route::DataActionRecompile(id) => integration::recompile(s, id),
        Route::DataActionTest(id) => integration::test_action(s, id),
        Route::ContactList => contacts::list(s, ctx),
        Route::ContactGet(id) => contacts::get(s, id),
        Route::ContactPatch(id) => contacts::patch(s, id, ctx),
        Route::TableGet(ds, t) => datastores::get_table(s, ds, t),
        Route::TableIndexes(ds, t) => datastores::indexes(s, ds, t),
        Route::TableColumns(ds, t) => datastores::encrypt_columns(s, ds, t, ctx).await,
        Route::GuestCreate => guests::create(s),
        Route::GuestAttributesGet(g) => guests::get_attributes(s, g),
        Route::GuestAttributesPatch(g) => guests::patch_attributes(s, g, ctx),
        Route::WidgetList => webchat::list(s),
        Route::WidgetGet(id) => webchat::get(s, id),
        Route::WidgetPut(id) => webchat::put(s, id, ctx),
        Route::PrivacyErasure => privacy::erasure(s, ctx),
    }
}

/// The JSON body, or the 415/400 to send: content type first, then syntax.
pub(crate) fn json_body(ctx: &Ctx<'_>) -> Result<Value, Reply> {
    let ct = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(Reply::problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!(
                "Content-Type must be application/json, not {}",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        ));
    }
    serde_json::from_slice(ctx.body)
        .map_err(|e| Reply::bad_field("body", format!("not valid JSON: {e}")))
}

/// What `If-Match` says about a resource's current ETag.
pub(crate) enum Precondition {
    Missing,
    Matches,
    Fails,
}

pub(crate) fn if_match(headers: &HeaderMap, current_etag: &str) -> Precondition {
    let Some(v) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Precondition::Missing;
    };
    let matches = v.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag == current_etag || tag.strip_prefix("W/") == Some(current_etag)
    });
    if matches {
        Precondition::Matches
    } else {
        Precondition::Fails
    }
}

/// 428 / 412 for a resource that requires `If-Match`; `None` to go on.
pub(crate) fn require_if_match(headers: &HeaderMap, current_etag: &str) -> Option<Reply> {
    match if_match(headers, current_etag) {
        Precondition::Matches => None,
        Precondition::Missing => Some(Reply::problem(
            StatusCode::PRECONDITION_REQUIRED,
            "Precondition required",
            "send If-Match with the ETag you read (If-Match: * to overwrite whatever is there)",
        )),
        Precondition::Fails => Some(Reply::problem(
            StatusCode::PRECONDITION_FAILED,
            "Precondition failed",
            format!("the resource changed since it was read; its ETag is now {current_etag}"),
        )),
    }
}

pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_misses() {
        assert!(matches!(
            match_route(&Method::GET, "/api/v1/contacts/c-0000001"),
            Ok(Matched {
                route: Route::ContactGet(_),
                ..
            })
        ));
        assert!(matches!(
            match_route(&Method::GET, "/api/v1/nothing"),
            Err(RouteMiss::NotFound)
        ));
        assert!(matches!(
            match_route(&Method::DELETE, "/api/v1/contacts/x"),
            Err(RouteMiss::MethodNotAllowed("GET, PATCH"))
        ));
        assert_eq!(decode("a%20b"), "a b");
        assert_eq!(decode("100%"), "100%");
    }
}
