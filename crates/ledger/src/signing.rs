//! The audit log's Ed25519 signing key: generated from the OS CSPRNG on first use into a
//! file of mode 0600, never overwritten, and its public half exportable so an auditor can
//! verify a ledger without the secret.
//!
//! File formats (one line of text each):
//! - secret key: `cxguard-ed25519-secret:<base64 of the 32-byte seed>`
//! - public key: `cxguard-ed25519-public:<base64 of the 32-byte key>`

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const SECRET_PREFIX: &str = "cxguard-ed25519-secret:";
const PUBLIC_PREFIX: &str = "cxguard-ed25519-public:";

fn key_id(public: &VerifyingKey) -> String {
    crate::hex(&Sha256::digest(public.as_bytes())[..8])
}

/// The secret half. Its bytes are zeroed when dropped.
pub struct AuditKey {
    signing: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::Key(format!("the OS random generator failed: {e}")))?;
        let signing = SigningKey::from_bytes(&seed);
        seed.iter_mut().for_each(|b| *b = 0);
        Ok(Self::from_signing(signing))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let key_id = key_id(&signing.verifying_key());
        AuditKey { signing, key_id }
    }

    /// Reads a key file, refusing one others can read.
    pub fn load(path: &Path) -> Result<Self> {
        // Every copy of the key's text and bytes is wiped when dropped.
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Key(format!(
                "audit signing key {}: cannot read: {e}",
                path.display()
            ))
        })?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(Error::Key(format!(
                    "audit signing key {}: mode {mode:04o} lets others read it; run chmod 600 {}",
                    path.display(),
                    path.display()
                )));
            }
        }
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            Error::Key(format!(
                "audit signing key {}: not a cxguard key file (expected {SECRET_PREFIX}…)",
                path.display()
            ))
        })?;
        let bytes = zeroize::Zeroizing::new(B64.decode(b64).map_err(|_| {
            Error::Key(format!(
                "audit signing key {}: not valid base64",
                path.display()
            ))
        })?);
        let seed: zeroize::Zeroizing<[u8; 32]> = bytes
            .as_slice()
            .try_into()
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                Error::Key(format!(
                    "audit signing key {}: {} bytes, expected 32",
                    path.display(),
                    bytes.len()
                ))
            })?;
        Ok(Self::from_signing(SigningKey::from_bytes(&seed)))
    }

    /// Writes a new key to `path` with mode 0600. Never overwrites: an existing file is
    /// an error.
    pub fn create(path: &Path) -> Result<Self> {
        let key = Self::generate()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::store::create_private_dir(parent)
                .map_err(|e| Error::Key(format!("audit signing key: {e}")))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(|e| {
            Error::Key(format!(
                "audit signing key {}: cannot create: {e}",
                path.display()
            ))
        })?;
        use std::io::Write;
        let line = zeroize::Zeroizing::new(format!(
            "{SECRET_PREFIX}{}\n",
            B64.encode(key.signing.to_bytes())
        ));
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| {
                Error::Key(format!(
                    "audit signing key {}: cannot write: {e}",
                    path.display()
                ))
            })?;
        Ok(key)
    }

    /// Its key id (a hash of the public key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.signing.verifying_key(),
            key_id: self.key_id.clone(),
        }
    }

    /// Signs a document outside the chain (a saved plan): Ed25519 over
    /// `cxguard-document-v1`, `domain` and `body`, one per line, so a signature made for
    /// one kind of document, or for a checkpoint, never verifies as another.
    pub fn sign_document(&self, domain: &str, body: &str) -> String {
        self.sign(&document_message(domain, body))
    }

    pub(crate) fn sign(&self, message: &str) -> String {
        B64.encode(self.signing.sign(message.as_bytes()).to_bytes())
    }
}

/// The public half, used to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// Its key id (a hash of the key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The one-line text form, for `cxguard audit public-key`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.key.as_bytes()))
    }

    /// A public key from its text form.
    pub fn parse(text: &str) -> Result<Self> {
        let b64 = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            Error::Key(format!(
                "not a cxguard public key (expected {PUBLIC_PREFIX}…)"
            ))
        })?;
        let bytes = B64
            .decode(b64)
            .map_err(|_| Error::Key("public key: not valid base64".into()))?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::Key(format!("public key: {} bytes, expected 32", bytes.len())))?;
        let key =
            VerifyingKey::from_bytes(&arr).map_err(|e| Error::Key(format!("public key: {e}")))?;
        Ok(PublicKey {
            key_id: key_id(&key),
            key,
        })
    }

    /// A public key from a file.
    pub fn read_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Key(format!("public key {}: cannot read: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Key(format!("public key {}: {e}", path.display())))
    }

    /// Whether `signature_b64` is this key's signature of the document `body` of kind
    /// `domain` (see [`AuditKey::sign_document`]).
    pub fn verify_document(&self, domain: &str, body: &str, signature_b64: &str) -> bool {
        self.verify(&document_message(domain, body), signature_b64)
    }

    pub(crate) fn verify(&self, message: &str, signature_b64: &str) -> bool {
        let Ok(bytes) = B64.decode(signature_b64) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify_strict(message.as_bytes(), &sig).is_ok()
    }
}

fn document_message(domain: &str, body: &str) -> String {
    format!("cxguard-document-v1\n{domain}\n{body}")
}

pub(crate) fn checkpoint_message(seq: i64, hash: &str, at: &str) -> String {
    format!("cxguard-audit-checkpoint-v1\n{seq}\n{hash}\n{at}")
}

pub(crate) fn head_message(seq: i64, hash: &str, at: &str) -> String {
    format!("cxguard-audit-head-v1\n{seq}\n{hash}\n{at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_round_trip_the_public_key() {
        let k = AuditKey::generate().unwrap();
        let sig = k.sign("hello");
        let pk = PublicKey::parse(&k.public().to_text()).unwrap();
        assert!(pk.verify("hello", &sig));
        assert!(!pk.verify("hellO", &sig));
        assert!(!pk.verify("hello", "bm90IGEgc2lnbmF0dXJl"));
        let other = AuditKey::generate().unwrap();
        assert!(!other.public().verify("hello", &sig));
        // Documents: bound to their kind, and never a checkpoint's signature.
        let d = k.sign_document("plan", "{}");
        assert!(k.public().verify_document("plan", "{}", &d));
        assert!(!k.public().verify_document("plan", "{ }", &d));
        assert!(!k.public().verify_document("other", "{}", &d));
        assert!(!other.public().verify_document("plan", "{}", &d));
        assert_ne!(k.key_id(), other.key_id());
    }

    #[test]
    fn a_created_key_file_is_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let k = AuditKey::create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(AuditKey::create(&path).is_err());
        assert_eq!(AuditKey::load(&path).unwrap().key_id(), k.key_id());
        assert!(!format!("{k:?}").contains(&B64.encode(k.signing.to_bytes())));
    }
}
