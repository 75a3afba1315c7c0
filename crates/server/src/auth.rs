//! Who may call: bearer API keys, stored as SHA-256 digests (the service never holds a
//! key itself), compared in constant time, each with its own rate limit.
//!
//! Keys are 32 random bytes (`cxg_` + base64url), so a plain SHA-256 is enough to store
//! them: there is no dictionary to try, unlike passwords.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use base64::Engine as _;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// What every API key starts with, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "cxg_";

/// An API key as configured: its id (what logs and the audit record) and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id, for logs and the audit trail (never the key).
    pub id: String,
    /// SHA-256 of the whole key, 64 lowercase hex characters.
    pub sha256: String,
}

/// Requests per second per key, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above that.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 100,
            burst: 200,
        }
    }
}

/// A new API key and the digest to put in the configuration.
pub fn generate() -> Result<(String, String), String> {
    generate_with_prefix(KEY_PREFIX)
}

/// 32 random bytes as `prefix` + base64url, and their SHA-256 as hex.
pub(crate) fn generate_with_prefix(prefix: &str) -> Result<(String, String), String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("the OS random generator failed: {e}"))?;
    let key = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    );
    let digest = guard::sha256_hex(&key);
    Ok((key, digest))
}

/// A configured SHA-256: 64 hex characters, either case, surrounding space ignored.
pub(crate) fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let hex = text.trim().to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (j, d) in digest.iter_mut().enumerate() {
        *d = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).ok()?;
    }
    Some(digest)
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

struct Entry {
    id: Arc<str>,
    digest: [u8; 32],
    limiter: Limiter,
}

/// The configured keys, ready to check.
pub struct Keys {
    entries: Vec<Entry>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &*e.id))
            .finish()
    }
}

impl Keys {
    /// Validates the configured keys: ids unique identifiers, digests 64 hex characters.
    pub fn new(keys: &[ApiKey], rate: RateLimit) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no API keys are configured: callers could not authenticate".into());
        }
        let per_second = NonZeroU32::new(rate.per_second)
            .ok_or("rate_per_key: must be at least 1 request per second")?;
        let burst = NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut seen = HashMap::new();
        let mut entries = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            ledger::details::check_identifier("api key id", &k.id)
                .map_err(|e| format!("api_keys[{i}].id: {e}"))?;
            if seen.insert(k.id.clone(), i).is_some() {
                return Err(format!("api_keys[{i}].id: {:?} is used twice", k.id));
            }
            let digest = parse_digest(&k.sha256).ok_or_else(|| {
                format!(
                    "api_keys[{i}].sha256: must be the 64 hex characters that `cxguard keys api` prints"
                )
            })?;
            entries.push(Entry {
                id: Arc::from(k.id.as_str()),
                digest,
                limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            });
        }
        Ok(Keys {
            entries,
            clock: DefaultClock::default(),
        })
    }

    /// The key id an `Authorization` header authenticates, after its rate limit.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Arc<str>, Problem> {
        let Some(value) = authorization else {
            return Err(Problem::unauthorized(
                "send an API key: Authorization: Bearer cxg_…",
            ));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be: Bearer <API key>")
            })?;
        let presented: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        // Compare with every key, without stopping at a match, so timing says nothing.
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&presented)) {
                found = Some(e);
            }
        }
        let entry = found.ok_or_else(|| Problem::unauthorized("the API key is not valid"))?;
        if let Err(not_until) = entry.limiter.check() {
            return Err(Problem::rate_limited(
                not_until.wait_time_from(self.clock.now()),
            ));
        }
        Ok(entry.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_authenticates_and_nothing_else_does() {
        let (key, digest) = generate().unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() > 40);
        let keys = Keys::new(
            &[ApiKey {
                id: "web-1".into(),
                sha256: digest,
            }],
            RateLimit::default(),
        )
        .unwrap();
        let header = format!("Bearer {key}");
        assert_eq!(&*keys.check(Some(header.as_bytes())).unwrap(), "web-1");
        for bad in [
            None,
            Some(key.as_bytes()),
            Some(b"Bearer cxg_wrong".as_slice()),
            Some(b"Basic abc".as_slice()),
        ] {
            assert_eq!(keys.check(bad).unwrap_err().status, 401);
        }
    }

    #[test]
    fn bad_configuration_is_refused_with_the_field() {
        let ok = ApiKey {
            id: "a".into(),
            sha256: "0".repeat(64),
        };
        assert!(Keys::new(&[], RateLimit::default()).is_err());
        let e = Keys::new(&[ok.clone(), ok.clone()], RateLimit::default()).unwrap_err();
        assert!(e.contains("api_keys[1].id"), "{e}");
        let short = ApiKey {
            id: "b".into(),
            sha256: "abc".into(),
        };
        let e = Keys::new(&[short], RateLimit::default()).unwrap_err();
        assert!(e.contains("api_keys[0].sha256"), "{e}");
    }
}
