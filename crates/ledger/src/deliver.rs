//! The deliverer: leases due events, POSTs each to its kind's endpoint signed per the
//! Standard Webhooks spec, and records the result. Success is a 2xx within the timeout;
//! a failure is retried on the schedule (Svix's by default) and, after the last attempt,
//! goes to dead letter. An event whose kind has no endpoint is recorded as skipped.
//!
//! Delivery is at least once: a deliverer killed after the receiver got the event but
//! before recording it lets the lease expire, and the event is sent again with the same
//! `webhook-id`, which receivers use to deduplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::outbox::{EventKind, Leased, Settlement, default_schedule};
use crate::webhooks::{WebhookSecret, signature_header};
use crate::{Ledger, now_ms};

/// Where one kind of event goes.
#[derive(Debug)]
pub struct Endpoint {
    /// Where events of this kind are POSTed (used exactly as written).
    pub url: url::Url,
    /// Signing secrets: the current one first; more while a secret is being rotated.
    pub secrets: Vec<WebhookSecret>,
}

/// What the deliverer needs: endpoints, retry schedule and timeout.
#[derive(Debug)]
pub struct DeliveryConfig {
    /// An endpoint per event kind; events of other kinds are recorded as skipped.
    pub endpoints: BTreeMap<EventKind, Endpoint>,
    /// Waits before each attempt: the first entry is the wait before the first attempt.
    pub schedule: Vec<Duration>,
    /// Limit of one delivery attempt.
    pub timeout: Duration,
    /// How long a leased event is reserved for its deliverer.
    pub lease: Duration,
    /// Events leased per round.
    pub batch: i64,
    /// Concurrent POSTs.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            endpoints: BTreeMap::new(),
            schedule: default_schedule(),
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            batch: 100,
            concurrency: 8,
        }
    }
}

/// POSTs `body` to `endpoint` as Standard Webhooks message `id`, signed with each of its
/// secrets, following no redirect (`http` must be built so), waiting at most `timeout`.
/// `Err` says why it was not accepted.
pub async fn post_signed(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    id: &str,
    body: &[u8],
    timeout: Duration,
) -> std::result::Result<reqwest::StatusCode, String> {
    let ts = now_ms() / 1000;
    let signature = signature_header(&endpoint.secrets, id, ts, body);
    let result = http
        .post(endpoint.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec())
        .timeout(timeout)
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => Ok(r.status()),
        Ok(r) if r.status().is_redirection() => Err(format!(
            "HTTP {} from {} redirecting to {:?}; webhooks follow no redirect: configure the final URL",
            r.status().as_u16(),
            endpoint.url,
            r.headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(200)
                    .collect::<String>())
                .unwrap_or_default()
        )),
        Ok(r) => Err(format!(
            "HTTP {} from {}",
            r.status().as_u16(),
            endpoint.url
        )),
        Err(e) if e.is_timeout() => Err(format!(
            "no answer from {} within {timeout:?}",
            endpoint.url
        )),
        Err(e) => Err(format!("cannot reach {}: {e}", endpoint.url)),
    }
}

/// What one or more rounds did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// Events delivered.
    pub delivered: u64,
    /// Events that failed and will be tried again.
    pub retrying: u64,
    /// Events given up on (dead letters).
    pub dead: u64,
    /// Events with no endpoint configured.
    pub skipped: u64,
}

impl std::ops::AddAssign for Delivered {
    fn add_assign(&mut self, o: Self) {
        self.delivered += o.delivered;
        self.retrying += o.retrying;
        self.dead += o.dead;
        self.skipped += o.skipped;
    }
}

/// Delivers due outbox events, signed, at least once; several may run against one store.
#[derive(Clone)]
pub struct Deliverer {
    ledger: Ledger,
    config: Arc<DeliveryConfig>,
    http: reqwest::Client,
}

