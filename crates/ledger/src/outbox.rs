//! Webhook events waiting to be delivered. An event is written in the same transaction
//! as the work it reports, so it exists if and only if the work was recorded. Its body is
//! `{"type","timestamp","data"}` with `data` built from typed [`Details`] — never a secret
//! or raw personal data.

use sqlx::Row;

use crate::store::{begin_write, on_backend};
use crate::{Ledger, now, now_ms, random_hex};

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
    /// Every kind.
    pub const ALL: [EventKind; 5] = [
        EventKind::Vault,
        EventKind::Consent,
        EventKind::Kms,
        EventKind::Waf,
        EventKind::Witness,
    ];

    /// The name used in configuration and events.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Vault => "vault",
            EventKind::Consent => "consent",
            EventKind::Kms => "kms",
            EventKind::Waf => "waf",
            EventKind::Witness => "witness",
        }
    }

    /// A kind from its name.
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
    /// Which system it is for.
    pub kind: EventKind,
    /// The event type as the receiver sees it (`secret_rotation`, `contact.anonymized`).
    pub event_type: &'static str,
    /// Its data, as typed details.
    pub data: Details,
    /// The key of `data` that differs from event to event of a job (`contact_id`): the
    /// rest is stored once, shared (see [`NewEvent::with_subject`]).
    pub subject: Option<&'static str>,
}

impl NewEvent {
    /// An event of `event_type` for `kind`.
    pub fn new(kind: EventKind, event_type: &'static str, data: Details) -> Self {
        NewEvent {
            kind,
            event_type,
            data,
            subject: None,
        }
    }

    /// Names the key of `data` that identifies what this one event is about, where a
    /// job sends many events alike but for it (a contact anonymized, per contact). The
    /// rest of the body is then stored once for all of them: the body sent is the same,
    /// byte for byte.
    pub fn with_subject(mut self, key: &'static str) -> Self {
        self.subject = Some(key);
        self
    }

    /// How it is stored: the shared text and this event's value of the subject key, or
    /// `None` when it is stored whole.
    pub(crate) fn shared(&self) -> Option<(String, String)> {
        self.data.split_off(self.subject?)
    }

    /// The body as sent: `{"type","timestamp","data"}`.
    pub fn payload(&self, timestamp: &str) -> String {
        json!({"type": self.event_type, "timestamp": timestamp, "data": self.data.to_value()})
            .to_string()
    }
}

/// An event's body from its stored parts: whole (`payload`), or the text it shares with
/// its job's other events and its own subject — the same bytes [`NewEvent::payload`]
/// wrote for it.
pub(crate) fn body(
    event_type: &str,
    created_at: &str,
    payload: String,
    shared: Option<&str>,
    subject: Option<String>,
) -> Result<String> {
    let (Some(shared), Some(subject)) = (shared, subject) else {
        return Ok(payload);
    };
    let bad = || Error::Invalid("an outbox event's shared body is malformed".into());
    let v: serde_json::Value = serde_json::from_str(shared).map_err(|_| bad())?;
    let key = v["key"].as_str().ok_or_else(bad)?;
    let rest = v["data"].as_object().ok_or_else(bad)?;
    // In key order, as Details writes them.
    let mut data: std::collections::BTreeMap<&str, serde_json::Value> =
        rest.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    data.insert(key, serde_json::Value::String(subject));
    let data: serde_json::Map<String, serde_json::Value> =
        data.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Ok(json!({"type": event_type, "timestamp": created_at, "data": data}).to_string())
}

/// Why an event of `kind` was not sent: it has no endpoint. Not stored per event (it
/// is the same for all of a kind); shown for every skipped event.
pub fn skip_reason(kind: &str) -> String {
    format!("no endpoint configured for {kind} events ([webhooks.{kind}] url)")
}

/// The stored last error, or for a skipped event why it was skipped.
fn shown_error(status: &str, kind: &str, error: Option<String>) -> Option<String> {
    match (status, error) {
        ("skipped", None) => Some(skip_reason(kind)),
        (_, e) => e,
    }
}

