//! Standard Webhooks signing: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` holding space-separated `v1,<base64 HMAC-SHA256>` over
//! `id.timestamp.body`, with `whsec_<base64>` secrets of 24 to 64 bytes. Several secrets
//! sign at once while one is being rotated; a receiver accepts any that matches.
//!
//! `verify` is the receiver's side, used by tests and offered to users' receivers: it
//! compares in constant time (`hmac`'s `verify_slice`), rejects empty or truncated
//! signatures, and refuses timestamps outside the tolerance.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// A `whsec_…` secret. Its bytes never leave this type except into the HMAC.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the decoded secret must be 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let b64 = text.trim().strip_prefix("whsec_").ok_or_else(|| {
            Error::Config("a webhook secret starts with whsec_ followed by base64".into())
        })?;
        let bytes = B64.decode(b64).map_err(|_| {
            Error::Config("the webhook secret after whsec_ is not valid base64".into())
        })?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(Error::Config(format!(
                "a webhook secret is 24 to 64 bytes; this one is {}",
                bytes.len()
            )));
        }
        Ok(WebhookSecret(SecretBox::new(Box::new(bytes))))
    }

    /// A new random secret, as `whsec_…` text (for `cxguard outbox new-secret`).
    pub fn generate_text() -> Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Config(format!("the OS random generator failed: {e}")))?;
        Ok(format!("whsec_{}", B64.encode(bytes)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(self.0.expose_secret()).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64>` for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            B64.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }
}

/// The `webhook-signature` header value: one `v1,…` entry per secret.
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a receiver refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// `webhook-timestamp` is too far from now (replay protection).
    #[error("webhook-timestamp is {0} s away from now, outside the tolerance")]
    StaleTimestamp(i64),
    /// No signature matches the secret.
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Verifies a received message against any of `secrets`.
pub fn verify(
    secrets: &[WebhookSecret],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts_text = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signature = signature.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // Saturating: a timestamp of i64::MIN must be refused as stale, not overflow.
    let skew = now.saturating_sub(ts);
    if skew.saturating_abs() > tolerance_secs {
        return Err(VerifyError::StaleTimestamp(skew));
    }
    for entry in signature.split(' ') {
        let Some(b64) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = B64.decode(b64) else { continue };
        if sig.len() != 32 {
            continue;
        }
        for secret in secrets {
            if secret.mac(id, ts, body).verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification.
        let s = secret();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_empty_truncated_wrong_and_stale_signatures() {
        let s = secret();
        let body = b"{}";
        let good = s.sign("msg_1", 1000, body);
        let ok = |sig: &str, now: i64| {
            verify(
                &[secret()],
                Some("msg_1"),
                Some("1000"),
                Some(sig),
                body,
                now,
                300,
            )
        };
        assert_eq!(ok(&good, 1000), Ok(()));
        assert_eq!(ok("v1,", 1000), Err(VerifyError::NoMatch), "empty");
        assert_eq!(
            ok(&good[..good.len() - 8], 1000),
            Err(VerifyError::NoMatch),
            "truncated"
        );
        let other = WebhookSecret::parse(&WebhookSecret::generate_text().unwrap()).unwrap();
        assert_eq!(
            ok(&other.sign("msg_1", 1000, body), 1000),
            Err(VerifyError::NoMatch),
            "wrong secret"
        );
        assert_eq!(
            ok(&s.sign("msg_1", 1000, b"{\"x\":1}"), 1000),
            Err(VerifyError::NoMatch),
            "other body"
        );
        assert_eq!(
            ok(&good, 1000 + 301),
            Err(VerifyError::StaleTimestamp(301)),
            "stale"
        );
        assert_eq!(
            ok(&good, 1000 - 301),
            Err(VerifyError::StaleTimestamp(-301)),
            "from the future"
        );
        // Regression: extreme timestamps overflowed `now - ts` and panicked.
        for (ts, now) in [(i64::MIN, 1000), (i64::MAX, -1000), (i64::MIN, i64::MAX)] {
            let r = verify(
                std::slice::from_ref(&s),
                Some("msg_1"),
                Some(&ts.to_string()),
                Some(&good),
                body,
                now,
                300,
            );
            assert!(matches!(r, Err(VerifyError::StaleTimestamp(_))), "{r:?}");
        }
        assert_eq!(
            verify(
                &[secret()],
                None,
                Some("1000"),
                Some(&good),
                body,
                1000,
                300
            ),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
        // Several signatures at once: any match is enough.
        let both = format!("{} {}", other.sign("msg_1", 1000, body), good);
        assert_eq!(ok(&both, 1000), Ok(()));
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err(), "too short");
        assert_eq!(format!("{:?}", secret()), "WebhookSecret([REDACTED])");
    }
}
