//! `cxguard.toml` and the environment, turned into validated settings.
//!
//! Where settings come from, later winning: the file's `[tenant]` table, then the
//! `CXGUARD_*` environment variables. Secrets (client secret, access-key secret) come
//! only from the environment or from files named in the config — never from flags or the
//! config file itself, so they stay out of shell history, process lists and repos.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::exit::CliError;

pub const ENV_BASE_URL: &str = "CXGUARD_BASE_URL";
pub const ENV_TOKEN_URL: &str = "CXGUARD_TOKEN_URL";
pub const ENV_CLIENT_ID: &str = "CXGUARD_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "CXGUARD_CLIENT_SECRET";
pub const ENV_ACCESS_KEY_ID: &str = "CXGUARD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "CXGUARD_ACCESS_KEY_SECRET";
pub const ENV_CONFIG: &str = "CXGUARD_CONFIG";
pub const ENV_STORE: &str = "CXGUARD_STORE";
pub const ENV_HOME: &str = "CXGUARD_HOME";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub tenant: Option<TenantFile>,
    #[serde(default)]
    pub store: Option<StoreFile>,
    #[serde(default)]
    pub audit: Option<AuditFile>,
    #[serde(default)]
    pub outbox: Option<OutboxFile>,
    #[serde(default)]
    pub webhooks: Option<WebhooksFile>,
    #[serde(default)]
    pub identity: Option<IdentityFile>,
    #[serde(default)]
    pub server: Option<ServerFile>,
}

/// `[identity]`: how guests are linked to a keyed pseudonym of their email or phone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// `{ id, env | file }`: base64 of at least 32 bytes (`cxguard keys new`).
    pub key: Option<guard::keys::KeySpec>,
    /// The guest attribute holding the pseudonym (default `hashed_user_id`).
    pub attribute: Option<String>,
    /// ISO region for phone numbers written without +country code, e.g. "US".
    pub default_region: Option<String>,
    /// Fold dots and +tags of gmail.com addresses (default false).
    #[serde(default)]
    pub gmail_folding: bool,
}

/// `[server]`: `cxguard serve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    /// Requests per second per API key (default 100), with this burst (default 200).
    pub rate_per_key: Option<u32>,
    pub burst: Option<u32>,
    /// The longest a caller waits for the tenant, retries included (default 10).
    pub upstream_deadline_secs: Option<u64>,
    /// How long in-flight requests may finish after SIGTERM (default 30).
    pub drain_secs: Option<u64>,
    /// A request's line and headers must arrive within this (default 10); idle
    /// keep-alive connections are closed after it too.
    pub header_read_timeout_secs: Option<u64>,
    /// A whole request must finish within this (default: the upstream deadline + 20).
    pub request_timeout_secs: Option<u64>,
    /// Connections served at once (default 1024).
    pub max_connections: Option<usize>,
    /// Keep connections open between requests (default true).
    pub keep_alive: Option<bool>,
    /// Close a connection once this old, after its request in flight (default 300).
    pub max_connection_age_secs: Option<u64>,
    /// /metrics and /readyz requests per second per client address (default 10).
    pub ops_rate_per_ip: Option<u32>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub id: String,
    /// SHA-256 of the key, as `cxguard keys api` prints it.
    pub sha256: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// `sqlite://PATH` (default: the data directory's ledger.sqlite) or `postgres://…`.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// The Ed25519 signing key (default: the data directory's audit-signing.key).
    pub key_file: Option<PathBuf>,
    /// Sign a checkpoint every this many entries (and at the end of every job).
    pub checkpoint_every: Option<i64>,
    /// Where each signed checkpoint is also written, outside the database (default:
    /// audit-anchor.json beside the signing key). `audit verify` checks the ledger
    /// still reaches it.
    pub anchor_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxFile {
    /// Waits before each delivery attempt, in seconds (default: 0, 5, 300, 1800, 7200,
    /// 18000, 36000, 36000 — Svix's schedule).
    pub schedule_secs: Option<Vec<u64>>,
    /// A delivery succeeds with a 2xx within this many seconds (default 15).
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub vault: Option<WebhookFile>,
    pub consent: Option<WebhookFile>,
    pub kms: Option<WebhookFile>,
    pub waf: Option<WebhookFile>,
    /// A witness of the audit chain: receives `audit.head` at every signed checkpoint.
    pub witness: Option<WebhookFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    pub url: String,
    /// The `whsec_…` signing secret, from an environment variable or a file.
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// While rotating: the previous secret, so receivers still on it keep verifying.
    pub previous_secret_env: Option<String>,
    pub previous_secret_file: Option<PathBuf>,
    /// Allow an `http://` URL to a host that is not loopback (test receivers only).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub base_url: Option<String>,
    pub token_url: Option<String>,
    /// `client_credentials` or `access_key`; inferred from which credentials are set.
    pub grant: Option<GrantKind>,
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub access_key_id: Option<String>,
    pub access_key_secret_env: Option<String>,
    pub access_key_secret_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    /// Client-side cap, requests per second.
    pub max_rate: Option<u32>,
    pub retry: Option<RetryFile>,
    /// An OpenID issuer: the token endpoint is read from its discovery document.
    pub issuer: Option<String>,
    /// Allow `http://` to a host that is not loopback (test tenants only).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Response body caps, in bytes (defaults 1 MiB, and 16 MiB for a contact page).
    pub max_body_bytes: Option<usize>,
    pub max_page_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    ClientCredentials,
    AccessKey,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub max_attempts: Option<u32>,
    pub base_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
    pub deadline_secs: Option<u64>,
}

