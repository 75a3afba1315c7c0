//! guard: cxguard's protections. Each reads top to bottom as validate (pure) → plan
//! (plain data) → apply (the only place that writes to the tenant, journal first).
//!
//! - [`anonymize`]: pseudonymize, mask, encrypt or erase personal data in contacts.
//! - [`identity`]: link web-messaging guests to a keyed pseudonym of their email/phone.
//! - [`rotate`]: two-phase rotation of an Integration secret, dependents verified,
//!   automatic rollback; [`rotate::secrets`] holds its pure checks (value formats, age policy).
//!
//! Shared pieces: [`job`] (the runner every protection's apply is written on: journal →
//! call → settle → audit → event, and the common report), [`keys`] (key material named by id, never logged) and [`pseudonym`]
//! (normalization and the keyed hash, one person → one pseudonym everywhere).

#![warn(missing_docs)]

pub mod accesskeys;
pub mod anonymize;
pub mod audit;
pub mod digital;
pub mod encrypt;
mod histogram;
pub mod identity;
pub mod inventory;
pub mod job;
pub mod keys;
pub mod lease;
pub mod parsing;
pub mod policies;
pub mod posture;
pub mod pseudonym;
pub mod rotate;
pub mod subject;
pub mod values;
pub mod webchat;

/// A crash point for tests: with `CXGUARD_FAILPOINT=name` in the environment, the
/// process aborts here, as a SIGKILL would (no cleanup, no destructor), so a test can
/// show that a rerun finishes the job. Unset, it costs one environment read.
pub fn failpoint(name: &str) {
    if std::env::var("CXGUARD_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// An error of a protection, by cause, kept apart from how a caller shows it (the CLI
/// maps each variant to an exit code in one place).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not validate (a policy, a selection, a value), or asks for what
    /// the journal's state forbids; nothing was done.
    #[error("{0}")]
    Invalid(String),
    /// Someone else changed the resource first (a 409 on a compare-and-swap); nothing of
    /// ours was applied, and retrying with the same view would be wrong.
    #[error("{0}")]
    Conflict(String),
    /// The job is being run by another process (it holds the job's lease); nothing was
    /// done here. Try again later.
    #[error("{0}")]
    Busy(String),
    /// The work ran and did not succeed (a rollback that left dependents failing).
    #[error("{0}")]
    Failed(String),
    /// A system cxguard delivers to (OpenBao/Vault) could not be reached, refused its
    /// token, or was written by someone else first; nothing after it was done.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside cxguard or its runtime (a task that panicked, the OS random
    /// generator failing): not the input's fault, and worth a bug report.
    #[error("{0}")]
    Internal(String),
    /// The tenant refused or failed.
    #[error(transparent)]
    Api(#[from] cxone::Error),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
}

impl Error {
    /// What a log line may say of this error: for the tenant's errors, the stage and
    /// status only ([`cxone::Error::summary`]), never its words, which may echo an
    /// identifier; the others are cxguard's own words.
    pub fn summary(&self) -> String {
        match self {
            Error::Api(e) => e.summary(),
            other => other.to_string(),
        }
    }
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SHA-256 of `s` as 64 lowercase hex characters: how values are identified without
/// being kept (secret hashes, ciphertext records, policy and job fingerprints).
pub fn sha256_hex(s: &str) -> String {
    sha256_hex_bytes(s.as_bytes())
}

/// SHA-256 of `bytes` as 64 lowercase hex characters (files written, as in a manifest).
pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    ledger::hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_hex_is_the_standard_digest_in_lowercase_hex() {
        assert_eq!(
            super::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
