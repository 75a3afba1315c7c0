//! ACD reporting (spec §7): completed contacts, read-only. No route of the published API
//! changes a completed contact's personal data (§7.4).
//!
//! Pages by `skip`/`top`, following `_links.next` when given; a 204 is an empty page.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::paging::{Links, check_bounds, lenient_opt_i64, lenient_opt_string};
use crate::transport::{Base, Call};
use crate::{Client, Result};

/// The most contacts asked for per page.
pub const PAGE: u32 = 1000;

/// A completed contact, the fields cxguard reads. `fromAddress` and `toAddress` are
/// personal data (a phone number or an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedContact {
    /// The ACD contact id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub contact_id: Option<i64>,
    /// The master contact id.
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub master_contact_id: Option<i64>,
    /// When it started.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub contact_start_date: Option<String>,
    /// ANI or sender address (personal data).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub from_address: Option<String>,
    /// DNIS or recipient address (personal data).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub to_address: Option<String>,
    /// The media type's name (`Email`, `Chat`, `Voice`, …).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub media_type_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    completed_contacts: Vec<CompletedContact>,
    #[serde(default, rename = "_links")]
    links: Links,
}

/// The ACD reporting API, from [`Client::acd`].
#[derive(Clone, Copy)]
pub struct Acd<'a> {
    pub(crate) client: &'a Client,
}

impl Acd<'_> {
    /// The contacts completed between `start` and `end` (RFC 3339), page after page.
    pub async fn completed(self, start: &str, end: &str) -> Result<Vec<CompletedContact>> {
        let first = |skip: usize| {
            Call::new(Method::GET, &["contacts", "completed"])
                .on(Base::Acd)
                .large_response()
                .query("startDate", start)
                .query("endDate", end)
                .query("top", PAGE.to_string())
                .query("skip", skip.to_string())
        };
        let mut out = Vec::new();
        let mut call = first(0);
        for pages in 1.. {
            let reply = self.client.execute(call).await?;
            // 204: no (more) data.
            if reply.body.is_empty() {
                break;
            }
            let page: Page = reply.decode("completed contacts")?;
            let n = page.completed_contacts.len();
            out.extend(page.completed_contacts);
            check_bounds("completed contacts", out.len(), pages)?;
            call = match page.links.next_url()? {
                Some(next) => Call::new(Method::GET, &[])
                    .on(Base::Acd)
                    .large_response()
                    .at(next),
                None if n == PAGE as usize => first(out.len()),
                None => break,
            };
            if n == 0 {
                break;
            }
        }
        Ok(out)
    }
}