/// Events sharing endpoint, type, status and last error.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxGroup {
    /// The endpoint kind (`vault`, `consent`, `kms`, `waf`, `witness`).
    pub kind: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub status: String,
    /// The last error the group's events share.
    pub last_error: Option<String>,
    /// Events in the group.
    pub count: u64,
    /// When its oldest event was enqueued.
    pub oldest: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEvent {
    /// Its id (`webhook-id`).
    pub id: String,
    /// Which system it is for.
    pub kind: String,
    /// Its type (`contact.anonymized`).
    pub event_type: String,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it is next due, in Unix milliseconds.
    pub next_attempt_ms: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: String,
    /// When it was delivered.
    pub delivered_at: Option<String>,
}

/// An event leased to one deliverer until `lease_until_ms`.
#[derive(Debug, Clone)]
pub struct Leased {
    /// Its id.
    pub id: String,
    /// Which system it is for.
    pub kind: String,
    /// Its body, as it will be signed and sent.
    pub payload: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The lease token; a settlement must present it.
    pub token: String,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The endpoint answered 2xx.
    Delivered,
    /// Failed; try again at `retry_at_ms`, or give up (dead letter) when `None`.
    Failed {
        /// Why.
        error: String,
        /// When to try again.
        retry_at_ms: Option<i64>,
    },
    /// No endpoint is configured for this kind: recorded, not lost (why is
    /// [`skip_reason`]).
    Skipped,
}

/// Counts per status, for `outbox status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    /// Events waiting.
    pub pending: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Events given up on.
    pub dead: u64,
    /// Events with no endpoint.
    pub skipped: u64,
    /// Pending events per kind.
    pub pending_by_kind: std::collections::BTreeMap<String, u64>,
    /// When the oldest waiting event was enqueued.
    pub oldest_pending: Option<String>,
}

