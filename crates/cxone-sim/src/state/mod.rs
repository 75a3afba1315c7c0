//! The emulator's state: tenant data behind one lock per API surface, the token store,
//! run-time settings, idempotency records and the counters the control API reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::SimConfig;
use crate::data::{self, ContactRecord, Credentials};
use crate::problem::Reply;
use crate::ratelimit::Bucket;

pub(crate) mod contacts;
pub(crate) mod faults;
pub(crate) mod real;
pub(crate) mod widgets;

/// Locks a mutex, recovering the data if a panicking holder poisoned it: the emulator
/// keeps serving rather than failing every later request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Settings that `PUT /_control/config` can change while the emulator runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Runtime {
    pub fault_rate: f64,
    pub reset_rate: f64,
    pub fault_retry_after: Option<u64>,
    pub latency_ms: u64,
    pub token_ttl_secs: u64,
    pub rate_limit: Option<u32>,
    pub webchat_rate_limit: Option<u32>,
}

pub(crate) struct TokenInfo {
    pub scopes: HashSet<String>,
    pub expires_at: Instant,
}

#[derive(Default)]
pub(crate) struct Auth {
    pub tokens: HashMap<String, TokenInfo>,
    /// refresh token → (client id, access key id, scopes)
    pub refresh: HashMap<String, (String, String, Vec<String>)>,
}

pub(crate) struct Contacts {
    pub seed: u64,
    pub count: u32,
    /// `overlay[i]` holds contact `i` once it has changed; `None` means "as seeded".
    pub overlay: Vec<Option<Box<ContactRecord>>>,
}

