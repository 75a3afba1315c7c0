//! Secret values kept in files or environment variables: a new value read from where
//! the operator put it, and a generated value written where the posture says (mode 0600,
//! never over an existing file). Errors name the setting and the path, never the value.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::{Error, Result};

/// The value in `file` (its trailing newline dropped), else in the environment variable
/// `var`; `None` when neither is given. `what` names the setting in errors.
pub fn read(
    what: &str,
    file: Option<&Path>,
    var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>> {
    if let Some(path) = file {
        warn_if_broad(path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("{what}: cannot read {}: {e}", path.display())))?;
        return Ok(Some(SecretString::from(
            text.trim_end_matches(['\n', '\r']).to_string(),
        )));
    }
    if let Some(v) = var {
        let text = env(v).ok_or_else(|| {
            Error::Invalid(format!("{what}: the environment variable {v} is not set"))
        })?;
        return Ok(Some(SecretString::from(text)));
    }
    Ok(None)
}

/// Writes `value` to `path`, which must not exist, readable by its owner only, and
/// flushes it to disk.
pub fn write_new(what: &str, path: &Path, value: &SecretString) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        Error::Invalid(format!(
            "{what}: cannot create {} (it must not exist): {e}",
            path.display()
        ))
    })?;
    f.write_all(value.expose_secret().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::Failed(format!("{what}: cannot write {}: {e}", path.display())))
}

/// Warns when a file holding a secret can be read by others than its owner.
fn warn_if_broad(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "{} holds a secret but has mode {mode:04o}; restrict it with chmod 600",
                    path.display()
                );
            }
        }
    }
}
