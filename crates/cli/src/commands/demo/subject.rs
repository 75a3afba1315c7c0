//! The demo's subject-request step: a (fictional) person asks to be erased. Find them by
//! email across contacts and guests, erase them — contacts anonymized, guest attribute
//! deleted, CXone's platform erasure filed — and show the receipt.

use std::sync::Arc;

use guard::identity::{IdentifierKind, Identity};
use guard::subject::{self, Matcher, Receipt, Request};
use secrecy::SecretString;

use crate::exit::{CliError, Exit};

/// The demo person's contacts and guest.
const CONTACTS: [&str; 2] = ["c-0000002", "c-0000003"];
const GUEST: &str = "g-000007";
const EMAIL: &str = "dana.demo@example.com";

pub(super) async fn subject_step(
    client: &cxone::Client,
    ledger: &ledger::Ledger,
    sim: &cxone_sim::SimHandle,
    policy: &guard::subject::erase::ErasePolicy,
) -> Result<Receipt, CliError> {
    let failed = |m: String| CliError::new(Exit::Failed, m);
    let key = guard::keys::Key::from_bytes("demo-identity", vec![42u8; 32]).map_err(failed)?;
    let identity = Identity::new(
        Arc::new(key),
        guard::pseudonym::Normalizer {
            region: Some(guard::pseudonym::parse_region("US").map_err(failed)?),
            gmail_folding: false,
        },
        guard::identity::DEFAULT_ATTRIBUTE,
    )
    .map_err(failed)?;
    // The person wrote to two contacts and chatted once as a linked guest.
    let c = sim.control();
    for id in CONTACTS {
        c.edit_contact(id, serde_json::json!({"email": EMAIL}))
            .map_err(failed)?;
    }
    let (kind, pseudonym) = identity
        .pseudonym("email", EMAIL, IdentifierKind::Email)
        .map_err(|e| failed(e.to_string()))?;
    guard::identity::link(
        &identity,
        client,
        ledger,
        GUEST,
        kind,
        &pseudonym,
        "cxguard-demo",
    )
    .await
    .map_err(|e| failed(e.to_string()))?
    .audit?;

    let subjects = subject::prepare(
        vec![Request {
            reference: "demo-request-1".into(),
            identifier: SecretString::from(EMAIL.to_string()),
            kind: IdentifierKind::Email,
            external_ids: Vec::new(),
        }],
        &identity,
    )
    .map_err(|e| failed(e.join("; ")))?;
    let matcher = Matcher::new(
        &subjects,
        identity.normalizer(),
        &policy.pseudonymize_keys(),
    );
    let receipts = subject::erase(
        client,
        ledger,
        policy,
        &subjects,
        &matcher,
        &subject::erase::Options {
            actor: "cxguard-demo".into(),
            platform: true,
            page_size: cxone::PageSize::DEFAULT_BULK,
            concurrency: 8,
            attribute: identity.attribute().to_string(),
            since: None,
        },
    )
    .await?;
    receipts
        .into_iter()
        .next()
        .ok_or_else(|| failed("the erasure wrote no receipt".into()))
}
