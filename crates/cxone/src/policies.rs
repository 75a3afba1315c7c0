//! Data policies (spec §6): retention, erasure and litigation hold as CXone runs them.
//! Searching here: policies page by `skip`/`top` in the request body (§6.2), their runs
//! (policy instances) by the cursor `lastEvaluatedKey` (§6.8). The published API has no
//! update or delete of a policy (§6.4).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::paging::{check_bounds, lenient_opt_i64, lenient_opt_string, text_enum};
use crate::transport::{Base, Call};
use crate::{Client, Result};

/// Policies asked for per page.
pub const PAGE: usize = 100;

text_enum! {
    /// Where a policy's run is (§6.6).
    InstanceStatus {
        /// Waiting for a person to approve it.
        PendingApproval = "PENDING_APPROVAL",
        /// Finding what it applies to.
        Searching = "SEARCHING",
        /// Applying its action.
        ApplyingAction = "APPLYING_ACTION",
        /// Done.
        Succeeded = "SUCCEEDED",
        /// Done for some entities.
        PartiallySucceeded = "PARTIALLY_SUCCEEDED",
        /// Failed.
        Failed = "FAILED",
        /// A person declined it.
        Declined = "DECLINED",
        /// Done, with nothing found.
        SucceededWithZeroResults = "SUCCEEDED_WITH_ZERO_RESULTS",
        /// The search failed.
        SearchFailed = "SEARCH_FAILED",
    }
}

impl InstanceStatus {
    /// Whether the run has ended (§6.6, inferred).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            InstanceStatus::PendingApproval
                | InstanceStatus::Searching
                | InstanceStatus::ApplyingAction
                | InstanceStatus::Unknown(_)
        )
    }
}

/// A policy, the fields cxguard reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Its id.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// Its name.
    #[serde(default)]
    pub policy_name: Option<String>,
    /// Its type (the wire values are not published; kept as sent).
    #[serde(default)]
    pub policy_type: Option<String>,
    /// `MASTER_CONTACT` or `SEGMENT`.
    #[serde(default)]
    pub entity_type: Option<String>,
    /// Days kept, as the API spells it (a string).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub retention_value_in_days: Option<String>,
    /// Whether it recurs.
    #[serde(default)]
    pub recurring: Option<bool>,
    /// How it recurs (`frequency`: `DAILY`, `WEEKLY`, `MONTHLY`, …).
    #[serde(default)]
    pub recurrence_config: Option<RecurrenceConfig>,
    /// The media it applies to (`VOICE`, `SCREEN`).
    #[serde(default)]
    pub apply_to_media_types: Vec<String>,
    /// What it selects (the vocabulary is not published).
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a person approves its runs.
    #[serde(default)]
    pub needs_approval: Option<bool>,
}

/// How a policy recurs (§6.1 RecurrenceConfig), the fields cxguard compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceConfig {
    /// `DAILY`, `WEEKLY` or `MONTHLY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
}

/// One criterion of a policy (§6.1 Criteria); kept as the tenant sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Criterion {
    /// The field it tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_id: Option<String>,
    /// How.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Against one value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Or several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A policy to create (§6.1 PolicyCreationRequest).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPolicy {
    /// Its name.
    pub policy_name: String,
    /// Its type, as the tenant spells it.
    pub policy_type: String,
    /// `MASTER_CONTACT` or `SEGMENT`.
    pub entity_type: String,
    /// What it selects.
    pub criteria: Vec<Criterion>,
    /// Its description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it recurs.
    pub recurring: bool,
    /// How it recurs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence_config: Option<RecurrenceConfig>,
    /// Days kept, as a string (sic, §6.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_value_in_days: Option<String>,
    /// One media type (a single value in the request schema, §6.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply_to_media_types: Option<String>,
}

/// A run of one policy, in full (§6.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The policy.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// The run.
    #[serde(default)]
    pub policy_instance_id: Option<String>,
    /// The policy's name.
    #[serde(default)]
    pub policy_name: Option<String>,
    /// Where it is.
    #[serde(default)]
    pub status: Option<InstanceStatus>,
    /// What it did.
    #[serde(default)]
    pub result_summary: Option<ResultSummary>,
    /// When it began.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub creation_date: Option<String>,
    /// When it ended.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub completion_date: Option<String>,
    /// Whether its evidence report can be downloaded.
    #[serde(default)]
    pub enable_evidence_report_download: Option<bool>,
}

/// What a run did (§6.6 resultSummary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResultSummary {
    /// Entities done.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub success_count: Option<i64>,
    /// Entities failed.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub failure_count: Option<i64>,
    /// Entities partly done.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub partial_count: Option<i64>,
    /// Entities held by a litigation hold.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub litigation_hold_count: Option<i64>,
    /// Percent done.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub progress: Option<i64>,
    /// Entities in scope.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub total_entities: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPage {
    #[serde(default)]
    records: Vec<Run>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(default)]
    policy_id: Option<String>,
}

