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
