//! The posture file: what the tenant should look like, across the protections. Unknown
//! keys are errors; every section is checked and every problem reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::encrypt::config::DatastoreTableFile;

/// `posture.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostureFile {
    /// `[secrets]`.
    #[serde(default)]
    pub secrets: Option<SecretsPosture>,
    /// `[contacts]`.
    #[serde(default)]
    pub contacts: Option<ContactsPosture>,
    /// `[datastore]`.
    #[serde(default)]
    pub datastore: Option<DatastorePosture>,
    /// `[webchat]`.
    #[serde(default)]
    pub webchat: Option<WebchatPosture>,
    /// `[identity]`.
    #[serde(default)]
    pub identity: Option<IdentityPosture>,
    /// `[access_keys]` (CXone's published API).
    #[serde(default)]
    pub access_keys: Option<AccessKeysPosture>,
    /// `[[data_policies]]` (CXone's published API).
    #[serde(default)]
    pub data_policies: Option<Vec<toml::Spanned<crate::policies::PolicyFile>>>,
}

/// `[access_keys]`: how old an access key may get and how long it may go unused, and
/// where a rotated key's new secret goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeysPosture {
    /// A key older than this (or of unknown age) is rotated.
    pub max_age_days: Option<u32>,
    /// An active key unused this long is deactivated.
    pub max_unused_days: Option<u32>,
    /// Where a rotated key goes: `file:…`, `vault:…` or `exec:…`; `{user}` is the key's
    /// user id (stable across rotations, unlike the key's own id).
    pub deliver: Option<String>,
    /// How long an old key stays active after its replacement works (default 0).
    pub grace: Option<String>,
    /// Delete an old key this long after it is deactivated (default: never).
    pub delete_after: Option<String>,
    /// Keys (by id) cxguard leaves alone.
    #[serde(default)]
    pub unmanaged: Vec<String>,
}

/// `[secrets]`: how old a secret may get, and where a due one's new value comes from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsPosture {
    /// The default maximum age.
    pub max_age_days: Option<u32>,
    /// Secrets cxguard leaves alone.
    #[serde(default)]
    pub unmanaged: Vec<String>,
    /// The default value source: a generated value, written to `write_to` first.
    pub generate: Option<Generate>,
    /// Per secret: its own maximum age and value source.
    #[serde(default)]
    pub each: BTreeMap<String, SecretPosture>,
}

/// `generate = { length, charset, write_to }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    /// Characters (base64url) or bytes (base64), 16–3000.
    pub length: Option<usize>,
    /// `base64url` (default) or `base64`.
    pub charset: Option<String>,
    /// Where the new value is written (mode 0600) before it is sent; `{id}` is the
    /// secret's id. The file is also where the previous value is found next time.
    pub write_to: String,
}

/// `[secrets.each.ID]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPosture {
    /// Its own maximum age.
    pub max_age_days: Option<u32>,
    /// Its new value, in this file.
    pub value_file: Option<PathBuf>,
    /// Its new value, in this environment variable.
    pub value_env: Option<String>,
    /// Its new value, generated.
    pub generate: Option<Generate>,
    /// Its current value (for a rollback), in this file.
    pub previous_file: Option<PathBuf>,
    /// Its current value (for a rollback), in this environment variable.
    pub previous_env: Option<String>,
}

/// `[contacts]`: retention.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsPosture {
    /// Contacts last updated longer ago than this are anonymized.
    pub retention_days: u32,
    /// The masking policy (as `contacts anonymize --policy` takes it).
    pub policy: PathBuf,
}

/// `[datastore]`: `[[datastore.tables]]` as in `cxguard.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastorePosture {
    /// The tables and the columns to encrypt in each.
    #[serde(default)]
    pub tables: Vec<DatastoreTableFile>,
}

/// `[webchat]`: a policy file, or the widgets inline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebchatPosture {
    /// A webchat policy file.
    pub policy: Option<PathBuf>,
    /// The widgets, inline (`[webchat.widgets.ID]`).
    #[serde(default)]
    pub widgets: Option<toml::Table>,
}

/// `[identity]`: the key id expected in use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityPosture {
    /// The `[identity]` key id expected in use.
    pub key_id: String,
}

/// A path in the posture file, relative to the file's directory.
pub fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}
