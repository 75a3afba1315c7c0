//! `[tenant] api = "cxone"`: CXone's published API (`spec/cxone-real.md`). The issuer
//! (`https://cxone.niceincontact.com` by default), the registered app's client id and
//! secret (HTTP Basic), and a user's access key (from `access_key_file`, or
//! `access_key_id` with its secret from the environment or a file); every other host is
//! discovered, unless `[tenant.endpoints]` says otherwise.

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

/// Settings for CXone's published API from `[tenant]` and the environment.
pub(super) fn settings(
    t: &TenantFile,
    get: &dyn Fn(&str) -> Option<String>,
    issuer: &str,
) -> Result<cxone::Settings, CliError> {
    let grant = super::credentials::grant(t, get, issuer)?;
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
    if let Some(l) = &t.limits {
        let e = &mut endpoints;
        for (v, slot) in [
            (l.dfo_reads_per_hour, &mut e.dfo_reads_per_hour),
            (l.dfo_updates_per_hour, &mut e.dfo_updates_per_hour),
            (l.dfo_contact_burst, &mut e.dfo_contact_burst),
            (l.dfo_contact_per_minute, &mut e.dfo_contact_per_minute),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
    }
    let mut s = cxone::Settings::cxone(issuer, grant, endpoints)
        .map_err(|e| CliError::config(format!("tenant.{e}")))?;
    if let Some(r) = t.limits.as_ref().and_then(|l| l.requests_per_second) {
        s.max_rate = Some(r);
    }
    Ok(s)
}
