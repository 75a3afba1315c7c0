//! Webchat widgets and their security policies (spec §7).
//!
//! Every struct keeps the fields it does not name in `other`, so a widget read and put
//! back keeps every setting the tenant has, including ones this client does not know.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A webchat widget (spec §7).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its settings.
    pub settings: WidgetSettings,
    /// Fields not named above, kept as the tenant sent them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A widget's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSettings {
    /// Its security policies.
    pub security_policies: SecurityPolicies,
    /// The settings' version, for optimistic concurrency.
    #[serde(default)]
    pub version: Option<String>,
    /// Fields not named above, kept as the tenant sent them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Who may embed the widget and what its messages may carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicies {
    /// Origins allowed to embed it.
    pub cors_origins: Vec<String>,
    /// Whether a visitor token is required.
    pub authentication: WidgetAuthentication,
    /// Content rules applied to messages.
    pub rules: Vec<WidgetRule>,
    /// Fields not named above, kept as the tenant sent them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Visitor authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetAuthentication {
    /// Whether a signed visitor token is required.
    pub require_token: bool,
    /// How long a visitor token lasts.
    pub token_expiry_minutes: u32,
    /// Fields not named above, kept as the tenant sent them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One content rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WidgetRule {
    /// Its id.
    pub id: String,
    /// What the rule does (`block`, `mask`, …).
    pub action: String,
    /// The pattern it matches.
    pub pattern: String,
    /// Fields not named above, kept as the tenant sent them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}