/// The Svix schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub fn default_schedule() -> Vec<Duration> {
    [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Ledger {
    /// An event's webhook id: the one stored (events enqueued before schema 6), or
    /// `msg_<tag>_<seq>` with this ledger's random tag, which no other ledger shares.
    pub(crate) fn webhook_id(&self, seq: i64, stored: Option<String>) -> String {
        stored.unwrap_or_else(|| format!("msg_{}_{seq}", self.outbox_tag))
    }

    /// The `seq` of the event with webhook id `id` (-1, which no event has, if none).
    async fn event_seq(&self, id: &str) -> Result<i64> {
        let ours = id
            .strip_prefix("msg_")
            .and_then(|s| s.strip_prefix(&*self.outbox_tag))
            .and_then(|s| s.strip_prefix('_'))
            .and_then(|s| s.parse::<i64>().ok());
        if let Some(seq) = ours {
            return Ok(seq);
        }
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT seq FROM outbox WHERE id = $1").bind(id).fetch_optional(p).await?;
            Ok(r.map(|r| r.try_get::<i64, _>("seq")).transpose()?.unwrap_or(-1))
        })
    }

    /// Leases up to `n` due events for `lease_ms`. Two deliverers never hold the same
    /// event: PostgreSQL skips rows another transaction has locked, SQLite serialises
    /// writers, and a lease that expires (a deliverer died) makes the event due again.
    pub async fn lease_due(&self, n: i64, lease_ms: i64) -> Result<Vec<Leased>> {
        let now = now_ms();
        let pg = self.pool.is_postgres();
        on_backend!(&self.pool, p => {
            let mut tx = begin_write!(self.pool, p);
            let select = if pg {
                "SELECT o.seq, o.id, o.kind, o.event_type, o.payload, o.attempts, o.created_at, o.subject, t.details AS shared FROM outbox o LEFT JOIN audit_details t ON t.id = o.template_id WHERE o.status = 'pending' AND o.next_attempt_ms <= $1 AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $2) ORDER BY o.seq LIMIT $3 FOR UPDATE OF o SKIP LOCKED"
            } else {
                "SELECT o.seq, o.id, o.kind, o.event_type, o.payload, o.attempts, o.created_at, o.subject, t.details AS shared FROM outbox o LEFT JOIN audit_details t ON t.id = o.template_id WHERE o.status = 'pending' AND o.next_attempt_ms <= $1 AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $2) ORDER BY o.seq LIMIT $3"
            };
            let rows = sqlx::query(select).bind(now).bind(now).bind(n).fetch_all(&mut *tx).await?;
            let mut out = Vec::new();
            for r in rows {
                let token = random_hex(8);
                let seq: i64 = r.try_get("seq")?;
                let id = self.webhook_id(seq, r.try_get("id")?);
                sqlx::query("UPDATE outbox SET lease_until_ms = $1, lease_token = $2 WHERE seq = $3")
                    .bind(now + lease_ms).bind(&token).bind(seq).execute(&mut *tx).await?;
                let payload = body(r.try_get("event_type")?, r.try_get("created_at")?, r.try_get("payload")?, r.try_get("shared")?, r.try_get("subject")?)?;
                out.push(Leased { id, kind: r.try_get("kind")?, payload, attempts: r.try_get("attempts")?, token });
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Records an attempt's result, if `token` still holds the lease (a deliverer whose
    /// lease expired does not overwrite a newer attempt). Returns whether it did.
    pub async fn settle_event(
        &self,
        id: &str,
        token: &str,
        settlement: Settlement,
    ) -> Result<bool> {
        let (status, error, next, delivered, counts) = match &settlement {
            Settlement::Delivered => ("delivered", None, None, Some(now()), true),
            Settlement::Failed {
                error,
                retry_at_ms: Some(t),
            } => ("pending", Some(error.clone()), Some(*t), None, true),
            Settlement::Failed {
                error,
                retry_at_ms: None,
            } => ("dead", Some(error.clone()), None, None, true),
            Settlement::Skipped => ("skipped", None, None, None, false),
        };
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE outbox SET status = $1, last_error = $2, next_attempt_ms = COALESCE($3, next_attempt_ms), delivered_at = $4, attempts = attempts + $5, lease_until_ms = NULL, lease_token = NULL WHERE seq = $6 AND lease_token = $7")
                .bind(status).bind(error).bind(next).bind(delivered).bind(if counts { 1i64 } else { 0 }).bind(self.event_seq(id).await?).bind(token)
                .execute(p).await?.rows_affected();
            Ok(n == 1)
        })
    }

    /// Counts by status.
    pub async fn outbox_status(&self) -> Result<OutboxStatus> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT status, kind, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status, kind").fetch_all(p).await?;
            let mut s = OutboxStatus::default();
            for r in rows {
                let n = r.try_get::<i64, _>("n")? as u64;
                let status: String = r.try_get("status")?;
                match status.as_str() {
                    "pending" => {
                        s.pending += n;
                        *s.pending_by_kind.entry(r.try_get("kind")?).or_insert(0) += n;
                        let oldest: Option<String> = r.try_get("oldest")?;
                        if oldest.is_some() && (s.oldest_pending.is_none() || oldest < s.oldest_pending) {
                            s.oldest_pending = oldest;
                        }
                    }
                    "delivered" => s.delivered += n,
                    "dead" => s.dead += n,
                    "skipped" => s.skipped += n,
                    _ => {}
                }
            }
            Ok(s)
        })
    }

    /// Events in a status (all when `None`), oldest first.
    pub async fn outbox_events(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        self.outbox_list(status, None, limit).await
    }

    /// Events in a status and of an event type (all when `None`), oldest first.
    pub async fn outbox_list(
        &self,
        status: Option<&str>,
        event_type: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        let sql = "SELECT seq, id, kind, event_type, status, attempts, next_attempt_ms, last_error, created_at, delivered_at FROM outbox WHERE ($1 = '' OR status = $2) AND ($3 = '' OR event_type = $4) ORDER BY seq LIMIT $5";
        let (st, ty) = (status.unwrap_or(""), event_type.unwrap_or(""));
        on_backend!(&self.pool, p => {
            let rows = sqlx::query(sql).bind(st).bind(st).bind(ty).bind(ty).bind(limit).fetch_all(p).await?;
            rows.iter().map(|r| {
                let (kind, status): (String, String) = (r.try_get("kind")?, r.try_get("status")?);
                Ok(OutboxEvent {
                    id: self.webhook_id(r.try_get("seq")?, r.try_get("id")?), event_type: r.try_get("event_type")?,
                    last_error: shown_error(&status, &kind, r.try_get("last_error")?), kind, status,
                    attempts: r.try_get("attempts")?, next_attempt_ms: r.try_get("next_attempt_ms")?,
                    created_at: r.try_get("created_at")?, delivered_at: r.try_get("delivered_at")?,
                })
            }).collect()
        })
    }

    /// Events grouped by endpoint kind, event type, status and last error, with counts
    /// and the oldest creation time of each group: what `outbox status` shows.
    pub async fn outbox_groups(&self) -> Result<Vec<OutboxGroup>> {
        on_backend!(&self.pool, p => {
            let rows = sqlx::query("SELECT kind, event_type, status, last_error, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY kind, event_type, status, last_error ORDER BY kind, event_type, status, last_error")
                .fetch_all(p).await?;
            rows.iter().map(|r| {
                let (kind, status): (String, String) = (r.try_get("kind")?, r.try_get("status")?);
                Ok(OutboxGroup {
                    event_type: r.try_get("event_type")?, last_error: shown_error(&status, &kind, r.try_get("last_error")?),
                    kind, status, count: r.try_get::<i64, _>("n")? as u64, oldest: r.try_get("oldest")?,
                })
            }).collect()
        })
    }

    /// The body of one event, as it is (or was) sent.
    pub async fn event_payload(&self, id: &str) -> Result<String> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT o.event_type, o.payload, o.created_at, o.subject, t.details AS shared FROM outbox o LEFT JOIN audit_details t ON t.id = o.template_id WHERE o.seq = $1")
                .bind(self.event_seq(id).await?).fetch_optional(p).await?
                .ok_or_else(|| Error::NotFound(format!("no outbox event {id}")))?;
            body(r.try_get("event_type")?, r.try_get("created_at")?, r.try_get("payload")?, r.try_get("shared")?, r.try_get("subject")?)
        })
    }

    /// Makes a dead, skipped or pending event due now with a fresh schedule.
    pub async fn retry_event(&self, id: &str) -> Result<()> {
        on_backend!(&self.pool, p => {
            let n = sqlx::query("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = $1, lease_until_ms = NULL, lease_token = NULL WHERE seq = $2 AND status <> 'delivered'")
                .bind(now_ms()).bind(self.event_seq(id).await?).execute(p).await?.rows_affected();
            if n == 1 { Ok(()) } else { Err(Error::NotFound(format!("no undelivered outbox event {id}"))) }
        })
    }

    /// Deletes delivered events; returns how many.
    pub async fn purge_delivered(&self) -> Result<u64> {
        on_backend!(&self.pool, p => {
            Ok(sqlx::query("DELETE FROM outbox WHERE status = 'delivered'").execute(p).await?.rows_affected())
        })
    }

    /// The earliest time a pending event becomes due, in Unix milliseconds.
    pub async fn next_due_ms(&self) -> Result<Option<i64>> {
        on_backend!(&self.pool, p => {
            let r = sqlx::query("SELECT MIN(CASE WHEN lease_until_ms IS NOT NULL AND lease_until_ms > next_attempt_ms THEN lease_until_ms ELSE next_attempt_ms END) AS m FROM outbox WHERE status = 'pending'")
                .fetch_one(p).await?;
            Ok(r.try_get::<Option<i64>, _>("m")?)
        })
    }
}
