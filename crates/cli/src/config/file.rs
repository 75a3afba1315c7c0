//! The serde structs of `cxguard.toml`, one per table. Unknown keys are errors.

use std::path::PathBuf;

use serde::Deserialize;

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
    #[serde(default)]
    pub subjects: Option<SubjectsFile>,
    #[serde(default)]
    pub datastore: Option<DatastoreFile>,
    #[serde(default)]
    pub kms: Option<KmsFile>,
    /// `[vault]`: the OpenBao/Vault server access keys are delivered to.
    #[serde(default)]
    pub vault: Option<VaultFile>,
    /// `[posture]`: the posture, when it is not in a posture.toml of its own (checked
    /// when `plan`, `apply` or `status` read it).
    #[serde(default)]
    pub posture: Option<toml::Table>,
}

/// `[vault]`: an OpenBao or Vault server (KV version 2).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultFile {
    /// `https://vault.internal:8200` (plain http only to loopback unless allowed).
    pub address: String,
    /// The variable holding the token.
    pub token_env: Option<String>,
    /// A file holding the token (mode 0600).
    pub token_file: Option<PathBuf>,
    /// `X-Vault-Namespace` (Vault Enterprise, HCP).
    pub namespace: Option<String>,
    /// CA certificates (PEM) that sign the server's certificate, trusted beside the
    /// built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` to a host that is not loopback (test servers only).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// `[kms]`: the tokens the KMS callback receiver of `cxguard serve` accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsFile {
    /// Each token's id and SHA-256, as `cxguard keys api --kms` prints them.
    #[serde(default)]
    pub callback_tokens: Vec<ApiKeyFile>,
}

pub use guard::encrypt::config::{DatastoreFile, DatastoreTableFile};

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

/// `[subjects]`: subject erasure in `cxguard serve` (`POST /v1/subjects/erasure`); off
/// unless `policy` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectsFile {
    /// The masking policy the subjects' contacts are anonymized with.
    pub policy: Option<PathBuf>,
    /// Erasures queued at once; one more is refused with 503 (default 64).
    pub queue: Option<usize>,
    /// File CXone's platform erasure (spec §9) for each subject (default true).
    pub platform_erasure: Option<bool>,
    /// Contacts per listing page of the search (default 1000).
    pub page_size: Option<u32>,
    /// Contact PATCHes in flight at once (default 16).
    pub concurrency: Option<usize>,
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
    /// Which API: `cxone` (CXone's published API) or `tutorial` (the tutorials' routes).
    /// `cxone` by default when `issuer` is a NICE host, `tutorial` otherwise.
    pub api: Option<ApiKind>,
    /// A JSON file (mode 0600) holding `{"accessKeyId", "accessKeySecret"}`: both halves
    /// of the access key in one place, so a rotation replaces them at once.
    pub access_key_file: Option<PathBuf>,
    /// Overrides of what CXone's discovery finds (`api = "cxone"`).
    pub endpoints: Option<EndpointsFile>,
    /// Budgets the client paces itself to (`api = "cxone"`).
    pub limits: Option<LimitsFile>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// CXone's published API (`spec/cxone-real.md`).
    Cxone,
    /// The tutorials' routes (`spec/cxone-api.md`).
    Tutorial,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsFile {
    /// The platform API base (`api_endpoint`).
    pub api: Option<String>,
    /// The UserHub host (access keys).
    pub userhub: Option<String>,
    /// The ACD API version (default `v30.0`).
    pub acd_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Requests per second, every API together.
    pub requests_per_second: Option<u32>,
    /// DFO reads per hour (the published tenant budget, 120,000, by default).
    pub dfo_reads_per_hour: Option<u32>,
    /// DFO writes per hour, every case together (1,000,000 published).
    pub dfo_updates_per_hour: Option<u32>,
    /// Writes to one case at once (250 published).
    pub dfo_contact_burst: Option<u32>,
    /// Writes to one case per minute after its burst (17 published).
    pub dfo_contact_per_minute: Option<u32>,
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
