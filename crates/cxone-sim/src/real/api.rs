//! The real surface's API and UserHub routes (spec §3, §4, §6, §7), each paging as the
//! spec says that area pages: access keys and ACD by `_links.next` (ACD also `skip`/`top`,
//! with 204 for no data), DFO customers by `page`/`size` with `_links.next`, DFO cases by
//! `scrollToken` (the same filters required on every page), policies by `skip`/`top` in
//! the body, policy runs by `lastEvaluatedKey`.

// A check that answers early returns its response as the error: one per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{API, USERHUB, base, dfo_read, error, gate};
use crate::data::sha256_hex;
use crate::state::{SimState, lock};

/// Access keys per UserHub page.
const KEY_PAGE: usize = 5;
/// Cases per scroll page.
const CASE_PAGE: usize = 25;
/// Policy runs per page.
const RUN_PAGE: usize = 3;
/// The most customers per page.
const MAX_SIZE: usize = 100;
/// The most ACD contacts per page.
const MAX_TOP: usize = 1000;

pub(super) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/dfo/3.0/customers", get(customers))
        .route(
            "/dfo/3.0/customers/custom-field-definitions",
            get(field_definitions).put(super::dfo_writes::put_field_definition),
        )
        .route("/dfo/3.0/customers/{id}", get(customer))
        .route("/dfo/3.0/customers/{id}/notes", get(notes))
        .route(
            "/dfo/3.0/customers/{id}/notes/{note}",
            axum::routing::delete(super::dfo_writes::delete_note),
        )
        .route("/dfo/3.0/contacts", get(cases))
        .route("/dfo/3.0/contacts/{id}", get(case))
        .route(
            "/dfo/3.0/contacts/{id}/custom-fields",
            axum::routing::put(super::dfo_writes::set_case_fields),
        )
        .route(
            "/dfo/3.0/contacts/{id}/custom-fields/{ident}",
            axum::routing::delete(super::dfo_writes::delete_case_field),
        )
        .route(
            "/dfo/3.0/consumer-contact-custom-fields",
            get(case_field_definitions),
        )
        .route("/dfo/3.0/contacts/{id}/messages", get(messages))
        .route(
            "/dfo/3.0/messages/{id}/content-removal",
            post(super::dfo_writes::content_removal),
        )
        .route(
            "/dfo/3.0/messages/{id}/author-name-removal",
            post(super::dfo_writes::author_name_removal),
        )
        .route(
            "/dfo/3.0/customers/{id}/custom-fields",
            axum::routing::put(super::dfo_writes::set_customer_fields),
        )
        .route(
            "/dfo/3.0/customers/{id}/custom-fields/{ident}",
            axum::routing::delete(super::dfo_writes::delete_customer_field),
        )
        .route("/privacy/v1/erasure", post(erasure))
        .route("/data-policies/v1/policies", post(super::policies::create))
        .route("/data-policies/v1/policies/search", post(policies))
        .route("/data-policies/v1/policies/{id}", get(super::policies::one))
        .route(
            "/data-policies/v1/policies/{id}/policy-instances",
            get(super::policies::runs),
        )
        .route(
            "/data-policies/v1/policies/{id}/policy-instances/{run}",
            get(super::policies::run),
        )
        .route(
            "/data-policies/v1/policies/{id}/policy-instances/{run}/evidence-reports",
            get(super::policies::evidence),
        )
        .route(
            "/data-policies/v1/policies/policy-instances/search",
            post(instances),
        )
        .route(
            "/inContactAPI/services/{version}/contacts/completed",
            get(completed),
        )
}

pub(super) fn userhub_router() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/access-key-management/v1/access-keys",
            get(access_keys)
                .post(super::keys::create)
                .patch(super::keys::patch),
        )
        .route(
            "/access-key-management/v1/access-keys/{id}",
            get(super::keys::one).delete(super::keys::delete),
        )
        .route(
            "/authentication/v1/token/access-key",
            post(super::auth::access_key_token),
        )
}

/// The query as pairs, decoded (repeated keys such as `status[]` kept in order).
fn pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn number(p: &[(String, String)], k: &str) -> Result<Option<usize>, Response> {
    match p.iter().find(|(n, _)| n == k) {
        None => Ok(None),
        Some((_, v)) => v.parse().map(Some).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("{k}: {v:?} is not a whole number"),
            )
        }),
    }
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

async fn access_keys(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let p = pairs(&q);
    let skip = match number(&p, "skip") {
        Ok(n) => n.unwrap_or(0),
        Err(r) => return r,
    };
    let user = p
        .iter()
        .find(|(k, _)| k == "userId")
        .map(|(_, v)| v.clone());
    let t = lock(&s.real.tenant);
    let keys: Vec<Value> = t
        .keys
        .iter()
        .filter(|k| user.as_ref().is_none_or(|u| *u == k.user_id))
        .map(|k| k.to_json(&t.tenant_id, true))
        .collect();
    let page: Vec<Value> = keys.iter().skip(skip).take(KEY_PAGE).cloned().collect();
    let next = (skip + KEY_PAGE < keys.len()).then(|| {
        let mut u = format!(
            "{}{USERHUB}/access-key-management/v1/access-keys?skip={}",
            base(&headers),
            skip + KEY_PAGE
        );
        if let Some(user) = &user {
            u.push_str(&format!("&userId={user}"));
        }
        u
    });
    ok(json!({"totalRecords": keys.len(), "accessKeys": page, "_links": {"next": next}}))
}

