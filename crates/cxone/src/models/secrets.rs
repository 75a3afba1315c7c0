//! Integration secrets and the Data Actions that use them (spec §3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An Integration secret as the API shows it: metadata and a hash, never the value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// How its value is encoded.
    pub format: SecretFormat,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its version, increased by every rotation.
    pub version: u64,
    /// SHA-256 of the value, hex.
    pub value_sha256: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// How a secret's value is encoded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    /// Any printable text.
    Raw,
    /// A JSON Web Token.
    Jwt,
    /// Standard base64.
    Base64,
}

impl std::fmt::Display for SecretFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretFormat::Raw => "raw",
            SecretFormat::Jwt => "jwt",
            SecretFormat::Base64 => "base64",
        })
    }
}

/// A Data Action that uses a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The action's id.
    pub data_action_id: String,
    /// Its name.
    pub name: String,
}

/// When dependents pick up a rotated value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceUpdate {
    /// At once (they are recompiled by the rotation).
    Immediate,
    /// At their next compile.
    Deferred,
}

/// The compare-and-swap of a rotation: the value it replaces and the one it sets, by hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerificationMatrix {
    /// SHA-256 the secret must hold now.
    pub previous_sha256: String,
    /// SHA-256 of the new value.
    pub proposed_sha256: String,
}

/// A Data Action's compile state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataActionStatus {
    /// Compiled against the current secrets.
    Compiled,
    /// A secret changed since it compiled.
    Stale,
    /// Its last compile or test failed.
    Failed,
}

/// A Data Action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataAction {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The secrets it uses.
    pub secret_ids: Vec<String>,
    /// Its compile state.
    pub status: DataActionStatus,
    /// Which version of each secret it compiled against.
    #[serde(default)]
    pub compiled_secret_versions: BTreeMap<String, u64>,
}

/// What a recompile led to: compiled, or rejected by the action's test call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recompiled {
    /// It compiled; the action as it is now.
    Compiled(DataAction),
    /// It did not compile, or its test call rejected the secret.
    Failed {
        /// The action as it is now, if the API sent it.
        action: Option<DataAction>,
        /// Why.
        detail: String,
    },
}

/// What a data action's test said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Whether the test call succeeded.
    pub ok: bool,
    /// What the test said, if anything.
    pub detail: Option<String>,
}
