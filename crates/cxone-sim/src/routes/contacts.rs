//! Contacts (spec §4): paged listing in a stable order with an `etag` per contact, GET
//! with `ETag`, and merge-patch PATCH guarded by `If-Match`.

use axum::http::header;
use base64::Engine as _;
use serde_json::json;

use super::{Ctx, json_body, query_pairs, require_if_match};
use crate::data::{ContactRecord, contact_index};
use crate::problem::Reply;
use crate::state::contacts::{apply_patch, edit_contact};
use crate::state::{SimState, lock};

const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
/// At most this many contacts are examined for one filtered page; a page may then come
/// back short, with a token to continue (as real APIs do to bound a request's cost).
const MAX_SCAN: u32 = 50_000;

fn encode_token(next: u32) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{}", next - 1))
}

fn decode_token(t: &str) -> Option<u32> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    s.strip_prefix("after:")?
        .parse::<u32>()
        .ok()
        .map(|after| after + 1)
}

pub(crate) fn list(s: &SimState, ctx: &Ctx<'_>) -> Reply {
    let mut page_size = DEFAULT_PAGE;
    let mut start = 1u32;
    let mut before: Option<i64> = None;
    for (k, v) in query_pairs(ctx.uri) {
        match k.as_str() {
            "pageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => page_size = n,
                _ => {
                    return Reply::bad_field(
                        "pageSize",
                        format!("{v:?} is not an integer from 1 to {MAX_PAGE}"),
                    );
                }
            },
            "pageToken" => match decode_token(&v) {
                Some(n) => start = n,
                None => return Reply::bad_field("pageToken", "not a token this API issued"),
            },
            "updatedBefore" => {
                match time::OffsetDateTime::parse(
                    &v,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(t) => before = Some(t.unix_timestamp()),
                    Err(e) => {
                        return Reply::bad_field(
                            "updatedBefore",
                            format!("{v:?} is not an RFC 3339 timestamp: {e}"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    let store = lock(&s.contacts);
    let mut out = Vec::with_capacity(page_size.min(store.count as usize));
    let mut i = start.max(1);
    let mut scanned = 0u32;
    while i <= store.count && out.len() < page_size && scanned < MAX_SCAN {
        let c = store.get(i);
        if before.is_none_or(|b| c.updated_at < b) {
            let etag = c.etag(store.seed, i);
            out.push(c.to_json(i, Some(&etag)));
        }
        i += 1;
        scanned += 1;
    }
    let token = (i <= store.count).then(|| encode_token(i));
    Reply::ok(json!({"contacts": out, "pageToken": token}))
}

fn find(s: &SimState, id: &str) -> Result<u32, Reply> {
    let count = lock(&s.contacts).count;
    contact_index(id, count).ok_or_else(|| Reply::not_found(format!("no contact {id}")))
}

pub(crate) fn get(s: &SimState, id: &str) -> Reply {
    let idx = match find(s, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let store = lock(&s.contacts);
    let c = store.get(idx);
    let etag = c.etag(store.seed, idx);
    Reply::ok(c.to_json(idx, None)).with_header(header::ETAG, etag)
}

fn same_content(a: &ContactRecord, b: &ContactRecord) -> bool {
    a.first_name == b.first_name
        && a.last_name == b.last_name
        && a.email == b.email
        && a.phone == b.phone
        && a.custom_fields == b.custom_fields
}

pub(crate) fn patch(s: &SimState, id: &str, ctx: &Ctx<'_>) -> Reply {
    let idx = match find(s, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let race = lock(&s.race_edits).remove(id);
    if let Some(edit) = race
        && let Err(e) = edit_contact(s, id, &edit)
    {
        tracing::warn!("race edit of {id} failed: {e}");
    }
    let mut store = lock(&s.contacts);
    let current = store.get(idx);
    let etag = current.etag(store.seed, idx);
    if let Some(r) = require_if_match(ctx.headers, &etag) {
        return r;
    }
    let body = match json_body(ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut next = match apply_patch(&current, &body, id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if same_content(&current, &next) {
        return Reply::ok(current.to_json(idx, None)).with_header(header::ETAG, etag);
    }
    next.revision += 1;
    next.updated_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let new_etag = next.etag(store.seed, idx);
    let out = next.to_json(idx, None);
    store.overlay[idx as usize] = Some(Box::new(next));
    drop(store);
    s.mutated("contact", id);
    Reply::ok(out).with_header(header::ETAG, new_etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_token(&encode_token(501)), Some(501));
        assert_eq!(decode_token("garbage!"), None);
    }
}
