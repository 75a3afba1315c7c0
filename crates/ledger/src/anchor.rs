//! The audit chain's anchor outside the database: the last signed checkpoint, written to
//! a file (mode 0600) each time one is signed, and optionally announced to a witness
//! system as an `audit.head` webhook event.
//!
//! The chain and its signatures catch an edit of the database. They cannot catch a
//! database put back to an older state, or emptied: an older chain is still a valid
//! chain. The anchor can: `audit verify` fails when the database ends before the entry
//! the anchor records, or holds another hash there. An attacker who can rewrite both the
//! database and the anchor file is caught only by a witness that kept the events.
//!
//! Not here: the chain itself ([`crate::audit`]) or when checkpoints are signed
//! ([`crate::Ledger::commit`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::Checkpoint;
use crate::error::{Error, Result};
use crate::signing::{self, PublicKey};

/// What an anchor file holds: a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Head {
    /// The entry the checkpoint names.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When the checkpoint was signed.
    pub at: String,
    /// The id of the key that signed it.
    pub key_id: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

impl From<&Checkpoint> for Head {
    fn from(c: &Checkpoint) -> Self {
        Head {
            seq: c.seq,
            hash: c.hash.clone(),
            at: c.at.clone(),
            key_id: c.key_id.clone(),
            signature: c.signature.clone(),
        }
    }
}

impl Head {
    /// Whether the signature is `key`'s over `(seq, hash, at)`.
    pub fn verifies(&self, key: &PublicKey) -> bool {
        key.verify(
            &signing::checkpoint_message(self.seq, &self.hash, &self.at),
            &self.signature,
        )
    }
}

/// A head an auditor gives on the command line: `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    /// The entry.
    pub seq: i64,
    /// Its hash, 64 hex characters.
    pub hash: String,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| "expected SEQ:HASH, e.g. 1042:9f86d0…".to_string())?;
        let seq: i64 = seq
            .trim()
            .parse()
            .map_err(|_| format!("{seq:?} is not an entry number"))?;
        if seq < 1 {
            return Err("the entry number starts at 1".into());
        }
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the hash is 64 hexadecimal digits, as `audit verify` prints it".into());
        }
        Ok(ExpectedHead { seq, hash })
    }
}

/// The anchor file: read, and advanced (never moved back) as checkpoints are signed.
#[derive(Debug)]
pub struct AnchorFile {
    path: PathBuf,
    /// Serialises this process's writers, so a later checkpoint is never overwritten by
    /// an earlier one that finished second.
    lock: std::sync::Mutex<()>,
}

/// Anchor files are small; anything larger is not one.
const MAX_ANCHOR_BYTES: u64 = 64 * 1024;

impl AnchorFile {
    /// The anchor file at `path` (written when the ledger signs a checkpoint).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AnchorFile {
            path: path.into(),
            lock: std::sync::Mutex::new(()),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded head, or `None` when no anchor has been written yet.
    pub fn read(&self) -> Result<Option<Head>> {
        read(&self.path)
    }

    /// Records `cp` unless the file already records a later entry.
    pub fn advance(&self, cp: &Checkpoint) -> Result<()> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = read(&self.path)?
            && h.seq >= cp.seq
        {
            return Ok(());
        }
        write_private(
            &self.path,
            &serde_json::to_vec_pretty(&Head::from(cp)).unwrap_or_default(),
        )
    }
}

fn read(path: &Path) -> Result<Option<Head>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Config(format!(
                "audit anchor {}: {e}",
                path.display()
            )));
        }
    };
    if meta.len() > MAX_ANCHOR_BYTES {
        return Err(Error::Foreign(format!(
            "audit anchor {}: {} bytes is not an anchor file",
            path.display(),
            meta.len()
        )));
    }
    let text = std::fs::read(path)
        .map_err(|e| Error::Config(format!("audit anchor {}: {e}", path.display())))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        Error::Foreign(format!(
            "audit anchor {}: not an anchor file: {e}",
            path.display()
        ))
    })
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), mode 0600 from
/// the start, creating the directory 0700 when missing.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::store::create_private_dir(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(fail)?;
    // No fsync: an anchor that lags after a power cut only weakens the check for the
    // last entries, and waiting on the disk here would stall every append behind it.
    f.write_all(bytes).map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_heads_parse_and_bad_ones_say_why() {
        let h: ExpectedHead = format!("12:{}", "A".repeat(64)).parse().unwrap();
        assert_eq!(h.seq, 12);
        assert_eq!(h.hash, "a".repeat(64));
        for bad in ["", "12", "x:abc", "0:abc", &format!("3:{}", "z".repeat(64))] {
            assert!(bad.parse::<ExpectedHead>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_anchor_only_moves_forward_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = AnchorFile::new(dir.path().join("sub/anchor.json"));
        assert_eq!(a.read().unwrap(), None);
        let cp = |seq| Checkpoint {
            seq,
            hash: format!("{seq:064}"),
            at: "t".into(),
            key_id: "k".into(),
            signature: "s".into(),
        };
        a.advance(&cp(5)).unwrap();
        a.advance(&cp(3)).unwrap();
        assert_eq!(a.read().unwrap().unwrap().seq, 5);
        a.advance(&cp(9)).unwrap();
        assert_eq!(a.read().unwrap().unwrap().seq, 9);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(dir.path().join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dmode, 0o700);
        }
    }
}
