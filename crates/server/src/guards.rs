//! Middleware that bounds what one request, or one client address, may take: the
//! whole-request deadline, and the rate limit of the unauthenticated operations routes
//! (`/metrics`, `/readyz`) per client address. API routes are limited per API key in
//! [`crate::auth`].

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::problem::Problem;

/// Answers 408 when a request (reading its body included) outlasts `limit`. A link in
/// flight is a task of its own ([`crate::routes`]) and still lands and is audited.
pub(crate) async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!("the request did not complete within {limit:?}"),
        )
        .into_response(),
    }
}

type Keyed = RateLimiter<
    IpAddr,
    governor::state::keyed::HashMapStateStore<IpAddr>,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// Client addresses remembered at most; past this, idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Per-address limits for the operations routes.
#[derive(Clone)]
pub(crate) struct PerAddress {
    limiter: Arc<Keyed>,
}

impl PerAddress {
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        PerAddress {
            limiter: Arc::new(RateLimiter::hashmap(
                Quota::per_second(rate).allow_burst(burst),
            )),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub(crate) async fn per_address(
    State(limits): State<PerAddress>,
    req: Request,
    next: Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(wait) = limits.check(ip)
    {
        return Problem::too_many(
            wait,
            "Too many requests from this address",
            "this address is over the rate limit of the operations endpoints; retry after the time in Retry-After",
        )
        .into_response();
    }
    next.run(req).await
}
