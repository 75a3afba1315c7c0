//! `[tenant] api = "cxone"`: CXone's published API (`spec/cxone-real.md`). The issuer
//! (`https://cxone.niceincontact.com` by default), the registered app's client id and
//! secret (HTTP Basic), and a user's access key (from `access_key_file`, or
//! `access_key_id` with its secret from the environment or a file); every other host is
//! discovered, unless `[tenant.endpoints]` says otherwise.

use std::path::Path;

use secrecy::SecretString;

use super::*;
use crate::exit::CliError;

/// The surface a `[tenant]` speaks: as configured, else `cxone` for a NICE issuer
/// (`*.niceincontact.com`, `*.nicecxone-gov.com`), else `tutorial`.
pub fn api_of(t: &TenantFile, issuer: Option<&str>) -> ApiKind {
    if let Some(a) = t.api {
        return a;
    }
    let nice = issuer
        .and_then(|i| url::Url::parse(i).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| {
            ["niceincontact.com", "nicecxone-gov.com"]
                .iter()
                .any(|d| h == *d || h.ends_with(&format!(".{d}")))
        });
    if nice {
        ApiKind::Cxone
    } else {
        ApiKind::Tutorial
    }
}

/// The access key in `access_key_file`: JSON `{"accessKeyId", "accessKeySecret"}`,
/// readable by its owner only.
pub fn read_access_key_file(path: &Path) -> Result<(String, SecretString), CliError> {
    let bad = |why: String| CliError::config(format!("tenant.access_key_file: {why}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "{} has mode {mode:04o}: others can read the access key; chmod 600 it",
                path.display()
            )));
        }
    }
    use secrecy::ExposeSecret as _;
    let text = SecretString::from(
        std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?,
    );
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct KeyFile {
        access_key_id: String,
        access_key_secret: SecretString,
    }
    // The parser's message may quote the file: it is not shown.
    let k: KeyFile = serde_json::from_str(text.expose_secret()).map_err(|e| {
        bad(format!(
            "{} is not {{\"accessKeyId\": \"…\", \"accessKeySecret\": \"…\"}} (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if k.access_key_id.trim().is_empty() || k.access_key_secret.expose_secret().is_empty() {
        return Err(bad(format!(
            "{}: accessKeyId and accessKeySecret must not be empty",
            path.display()
        )));
    }
    Ok((k.access_key_id, k.access_key_secret))
}

/// Settings for CXone's published API from `[tenant]` and the environment.
pub(super) fn settings(
    t: &TenantFile,
    get: &dyn Fn(&str) -> Option<String>,
    issuer: &str,
) -> Result<cxone::Settings, CliError> {
    let grant = super::tenant::grant(t, get, issuer)?;
    if !matches!(grant, cxone::Grant::AccessKey { .. }) {
        return Err(CliError::config(
            "tenant.access_key_file: api = \"cxone\" signs in with a user's access key and the registered app's client id and secret; set access_key_file (or access_key_id and its secret)",
        ));
    }
    let e = t.endpoints.as_ref();
    let url = |field: &str, v: &Option<String>| -> Result<Option<url::Url>, CliError> {
        v.as_deref()
            .map(|raw| {
                cxone::parse_base_url(field, raw)
                    .map_err(|e| CliError::config(format!("tenant.{e}")))
            })
            .transpose()
    };
    let mut endpoints = cxone::CxoneEndpoints {
        api: url("endpoints.api", &e.and_then(|e| e.api.clone()))?,
        userhub: url("endpoints.userhub", &e.and_then(|e| e.userhub.clone()))?,
        ..Default::default()
    };
    if let Some(v) = e.and_then(|e| e.acd_version.clone()) {
        endpoints.acd_version = v;
    }
    if let Some(n) = t.limits.as_ref().and_then(|l| l.dfo_reads_per_hour) {
        endpoints.dfo_reads_per_hour = n;
    }
    let mut s = cxone::Settings::cxone(issuer, grant, endpoints)
        .map_err(|e| CliError::config(format!("tenant.{e}")))?;
    if let Some(r) = t.limits.as_ref().and_then(|l| l.requests_per_second) {
        s.max_rate = Some(r);
    }
    Ok(s)
}
