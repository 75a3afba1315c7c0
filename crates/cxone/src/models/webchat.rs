//! Webchat widgets and their security policies (spec §7).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    pub id: String,
    pub name: String,
    pub settings: WidgetSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSettings {
    pub security_policies: SecurityPolicies,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityPolicies {
    pub cors_origins: Vec<String>,
    pub authentication: WidgetAuthentication,
    pub rules: Vec<WidgetRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetAuthentication {
    pub require_token: bool,
    pub token_expiry_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WidgetRule {
    pub id: String,
    pub action: String,
    pub pattern: String,
}
