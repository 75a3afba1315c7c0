//! Where a new access key goes, the moment it exists: a file, OpenBao/Vault (KV v2 with
//! check-and-set), or a command. Each write is atomic and checked by reading it back;
//! the secret is never in a path, an argument, the environment or a log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Replaced, VaultConfig};
use crate::{Error, Result};

/// How long a delivery command may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// A delivery target, as `--deliver` names it.
#[derive(Debug, Clone)]
pub enum Target {
    /// `file:/path`: JSON `{accessKeyId, accessKeySecret}`, mode 0600.
    File(PathBuf),
    /// `vault:MOUNT/PATH` on KV version 2.
    Vault {
        /// The KV v2 mount (`secret`).
        mount: String,
        /// The secret's path below it.
        path: String,
    },
    /// `exec:COMMAND`: the JSON on its standard input.
    Exec(String),
}

impl Target {
    /// Parses `file:/path`, `vault:MOUNT/PATH` or `exec:COMMAND`.
    pub fn parse(text: &str) -> Result<Target> {
        let bad = |why: &str| Error::Invalid(format!("--deliver: {why}"));
        match text.split_once(':') {
            Some(("file", p)) if !p.is_empty() => Ok(Target::File(PathBuf::from(p))),
            Some(("vault", p)) => {
                let (mount, path) = p
                    .split_once('/')
                    .filter(|(m, p)| !m.is_empty() && !p.is_empty())
                    .ok_or_else(|| bad("vault:MOUNT/PATH, such as vault:secret/cxone/crm"))?;
                let ok = |s: &str| {
                    s.split('/').all(|seg| {
                        !seg.is_empty()
                            && seg != "."
                            && seg != ".."
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    })
                };
                if !ok(mount) || !ok(path) {
                    return Err(bad(
                        "vault: the mount and path are letters, digits, - _ . and /",
                    ));
                }
                Ok(Target::Vault {
                    mount: mount.into(),
                    path: path.into(),
                })
            }
            Some(("exec", c)) if !c.trim().is_empty() => Ok(Target::Exec(c.to_string())),
            _ => Err(bad("give file:/path, vault:MOUNT/PATH or exec:COMMAND")),
        }
    }

    /// `file`, `vault` or `exec`, for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::File(_) => "file",
            Target::Vault { .. } => "vault",
            Target::Exec(_) => "exec",
        }
    }

    /// How it is named in the journal (no secret; a command is not repeated).
    pub fn label(&self) -> String {
        match self {
            Target::File(p) => format!("file:{}", p.display()),
            Target::Vault { mount, path } => format!("vault:{mount}/{path}"),
            Target::Exec(c) => format!("exec:{c}"),
        }
    }
}

/// The document a target receives.
fn document(id: &str, secret: &SecretString) -> SecretString {
    SecretString::from(
        serde_json::json!({"accessKeyId": id, "accessKeySecret": secret.expose_secret()})
            .to_string(),
    )
}

/// Delivers the key to `target` and checks it by reading it back.
pub async fn deliver(
    target: &Target,
    vault: Option<&VaultConfig>,
    id: &str,
    secret: &SecretString,
) -> Result<Replaced> {
    match target {
        Target::File(p) => write_file(p, &document(id, secret)),
        Target::Vault { mount, path } => {
            let v = vault.ok_or_else(|| {
                Error::Invalid("--deliver vault:…: no [vault] address and token configured".into())
            })?;
            super::vault::write(v, mount, path, id, secret).await
        }
        Target::Exec(cmd) => {
            run_command(cmd, &document(id, secret)).await?;
            Ok(Replaced::Nothing)
        }
    }
}

/// Puts back what a delivery replaced (after a rollback).
pub async fn restore(
    target: &Target,
    vault: Option<&VaultConfig>,
    replaced: Replaced,
) -> Result<()> {
    match (target, replaced) {
        (Target::File(p), Replaced::File(previous)) => std::fs::rename(&previous, p).map_err(|e| {
            Error::Failed(format!(
                "{}: cannot put back {}: {e}",
                p.display(),
                previous.display()
            ))
        }),
        (Target::Vault { mount, path }, Replaced::Vault(old, version)) => match vault {
            Some(v) => super::vault::put_back(v, mount, path, &old, version).await,
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Writes `doc` to a temporary file beside `path` (mode 0600), keeps the old file as
/// `.previous`, renames, and reads it back.
fn write_file(path: &Path, doc: &SecretString) -> Result<Replaced> {
    let fail = |why: String| Error::Invalid(format!("--deliver file:{}: {why}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(fail(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
    let tmp = dir.join(format!(
        ".{}.cxguard-{}",
        path.file_name()
            .map_or("key".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = o
        .open(&tmp)
        .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    f.write_all(doc.expose_secret().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
    drop(f);
    let replaced = if path.exists() {
        let previous = PathBuf::from(format!("{}.previous", path.display()));
        std::fs::copy(path, &previous)
            .map_err(|e| fail(format!("cannot keep {}: {e}", previous.display())))?;
        Replaced::File(previous)
    } else {
        Replaced::Nothing
    };
    std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot replace it: {e}")))?;
    let back = SecretString::from(
        std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it back: {e}")))?,
    );
    if back.expose_secret() != doc.expose_secret() {
        return Err(fail("read back, it is not what was written".into()));
    }
    Ok(replaced)
}

/// Runs `cmd` through `sh -c` with `doc` on its standard input; exit 0 within
/// [`EXEC_TIMEOUT`] is success.
async fn run_command(cmd: &str, doc: &SecretString) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let fail = |why: String| Error::Invalid(format!("--deliver exec: {why}"));
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start the command: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(doc.expose_secret().as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write its input: {e}")))?;
    }
    let status = tokio::time::timeout(EXEC_TIMEOUT, child.wait())
        .await
        .map_err(|_| fail(format!("it did not finish within {EXEC_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("it exited with {status}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_how() {
        assert!(matches!(
            Target::parse("file:/etc/k.json").unwrap(),
            Target::File(_)
        ));
        assert_eq!(
            Target::parse("vault:secret/cxone/crm").unwrap().label(),
            "vault:secret/cxone/crm"
        );
        for bad in [
            "vault:secret",
            "vault:secret/../x",
            "ftp:x",
            "file:",
            "exec: ",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_file_is_replaced_atomically_with_its_previous_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key.json");
        std::fs::write(&p, "old").unwrap();
        let r = write_file(&p, &SecretString::from("new".to_string())).unwrap();
        assert!(matches!(r, Replaced::File(_)));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            std::fs::read_to_string(d.path().join("key.json.previous")).unwrap(),
            "old"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let e = write_file(
            &d.path().join("no/dir/k.json"),
            &SecretString::from("x".to_string()),
        );
        assert!(e.err().unwrap().to_string().contains("does not exist"));
    }
}