impl Contacts {
    pub(crate) fn get(&self, index: u32) -> ContactRecord {
        match &self.overlay[index as usize] {
            Some(c) => (**c).clone(),
            None => data::seeded_contact(self.seed, index),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub id: String,
    pub name: String,
    pub format: String,
    pub description: String,
    pub version: u64,
    pub value_sha256: String,
    pub updated_at: i64,
}

impl Secret {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "format": self.format,
            "description": self.description, "version": self.version,
            "valueSha256": self.value_sha256,
            "updatedAt": data::rfc3339(data::ts(self.updated_at)),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DataAction {
    pub id: String,
    pub name: String,
    pub secret_ids: Vec<String>,
    pub status: &'static str,
    /// secret id → (version, value hash) the action was last compiled against.
    pub compiled: BTreeMap<String, (u64, String)>,
}

impl DataAction {
    pub(crate) fn to_json(&self) -> Value {
        let versions: serde_json::Map<String, Value> = self
            .compiled
            .iter()
            .map(|(k, (v, _))| (k.clone(), json!(v)))
            .collect();
        json!({
            "id": self.id, "name": self.name, "secretIds": self.secret_ids,
            "status": self.status, "compiledSecretVersions": versions,
        })
    }
}

#[derive(Default)]
pub(crate) struct Integration {
    pub secrets: BTreeMap<String, Secret>,
    pub actions: BTreeMap<String, DataAction>,
    /// (data action id or `*` for every action, value hash) pairs that a test rejects.
    pub rejections: HashSet<(String, String)>,
}

impl Integration {
    pub(crate) fn rejects(&self, action: &str, sha: &str) -> bool {
        self.rejections
            .contains(&(action.to_string(), sha.to_string()))
            || self
                .rejections
                .contains(&("*".to_string(), sha.to_string()))
    }
}

pub(crate) struct DataStore {
    pub table: Value,
    pub indexes: Value,
    pub key_version: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attribute {
    pub id: String,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub created_timestamp: i64,
    pub updated_timestamp: i64,
}

#[derive(Default)]
pub(crate) struct Guests {
    pub guests: BTreeMap<String, Vec<Attribute>>,
    pub created: u64,
}

/// What an idempotency key first answered.
pub(crate) struct IdempotentRecord {
    pub fingerprint: String,
    pub reply: Reply,
}

/// Counters for the control API. Plain atomics: reading them never slows the API.
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub rate_limited: AtomicU64,
    pub faults: AtomicU64,
    pub resets: AtomicU64,
    pub idempotent_replays: AtomicU64,
    pub unauthorized: AtomicU64,
}

pub(crate) struct SimState {
    pub seed: u64,
    pub credentials: Credentials,
    pub started: Instant,
    pub runtime: RwLock<Runtime>,
    pub bucket: Mutex<Option<Bucket>>,
    pub webchat_bucket: Mutex<Option<Bucket>>,
    /// Scripted faults for tests: statuses the next API requests get, in order.
    pub fail_next: Mutex<std::collections::VecDeque<u16>>,
    /// Scripted resets for tests: the next this-many API requests are reset after acting.
    pub reset_next: Mutex<u32>,
    /// Concurrent edits for tests: contact id → merge patch another user applies just
    /// before the next PATCH of that contact is checked.
    pub race_edits: Mutex<HashMap<String, Value>>,
    pub rng: Mutex<fastrand::Rng>,
    pub auth: Mutex<Auth>,
    pub contacts: Mutex<Contacts>,
    pub integration: Mutex<Integration>,
    pub datastore: Mutex<DataStore>,
    pub guests: Mutex<Guests>,
    pub widgets: Mutex<BTreeMap<String, Value>>,
    pub idempotency: Mutex<HashMap<String, IdempotentRecord>>,
    pub counters: Counters,
    /// "kind/id" → number of real changes.
    pub mutations: Mutex<BTreeMap<String, u64>>,
    /// "METHOD /route/pattern" → requests that reached the route (after the 404 check).
    pub route_hits: Mutex<BTreeMap<&'static str, u64>>,
    /// grant type → token requests.
    pub grants: Mutex<BTreeMap<String, u64>>,
    /// KMS callbacks the emulator made: (url, payload, outcome).
    pub kms_callbacks: Arc<Mutex<Vec<Value>>>,
    /// GDPR erasure requests received (spec §9), in order.
    pub erasures: Mutex<Vec<Value>>,
    pub http: reqwest::Client,
    /// CXone's real surface: its seeded tenant, tokens and counters.
    pub real: real::RealState,
}

impl SimState {
    pub(crate) fn new(config: &SimConfig) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let seed = config.seed;
        let integration = seeded_integration(seed, now);
        let guests = seeded_guests(config.guests, now * 1000);
        let widgets = data::seeded_widgets()
            .into_iter()
            .map(|w| (w["id"].as_str().unwrap_or_default().to_string(), w))
            .collect();
        SimState {
            seed,
            credentials: Credentials::for_seed(seed),
            started: Instant::now(),
            runtime: RwLock::new(Runtime {
                fault_rate: config.fault_rate,
                reset_rate: config.reset_rate,
                fault_retry_after: config.fault_retry_after,
                latency_ms: config.latency.as_millis() as u64,
                token_ttl_secs: config.token_ttl.as_secs().max(1),
                rate_limit: config.rate_limit,
                webchat_rate_limit: config.webchat_rate_limit,
            }),
            bucket: Mutex::new(config.rate_limit.map(Bucket::new)),
            webchat_bucket: Mutex::new(config.webchat_rate_limit.map(Bucket::new)),
            fail_next: Mutex::new(std::collections::VecDeque::new()),
            reset_next: Mutex::new(0),
            race_edits: Mutex::new(HashMap::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            auth: Mutex::new(Auth::default()),
            contacts: Mutex::new(Contacts {
                seed,
                count: config.contacts,
                overlay: (0..=config.contacts).map(|_| None).collect(),
            }),
            integration: Mutex::new(integration),
            datastore: Mutex::new(DataStore {
                table: data::seeded_table(),
                indexes: data::seeded_indexes(),
                key_version: 1,
            }),
            guests: Mutex::new(guests),
            widgets: Mutex::new(widgets),
            idempotency: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            mutations: Mutex::new(BTreeMap::new()),
            route_hits: Mutex::new(BTreeMap::new()),
            grants: Mutex::new(BTreeMap::new()),
            kms_callbacks: Arc::new(Mutex::new(Vec::new())),
            erasures: Mutex::new(Vec::new()),
            real: real::RealState::new(
                seed,
                config.dfo_budget_scale,
                (
                    &Credentials::for_seed(seed).cxone_access_key_id,
                    &Credentials::for_seed(seed).cxone_access_key_secret,
                ),
            ),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn runtime(&self) -> Runtime {
        self.runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn mutated(&self, kind: &str, id: &str) {
        *lock(&self.mutations)
            .entry(format!("{kind}/{id}"))
            .or_insert(0) += 1;
    }

    pub(crate) fn roll(&self) -> f64 {
        lock(&self.rng).f64()
    }

    pub(crate) fn random_token(&self) -> String {
        let mut rng = lock(&self.rng);
        (0..4).map(|_| format!("{:016x}", rng.u64(..))).collect()
    }
}

/// The seeded secrets and the Data Actions compiled against them.
fn seeded_integration(seed: u64, now: i64) -> Integration {
    let mut integration = Integration::default();
    for s in data::SECRETS {
        let value = data::seeded_secret_value(seed, s.id).unwrap_or_default();
        integration.secrets.insert(
            s.id.to_string(),
            Secret {
                id: s.id.into(),
                name: s.name.into(),
                format: s.format.into(),
                description: s.description.into(),
                version: 1,
                value_sha256: data::sha256_hex(value.as_bytes()),
                updated_at: now - s.age_days * 86_400,
            },
        );
    }
    for a in data::ACTIONS {
        let compiled = a
            .secrets
            .iter()
            .map(|sid| {
                let s = &integration.secrets[*sid];
                (sid.to_string(), (s.version, s.value_sha256.clone()))
            })
            .collect();
        integration.actions.insert(
            a.id.to_string(),
            DataAction {
                id: a.id.into(),
                name: a.name.into(),
                secret_ids: a.secrets.iter().map(|s| s.to_string()).collect(),
                status: "compiled",
                compiled,
            },
        );
    }
    integration
}

/// The seeded guests; every fifth has a preferred channel.
fn seeded_guests(count: u32, now_ms: i64) -> Guests {
    let mut guests = Guests::default();
    for i in 1..=count {
        let mut attrs = Vec::new();
        if i % 5 == 0 {
            attrs.push(Attribute {
                id: "preferred_channel".into(),
                value: if i % 2 == 0 {
                    "chat".into()
                } else {
                    "sms".into()
                },
                kind: "string",
                created_timestamp: now_ms - i64::from(i) * 60_000,
                updated_timestamp: now_ms - i64::from(i) * 60_000,
            });
        }
        guests.guests.insert(data::guest_id(i), attrs);
    }
    guests
}
