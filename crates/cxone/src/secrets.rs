//! Integration secrets and the Data Actions that use them (spec §3).

use reqwest::Method;

use crate::models::{
    DataAction, Items, Recompiled, ReferenceUpdate, Secret, SecretFormat, SecretReference,
    TestResult, VerificationMatrix,
};
use crate::transport::Call;
use crate::{Client, Error, Result};

const SECRET: &[&str] = &["api", "v2", "integration", "secret"];
const ACTION: &[&str] = &["api", "v2", "integration", "dataaction"];

fn path(base: &[&str], rest: &[&str]) -> Vec<String> {
    base.iter().chain(rest).map(|s| s.to_string()).collect()
}

fn call(method: Method, segs: Vec<String>) -> Call {
    let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    Call::new(method, &refs)
}

/// The Integration secrets API (spec §3), from [`Client::secrets`].
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    pub(crate) client: &'a Client,
}

/// A rotation request. The value is borrowed only for the request and never logged.
pub struct Rotation<'v> {
    /// The new value; borrowed for the request only.
    pub value: &'v secrecy::SecretString,
    /// Its encoding.
    pub format: SecretFormat,
    /// A new description, if any.
    pub description: Option<String>,
    /// When dependents pick the value up.
    pub reference_update: ReferenceUpdate,
    /// The compare-and-swap: the hash it replaces and the one it sets.
    pub matrix: VerificationMatrix,
}

impl Secrets<'_> {
    /// Every secret (metadata and hashes only).
    pub async fn list(self) -> Result<Vec<Secret>> {
        let r = self
            .client
            .execute(call(Method::GET, path(SECRET, &[])))
            .await?;
        Ok(r.decode::<Items<Secret>>("secret list")?.items)
    }

    /// One secret.
    pub async fn get(self, id: &str) -> Result<Secret> {
        self.client
            .execute(call(Method::GET, path(SECRET, &[id])))
            .await?
            .decode("secret")
    }

    /// The Data Actions that use secret `id`.
    pub async fn references(self, id: &str) -> Result<Vec<SecretReference>> {
        let r = self
            .client
            .execute(call(Method::GET, path(SECRET, &[id, "references"])))
            .await?;
        Ok(r.decode::<Items<SecretReference>>("secret references")?
            .items)
    }

    /// Rotates with compare-and-swap on the previous value's hash. A 409 means the stored
    /// value is not `previous_sha256` — unless it already is `proposed_sha256`, which
    /// happens when our own PUT landed and its response was lost: then the rotation is
    /// reported as done.
    pub async fn rotate(self, id: &str, rotation: &Rotation<'_>) -> Result<Secret> {
        use secrecy::ExposeSecret;
        // Serialized straight from the borrowed value into a buffer wiped on drop: no
        // intermediate JSON tree keeps a copy of the secret.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a, F, R, M> {
            value: &'a str,
            format: F,
            reference_update_directive: R,
            verification_matrix: M,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
        }
        let body = Body {
            value: rotation.value.expose_secret(),
            format: rotation.format,
            reference_update_directive: rotation.reference_update,
            verification_matrix: &rotation.matrix,
            description: rotation.description.as_deref(),
        };
        let c = call(Method::PUT, path(SECRET, &[id])).json(&body)?;
        match self.client.execute(c).await {
            Ok(r) => r.decode("rotated secret"),
            Err(e) if e.status() == Some(409) => {
                let current = self.get(id).await?;
                if current
                    .value_sha256
                    .eq_ignore_ascii_case(&rotation.matrix.proposed_sha256)
                {
                    Ok(current)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The Data Actions API (spec §3), from [`Client::data_actions`].
#[derive(Clone, Copy)]
pub struct DataActions<'a> {
    pub(crate) client: &'a Client,
}

impl DataActions<'_> {
    /// One data action.
    pub async fn get(self, id: &str) -> Result<DataAction> {
        self.client
            .execute(call(Method::GET, path(ACTION, &[id])))
            .await?
            .decode("data action")
    }

    /// Recompiles against the secrets' current versions. A rejection by the action's test
    /// call (422) is an answer, not an error.
    pub async fn recompile(self, id: &str) -> Result<Recompiled> {
        let c = call(Method::POST, path(ACTION, &[id, "recompile"])).idempotent_by_nature();
        match self.client.execute(c).await {
            Ok(r) => Ok(Recompiled::Compiled(r.decode("data action")?)),
            Err(Error::Api {
                status: 422,
                problem,
                ..
            }) => Ok(Recompiled::Failed {
                action: problem
                    .extra
                    .get("dataAction")
                    .and_then(|a| serde_json::from_value(a.clone()).ok()),
                detail: problem
                    .detail
                    .clone()
                    .unwrap_or_else(|| problem.to_string()),
            }),
            Err(e) => Err(e),
        }
    }

    /// Runs the action's test against its compiled secret versions.
    pub async fn test(self, id: &str) -> Result<TestResult> {
        let c = call(Method::POST, path(ACTION, &[id, "test"])).idempotent_by_nature();
        match self.client.execute(c).await {
            Ok(_) => Ok(TestResult {
                ok: true,
                detail: None,
            }),
            Err(Error::Api {
                status: 422,
                problem,
                ..
            }) => Ok(TestResult {
                ok: false,
                detail: problem.detail.clone(),
            }),
            Err(e) => Err(e),
        }
    }
}
