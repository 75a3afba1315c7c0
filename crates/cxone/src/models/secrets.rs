//! Integration secrets and the Data Actions that use them (spec §3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub id: String,
    pub name: String,
    pub format: SecretFormat,
    #[serde(default)]
    pub description: Option<String>,
    pub version: u64,
    pub value_sha256: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    Raw,
    Jwt,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub data_action_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceUpdate {
    Immediate,
    Deferred,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerificationMatrix {
    pub previous_sha256: String,
    pub proposed_sha256: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataActionStatus {
    Compiled,
    Stale,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataAction {
    pub id: String,
    pub name: String,
    pub secret_ids: Vec<String>,
    pub status: DataActionStatus,
    #[serde(default)]
    pub compiled_secret_versions: BTreeMap<String, u64>,
}

/// What a recompile led to: compiled, or rejected by the action's test call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recompiled {
    Compiled(DataAction),
    Failed {
        action: Option<DataAction>,
        detail: String,
    },
}

/// What a data action's test said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub ok: bool,
    pub detail: Option<String>,
}
