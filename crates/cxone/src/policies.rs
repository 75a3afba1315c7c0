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