async fn customers(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let p = pairs(&q);
    let (page, size) = match (number(&p, "page"), number(&p, "size")) {
        (Ok(page), Ok(size)) => (page.unwrap_or(1).max(1), size.unwrap_or(20)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if size == 0 || size > MAX_SIZE {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("size: from 1 to {MAX_SIZE}"),
        );
    }
    let t = lock(&s.real.tenant);
    let data: Vec<Value> = t
        .customers
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    let next = (page * size < t.customers.len()).then(|| {
        format!(
            "{}{API}/dfo/3.0/customers?page={}&size={size}",
            base(&headers),
            page + 1
        )
    });
    ok(json!({"hits": t.customers.len(), "data": data, "_links": {"self": null, "next": next}}))
}

async fn customer(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let t = lock(&s.real.tenant);
    match t.customers.iter().find(|c| c["id"] == id.as_str()) {
        Some(c) => ok(c.clone()),
        None => error(StatusCode::NOT_FOUND, &format!("no customer {id}")),
    }
}

/// A customer's notes (§4.3h), in one page.
async fn notes(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let t = lock(&s.real.tenant);
    if !t.customers.iter().any(|c| c["id"] == id.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no customer {id}"));
    }
    let data = t.notes.get(&id).cloned().unwrap_or_default();
    ok(json!({"totalRecords": data.len(), "data": data}))
}

async fn case(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let t = lock(&s.real.tenant);
    match t.cases.iter().find(|c| c["id"] == id.as_str()) {
        Some(c) => ok(c.clone()),
        None => error(StatusCode::NOT_FOUND, &format!("no case {id}")),
    }
}

/// The case custom-field definitions (§4.3i): one, `order_number`.
async fn case_field_definitions(State(s): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    ok(
        json!([{"ident": "order_number", "label": "Order number", "type": "text",
               "required": false, "isEditable": true}]),
    )
}

async fn field_definitions(State(s): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    ok(lock(&s.real.tenant).field_definitions.clone())
}

/// The filters of a case search, as a digest a scroll token is bound to.
fn filter_digest(p: &[(String, String)]) -> String {
    let mut f: Vec<String> = p
        .iter()
        .filter(|(k, _)| k != "scrollToken")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    f.sort();
    sha256_hex(f.join("&").as_bytes())[..16].to_string()
}

async fn cases(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let p = pairs(&q);
    let digest = filter_digest(&p);
    let offset = match p.iter().find(|(k, _)| k == "scrollToken") {
        None => 0,
        Some((_, t)) => match t.split_once('.') {
            Some((d, n)) if d == digest => match n.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return error(StatusCode::BAD_REQUEST, "scrollToken: not one of ours"),
            },
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "scrollToken: issued for other filters; repeat the same filters on every page",
                );
            }
        },
    };
    let statuses: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k == "status[]")
        .map(|(_, v)| v.as_str())
        .collect();
    let customer = p
        .iter()
        .find(|(k, _)| k == "customerId")
        .map(|(_, v)| v.as_str());
    let t = lock(&s.real.tenant);
    let matching: Vec<&Value> = t
        .cases
        .iter()
        .filter(|c| statuses.is_empty() || statuses.iter().any(|st| c["status"] == *st))
        .filter(|c| customer.is_none_or(|id| c["endUser"]["id"] == id))
        .collect();
    let data: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(CASE_PAGE)
        .map(|c| (*c).clone())
        .collect();
    let mut body = json!({"hits": matching.len(), "data": data});
    if offset + CASE_PAGE < matching.len() {
        body["scrollToken"] = json!(format!("{digest}.{}", offset + CASE_PAGE));
    }
    ok(body)
}

/// A case's messages: two to six per case, derived from its number (§4.5a).
async fn messages(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers).and_then(|()| dfo_read(&s)) {
        return r;
    }
    let t = lock(&s.real.tenant);
    let Some(case) = t.cases.iter().find(|c| c["id"] == id.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("no case {id}"));
    };
    let data: Vec<Value> = (0..crate::realdata::messages_in(&id))
        .map(|i| {
            let mid = format!("{id}-m{i}");
            let mut m = json!({
                "id": mid,
                "direction": if i % 2 == 0 { "inbound" } else { "outbound" },
                "createdAt": case["createdAt"],
                "authorEndUserIdentity": if i % 2 == 0 { case["authorEndUserIdentity"].clone() } else { Value::Null },
                "messageContent": {"type": "TEXT", "payload": {"text": format!("message {i} of case {id}")},
                                   "fallbackText": "", "postback": ""},
            });
            super::dfo_writes::apply_removals(&mut m, t.removed.get(&mid));
            m
        })
        .collect();
    ok(json!({"hits": data.len(), "data": data}))
}