impl Deliverer {
    /// A deliverer for `ledger` with `config` (every endpoint and secret checked).
    pub fn new(ledger: Ledger, config: DeliveryConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            // A redirect would re-post a signed event to wherever Location points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("cxguard-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                crate::Error::Config(format!("cannot build the webhook HTTP client: {e}"))
            })?;
        Ok(Deliverer {
            ledger,
            config: Arc::new(config),
            http,
        })
    }

    /// One round: lease what is due and deliver it.
    pub async fn round(&self) -> Result<Delivered> {
        let leased = self
            .ledger
            .lease_due(self.config.batch, self.config.lease.as_millis() as i64)
            .await?;
        let mut total = Delivered::default();
        let mut set = tokio::task::JoinSet::new();
        let mut iter = leased.into_iter();
        loop {
            while set.len() < self.config.concurrency.max(1) {
                let Some(ev) = iter.next() else { break };
                let me = self.clone();
                set.spawn(async move { me.deliver_one(ev).await });
            }
            match set.join_next().await {
                Some(Ok(r)) => total += r?,
                Some(Err(e)) => {
                    return Err(crate::Error::Config(format!("a delivery task failed: {e}")));
                }
                None => break,
            }
        }
        Ok(total)
    }

    async fn deliver_one(&self, ev: Leased) -> Result<Delivered> {
        let mut d = Delivered::default();
        let kind = EventKind::parse(&ev.kind).ok();
        let Some(endpoint) = kind.and_then(|k| self.config.endpoints.get(&k)) else {
            self.ledger
                .settle_event(&ev.id, &ev.token, Settlement::Skipped)
                .await?;
            d.skipped = 1;
            return Ok(d);
        };
        let error = post_signed(
            &self.http,
            endpoint,
            &ev.id,
            ev.payload.as_bytes(),
            self.config.timeout,
        )
        .await
        .err();
        let settlement = match error {
            None => {
                d.delivered = 1;
                Settlement::Delivered
            }
            Some(error) => {
                let done_attempts = ev.attempts + 1;
                let next = self.config.schedule.get(done_attempts as usize);
                match next {
                    Some(wait) => {
                        d.retrying = 1;
                        Settlement::Failed {
                            error,
                            retry_at_ms: Some(now_ms() + wait.as_millis() as i64),
                        }
                    }
                    None => {
                        d.dead = 1;
                        tracing::warn!(event = %ev.id, kind = %ev.kind, "webhook gave up after {done_attempts} attempts: {error}");
                        Settlement::Failed {
                            error,
                            retry_at_ms: None,
                        }
                    }
                }
            }
        };
        self.ledger
            .settle_event(&ev.id, &ev.token, settlement)
            .await?;
        Ok(d)
    }

    /// Delivers until nothing is pending, waiting for retries that fall due within
    /// `max_wait`; returns the totals and how many events are still pending.
    pub async fn until_empty(&self, max_wait: Duration) -> Result<(Delivered, u64)> {
        let mut total = Delivered::default();
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let r = self.round().await?;
            let progressed = r != Delivered::default();
            total += r;
            if progressed {
                continue;
            }
            let Some(next) = self.ledger.next_due_ms().await? else {
                return Ok((total, 0));
            };
            let wait = Duration::from_millis((next - now_ms()).max(0) as u64 + 5);
            if tokio::time::Instant::now() + wait > deadline {
                let pending = self.ledger.outbox_status().await?.pending;
                return Ok((total, pending));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs rounds in the background every `poll` until stopped.
    pub fn spawn(self, poll: Duration) -> DelivererHandle {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = Delivered::default();
            loop {
                match self.round().await {
                    Ok(r) => total += r,
                    Err(e) => tracing::warn!("webhook delivery round failed: {e}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = rx.changed() => break,
                }
            }
            // A last round so what the job just enqueued goes out before exit.
            if let Ok(r) = self.round().await {
                total += r;
            }
            total
        });
        DelivererHandle { stop: tx, task }
    }
}

/// A background deliverer; `stop` delivers one last round and returns the totals.
pub struct DelivererHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Delivered>,
}

impl DelivererHandle {
    /// Stops the background loop after one last pass, and says what it delivered.
    pub async fn stop(self) -> Delivered {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