/// Where the config was read from, if anywhere.
#[derive(Debug)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub file: FileConfig,
}

/// Reads the config: `--config` (must exist), else `$CXGUARD_CONFIG` (must exist), else
/// `./cxguard.toml` if present, else nothing.
pub fn load(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, CliError> {
    let (path, required) = match (explicit, env(ENV_CONFIG)) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from("cxguard.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Loaded {
                path: None,
                file: FileConfig::default(),
            });
        }
        Err(e) => {
            return Err(CliError::config(format!(
                "cannot read config {}: {e}",
                path.display()
            )));
        }
    };
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        CliError::config(format!(
            "config {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    Ok(Loaded {
        path: Some(path),
        file,
    })
}

/// What commands that talk to a tenant will talk to.
#[derive(Debug)]
pub enum Target {
    /// A real tenant (or any server of the spec) with validated settings.
    Tenant(Box<cxone::Settings>),
    /// Nothing configured: the embedded emulator.
    Embedded,
}

fn read_secret_file(field: &str, path: &Path) -> Result<SecretString, CliError> {
    warn_if_broad(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::config(format!(
            "tenant.{field}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(CliError::config(format!(
            "tenant.{field}: {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(value))
}

/// Warns when a file holding a secret can be read by others than its owner.
pub fn warn_if_broad(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: {} holds a secret but has mode {mode:04o}; restrict it with chmod 600",
                    path.display()
                );
            }
        }
    }
}

