//! The real surface's state (`spec/cxone-real.md`): its seeded tenant, its own tokens,
//! run-time settings and counters. Its routes are in `crate::real`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::lock;
use crate::realdata;

/// A token the real surface issued.
pub(crate) struct Issued {
    pub expires_at: Instant,
}

/// What the real surface knows besides its seeded data.
pub(crate) struct RealState {
    pub tenant: Mutex<realdata::Tenant>,
    pub key: ed25519_dalek::SigningKey,
    pub tokens: Mutex<HashMap<String, Issued>>,
    /// refresh token → (client id, access key id)
    pub refresh: Mutex<HashMap<String, (String, String)>>,
    pub settings: Mutex<Settings>,
    /// DFO reads in the current hour window: (window start, count).
    pub dfo_window: Mutex<(Instant, u64)>,
    /// DFO writes in the current hour window, every case together.
    /// The tenant's update bucket: its level and when it was last refilled.
    pub dfo_writes: Mutex<(f64, Instant)>,
    /// Per case: its bucket's level and when it was last filled.
    pub dfo_cases: Mutex<HashMap<String, (f64, Instant)>>,
    pub counters: Counters,
}

/// Run-time settings of the real surface (`PUT /_control/config`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Settings {
    /// Multiplies the published DFO budgets (tests make them small).
    pub dfo_budget_scale: f64,
    /// Share of DFO reads answered 429 (no `Retry-After`) on purpose.
    pub dfo_throttle_share: f64,
    /// Refuse grants with keys created through the API (a test's failed verification).
    pub refuse_created_keys: bool,
    /// How long after a privacy erasure the completed contacts' addresses are rewritten
    /// (the platform erasure is asynchronous, spec-real §5).
    pub erasure_delay_ms: u64,
    /// How long each phase of a data-policy run lasts (SEARCHING, APPLYING_ACTION).
    pub policy_run_ms: u64,
    /// The evidence route answers a redirect (a test of a client that follows none).
    pub evidence_redirect: bool,
    /// The presigned URL handed out instead of the emulator's own.
    pub evidence_url: Option<String>,
}

/// What the real surface counted.
#[derive(Default)]
pub(crate) struct Counters {
    /// API and UserHub requests (token routes excluded).
    pub requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unauthorized: AtomicU64,
    /// Requests that carried a token of the other surface (either way).
    pub cross_surface_tokens: AtomicU64,
    pub dfo_reads: AtomicU64,
    /// DFO write requests, accepted or throttled.
    pub dfo_writes: AtomicU64,
}

impl RealState {
    pub(crate) fn new(seed: u64, dfo_budget_scale: f64, access_key: (&str, &str)) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let key_seed: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(format!("jwt-key:{seed}").as_bytes()).into()
        };
        RealState {
            tenant: Mutex::new(realdata::Tenant::seeded(seed, now, access_key)),
            key: ed25519_dalek::SigningKey::from_bytes(&key_seed),
            tokens: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            settings: Mutex::new(Settings {
                dfo_budget_scale,
                dfo_throttle_share: 0.0,
                refuse_created_keys: false,
                erasure_delay_ms: 50,
                policy_run_ms: 300,
                evidence_redirect: false,
                evidence_url: None,
            }),
            dfo_window: Mutex::new((Instant::now(), 0)),
            dfo_writes: Mutex::new((f64::MAX, Instant::now())),
            dfo_cases: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// Whether `token` is one this surface issued (valid or not).
    pub(crate) fn knows(&self, token: &str) -> bool {
        lock(&self.tokens).contains_key(token)
    }
}
