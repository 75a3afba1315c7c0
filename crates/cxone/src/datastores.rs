//! Data Store tables and column encryption (spec §5).

use reqwest::Method;
use serde_json::Value;

use crate::models::{EncryptionResult, Index, Table};
use crate::transport::Call;
use crate::{Client, Result};

/// The Data Store API (spec §5), from [`Client::datastores`].
#[derive(Clone, Copy)]
pub struct Datastores<'a> {
    pub(crate) client: &'a Client,
}

fn call(method: Method, ds: &str, table: &str, rest: Option<&str>) -> Call {
    let mut segs = vec!["api", "v2", "datastores", ds, "tables", table];
    if let Some(r) = rest {
        segs.push(r);
    }
    Call::new(method, &segs)
}

impl Datastores<'_> {
    /// One table with its columns, indexes and encryption metadata.
    pub async fn table(self, ds: &str, table: &str) -> Result<Table> {
        self.client
            .execute(call(Method::GET, ds, table, None))
            .await?
            .decode("table")
    }

    /// The table's indexes.
    pub async fn indexes(self, ds: &str, table: &str) -> Result<Vec<Index>> {
        self.client
            .execute(call(Method::GET, ds, table, Some("indexes")))
            .await?
            .decode("table indexes")
    }

    /// Turns on encryption for the columns in `request` (the spec's body), all or nothing.
    /// The idempotency key makes a retry return the first answer instead of acting twice.
    pub async fn encrypt_columns(
        self,
        ds: &str,
        table: &str,
        request: &Value,
        idempotency_key: &str,
    ) -> Result<EncryptionResult> {
        let c = call(Method::PATCH, ds, table, Some("columns"))
            .idempotency_key(idempotency_key)?
            .json(request)?;
        self.client.execute(c).await?.decode("encryption result")
    }
}