#[derive(Deserialize)]
struct Evidence {
    #[serde(default, rename = "presigned-url")]
    url: Option<String>,
}

/// One run of a policy, as the activity search lists it (§6.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// The policy.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// The run.
    #[serde(default)]
    pub policy_instance_id: Option<String>,
    /// The policy's type.
    #[serde(default)]
    pub policy_type: Option<String>,
    /// Where it is.
    #[serde(default)]
    pub status: Option<InstanceStatus>,
    /// When it began.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub creation_date: Option<String>,
    /// When it ended.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub completion_date: Option<String>,
    /// Its number among the policy's runs.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub policy_instance_no: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyPage {
    #[serde(default)]
    records: Vec<Policy>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    total_count: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstancePage {
    #[serde(default)]
    records: Vec<Instance>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    last_evaluated_key: Option<String>,
}

/// The data-policy API, from [`Client::policies`].
#[derive(Clone, Copy)]
pub struct Policies<'a> {
    pub(crate) client: &'a Client,
}

impl Policies<'_> {
    /// Every policy, [`PAGE`] at a time by `skip`/`top` in the body, until a page is
    /// empty or `totalCount` is reached.
    pub async fn list(self) -> Result<Vec<Policy>> {
        let mut out: Vec<Policy> = Vec::new();
        for pages in 1.. {
            let body = json!({"filters": [], "pagination": {"skip": out.len(), "top": PAGE}});
            let call = Call::new(Method::POST, &["data-policies", "v1", "policies", "search"])
                .on(Base::Api)
                .reading()
                .json(&body)?;
            let page: PolicyPage = self.client.execute(call).await?.decode("policies")?;
            let n = page.records.len();
            out.extend(page.records);
            check_bounds("policies", out.len(), pages)?;
            let total = page.total_count.unwrap_or(i64::MAX);
            if n == 0 || out.len() as i64 >= total {
                break;
            }
        }
        Ok(out)
    }

    /// Creates a policy (§6.1); its id. Not idempotent: a retried create can make two,
    /// so callers look for the name first and after an unclear failure.
    pub async fn create(self, p: &NewPolicy) -> Result<String> {
        let call = Call::new(Method::POST, &["data-policies", "v1", "policies"])
            .on(Base::Api)
            .json(p)?;
        let c: Created = self.client.execute(call).await?.decode("created policy")?;
        c.policy_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("created policy", "no policyId in the answer"))
    }

    /// One policy's runs (§6.5).
    pub async fn runs(self, policy: &str) -> Result<Vec<Run>> {
        let call = Call::new(
            Method::GET,
            &[
                "data-policies",
                "v1",
                "policies",
                policy,
                "policy-instances",
            ],
        )
        .on(Base::Api);
        let page: RunPage = self.client.execute(call).await?.decode("policy runs")?;
        Ok(page.records)
    }

    /// One run (§6.6).
    pub async fn run(self, policy: &str, run: &str) -> Result<Run> {
        let call = Call::new(
            Method::GET,
            &[
                "data-policies",
                "v1",
                "policies",
                policy,
                "policy-instances",
                run,
            ],
        )
        .on(Base::Api);
        self.client.execute(call).await?.decode("policy run")
    }

    /// The presigned URL of a run's evidence report (§6.7), as the tenant gives it.
    pub async fn evidence_url(self, policy: &str, run: &str) -> Result<String> {
        let call = Call::new(
            Method::GET,
            &[
                "data-policies",
                "v1",
                "policies",
                policy,
                "policy-instances",
                run,
                "evidence-reports",
            ],
        )
        .on(Base::Api);
        let e: Evidence = self.client.execute(call).await?.decode("evidence report")?;
        e.url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("evidence report", "no presigned-url in the answer"))
    }

    /// Every run of every policy (the activity search), following `lastEvaluatedKey`
    /// until a page has none.
    pub async fn instances(self) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        let mut key: Option<String> = None;
        for pages in 1.. {
            let mut body = json!({"filters": []});
            if let Some(k) = &key {
                body["lastEvaluatedKey"] = json!(k);
            }
            let call = Call::new(
                Method::POST,
                &[
                    "data-policies",
                    "v1",
                    "policies",
                    "policy-instances",
                    "search",
                ],
            )
            .on(Base::Api)
            .reading()
            .json(&body)?;
            let page: InstancePage = self.client.execute(call).await?.decode("policy runs")?;
            let n = page.records.len();
            out.extend(page.records);
            check_bounds("policy runs", out.len(), pages)?;
            key = page.last_evaluated_key.filter(|k| !k.is_empty());
            if key.is_none() || n == 0 {
                break;
            }
        }
        Ok(out)
    }
}

fn missing(what: &str, message: &str) -> crate::Error {
    crate::Error::Decode {
        what: what.to_string(),
        request_id: "none".to_string(),
        message: message.to_string(),
    }
}