/// The privacy erasure (§5): 202 with a request id; matching completed contacts'
/// addresses are anonymized shortly after, DFO data is left alone (as the doc says).
async fn erasure(State(s): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(subject), Some(kind)) = (
        v["subjectIdentifier"].as_str().filter(|x| !x.is_empty()),
        v["subjectIdentifierType"].as_str(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "BAD_REQUEST", "details": "subjectIdentifier and subjectIdentifierType are required"})),
        )
            .into_response();
    };
    if !matches!(kind, "EMAIL" | "PHONENO" | "USER") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "BAD_REQUEST", "details": "subjectIdentifierType: EMAIL, PHONENO or USER"})),
        )
            .into_response();
    }
    let request_id = s.random_token();
    lock(&s.erasures).push(
        json!({"requestId": request_id, "subjectIdentifierType": kind,
        "subjectSha256": sha256_hex(subject.as_bytes()), "surface": "cxone"}),
    );
    let subject = subject.to_string();
    let state = s.clone();
    let delay = lock(&s.real.settings).erasure_delay_ms;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let anon = format!(
            "{}@nic_anonymize.com",
            &sha256_hex(subject.as_bytes())[..16]
        );
        let mut t = lock(&state.real.tenant);
        for c in t.completed.iter_mut() {
            for field in ["fromAddress", "toAddress"] {
                if c[field]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&subject))
                {
                    c[field] = json!(anon);
                }
            }
        }
    });
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"requestId": request_id})),
    )
        .into_response()
}

/// A data-policy search's body, after the token: JSON with a `filters` array.
fn search_body(s: &SimState, headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    gate(s, headers)?;
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("body: {e}")))?;
    if !v["filters"].is_array() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "filters: required, an array",
        ));
    }
    Ok(v)
}

async fn policies(State(s): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match search_body(&s, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let skip = v["pagination"]["skip"].as_u64().unwrap_or(0) as usize;
    let top = v["pagination"]["top"].as_u64().unwrap_or(25).clamp(1, 100) as usize;
    let t = lock(&s.real.tenant);
    let records: Vec<Value> = t.policies.iter().skip(skip).take(top).cloned().collect();
    ok(json!({"records": records, "totalCount": t.policies.len(), "skip": skip}))
}

async fn instances(State(s): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let v = match search_body(&s, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = lock(&s.real.tenant);
    let start = match v["lastEvaluatedKey"].as_str() {
        None => 0,
        Some(k) => match t.instances.iter().position(|i| i["policyInstanceId"] == k) {
            Some(i) => i + 1,
            None => return error(StatusCode::BAD_REQUEST, "lastEvaluatedKey: unknown"),
        },
    };
    let phase = lock(&s.real.settings).policy_run_ms as i64;
    let records: Vec<Value> = t
        .instances
        .iter()
        .skip(start)
        .take(RUN_PAGE)
        .map(|i| super::policies::shown(i, phase))
        .collect();
    let mut out = json!({"totalRecords": t.instances.len(), "records": records});
    if start + RUN_PAGE < t.instances.len()
        && let Some(last) = records.last()
    {
        out["lastEvaluatedKey"] = last["policyInstanceId"].clone();
    }
    ok(out)
}

async fn completed(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(version): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let p = pairs(&q);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let parse = |k: &str| -> Result<Option<i64>, Response> {
        match get(k) {
            None => Ok(None),
            Some(d) => {
                time::OffsetDateTime::parse(&d, &time::format_description::well_known::Rfc3339)
                    .map(|t| Some(t.unix_timestamp()))
                    .map_err(|_| error(StatusCode::BAD_REQUEST, &format!("{k}: not a date-time")))
            }
        }
    };
    let (start, end) = match (parse("startDate"), parse("endDate")) {
        (Ok(a), Ok(b)) => (a.unwrap_or(i64::MIN), b.unwrap_or(i64::MAX)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (skip, top) = match (number(&p, "skip"), number(&p, "top")) {
        (Ok(s), Ok(t)) => (s.unwrap_or(0), t.unwrap_or(100).clamp(1, MAX_TOP)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let t = lock(&s.real.tenant);
    let matching: Vec<&Value> = t
        .completed
        .iter()
        .filter(|c| super::started_at(c).is_some_and(|d| (start..=end).contains(&d)))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(top)
        .map(|c| (*c).clone())
        .collect();
    if page.is_empty() {
        // The usual ACD answer for "no data" (§7.1).
        return StatusCode::NO_CONTENT.into_response();
    }
    let next = (skip + top < matching.len()).then(|| {
        let mut u = url::Url::parse(&format!(
            "{}{API}/inContactAPI/services/{version}/contacts/completed",
            base(&headers)
        ))
        .expect("a URL of our own");
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in &p {
                if k != "skip" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("skip", &(skip + top).to_string());
        }
        u.to_string()
    });
    ok(json!({
        "totalRecords": matching.len(),
        "businessUnitId": 4_600_123,
        "completedContacts": page,
        "_links": {"self": null, "next": next, "previous": null},
    }))
}
