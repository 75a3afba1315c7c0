//! Pacing: send no faster than the server will accept, so the request budget goes to
//! work instead of to 429s.
//!
//! Two gates, both waited on before every attempt:
//! - an optional client-side cap (`max_rate`), a GCRA limiter from `governor`;
//! - a mirror of the server's bucket, learnt from the `RateLimit-*` headers: its size is
//!   `RateLimit-Limit`, its refill rate is the limit per second until a drained bucket
//!   reports how long a full refill takes (`RateLimit-Reset` at `Remaining: 0`), and each
//!   response lowers its level to what the server says is left, less what is still in
//!   flight. Reservations are spread evenly, so a steady job runs at the server's rate
//!   instead of bursting into refusals.
//!
//! A server that sends no such headers is not paced. Each API surface (the first three
//! path segments, e.g. `api/v2/webchat`) has its own mirror, since a tenant meters some
//! surfaces on buckets of their own: webchat's 10/s must not slow contacts down.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;

struct Mirror {
    limit: f64,
    rate: f64,
    level: f64,
    last: Instant,
}

pub(crate) struct Pacer {
    cap: Option<DefaultDirectRateLimiter>,
    /// CXone's published DFO read budget (spec-real §4.1), paced ahead of the 429s the
    /// tenant would send without a `Retry-After`.
    dfo_reads: Option<DefaultDirectRateLimiter>,
    /// The published tenant-wide "update contact" budget (every DFO write).
    dfo_updates: Option<DefaultDirectRateLimiter>,
    /// The published per-contact budget (a burst, refilling per minute), by case number.
    dfo_contacts: Option<(Quota, Mutex<HashMap<String, DefaultDirectRateLimiter>>)>,
    mirrors: Mutex<HashMap<String, Mirror>>,
    in_flight: AtomicI64,
}

/// What the `RateLimit-*` headers of one response say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Budget {
    pub limit: u64,
    pub remaining: u64,
    pub reset: u64,
}

/// The most the pacer believes of a tenant's headers: larger numbers are clamped, so a
/// hostile or broken header can neither stall the client for ages nor overflow a sum.
const MAX_LIMIT: u64 = 1_000_000;
const MAX_RESET_SECS: u64 = 3600;
/// The longest one pacing wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) fn budget(headers: &HeaderMap) -> Option<Budget> {
    let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    let limit = num("ratelimit-limit")?.min(MAX_LIMIT);
    Some(Budget {
        limit,
        remaining: num("ratelimit-remaining")?.min(limit),
        reset: num("ratelimit-reset")?.min(MAX_RESET_SECS),
    })
}