/// Resolves the target from the file and the environment.
pub fn target(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, CliError> {
    let empty = TenantFile::default();
    let t = loaded.file.tenant.as_ref().unwrap_or(&empty);
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let Some(base_url) = get(ENV_BASE_URL).or_else(|| t.base_url.clone()) else {
        return Ok(Target::Embedded);
    };
    let secret = |field: &str,
                  env_default: &str,
                  env_field: &Option<String>,
                  file_field: &Option<PathBuf>| {
        if let Some(path) = file_field {
            return read_secret_file(field, path).map(Some);
        }
        let var = env_field.as_deref().unwrap_or(env_default);
        Ok(get(var).map(SecretString::from))
    };
    let client_id = get(ENV_CLIENT_ID).or_else(|| t.client_id.clone());
    let client_secret = secret(
        "client_secret_file",
        ENV_CLIENT_SECRET,
        &t.client_secret_env,
        &t.client_secret_file,
    )?;
    let access_key_id = get(ENV_ACCESS_KEY_ID).or_else(|| t.access_key_id.clone());
    let access_key_secret = secret(
        "access_key_secret_file",
        ENV_ACCESS_KEY_SECRET,
        &t.access_key_secret_env,
        &t.access_key_secret_file,
    )?;
    let kind = t.grant.unwrap_or(if access_key_id.is_some() {
        GrantKind::AccessKey
    } else {
        GrantKind::ClientCredentials
    });
    let mut missing = Vec::new();
    if client_id.is_none() {
        missing.push(ENV_CLIENT_ID);
    }
    if client_secret.is_none() {
        missing.push(t.client_secret_env.as_deref().unwrap_or(ENV_CLIENT_SECRET));
    }
    if kind == GrantKind::AccessKey {
        if access_key_id.is_none() {
            missing.push(ENV_ACCESS_KEY_ID);
        }
        if access_key_secret.is_none() {
            missing.push(
                t.access_key_secret_env
                    .as_deref()
                    .unwrap_or(ENV_ACCESS_KEY_SECRET),
            );
        }
    }
    if !missing.is_empty() {
        let what = if kind == GrantKind::AccessKey {
            "the access-key grant needs the app's client id and secret and the user's access key id and secret"
        } else {
            "the client-credentials grant needs a client id and secret"
        };
        return Err(CliError::config(format!(
            "missing credentials for {base_url}: {what}; set {} (or client_id / client_secret_file in [tenant] of cxguard.toml)",
            missing.join(", ")
        )));
    }
    let client_id = client_id.unwrap_or_default();
    let client_secret = client_secret.unwrap_or_else(|| SecretString::from(String::new()));
    let grant = match kind {
        GrantKind::ClientCredentials => cxone::Grant::ClientCredentials {
            client_id,
            client_secret,
        },
        GrantKind::AccessKey => cxone::Grant::AccessKey {
            access_key_id: access_key_id.unwrap_or_default(),
            access_key_secret: access_key_secret
                .unwrap_or_else(|| SecretString::from(String::new())),
            client_id,
            client_secret,
        },
    };
    let base_field = if get(ENV_BASE_URL).is_some() {
        ENV_BASE_URL
    } else {
        "tenant.base_url"
    };
    let mut settings = cxone::Settings::new(&base_url, grant)
        .map_err(|e| CliError::config(e.to_string().replacen("base_url", base_field, 1)))?;
    if let Some(tu) = get(ENV_TOKEN_URL).or_else(|| t.token_url.clone()) {
        let field = if get(ENV_TOKEN_URL).is_some() {
            ENV_TOKEN_URL
        } else {
            "tenant.token_url"
        };
        settings = settings
            .token_url(&tu)
            .map_err(|e| CliError::config(e.to_string().replacen("token_url", field, 1)))?;
    }
    if let Some(issuer) = &t.issuer {
        if t.token_url.is_some() || get(ENV_TOKEN_URL).is_some() {
            return Err(CliError::config(
                "tenant.issuer: set issuer or token_url, not both (the issuer's discovery document names the token endpoint)",
            ));
        }
        settings = settings
            .issuer(issuer)
            .map_err(|e| CliError::config(format!("tenant.{e}")))?;
    }
    settings.allow_insecure_http = t.allow_insecure_http;
    if let Some(n) = t.max_body_bytes {
        settings.max_body = n;
    }
    if let Some(n) = t.max_page_bytes {
        settings.max_page_body = n;
    }
    settings.scopes = t.scopes.clone();
    if let Some(s) = t.timeout_secs {
        settings.request_timeout = Duration::from_secs(s);
    }
    if let Some(s) = t.connect_timeout_secs {
        settings.connect_timeout = Duration::from_secs(s);
    }
    settings.max_rate = t.max_rate;
    if let Some(r) = &t.retry {
        if let Some(v) = r.max_attempts {
            settings.retry.max_attempts = v;
        }
        if let Some(v) = r.base_delay_ms {
            settings.retry.base_delay = Duration::from_millis(v);
        }
        if let Some(v) = r.max_delay_ms {
            settings.retry.max_delay = Duration::from_millis(v);
        }
        if let Some(v) = r.deadline_secs {
            settings.retry.deadline = Duration::from_secs(v);
        }
    }
    settings
        .validate()
        .map_err(|e| CliError::config(format!("tenant: {e}")))?;
    Ok(Target::Tenant(Box::new(settings)))
}

/// The data directory: `$CXGUARD_HOME`, else `$XDG_DATA_HOME/cxguard`, else
/// `~/.local/share/cxguard`.
pub fn home(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = env(ENV_HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = env("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("cxguard");
    }
    PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".local/share/cxguard")
}

/// The store URL: `$CXGUARD_STORE`, else `[store] url`, else SQLite in the data directory.
pub fn store_url(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> String {
    env(ENV_STORE)
        .filter(|v| !v.is_empty())
        .or_else(|| loaded.file.store.as_ref().and_then(|s| s.url.clone()))
        .unwrap_or_else(|| format!("sqlite://{}", home(env).join("ledger.sqlite").display()))
}

pub fn audit_key_path(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    loaded
        .file
        .audit
        .as_ref()
        .and_then(|a| a.key_file.clone())
        .unwrap_or_else(|| home(env).join("audit-signing.key"))
}

/// The audit anchor: `[audit] anchor_file`, else audit-anchor.json beside the signing key.
pub fn anchor_path(loaded: &Loaded, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    loaded
        .file
        .audit
        .as_ref()
        .and_then(|a| a.anchor_file.clone())
        .unwrap_or_else(|| {
            let key = audit_key_path(loaded, env);
            key.parent()
                .unwrap_or(Path::new("."))
                .join("audit-anchor.json")
        })
}

pub fn checkpoint_every(loaded: &Loaded) -> Result<i64, CliError> {
    match loaded.file.audit.as_ref().and_then(|a| a.checkpoint_every) {
        None => Ok(ledger::DEFAULT_CHECKPOINT_EVERY),
        Some(n) if n >= 1 => Ok(n),
        Some(n) => Err(CliError::config(format!(
            "audit.checkpoint_every: {n} must be at least 1"
        ))),
    }
}

fn webhook_secret(
    section: &str,
    field: &str,
    env_name: &Option<String>,
    file: &Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ledger::webhooks::WebhookSecret>, CliError> {
    let text = match (env_name, file) {
        (Some(_), Some(_)) => {
            return Err(CliError::config(format!(
                "webhooks.{section}: set {field}_env or {field}_file, not both"
            )));
        }
        (Some(var), None) => Some(env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            CliError::config(format!(
                "webhooks.{section}.{field}_env: the environment variable {var} is not set"
            ))
        })?),
        (None, Some(path)) => {
            warn_if_broad(path);
            Some(std::fs::read_to_string(path).map_err(|e| {
                CliError::config(format!(
                    "webhooks.{section}.{field}_file: cannot read {}: {e}",
                    path.display()
                ))
            })?)
        }
        (None, None) => None,
    };
    text.map(|t| {
        ledger::webhooks::WebhookSecret::parse(t.trim())
            .map_err(|e| CliError::config(format!("webhooks.{section}.{field}: {e}")))
    })
    .transpose()
}

/// Endpoints, schedule and timeout for the webhook deliverer.
pub fn delivery(
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ledger::deliver::DeliveryConfig, CliError> {
    use ledger::EventKind;
    let mut cfg = ledger::deliver::DeliveryConfig::default();
    if let Some(o) = &loaded.file.outbox {
        if let Some(s) = &o.schedule_secs {
            if s.is_empty() {
                return Err(CliError::config(
                    "outbox.schedule_secs: at least one attempt",
                ));
            }
            cfg.schedule = s.iter().map(|x| Duration::from_secs(*x)).collect();
        }
        if let Some(t) = o.timeout_secs {
            if t == 0 {
                return Err(CliError::config("outbox.timeout_secs: more than 0"));
            }
            cfg.timeout = Duration::from_secs(t);
        }
    }
    let empty = WebhooksFile::default();
    let w = loaded.file.webhooks.as_ref().unwrap_or(&empty);
    for (kind, section) in [
        (EventKind::Vault, &w.vault),
        (EventKind::Consent, &w.consent),
        (EventKind::Kms, &w.kms),
        (EventKind::Waf, &w.waf),
        (EventKind::Witness, &w.witness),
    ] {
        let Some(s) = section else { continue };
        let name = kind.as_str();
        let field = format!("webhooks.{name}.url");
        let url = cxone::parse_http_url(&field, &s.url)
            .and_then(|u| {
                cxone::check_transport_security(&field, &u, s.allow_insecure_http).map(|()| u)
            })
            .map_err(|e| CliError::config(e.to_string()))?;
        let mut secrets = Vec::new();
        match webhook_secret(name, "secret", &s.secret_env, &s.secret_file, env)? {
            Some(sec) => secrets.push(sec),
            None => {
                return Err(CliError::config(format!(
                    "webhooks.{name}: a signing secret is required: secret_env or secret_file (whsec_…; `cxguard outbox new-secret` makes one)"
                )));
            }
        }
        if let Some(prev) = webhook_secret(
            name,
            "previous_secret",
            &s.previous_secret_env,
            &s.previous_secret_file,
            env,
        )? {
            secrets.push(prev);
        }
        cfg.endpoints
            .insert(kind, ledger::deliver::Endpoint { url, secrets });
    }
    Ok(cfg)
}

/// A fake environment for tests.
#[cfg(test)]
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    use std::collections::BTreeMap;
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// The identity protection as configured: `[identity]` with its key loaded.
pub fn identity(
    loaded: &Loaded,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<guard::identity::Identity, CliError> {
    let empty = IdentityFile::default();
    let f = loaded.file.identity.as_ref().unwrap_or(&empty);
    let spec = f.key.as_ref().ok_or_else(|| {
        CliError::config(
            "identity.key: not configured; add to cxguard.toml:\n  [identity]\n  key = { id = \"guest-id-2026\", env = \"CXGUARD_IDENTITY_KEY\" }\nand set CXGUARD_IDENTITY_KEY to the output of `cxguard keys new`",
        )
    })?;
    let base = loaded
        .path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let key = guard::keys::Key::load(spec, env, base)
        .map_err(|e| CliError::config(format!("identity.key: {e}")))?;
    let region = f
        .default_region
        .as_deref()
        .map(guard::pseudonym::parse_region)
        .transpose()
        .map_err(|e| CliError::config(format!("identity.default_region: {e}")))?;
    let normalizer = guard::pseudonym::Normalizer {
        region,
        gmail_folding: f.gmail_folding,
    };
    guard::identity::Identity::new(
        std::sync::Arc::new(key),
        normalizer,
        f.attribute
            .as_deref()
            .unwrap_or(guard::identity::DEFAULT_ATTRIBUTE),
    )
    .map_err(|e| CliError::config(format!("identity.attribute: {e}")))
}

/// `[server]` with its defaults.
pub struct ServerSettings {
    pub listen: Option<String>,
    pub rate: server::RateLimit,
    pub upstream_deadline: Duration,
    pub drain: Duration,
    pub api_keys: Vec<server::ApiKey>,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded, CliError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| CliError::config(e.to_string()))?;
        Ok(Loaded { path: None, file })
    }

    #[test]
    fn nothing_configured_means_the_embedded_emulator() {
        let t = target(&parse("").unwrap(), &env_of(&[])).unwrap();
        assert!(matches!(t, Target::Embedded));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e =
            parse("[tenant]\nbase_url = \"https://x\"\nclient_secret = \"oops\"\n").unwrap_err();
        assert!(e.message.contains("client_secret"), "{}", e.message);
        let e = parse("[tenent]\n").unwrap_err();
        assert!(e.message.contains("tenent"), "{}", e.message);
    }

    #[test]
    fn missing_credentials_name_the_env_vars() {
        let e = target(
            &parse("").unwrap(),
            &env_of(&[(ENV_BASE_URL, "https://api.example.com")]),
        )
        .unwrap_err();
        assert!(
            e.message.contains(ENV_CLIENT_ID) && e.message.contains(ENV_CLIENT_SECRET),
            "{}",
            e.message
        );
        let e = target(
            &parse("").unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "https://api.example.com"),
                (ENV_ACCESS_KEY_ID, "AK1"),
            ]),
        )
        .unwrap_err();
        assert!(e.message.contains(ENV_ACCESS_KEY_SECRET), "{}", e.message);
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        let e = target(
            &parse("").unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "ftp://x"),
                (ENV_CLIENT_ID, "a"),
                (ENV_CLIENT_SECRET, "b"),
            ]),
        )
        .unwrap_err();
        assert!(e.message.starts_with(ENV_BASE_URL), "{}", e.message);
        let e = target(
            &parse("[tenant]\nbase_url = \"api.example.com\"").unwrap(),
            &env_of(&[(ENV_CLIENT_ID, "a"), (ENV_CLIENT_SECRET, "b")]),
        )
        .unwrap_err();
        assert!(e.message.starts_with("tenant.base_url"), "{}", e.message);
    }

    #[test]
    fn env_overrides_file_and_secrets_stay_redacted() {
        let t = target(
            &parse("[tenant]\nbase_url = \"https://file.example.com\"\nclient_id = \"file-id\"")
                .unwrap(),
            &env_of(&[
                (ENV_BASE_URL, "https://env.example.com"),
                (ENV_CLIENT_SECRET, "hunter2"),
            ]),
        )
        .unwrap();
        let Target::Tenant(s) = t else {
            panic!("expected a tenant")
        };
        assert_eq!(s.base_url.as_str(), "https://env.example.com/");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 10_000,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// Everything the commands derive from a config: none of it may panic.
        fn derive_all(text: &str) {
            let Ok(file) = toml::from_str::<FileConfig>(text) else {
                return;
            };
            let loaded = Loaded { path: None, file };
            let env = env_of(&[(ENV_CLIENT_ID, "id"), (ENV_CLIENT_SECRET, "s")]);
            let _ = target(&loaded, &env);
            let _ = server_settings(&loaded);
            let _ = delivery(&loaded, &env);
            let _ = checkpoint_every(&loaded);
            let _ = anchor_path(&loaded, &env);
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_text_as_config_never_panics(s in any::<String>()) {
                derive_all(&s);
            }

            #[test]
            fn structured_configs_never_panic(
                url in prop_oneof![any::<String>(), "https?://[a-z0-9.:-]{0,20}(/[a-z/]{0,10})?"],
                n in prop_oneof![0i64..100, 0i64..=i64::MAX],
                b in any::<bool>(),
            ) {
                let text = format!(
                    "[tenant]\nbase_url = {url:?}\ntoken_url = {url:?}\nallow_insecure_http = {b}\ntimeout_secs = {n}\nmax_body_bytes = {n}\n[server]\nheader_read_timeout_secs = {n}\nupstream_deadline_secs = {n}\nmax_connections = {n}\nrate_per_key = {n}\n[audit]\ncheckpoint_every = {n}\n[webhooks.vault]\nurl = {url:?}\nsecret_env = \"X\"\n"
                );
                derive_all(&text);
            }
        }
    }
}
