//! Digital First Omnichannel (spec §4), below `{api_endpoint}/dfo/3.0`: customers, their
//! cases and custom fields. Customers page by `page`/`size`, following `_links.next` when
//! given (§4.3a); cases by `scrollToken`, repeating the same filters (§4.4a).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::paging::{Links, check_bounds, lenient_opt_i64, lenient_opt_string, text_enum};
use crate::transport::{Base, Call};
use crate::{Client, Result};

/// Customers asked for per page (the SDK's default is 20, it sends 25).
pub const CUSTOMER_PAGE: usize = 100;

text_enum! {
    /// A case's status (§4.2 `ContactStatus`).
    CaseStatus {
        /// Closed.
        Closed = "closed",
        /// Escalated.
        Escalated = "escalated",
        /// New.
        New = "new",
        /// Open.
        Open = "open",
        /// Pending.
        Pending = "pending",
        /// Resolved.
        Resolved = "resolved",
        /// Trashed.
        Trashed = "trashed",
    }
}

/// A custom field's value (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomField {
    /// Its identifier.
    pub ident: String,
    /// Its value (personal data, possibly).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub value: Option<String>,
}

/// One identity of a customer on one channel (§4.2): personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The id on the channel (an address, a phone number, a handle).
    #[serde(default)]
    pub id_on_external_platform: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
}

/// A DFO customer (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Its id.
    pub id: String,
    /// Last change.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub updated_at: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Surname.
    #[serde(default)]
    pub surname: Option<String>,
    /// Its identities, one per channel.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// Its custom fields.
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// A DFO case (a "contact", §4.2), the fields cxguard reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    /// The case number.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub id: Option<String>,
    /// The ACD contact id (null on older cases).
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    pub contact_id: Option<i64>,
    /// The channel.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Its status.
    #[serde(default)]
    pub status: Option<CaseStatus>,
    /// When it was created.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// When its status last changed (for a closed case: when it was closed).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub status_updated_at: Option<String>,
    /// The customer.
    #[serde(default)]
    pub end_user: Option<CaseCustomer>,
    /// Its custom fields (personal data, possibly).
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// The customer of a case: its id only (the rest is the customer's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseCustomer {
    /// The customer's id.
    #[serde(default)]
    pub id: Option<String>,
}

/// What a removal left on a message (§4.2 `ContentRemoved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// `GDPR`, `TTL` or `other`.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was removed.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub removed_at: Option<String>,
}

/// A message of a case (§4.2 `MessageDetail`), the fields cxguard reads; its content
/// is personal data and is never kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Its id.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub id: Option<String>,
    /// `inbound` or `outbound`.
    #[serde(default)]
    pub direction: Option<String>,
    /// When it was created.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub created_at: Option<String>,
    /// Set once its content was removed.
    #[serde(default)]
    pub content_removed: Option<Removed>,
    /// Set once its author's name was removed.
    #[serde(default)]
    pub author_name_removed: Option<Removed>,
    /// The customer identity that wrote it (inbound messages; personal data).
    #[serde(default)]
    pub author_end_user_identity: Option<Identity>,
}

#[derive(Deserialize)]
struct MessagePage {
    #[serde(default)]
    data: Vec<Message>,
}

/// A custom-field definition of customers (§4.3i).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDefinition {
    /// Its identifier.
    pub ident: String,
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// `text`, `email` or `list`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A customers' custom-field definition to create (§4.3i).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewFieldDefinition {
    /// Its identifier.
    pub ident: String,
    /// Its label.
    pub label: String,
    /// `text`, `email` or `list`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Required on every customer.
    pub is_required: bool,
    /// Agents may edit it.
    pub is_editable: bool,
    /// Shown in the agent's right panel.
    pub is_visible_in_right_panel: bool,
    /// Shown on the customer card.
    pub is_visible_in_customer_card: bool,
}