impl Pacer {
    pub(crate) fn new(
        max_rate: Option<u32>,
        dfo: Option<&crate::settings::CxoneEndpoints>,
    ) -> Self {
        let per_hour = |n: u32, burst: u32| {
            NonZeroU32::new(n)
                .and_then(|n| Quota::with_period(Duration::from_secs(3600) / n.get()))
                .map(|q| {
                    RateLimiter::direct(
                        q.allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN)),
                    )
                })
        };
        // The tenant publishes the update rate, not a burst: pace evenly, at most one
        // second's worth at once.
        let dfo_updates = dfo.and_then(|d| {
            per_hour(
                d.dfo_updates_per_hour,
                (d.dfo_updates_per_hour / 3600).clamp(1, 1000),
            )
        });
        let dfo_contacts = dfo.and_then(|d| {
            let per_minute = NonZeroU32::new(d.dfo_contact_per_minute)?;
            let burst = NonZeroU32::new(d.dfo_contact_burst)?;
            Some((
                Quota::per_minute(per_minute).allow_burst(burst),
                Mutex::new(HashMap::new()),
            ))
        });
        let dfo_reads_per_hour = dfo.map(|d| d.dfo_reads_per_hour);
        let cap = max_rate
            .and_then(NonZeroU32::new)
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        let dfo_reads = dfo_reads_per_hour
            .and_then(NonZeroU32::new)
            .and_then(|n| Quota::with_period(Duration::from_secs(3600) / n.get()))
            .map(|q| {
                let burst = NonZeroU32::new(dfo_reads_per_hour.unwrap_or(1).clamp(1, 1000))
                    .unwrap_or(NonZeroU32::MIN);
                RateLimiter::direct(q.allow_burst(burst))
            });
        Pacer {
            cap,
            dfo_reads,
            dfo_updates,
            dfo_contacts,
            mirrors: Mutex::new(HashMap::new()),
            in_flight: AtomicI64::new(0),
        }
    }

    /// Waits until a request may be sent, and counts it in flight until `done`.
    pub(crate) async fn acquire(&self, surface: &str, write: bool) {
        if let Some(cap) = &self.cap {
            cap.until_ready().await;
        }
        if surface.starts_with("Dfo/") {
            if !write {
                if let Some(dfo) = &self.dfo_reads {
                    dfo.until_ready().await;
                }
            } else {
                self.dfo_write(surface).await;
            }
        }
        let wait = {
            let mut guard = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
            match guard.get_mut(surface) {
                None => Duration::ZERO,
                Some(m) => {
                    let now = Instant::now();
                    m.level = (m.level
                        + now.saturating_duration_since(m.last).as_secs_f64() * m.rate)
                        .min(m.limit);
                    m.last = now;
                    m.level -= 1.0;
                    if m.level >= 0.0 {
                        Duration::ZERO
                    } else {
                        Duration::try_from_secs_f64(-m.level / m.rate)
                            .unwrap_or(MAX_WAIT)
                            .min(MAX_WAIT)
                    }
                }
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A DFO write: within the tenant's "update contact" budget and, for a case
    /// (`Dfo/contacts/{n}/…`), within that case's own burst and refill.
    async fn dfo_write(&self, surface: &str) {
        if let Some(u) = &self.dfo_updates {
            u.until_ready().await;
        }
        let case = surface
            .strip_prefix("Dfo/contacts/")
            .and_then(|r| r.split('/').next());
        if let (Some(case), Some((quota, map))) = (case, &self.dfo_contacts) {
            let wait = {
                let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: a job over many cases forgets the ones it finished with.
                if m.len() >= 10_000 {
                    m.clear();
                }
                let l = m
                    .entry(case.to_string())
                    .or_insert_with(|| RateLimiter::direct(*quota));
                match l.check() {
                    Ok(()) => None,
                    Err(not_until) => Some(not_until.wait_time_from(governor::clock::Clock::now(
                        &governor::clock::DefaultClock::default(),
                    ))),
                }
            };
            if let Some(w) = wait {
                tokio::time::sleep(w.min(MAX_WAIT)).await;
            }
        }
    }

    /// Records a response (or a failure) of a request that `acquire` let through.
    pub(crate) fn done(&self, surface: &str, headers: Option<&HeaderMap>) {
        let others = (self.in_flight.fetch_sub(1, Ordering::Relaxed) - 1).max(0) as f64;
        let Some(b) = headers.and_then(budget) else {
            return;
        };
        if b.limit == 0 {
            return;
        }
        let mut guard = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let limit = b.limit as f64;
        let m = guard.entry(surface.to_string()).or_insert(Mirror {
            limit,
            rate: limit,
            level: limit,
            last: now,
        });
        if m.limit != limit {
            m.limit = limit;
        }
        if b.remaining == 0 && b.reset > 0 {
            // A drained bucket refills completely in `reset` seconds (rounded up).
            m.rate = (limit / b.reset as f64).max(0.1);
        }
        m.level =
            (m.level + now.saturating_duration_since(m.last).as_secs_f64() * m.rate).min(m.limit);
        m.last = now;
        let server = b.remaining as f64 - others;
        if server < m.level {
            m.level = server;
        }
    }

    /// A 429 says the mirror was optimistic: drain it so the next requests are spread.
    pub(crate) fn refused(&self, surface: &str) {
        let mut guard = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = guard.get_mut(surface) {
            m.level = m.level.min(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(limit: u64, remaining: u64, reset: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", HeaderValue::from(limit));
        h.insert("ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("ratelimit-reset", HeaderValue::from(reset));
        h
    }

    #[test]
    fn huge_budget_headers_are_clamped() {
        let b = budget(&headers(u64::MAX, u64::MAX, u64::MAX)).unwrap();
        assert_eq!(
            b,
            Budget {
                limit: MAX_LIMIT,
                remaining: MAX_LIMIT,
                reset: MAX_RESET_SECS
            }
        );
    }

    #[test]
    fn parses_budget() {
        assert_eq!(
            budget(&headers(100, 5, 1)),
            Some(Budget {
                limit: 100,
                remaining: 5,
                reset: 1
            })
        );
        assert_eq!(budget(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn an_empty_server_bucket_makes_the_next_request_wait() {
        let p = Pacer::new(None, None);
        p.acquire("api/v2/webchat", false).await;
        p.done("api/v2/webchat", Some(&headers(10, 0, 1)));
        let t = Instant::now();
        p.acquire("api/v1/contacts", false).await;
        assert!(
            t.elapsed() < Duration::from_millis(20),
            "another surface is not slowed"
        );
        let t = Instant::now();
        p.acquire("api/v2/webchat", false).await;
        // Level 0 → the next token is 1/10 s away.
        assert!(
            t.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn without_headers_there_is_no_pacing() {
        let p = Pacer::new(None, None);
        let t = Instant::now();
        for _ in 0..1000 {
            p.acquire("a", false).await;
            p.done("a", None);
        }
        assert!(t.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn dfo_reads_are_paced_to_the_hourly_budget_and_nothing_else_is() {
        let p = Pacer::new(
            None,
            Some(&crate::settings::CxoneEndpoints {
                dfo_reads_per_hour: 2,
                ..Default::default()
            }),
        );
        for _ in 0..2 {
            p.acquire("Dfo/contacts", false).await;
            p.done("Dfo/contacts", None);
        }
        // The third read of the hour would wait: the budget is spent.
        assert!(p.dfo_reads.as_ref().unwrap().check().is_err());
        // Another surface is not held back by DFO's budget.
        let t = Instant::now();
        p.acquire("Acd/contacts/completed", false).await;
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn writes_to_one_case_wait_after_its_burst_and_others_do_not() {
        let p = Pacer::new(
            None,
            Some(&crate::settings::CxoneEndpoints {
                dfo_contact_burst: 3,
                dfo_contact_per_minute: 1,
                ..Default::default()
            }),
        );
        let t = Instant::now();
        for _ in 0..3 {
            p.acquire("Dfo/contacts/7/custom-fields", true).await;
        }
        // Another case, and reads of this one, are not held back.
        p.acquire("Dfo/contacts/8/custom-fields", true).await;
        p.acquire("Dfo/contacts/7", false).await;
        assert!(t.elapsed() < Duration::from_secs(1));
        // Case 7's burst is spent: its next write would wait for the refill.
        let (_, map) = p.dfo_contacts.as_ref().unwrap();
        let m = map.lock().unwrap();
        assert!(m["7"].check().is_err());
        assert!(m["8"].check().is_ok());
    }
}
