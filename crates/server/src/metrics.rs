//! `/metrics` in the Prometheus / OpenMetrics text format, from an explicit registry (no
//! global state): requests by route, method and status, latency histograms by route,
//! links and 502s, and the upstream client's own counters read at each scrape (requests,
//! retries, 429s, token requests).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The OpenMetrics text format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/guests/{guestId}/identity`), never a raw path.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The response status.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template (`/v1/guests/{guestId}/identity`), never a raw path.
    pub route: String,
}

/// Labels of the link counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `linked`, `invalid`, `unknown_guest`, `upstream_failed`, `audit_failed`; for KMS
    /// callbacks `verified`, `repeat`, `not_ours`, `wrong_algorithm`, `invalid`,
    /// `unknown_token`; for subject erasures `accepted`, `repeated`, `invalid`,
    /// `queue_full`, `erased`, `failed`.
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~4 s: a link is a millisecond on loopback, seconds under upstream retries.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 14,
    ))
}

/// The service's Prometheus metrics, plus the tenant client's counters.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Links by outcome.
    pub links: Family<OutcomeLabels, Counter>,
    /// KMS callbacks by outcome.
    pub kms_callbacks: Family<OutcomeLabels, Counter>,
    /// Subject erasure requests and jobs by outcome.
    pub subjects: Family<OutcomeLabels, Counter>,
    /// Subject erasures queued or running in this process.
    pub subject_queue: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[derive(Debug)]
struct Upstream(cxone::Client);

impl Collector for Upstream {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        for (name, help, value) in [
            (
                "cxguard_upstream_requests",
                "Requests sent to the CXone API (every attempt)",
                s.requests,
            ),
            (
                "cxguard_upstream_retries",
                "Attempts to the CXone API that were retries",
                s.retries,
            ),
            (
                "cxguard_upstream_rate_limited",
                "429 responses from the CXone API",
                s.rate_limited,
            ),
            (
                "cxguard_upstream_token_requests",
                "Requests to the token endpoint (token refreshes)",
                s.token_requests,
            ),
        ] {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Metrics reading the counters of `client` too.
    pub fn new(client: cxone::Client) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let links = Family::<OutcomeLabels, Counter>::default();
        let kms_callbacks = Family::<OutcomeLabels, Counter>::default();
        let subjects = Family::<OutcomeLabels, Counter>::default();
        let subject_queue = Gauge::default();
        registry.register(
            "cxguard_http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "cxguard_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        registry.register(
            "cxguard_identity_links",
            "Identity links by outcome (linked, invalid, unknown_guest, upstream_failed, audit_failed)",
            links.clone(),
        );
        registry.register(
            "cxguard_kms_callbacks",
            "KMS callbacks by outcome (verified, repeat, not_ours, wrong_algorithm, invalid, unknown_token)",
            kms_callbacks.clone(),
        );
        registry.register(
            "cxguard_subject_erasures",
            "Subject erasure requests by outcome (accepted, repeated, invalid, queue_full) and jobs by outcome (erased, failed)",
            subjects.clone(),
        );
        registry.register(
            "cxguard_subject_erasures_queued",
            "Subject erasures queued or running in this process",
            subject_queue.clone(),
        );
        registry.register_collector(Box::new(Upstream(client)));
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            links,
            kms_callbacks,
            subjects,
            subject_queue,
        })
    }

    /// Counts one link with `outcome`.
    pub fn link(&self, outcome: &'static str) {
        self.links.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts one KMS callback with `outcome`.
    pub fn kms(&self, outcome: &'static str) {
        self.kms_callbacks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one subject erasure request or job with `outcome`.
    pub fn subject(&self, outcome: &'static str) {
        self.subjects
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
