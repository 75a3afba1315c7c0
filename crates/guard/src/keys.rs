//! Key material named in configuration as `{ id, env | file }`: base64 of at least 32
//! bytes. The id is what ledgers and reports record; the bytes stay in a `SecretBox` and
//! are never printed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;

/// The shortest key accepted: 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// How a key is given in configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The key's id, recorded with every use.
    pub id: String,
    /// An environment variable holding the key, base64.
    pub env: Option<String>,
    /// A file holding the key, base64 (mode 0600).
    pub file: Option<PathBuf>,
}

/// Key material, named by its id. Never printed, logged or serialized.
pub struct Key {
    id: String,
    bytes: SecretBox<Vec<u8>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("bytes", &"[REDACTED]")
            .finish()
    }
}

impl Key {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.expose_secret()
    }

    /// A 32-byte subkey for one purpose: HKDF-SHA256 with this key as the input keying
    /// material and `info` naming the purpose (RFC 5869). No input of the keyed hash
    /// ([`crate::pseudonym`], HMAC under the key itself) can produce it.
    pub fn subkey(&self, info: &str) -> zeroize::Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, self.bytes());
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        hk.expand(info.as_bytes(), out.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// A key from raw bytes (tests, the demo).
    pub fn from_bytes(id: &str, bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "key {id:?} has {} bytes; at least {MIN_KEY_BYTES} are required",
                bytes.len()
            ));
        }
        ledger::details::check_identifier("key id", id).map_err(|e| e.to_string())?;
        Ok(Key {
            id: id.to_string(),
            bytes: SecretBox::new(Box::new(bytes)),
        })
    }

    /// Loads the key `spec` names, reading `env` through `lookup`. The message of an
    /// error says what is wrong, never the value.
    pub fn load(
        spec: &KeySpec,
        lookup: &dyn Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Result<Self, String> {
        // Every copy of the key's text and bytes is wiped when dropped.
        let text = zeroize::Zeroizing::new(match (&spec.env, &spec.file) {
            (Some(_), Some(_)) => return Err("give env or file, not both".into()),
            (None, None) => return Err("give env = \"VAR\" or file = \"PATH\"".into()),
            (Some(var), None) => lookup(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the environment variable {var} is not set"))?,
            (None, Some(file)) => {
                let path = if file.is_absolute() {
                    file.clone()
                } else {
                    base_dir.join(file)
                };
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(m) = std::fs::metadata(&path) {
                        let mode = m.permissions().mode() & 0o777;
                        if mode & 0o077 != 0 {
                            return Err(format!(
                                "key file {} has mode {mode:04o}, so others can read it; run chmod 600 {}",
                                path.display(),
                                path.display()
                            ));
                        }
                    }
                }
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        });
        let mut bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| "the key is not valid base64".to_string())?,
        );
        // The SecretBox takes the bytes and wipes them when dropped.
        Key::from_bytes(&spec.id, std::mem::take(&mut *bytes))
    }
}

/// 32 bytes from the OS CSPRNG as base64: a new key for a policy's `[keys]`.
pub fn generate_base64() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("the OS random generator failed: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_base64_of_32_bytes_and_never_print() {
        let env = |k: &str| match k {
            "GOOD" => Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
            "SHORT" => Some(base64::engine::general_purpose::STANDARD.encode([7u8; 31])),
            "JUNK" => Some("not base64!".into()),
            _ => None,
        };
        let spec = |var: &str| KeySpec {
            id: "k1".into(),
            env: Some(var.into()),
            file: None,
        };
        let k = Key::load(&spec("GOOD"), &env, Path::new(".")).unwrap();
        assert_eq!(k.id(), "k1");
        assert!(!format!("{k:?}").contains("BwcH"));
        assert!(
            Key::load(&spec("SHORT"), &env, Path::new("."))
                .unwrap_err()
                .contains("31 bytes")
        );
        assert!(
            Key::load(&spec("JUNK"), &env, Path::new("."))
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            Key::load(&spec("MISSING"), &env, Path::new("."))
                .unwrap_err()
                .contains("MISSING")
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.b64");
        std::fs::write(
            &path,
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .unwrap();
        let spec = KeySpec {
            id: "k1".into(),
            env: None,
            file: Some(path.clone()),
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&spec, &|_| None, dir.path()).unwrap_err();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Key::load(&spec, &|_| None, dir.path()).unwrap();
    }
}
