//! Contacts (spec §4): a paged listing as a `Stream`, GET with its ETag, and merge-patch
//! PATCH guarded by `If-Match`.

use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;

use crate::models::{Contact, ContactPage, ContactPatch};
use crate::transport::Call;
use crate::{Client, Error, Result};

const BASE: &[&str] = &["api", "v1", "contacts"];

#[derive(Clone, Copy)]
pub struct Contacts<'a> {
    pub(crate) client: &'a Client,
}

/// A listing being set up; nothing is sent until it is streamed.
#[derive(Clone)]
pub struct ContactList {
    client: Client,
    page_size: u32,
    updated_before: Option<String>,
    start: Option<String>,
}

impl Contacts<'_> {
    pub fn list(self) -> ContactList {
        ContactList {
            client: self.client.clone(),
            page_size: 100,
            updated_before: None,
            start: None,
        }
    }

    /// One contact; its `etag` is set from the response's `ETag`.
    pub async fn get(self, id: &str) -> Result<Contact> {
        let r = self
            .client
            .execute(Call::new(Method::GET, &[BASE[0], BASE[1], BASE[2], id]))
            .await?;
        let mut c: Contact = r.decode("contact")?;
        c.etag = r.etag();
        Ok(c)
    }

    /// Applies `patch` if the contact still has `etag`. Safe to retry: a replay after the
    /// change landed is refused with 412 rather than applied twice. On 412 the contact is
    /// read again, once: if it already holds every value the patch sets (our own earlier
    /// attempt landed and its answer was lost), that is [`Patched::Applied`]; otherwise
    /// [`Patched::Conflict`] hands the caller the current contact to re-plan from, so a
    /// conflict costs one GET.
    pub async fn patch(self, id: &str, etag: &str, patch: &ContactPatch) -> Result<Patched> {
        let c = Call::new(Method::PATCH, &[BASE[0], BASE[1], BASE[2], id])
            .if_match(etag)?
            .json(&patch.to_json())?;
        match self.client.execute(c).await {
            Ok(r) => {
                let mut out: Contact = r.decode("patched contact")?;
                out.etag = r.etag();
                Ok(Patched::Applied(out))
            }
            Err(e) if e.status() == Some(412) => {
                let current = self.get(id).await?;
                if patch.is_satisfied_by(&current) {
                    Ok(Patched::Applied(current))
                } else {
                    Ok(Patched::Conflict(current))
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// What a guarded PATCH came to.
#[derive(Debug, Clone)]
pub enum Patched {
    /// The contact holds the patch's values (as changed now, or by an earlier attempt).
    Applied(Contact),
    /// Someone else changed the contact first: here it is as it is now, with its ETag.
    Conflict(Contact),
}

impl ContactList {
    /// Contacts per page, 1 to 1000.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }

    /// Only contacts last updated before `t`.
    pub fn updated_before(mut self, t: time::OffsetDateTime) -> Self {
        self.updated_before = t
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        self
    }

    /// Starts from a page token an earlier listing returned.
    pub fn starting_at(mut self, token: Option<String>) -> Self {
        self.start = token;
        self
    }

    /// One page, from `token` (`None`: the first).
    pub async fn page(&self, token: Option<&str>) -> Result<ContactPage> {
        if !(1..=1000).contains(&self.page_size) {
            return Err(Error::Build(format!(
                "page_size {} is not from 1 to 1000",
                self.page_size
            )));
        }
        let mut c = Call::new(Method::GET, BASE)
            .large_response()
            .query("pageSize", self.page_size.to_string());
        if let Some(t) = token {
            c = c.query("pageToken", t);
        }
        if let Some(b) = &self.updated_before {
            c = c.query("updatedBefore", b.clone());
        }
        self.client.execute(c).await?.decode("contact page")
    }

    /// The pages, fetched one at a time as the stream is polled: memory stays bounded
    /// by one page however large the tenant. Each item is the page and the token of the
    /// page after it (`None` after the last).
    pub fn pages(self) -> impl Stream<Item = Result<ContactPage>> + Send + 'static {
        let start = self.start.clone();
        stream::try_unfold((self, Some(start)), |(list, next)| async move {
            let Some(token) = next else { return Ok(None) };
            let page = list.page(token.as_deref()).await?;
            let following = page.page_token.clone().map(Some);
            Ok(Some((page, (list, following))))
        })
    }

    /// Every contact, page after page.
    pub fn stream(self) -> impl Stream<Item = Result<Contact>> + Send + 'static {
        self.pages()
            .map_ok(|p| stream::iter(p.contacts.into_iter().map(Ok)))
            .try_flatten()
    }
}
