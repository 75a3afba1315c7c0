//! Data policies (spec-real §6): create (no update or delete, §6.4), read one, a
//! policy's runs and one run with its state machine, and the evidence report's
//! presigned URL, which points at a small file the emulator serves itself.
//!
//! A created policy starts a run at once: `SEARCHING`, then `APPLYING_ACTION`, then
//! `SUCCEEDED` with a result summary, each phase `policyRunMs` long; a policy that
//! needs approval waits in `PENDING_APPROVAL`. The run's status is computed when read.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{base, error, gate};
use crate::data::{self, rfc3339};
use crate::state::{SimState, lock};

/// Where the evidence files are served (no token: a presigned URL carries none).
pub(crate) const EVIDENCE: &str = "/cxone-evidence";

fn ok(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `POST /data-policies/v1/policies` (§6.1).
pub(super) async fn create(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is a PolicyCreationRequest",
        );
    };
    for k in ["policyName", "policyType", "entityType"] {
        if v[k].as_str().is_none_or(|x| x.is_empty()) {
            return error(StatusCode::BAD_REQUEST, &format!("{k}: required"));
        }
    }
    if !matches!(v["entityType"].as_str(), Some("MASTER_CONTACT" | "SEGMENT")) {
        return error(
            StatusCode::BAD_REQUEST,
            "entityType: MASTER_CONTACT or SEGMENT",
        );
    }
    if !v["criteria"].is_array() {
        return error(StatusCode::BAD_REQUEST, "criteria: required, an array");
    }
    let id = format!("pol-{}", &s.random_token()[..12]);
    let now = now_ms();
    let at = rfc3339(data::ts(now / 1000));
    let ty = v["policyType"].as_str().unwrap_or_default().to_string();
    let media = match &v["applyToMediaTypes"] {
        Value::String(m) => json!([m]),
        Value::Array(a) => json!(a),
        _ => json!([]),
    };
    let policy = json!({
        "policyId": id, "policyName": v["policyName"], "policyType": ty,
        "entityType": v["entityType"], "applyToMediaTypes": media,
        "retentionValueInDays": v["retentionValueInDays"], "recurring": v["recurring"].as_bool().unwrap_or(false),
        "recurrenceConfig": v["recurrenceConfig"], "criteria": v["criteria"],
        "description": v["description"],
        "needsApproval": ty == "DATA_ERASURE", "autoApproveLimit": 100,
        "creationDate": at, "lastModifiedDate": at, "createdBy": "api",
    });
    {
        let mut t = lock(&s.real.tenant);
        let n = t.instances.len() + 1;
        t.instances.push(json!({
            "policyId": id, "policyInstanceId": format!("run-{n:04}"),
            "policyName": v["policyName"], "policyType": ty,
            "policyInstanceNo": 1, "creationDate": at, "lastModificationDate": at,
            "_startedMs": now, "_approval": ty == "DATA_ERASURE",
        }));
        t.policies.push(policy);
    }
    s.mutated("policy", &id);
    let rt = s.runtime();
    if crate::state::faults::scripted_reset(&s) || (rt.reset_rate > 0.0 && s.roll() < rt.reset_rate)
    {
        s.counters.resets.fetch_add(1, Ordering::Relaxed);
        return crate::state::faults::reset_response();
    }
    ok(
        StatusCode::CREATED,
        json!({"policyId": id, "entityType": v["entityType"], "applyToMediaTypes": media,
               "scheduling": {"executeNow": true}, "recurring": v["recurring"].as_bool().unwrap_or(false)}),
    )
}

/// A run as the API shows it: its status worked out from when it started.
pub(crate) fn shown(run: &Value, phase_ms: i64) -> Value {
    let mut r = run.clone();
    let Some(started) = run["_startedMs"].as_i64() else {
        let status = r["status"].clone();
        r["summaryStatus"] = status;
        return r;
    };
    let elapsed = now_ms() - started;
    let (status, progress) = if run["_approval"] == true {
        ("PENDING_APPROVAL", 0)
    } else if elapsed < phase_ms {
        ("SEARCHING", 10)
    } else if elapsed < 2 * phase_ms {
        ("APPLYING_ACTION", 60)
    } else {
        ("SUCCEEDED", 100)
    };
    r["status"] = json!(status);
    r["summaryStatus"] = json!(status);
    r["resultSummary"] = json!({"successCount": if progress == 100 { 12 } else { 0 },
        "failureCount": 0, "partialCount": 0, "litigationHoldCount": 0,
        "progress": progress, "totalEntities": 12});
    if status == "SUCCEEDED" {
        r["completionDate"] = json!(rfc3339(data::ts((started + 2 * phase_ms) / 1000)));
        r["enableEvidenceReportDownload"] = json!(true);
    }
    let obj = r.as_object_mut().expect("a run is an object");
    obj.remove("_startedMs");
    obj.remove("_approval");
    r
}

