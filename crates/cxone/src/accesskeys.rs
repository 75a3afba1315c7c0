//! Access keys on UserHub (spec §3): the credentials every integration signs in with.
//! Listing only here; a key's secret is never in a listing (§3.1).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::paging::{Links, check_bounds, lenient_opt_i64, lenient_opt_string};
use crate::transport::{Base, Call};
use crate::{Client, Result};

/// One access key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// The key's id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The UserHub user it belongs to.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The ACD agent id of its user.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub agent_id: Option<i64>,
    /// Whether it can sign in.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// When it last signed in, if ever.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub last_used_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    access_keys: Vec<AccessKey>,
    #[serde(default, rename = "_links")]
    links: Links,
}

/// The access-key API, from [`Client::access_keys`].
#[derive(Clone, Copy)]
pub struct AccessKeys<'a> {
    pub(crate) client: &'a Client,
}

impl AccessKeys<'_> {
    /// Every access key the caller may see (of one user, with `user_id`), following
    /// `_links.next` while a page names one.
    pub async fn list(self, user_id: Option<&str>) -> Result<Vec<AccessKey>> {
        let mut out = Vec::new();
        let mut call = Call::new(Method::GET, &["access-key-management", "v1", "access-keys"])
            .on(Base::UserHub);
        if let Some(u) = user_id {
            call = call.query("userId", u);
        }
        for pages in 1.. {
            let page: Page = self.client.execute(call).await?.decode("access keys")?;
            out.extend(page.access_keys);
            check_bounds("access keys", out.len(), pages)?;
            match page.links.next_url()? {
                Some(next) => {
                    call = Call::new(Method::GET, &[]).on(Base::UserHub).at(next);
                }
                None => break,
            }
        }
        Ok(out)
    }
}

/// A key just created: the one moment its secret exists (spec-real §3.2).
pub struct NewKey {
    /// The key's id.
    pub access_key_id: String,
    /// Its secret, shown once.
    pub access_key_secret: secrecy::SecretString,
    /// The user it belongs to.
    pub user_id: Option<String>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"[REDACTED]")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    access_key_id: Option<String>,
    access_key_secret: Option<secrecy::SecretString>,
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateReply {
    /// The spec's wrapper.
    result_set: Option<Created>,
    /// The wrapper one NICE integration reads (§3.2's conflict): accepted too.
    access_key: Option<Created>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct One {
    result_set: Option<AccessKey>,
}

impl AccessKeys<'_> {
    /// Creates a key for `user_id` (the caller, without one). Not retried: a lost answer
    /// would leave a key whose secret nobody saw (the caller reconciles by listing).
    pub async fn create(self, user_id: Option<&str>, tenant_id: Option<&str>) -> Result<NewKey> {
        let mut body = serde_json::Map::new();
        if let Some(u) = user_id {
            body.insert("userId".into(), u.into());
        }
        if let Some(t) = tenant_id {
            body.insert("tenantId".into(), t.into());
        }
        let call = Call::new(
            Method::POST,
            &["access-key-management", "v1", "access-keys"],
        )
        .on(Base::UserHub)
        .json(&body)?;
        let reply = self.client.execute(call).await?;
        let r: CreateReply = reply.decode("created access key")?;
        let made = r.result_set.or(r.access_key);
        match made {
            Some(Created {
                access_key_id: Some(id),
                access_key_secret: Some(secret),
                user_id,
            }) => Ok(NewKey {
                access_key_id: id,
                access_key_secret: secret,
                user_id,
            }),
            _ => Err(crate::Error::Decode {
                what: "created access key".into(),
                request_id: reply.request_id.clone(),
                message: "no accessKeyId and accessKeySecret in the answer".into(),
            }),
        }
    }

    /// One key (never its secret, whatever the answer holds).
    pub async fn get(self, id: &str) -> Result<AccessKey> {
        let call = Call::new(
            Method::GET,
            &["access-key-management", "v1", "access-keys", id],
        )
        .on(Base::UserHub);
        let one: One = self.client.execute(call).await?.decode("access key")?;
        let mut k = one.result_set.unwrap_or(AccessKey {
            access_key_id: None,
            user_id: None,
            tenant_id: None,
            agent_id: None,
            is_active: None,
            last_used_date: None,
        });
        k.access_key_id = Some(id.to_string());
        Ok(k)
    }

    /// Activates or deactivates a key (the id is a query parameter, §3.4).
    pub async fn set_active(self, id: &str, active: bool) -> Result<()> {
        let call = Call::new(
            Method::PATCH,
            &["access-key-management", "v1", "access-keys"],
        )
        .on(Base::UserHub)
        .query("accessKeyId", id)
        .idempotent_by_nature()
        .json(&serde_json::json!({"isActive": active}))?;
        self.client.execute(call).await.map(drop)
    }

    /// Deletes a key.
    pub async fn delete(self, id: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            &["access-key-management", "v1", "access-keys", id],
        )
        .on(Base::UserHub);
        self.client.execute(call).await.map(drop)
    }
}
