//! Injected faults, the same on both surfaces: scripted statuses first, then random
//! 500/503s, all before any state change.

use std::sync::atomic::Ordering;

use axum::http::{StatusCode, header};

use super::{Runtime, SimState, lock};
use crate::problem::Reply;

/// Injected 500/503, before any state change: scripted ones first, then random ones.
pub(crate) fn injected_fault(s: &SimState, rt: &Runtime) -> Result<(), Reply> {
    if let Some(status) = lock(&s.fail_next).pop_front() {
        s.counters.faults.fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut reply = Reply::problem(
            status,
            "Injected fault",
            "scripted fault: nothing was changed",
        );
        if let (StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS, Some(ra)) =
            (status, rt.fault_retry_after)
        {
            reply = reply.with_header(header::RETRY_AFTER, ra.to_string());
        }
        return Err(reply);
    }
    if rt.fault_rate > 0.0 && s.roll() < rt.fault_rate {
        s.counters.faults.fetch_add(1, Ordering::Relaxed);
        let (status, title) = if s.roll() < 0.5 {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
        };
        let mut reply = Reply::problem(status, title, "injected fault: nothing was changed");
        if status == StatusCode::SERVICE_UNAVAILABLE
            && let Some(ra) = rt.fault_retry_after
        {
            reply = reply.with_header(header::RETRY_AFTER, ra.to_string());
        }
        return Err(reply);
    }
    Ok(())
}

/// Whether a scripted connection reset is due (and uses it up).
pub(crate) fn scripted_reset(s: &SimState) -> bool {
    let mut n = lock(&s.reset_next);
    let hit = *n > 0;
    *n = n.saturating_sub(1);
    hit
}

/// A response whose body fails at once: hyper aborts the connection, so the client sees a
/// reset after the server has already made the change.
pub(crate) fn reset_response() -> axum::response::Response {
    use axum::body::{Body, Bytes};
    use axum::http::HeaderValue;
    use axum::response::{IntoResponse as _, Response};
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("64"));
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp.into_response()
}
