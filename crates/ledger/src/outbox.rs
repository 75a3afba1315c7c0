//! Webhook events waiting to be delivered. An event is written in the same transaction
//! as the work it reports, so it exists if and only if the work was recorded. Its body is
//! `{"type","timestamp","data"}` with `data` built from typed [`Details`] — never a secret
//! or raw personal data.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::details::Details;
use crate::error::{Error, Result};

/// Which downstream system an event is for; each has its own endpoint and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The secret vault (secret rotated or rolled back).
    Vault,
    /// The consent platform (contact anonymized).
    Consent,
    /// The KMS (column encryption verified).
    Kms,
    /// The WAF (webchat policy deployed).
    Waf,
    /// A witness of the audit chain (`audit.head`: each signed checkpoint).
    Witness,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Vault,
        EventKind::Consent,
        EventKind::Kms,
        EventKind::Waf,
        EventKind::Witness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Vault => "vault",
            EventKind::Consent => "consent",
            EventKind::Kms => "kms",
            EventKind::Waf => "waf",
            EventKind::Witness => "witness",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown event kind {s:?}: vault, consent, kms, waf or witness"
                ))
            })
    }
}

/// An event to enqueue.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The event type as the receiver sees it (`secret_rotation`, `contact.anonymized`).
    pub event_type: &'static str,
    pub data: Details,
}

impl NewEvent {
    pub fn new(kind: EventKind, event_type: &'static str, data: Details) -> Self {
        NewEvent {
            kind,
            event_type,
            data,
        }
    }

    /// The body as sent: `{"type","timestamp","data"}`.
    pub(crate) fn payload(&self, timestamp: &str) -> String {
        json!({"type": self.event_type, "timestamp": timestamp, "data": self.data.to_value()})
            .to_string()
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEvent {
    pub id: String,
    pub kind: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// An event leased to one deliverer until `lease_until_ms`.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub token: String,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Delivered,
    /// Failed; try again at `retry_at_ms`, or give up (dead letter) when `None`.
    Failed {
        error: String,
        retry_at_ms: Option<i64>,
    },
    /// No endpoint is configured for this kind: recorded, not lost.
    Skipped {
        reason: String,
    },
}

/// Counts per status, for `outbox status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub skipped: u64,
    /// Pending events per kind.
    pub pending_by_kind: std::collections::BTreeMap<String, u64>,
    pub oldest_pending: Option<String>,
}

/// The Svix schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub fn default_schedule() -> Vec<Duration> {
    [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}
