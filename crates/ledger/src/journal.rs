//! The job journal: a job and its items, each moving `pending → in_flight → done |
//! failed` with its attempts and last error. An item is claimed before its effect is
//! attempted and settled (with its audit entry and events) in one transaction after, so a
//! crash leaves at worst items `in_flight` that a resume claims again.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    InFlight,
    Done,
    Failed,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::InFlight => "in_flight",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
    RolledBack,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::RolledBack => "rolled_back",
        }
    }
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Done { result: Option<serde_json::Value> },
    Failed { error: String },
}

/// What claiming an item found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed; this is attempt number `attempt`.
    Claimed { attempt: i64 },
    /// Already done in an earlier run: nothing to do.
    AlreadyDone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub actor: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub pending: u64,
    pub in_flight: u64,
    pub done: u64,
    pub failed: u64,
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobItem {
    pub key: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub updated_at: String,
}
