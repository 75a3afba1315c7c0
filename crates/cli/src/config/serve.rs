//! `[server]`: `cxguard serve`, with its defaults.

use std::time::Duration;

use super::*;
use crate::exit::CliError;
use ::server;

/// `[server]` with its defaults.
pub struct ServerSettings {
    pub listen: Option<String>,
    pub rate: server::RateLimit,
    pub upstream_deadline: Duration,
    pub drain: Duration,
    pub api_keys: Vec<server::ApiKey>,
    pub kms_tokens: Vec<server::ApiKey>,
    pub limits: server::Limits,
}

pub fn server_settings(loaded: &Loaded) -> Result<ServerSettings, CliError> {
    let empty = ServerFile::default();
    let f = loaded.file.server.as_ref().unwrap_or(&empty);
    let defaults = server::RateLimit::default();
    let rate = server::RateLimit {
        per_second: f.rate_per_key.unwrap_or(defaults.per_second),
        burst: f.burst.unwrap_or(defaults.burst),
    };
    if rate.per_second == 0 {
        return Err(CliError::config("server.rate_per_key: must be at least 1"));
    }
    let deadline = f.upstream_deadline_secs.unwrap_or(10);
    if deadline == 0 {
        return Err(CliError::config(
            "server.upstream_deadline_secs: must be at least 1",
        ));
    }
    if f.api_keys.is_empty() {
        return Err(CliError::config(
            "server.api_keys: no API keys are configured, so no caller could authenticate; create one with `cxguard keys api --id NAME` and add the line it prints under [server]",
        ));
    }
    let d = server::Limits::default();
    let limits = server::Limits {
        header_read_timeout: f
            .header_read_timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(d.header_read_timeout),
        request_timeout: Duration::from_secs(
            f.request_timeout_secs
                .unwrap_or(deadline.saturating_add(20)),
        ),
        max_connections: f.max_connections.unwrap_or(d.max_connections),
        keep_alive: f.keep_alive.unwrap_or(d.keep_alive),
        max_connection_age: f
            .max_connection_age_secs
            .map(Duration::from_secs)
            .unwrap_or(d.max_connection_age),
        ops_rate_per_ip: f.ops_rate_per_ip.unwrap_or(d.ops_rate_per_ip),
    };
    limits
        .validate()
        .map_err(|e| CliError::config(format!("server.{e}")))?;
    Ok(ServerSettings {
        listen: f.listen.clone(),
        limits,
        rate,
        upstream_deadline: Duration::from_secs(deadline),
        drain: Duration::from_secs(f.drain_secs.unwrap_or(30)),
        api_keys: f
            .api_keys
            .iter()
            .map(|k| server::ApiKey {
                id: k.id.clone(),
                sha256: k.sha256.clone(),
            })
            .collect(),
        kms_tokens: loaded
            .file
            .kms
            .iter()
            .flat_map(|k| &k.callback_tokens)
            .map(|k| server::ApiKey {
                id: k.id.clone(),
                sha256: k.sha256.clone(),
            })
            .collect(),
    })
}

/// `[subjects]`: subject erasure in `cxguard serve`, when a policy is set; every value
/// checked (the policy itself is read by `serve`).
pub struct SubjectsSettings {
    pub policy: std::path::PathBuf,
    pub queue: usize,
    pub platform_erasure: bool,
    pub page_size: cxone::PageSize,
    pub concurrency: usize,
}

pub fn subjects_settings(loaded: &Loaded) -> Result<Option<SubjectsSettings>, CliError> {
    let Some(f) = loaded.file.subjects.as_ref() else {
        return Ok(None);
    };
    let Some(policy) = &f.policy else {
        if f.queue.is_some()
            || f.platform_erasure.is_some()
            || f.page_size.is_some()
            || f.concurrency.is_some()
        {
            return Err(CliError::config(
                "subjects.policy: required to enable subject erasure (the masking policy the contacts are anonymized with); the other [subjects] settings do nothing without it",
            ));
        }
        return Ok(None);
    };
    let queue = f.queue.unwrap_or(64);
    if !(1..=100_000).contains(&queue) {
        return Err(CliError::config("subjects.queue: must be 1 to 100000"));
    }
    let concurrency = f.concurrency.unwrap_or(16);
    if !(1..=256).contains(&concurrency) {
        return Err(CliError::config("subjects.concurrency: must be 1 to 256"));
    }
    let page_size = cxone::PageSize::new(f.page_size.unwrap_or(1000))
        .map_err(|e| CliError::config(format!("subjects.page_size: {e}")))?;
    Ok(Some(SubjectsSettings {
        policy: policy.clone(),
        queue,
        platform_erasure: f.platform_erasure.unwrap_or(true),
        page_size,
        concurrency,
    }))
}
