//! Contacts (spec §4): a paged listing as a `Stream`, GET with its ETag, and merge-patch
//! PATCH guarded by `If-Match`.

use futures_util::stream::{self, Stream, TryStreamExt};
use reqwest::Method;

use crate::models::{Contact, ContactPage, ContactPatch};
use crate::transport::Call;
use crate::{Client, Error, Result};

const BASE: &[&str] = &["api", "v1", "contacts"];

/// The contacts API (spec §4), from [`Client::contacts`].
#[derive(Clone, Copy)]
pub struct Contacts<'a> {
    pub(crate) client: &'a Client,
}

/// Contacts per listing page, 1 to 1000 (spec §4): checked once, where the number comes
/// in, so nothing past that point checks it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// The tenant's default page.
    pub const DEFAULT: PageSize = PageSize(100);
    /// What bulk jobs use unless told otherwise.
    pub const DEFAULT_BULK: PageSize = PageSize(500);
    /// The largest page the tenant serves.
    pub const MAX: u32 = 1000;

    /// `n` if it is from 1 to 1000; otherwise why not.
    pub fn new(n: u32) -> std::result::Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(PageSize(n))
        } else {
            Err(format!("{n} is not from 1 to {}", Self::MAX))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A listing being set up; nothing is sent until it is streamed.
#[derive(Clone)]
pub struct ContactList {
    client: Client,
    page_size: PageSize,
    updated_before: Option<String>,
    start: Option<String>,
}

impl Contacts<'_> {
    /// A listing of contacts, set up with the builder methods; nothing is sent until it is paged.
    pub fn list(self) -> ContactList {
        ContactList {
            client: self.client.clone(),
            page_size: PageSize::DEFAULT,
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

/// A page being fetched in its own task; aborted if dropped unawaited.
struct Ahead(tokio::task::JoinHandle<Result<ContactPage>>);

impl Ahead {
    fn fetch(list: &ContactList, token: Option<String>) -> Self {
        let list = list.clone();
        Ahead(tokio::spawn(
            async move { list.page(token.as_deref()).await },
        ))
    }

    async fn wait(mut self) -> Result<ContactPage> {
        (&mut self.0)
            .await
            .map_err(|e| Error::Build(format!("the page fetch stopped: {e}")))?
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
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
    /// Contacts per page.
    pub fn page_size(mut self, n: PageSize) -> Self {
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
        let mut c = Call::new(Method::GET, BASE)
            .large_response()
            .query("pageSize", self.page_size.get().to_string());
        if let Some(t) = token {
            c = c.query("pageToken", t);
        }
        if let Some(b) = &self.updated_before {
            c = c.query("updatedBefore", b.clone());
        }
        self.client.execute(c).await?.decode("contact page")
    }

    /// The pages, in order. While the caller works on one page the next is already
    /// being fetched (one request ahead, no more), so memory stays bounded by two pages
    /// however large the tenant. Each page carries the token of the page after it
    /// (`None` after the last). Dropping the stream cancels the fetch ahead.
    pub fn pages(self) -> impl Stream<Item = Result<ContactPage>> + Send + 'static {
        let first = Ahead::fetch(&self, self.start.clone());
        stream::try_unfold((self, Some(first)), |(list, ahead)| async move {
            let Some(ahead) = ahead else { return Ok(None) };
            let page = ahead.wait().await?;
            let next = page
                .page_token
                .clone()
                .map(|t| Ahead::fetch(&list, Some(t)));
            Ok(Some((page, (list, next))))
        })
    }

    /// Every contact, page after page.
    pub fn stream(self) -> impl Stream<Item = Result<Contact>> + Send + 'static {
        self.pages()
            .map_ok(|p| stream::iter(p.contacts.into_iter().map(Ok)))
            .try_flatten()
    }
}