fn phase_ms(s: &SimState) -> i64 {
    lock(&s.real.settings).policy_run_ms as i64
}

/// `GET /data-policies/v1/policies/{id}` (§6.3).
pub(super) async fn one(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let t = lock(&s.real.tenant);
    match t.policies.iter().find(|p| p["policyId"] == id.as_str()) {
        Some(p) => ok(StatusCode::OK, p.clone()),
        None => error(StatusCode::NOT_FOUND, &format!("no policy {id}")),
    }
}

/// `GET /data-policies/v1/policies/{id}/policy-instances` (§6.5).
pub(super) async fn runs(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let phase = phase_ms(&s);
    let t = lock(&s.real.tenant);
    if !t.policies.iter().any(|p| p["policyId"] == id.as_str()) {
        return error(StatusCode::NOT_FOUND, &format!("no policy {id}"));
    }
    let records: Vec<Value> = t
        .instances
        .iter()
        .filter(|i| i["policyId"] == id.as_str())
        .map(|i| shown(i, phase))
        .collect();
    ok(
        StatusCode::OK,
        json!({"totalRecords": records.len(), "records": records}),
    )
}

/// `GET /data-policies/v1/policies/{id}/policy-instances/{run}` (§6.6).
pub(super) async fn run(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, run)): Path<(String, String)>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let phase = phase_ms(&s);
    let t = lock(&s.real.tenant);
    match t
        .instances
        .iter()
        .find(|i| i["policyId"] == id.as_str() && i["policyInstanceId"] == run.as_str())
    {
        Some(i) => ok(StatusCode::OK, shown(i, phase)),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no run {run} of policy {id}"),
        ),
    }
}

/// `GET …/policy-instances/{run}/evidence-reports` (§6.7): `{"presigned-url"}`, at the
/// emulator's own evidence route unless `evidenceUrl` overrides it.
pub(super) async fn evidence(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, run)): Path<(String, String)>,
) -> Response {
    if let Err(r) = gate(&s, &headers) {
        return r;
    }
    let found = lock(&s.real.tenant)
        .instances
        .iter()
        .any(|i| i["policyId"] == id.as_str() && i["policyInstanceId"] == run.as_str());
    if !found {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no run {run} of policy {id}"),
        );
    }
    let url = match lock(&s.real.settings).evidence_url.clone() {
        Some(u) => u,
        None => format!(
            "{}{EVIDENCE}/{run}.csv?X-Amz-Signature={}",
            base(&headers),
            &s.random_token()[..16]
        ),
    };
    ok(StatusCode::OK, json!({"presigned-url": url}))
}

/// The evidence file itself (no token: the URL is presigned); `evidenceRedirect`
/// answers a redirect instead, as a misconfigured bucket might.
pub(super) async fn evidence_file(
    State(s): State<Arc<SimState>>,
    Path(file): Path<String>,
) -> Response {
    if lock(&s.real.settings).evidence_redirect {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "http://198.51.100.7/stolen")],
        )
            .into_response();
    }
    let run = file.trim_end_matches(".csv");
    let t = lock(&s.real.tenant);
    let Some(i) = t.instances.iter().find(|i| i["policyInstanceId"] == run) else {
        return error(StatusCode::NOT_FOUND, "no such evidence report");
    };
    let body = format!(
        "policyInstanceId,policyId,entity,action,result\n{run},{},contact-1,APPLIED,SUCCESS\n{run},{},contact-2,APPLIED,SUCCESS\n",
        i["policyId"].as_str().unwrap_or_default(),
        i["policyId"].as_str().unwrap_or_default()
    );
    ([(header::CONTENT_TYPE, "text/csv")], body).into_response()
}
