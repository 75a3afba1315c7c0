//! `digital setup`: the DFO customers' custom field that holds the identity pseudonym
//! (`[identity] attribute`, spec-real §4.3e) must have a definition before a link can
//! write it. This creates it when missing — text, not required, not editable and not
//! shown to agents (a pseudonym is of no use to them) — and audits the creation once.

use cxone::dfo::NewFieldDefinition;
use ledger::{Details, Ledger, NewEntry, Outcome};

use crate::Result;

/// The audit operation of a created definition.
pub const OPERATION: &str = "dfo.field_definition.created";

/// What the tenant holds of the identity field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldState {
    /// Defined as text: links can be written.
    Ready,
    /// Defined with another type (`email`, `list`): a pseudonym may be refused.
    WrongType(String),
    /// Not defined: links are refused until `digital setup` creates it.
    Missing,
}

/// Reads the customers' definitions and says what they hold of `attribute`.
pub async fn identity_field(client: &cxone::Client, attribute: &str) -> Result<FieldState> {
    let defs = client.dfo().customer_fields().await?;
    Ok(match defs.iter().find(|d| d.ident == attribute) {
        None => FieldState::Missing,
        Some(d) => match d.kind.as_deref() {
            None | Some("text") => FieldState::Ready,
            Some(other) => FieldState::WrongType(other.to_string()),
        },
    })
}

/// Creates the definition of `attribute` when it is missing; `Ok(true)` when it
/// created it, `Ok(false)` when it was there already (nothing sent). A definition of
/// another type is refused, not changed: agents' data may depend on it.
pub async fn setup(
    client: &cxone::Client,
    ledger: &Ledger,
    attribute: &str,
    actor: &str,
) -> Result<bool> {
    match identity_field(client, attribute).await? {
        FieldState::Ready => return Ok(false),
        FieldState::WrongType(t) => {
            return Err(crate::Error::Invalid(format!(
                "identity.attribute: the DFO customer field {attribute:?} is defined with type {t}, not text; a pseudonym belongs in a text field: name another field in [identity] attribute"
            )));
        }
        FieldState::Missing => {}
    }
    client
        .dfo()
        .put_customer_field_definition(&NewFieldDefinition {
            ident: attribute.to_string(),
            label: "cxguard pseudonym".to_string(),
            kind: "text".to_string(),
            is_required: false,
            is_editable: false,
            is_visible_in_right_panel: false,
            is_visible_in_customer_card: false,
        })
        .await?;
    ledger
        .append(NewEntry::new(
            actor,
            OPERATION,
            attribute,
            Outcome::Success,
            Details::new().label("type", "text"),
        )?)
        .await?;
    Ok(true)
}
