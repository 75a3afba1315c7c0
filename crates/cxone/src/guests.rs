//! Web-messaging guests and their attributes (spec §6).

use reqwest::Method;
use serde::Deserialize;

use crate::models::{Attribute, AttributeOp};
use crate::transport::Call;
use crate::{Client, Result};

/// The web-messaging guests API (spec §6), from [`Client::guests`].
#[derive(Clone, Copy)]
pub struct Guests<'a> {
    pub(crate) client: &'a Client,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl Guests<'_> {
    /// Creates a guest. With an idempotency key a lost answer is retried and returns the
    /// same guest; without one the request is sent once, since a retry could create two.
    pub async fn create(self, idempotency_key: Option<&str>) -> Result<String> {
        let mut c = Call::new(Method::POST, &["api", "v2", "interactions", "guests"])
            .json(&serde_json::json!({}))?;
        if let Some(k) = idempotency_key {
            c = c.idempotency_key(k)?;
        }
        Ok(self
            .client
            .execute(c)
            .await?
            .decode::<Created>("created guest")?
            .id)
    }

    /// A guest's attributes.
    pub async fn attributes(self, guest: &str) -> Result<Vec<Attribute>> {
        let c = Call::new(
            Method::GET,
            &["api", "v2", "interactions", "guests", guest, "attributes"],
        );
        self.client.execute(c).await?.decode("guest attributes")
    }

    /// Applies upserts and deletes. Idempotent by nature (spec §2), so it is retried.
    pub async fn patch_attributes(
        self,
        guest: &str,
        ops: &[AttributeOp],
    ) -> Result<Vec<Attribute>> {
        let c = Call::new(
            Method::PATCH,
            &["api", "v2", "interactions", "guests", guest, "attributes"],
        )
        .idempotent_by_nature()
        .json(&ops)?;
        self.client.execute(c).await?.decode("guest attributes")
    }
}