#[derive(Deserialize)]
struct CustomerPage {
    #[serde(default)]
    data: Vec<Customer>,
    #[serde(default, deserialize_with = "lenient_opt_i64")]
    hits: Option<i64>,
    #[serde(default, rename = "_links")]
    links: Links,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CasePage {
    #[serde(default)]
    data: Vec<Case>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    scroll_token: Option<String>,
}

/// Filters of a case search, repeated on every page (§4.4a).
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// `status[]`: only these statuses.
    pub statuses: Vec<CaseStatus>,
    /// `customerId`: one customer's cases.
    pub customer_id: Option<String>,
}

/// The DFO API, from [`Client::dfo`].
#[derive(Clone, Copy)]
pub struct Dfo<'a> {
    pub(crate) client: &'a Client,
}

impl Dfo<'_> {
    /// Every customer, [`CUSTOMER_PAGE`] at a time: the page's `_links.next` when it
    /// names one, else the next page number while pages are full and `hits` is not
    /// reached.
    pub async fn customers(self) -> Result<Vec<Customer>> {
        let page_call = |page: usize| {
            Call::new(Method::GET, &["customers"])
                .on(Base::Dfo)
                .large_response()
                .query("page", page.to_string())
                .query("size", CUSTOMER_PAGE.to_string())
        };
        let mut out = Vec::new();
        let mut call = page_call(1);
        for pages in 1.. {
            let page: CustomerPage = self.client.execute(call).await?.decode("customers")?;
            let n = page.data.len();
            out.extend(page.data);
            check_bounds("customers", out.len(), pages)?;
            let more = n == CUSTOMER_PAGE && page.hits.is_none_or(|h| (out.len() as i64) < h);
            call = match page.links.next_url()? {
                Some(next) if n > 0 => Call::new(Method::GET, &[])
                    .on(Base::Dfo)
                    .large_response()
                    .at(next),
                _ if more => page_call(pages + 1),
                _ => break,
            };
        }
        Ok(out)
    }

    /// Every case the filter matches, following `scrollToken` (with the same filters)
    /// until a page has none or is empty.
    pub async fn cases(self, filter: &CaseFilter) -> Result<Vec<Case>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for pages in 1.. {
            let mut call = Call::new(Method::GET, &["contacts"])
                .on(Base::Dfo)
                .large_response();
            for s in &filter.statuses {
                call = call.query("status[]", s.as_str());
            }
            if let Some(c) = &filter.customer_id {
                call = call.query("customerId", c.as_str());
            }
            if let Some(t) = &token {
                call = call.query("scrollToken", t.as_str());
            }
            let page: CasePage = self.client.execute(call).await?.decode("cases")?;
            let n = page.data.len();
            out.extend(page.data);
            check_bounds("cases", out.len(), pages)?;
            token = page.scroll_token.filter(|t| !t.is_empty());
            if token.is_none() || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The messages of case `case` (§4.5a: one page, no paging in the spec).
    pub async fn messages(self, case: &str) -> Result<Vec<Message>> {
        let call = Call::new(Method::GET, &["contacts", case, "messages"])
            .on(Base::Dfo)
            .large_response();
        Ok(self
            .client
            .execute(call)
            .await?
            .decode::<MessagePage>("messages")?
            .data)
    }

    /// The messages of case `case` as the tenant sends them, content included: for an
    /// access request's export, never logged.
    pub async fn message_documents(self, case: &str) -> Result<Vec<serde_json::Value>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<serde_json::Value>,
        }
        let call = Call::new(Method::GET, &["contacts", case, "messages"])
            .on(Base::Dfo)
            .large_response();
        Ok(self
            .client
            .execute(call)
            .await?
            .decode::<Page>("messages")?
            .data)
    }

    /// Removes the content of message `message` of case `case` (§4.5d), `reason` `GDPR`,
    /// `TTL` or `other`. Safe to send again: the first removal's time is kept. Paced
    /// against the case's own "update specific contact" budget (§4.1).
    pub async fn remove_content(self, case: &str, message: &str, reason: &str) -> Result<()> {
        self.removal(case, message, "content-removal", reason).await
    }

    /// Removes a message's author name, address and handles (§4.5e), paced as
    /// [`Dfo::remove_content`].
    pub async fn remove_author_name(self, case: &str, message: &str, reason: &str) -> Result<()> {
        self.removal(case, message, "author-name-removal", reason)
            .await
    }

    async fn removal(self, case: &str, message: &str, what: &str, reason: &str) -> Result<()> {
        let call = Call::new(Method::POST, &["messages", message, what])
            .on(Base::Dfo)
            .paced_as(format!("Dfo/contacts/{case}"))
            .idempotent_by_nature()
            .json(&serde_json::json!({"reason": reason}))?;
        self.client.execute(call).await.map(drop)
    }

    /// One case (§4.4b).
    pub async fn case(self, number: &str) -> Result<Case> {
        let call = Call::new(Method::GET, &["contacts", number]).on(Base::Dfo);
        self.client.execute(call).await?.decode("case")
    }

    /// Sets custom fields of a case (§4.4c), paced against the case's own budget.
    pub async fn set_case_fields(self, number: &str, fields: &[CustomField]) -> Result<()> {
        let call = Call::new(Method::PUT, &["contacts", number, "custom-fields"])
            .on(Base::Dfo)
            .json(&fields)?;
        self.client.execute(call).await.map(drop)
    }

    /// Deletes one custom field of a case (§4.4d).
    pub async fn delete_case_field(self, number: &str, ident: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            &["contacts", number, "custom-fields", ident],
        )
        .on(Base::Dfo);
        self.client.execute(call).await.map(drop)
    }

    /// The cases' custom-field definitions (§4.3i, `consumer-contact-custom-fields`).
    pub async fn case_fields(self) -> Result<Vec<FieldDefinition>> {
        let call = Call::new(Method::GET, &["consumer-contact-custom-fields"]).on(Base::Dfo);
        self.client
            .execute(call)
            .await?
            .decode("case custom-field definitions")
    }

    /// The ids of a customer's notes (§4.3h; their content is never kept).
    pub async fn note_ids(self, customer: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Note {
            #[serde(default, deserialize_with = "lenient_opt_string")]
            id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<Note>,
        }
        let call = Call::new(Method::GET, &["customers", customer, "notes"]).on(Base::Dfo);
        let page: Page = self.client.execute(call).await?.decode("notes")?;
        Ok(page.data.into_iter().filter_map(|n| n.id).collect())
    }

    /// Deletes a customer's note (§4.3h).
    pub async fn delete_note(self, customer: &str, note: &str) -> Result<()> {
        let call = Call::new(Method::DELETE, &["customers", customer, "notes", note]).on(Base::Dfo);
        self.client.execute(call).await.map(drop)
    }

    /// One customer (§4.3b).
    pub async fn customer(self, id: &str) -> Result<Customer> {
        let call = Call::new(Method::GET, &["customers", id]).on(Base::Dfo);
        self.client.execute(call).await?.decode("customer")
    }

    /// Sets custom fields of a customer (§4.3e): the listed idents are written, the
    /// others left as they are. Sending the same values again changes nothing.
    pub async fn set_customer_fields(self, customer: &str, fields: &[CustomField]) -> Result<()> {
        let call = Call::new(Method::PUT, &["customers", customer, "custom-fields"])
            .on(Base::Dfo)
            .json(&fields)?;
        self.client.execute(call).await.map(drop)
    }

    /// Deletes one custom field of a customer (§4.3f).
    pub async fn delete_customer_field(self, customer: &str, ident: &str) -> Result<()> {
        let call = Call::new(
            Method::DELETE,
            &["customers", customer, "custom-fields", ident],
        )
        .on(Base::Dfo);
        self.client.execute(call).await.map(drop)
    }

    /// Creates (or updates) a customers' custom-field definition (§4.3i).
    pub async fn put_customer_field_definition(self, d: &NewFieldDefinition) -> Result<()> {
        let call = Call::new(Method::PUT, &["customers", "custom-field-definitions"])
            .on(Base::Dfo)
            .json(d)?;
        self.client.execute(call).await.map(drop)
    }

    /// The customers' custom-field definitions.
    pub async fn customer_fields(self) -> Result<Vec<FieldDefinition>> {
        let call = Call::new(Method::GET, &["customers", "custom-field-definitions"]).on(Base::Dfo);
        self.client
            .execute(call)
            .await?
            .decode("custom-field definitions")
    }
}
