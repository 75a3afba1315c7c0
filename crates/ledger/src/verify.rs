//! Checking the audit chain: [`Ledger::verify`] walks every entry, checkpoint and the
//! signed head against a public key; [`Ledger::check_head`] compares the chain with a head
//! recorded outside the database (an anchor file or a head the operator wrote down).

use crate::Ledger;
use crate::audit::{Broken, GENESIS, HashInput, Verdict, entry_digest, hex64};
use crate::error::Result;
use crate::signing::{self, PublicKey};
use crate::store::on_backend;
use sqlx::Row;

/// What, besides the chain itself, a verification checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchored {
    /// The anchor file was found and the ledger reaches it.
    Checked,
    /// No anchor file yet: a ledger restored from an older copy cannot be told apart.
    Missing,
}

impl Ledger {
    /// The one check of the chain's health that every command states: the chain, its
    /// checkpoints and signed head ([`Ledger::verify`]), then the anchor kept outside the
    /// database (`anchor`, when configured) and a head the auditor gave (`expected`).
    /// The first that the ledger no longer reaches is the verdict's break, naming both
    /// sequence numbers.
    pub async fn verify_anchored(
        &self,
        key: &PublicKey,
        anchor: Option<&crate::anchor::AnchorFile>,
        expected: Option<&crate::anchor::ExpectedHead>,
    ) -> Result<(Verdict, Anchored)> {
        let mut v = self.verify(key).await?;
        let mut anchored = Anchored::Missing;
        if v.broken.is_some() {
            return Ok((v, anchored));
        }
        if let Some(a) = anchor
            && let Some(head) = a.read()?
        {
            anchored = Anchored::Checked;
            if !head.verifies(key) {
                v.broken = Some(Broken {
                    seq: head.seq,
                    reason: format!(
                        "the anchor {} is not signed by key {}: it was forged or belongs to another ledger",
                        a.path().display(),
                        key.key_id()
                    ),
                });
                return Ok((v, anchored));
            }
            let source = format!("the anchor {}", a.path().display());
            v.broken = self.check_head(head.seq, &head.hash, &source).await?;
        }
        if v.broken.is_none()
            && let Some(e) = expected
        {
            v.broken = self
                .check_head(e.seq, &e.hash, "the head given with --expect-head")
                .await?;
        }
        Ok((v, anchored))
    }

    /// Checks that this ledger reaches `head` and holds the same hash there: a database
    /// restored from an older copy, or with entries removed, ends before it. `source`
    /// names where the head came from, for the message.
    pub async fn check_head(&self, seq: i64, hash: &str, source: &str) -> Result<Option<Broken>> {
        let last: i64 = on_backend!(&self.pool, p => {
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_entries").fetch_one(p).await?.try_get::<i64, _>("n")?
        });
        if last < seq {
            return Ok(Some(Broken {
                seq,
                reason: format!(
                    "the ledger ends at entry {last}, but {source} records entry {seq}: entries were removed or an older copy of the ledger was restored"
                ),
            }));
        }
        let stored: Option<String> = on_backend!(&self.pool, p => {
            sqlx::query("SELECT hash FROM audit_entries WHERE seq = $1").bind(seq).fetch_optional(p).await?
                .map(|r| r.try_get::<Vec<u8>, _>("hash").map(|h| crate::hex(&h))).transpose()?
        });
        match stored {
            Some(h) if h == hash => Ok(None),
            Some(_) => Ok(Some(Broken {
                seq,
                reason: format!(
                    "entry {seq} holds another hash than {source} records: the chain was rewritten after it"
                ),
            })),
            None => Ok(Some(Broken {
                seq,
                reason: format!("entry {seq}, which {source} records, is missing"),
            })),
        }
    }

    /// Checks the whole chain, every checkpoint and the signed head against `key`, and
    /// names the first entry at fault. Reads in pages, so memory stays flat.
    pub async fn verify(&self, key: &PublicKey) -> Result<Verdict> {
        // Pages are read ahead on a task of their own while a blocking thread hashes: the
        // reading and the hashing take a core each. The head and the checkpoints come
        // first, from the same snapshot as the entries, so an append made meanwhile by
        // another process is either wholly seen or not at all.
        let pages = crate::pages::read_all(&self.pool);
        let key = key.clone();
        tokio::task::spawn_blocking(move || check(pages, &key))
            .await
            .map_err(|e| crate::Error::Unavailable(format!("verifying failed: {e}")))?
    }
}

/// A hash as [`hex64`] writes it, as text.
fn hex_text(h: &[u8; 64]) -> String {
    String::from_utf8_lossy(h).into_owned()
}

/// The checks of [`Ledger::verify`], over the pages of the whole chain.
fn check(
    mut pages: tokio::sync::mpsc::Receiver<Result<crate::pages::Part>>,
    key: &PublicKey,
) -> Result<Verdict> {
    use crate::pages::Part;
    let crate::pages::Signed { checkpoints, head } = match pages.blocking_recv() {
        Some(Ok(Part::Signed(s))) => s,
        Some(Err(e)) => return Err(e),
        Some(Ok(Part::Page(_))) | None => {
            return Err(crate::Error::Unavailable(
                "verifying failed: the audit log's head was not read".into(),
            ));
        }
    };
    let mut verdict = Verdict {
        entries: 0,
        checkpoints: checkpoints.len() as u64,
        last_seq: 0,
        last_hash: None,
        key_id: key.key_id().to_string(),
        broken: None,
    };
    let fail = |mut v: Verdict, seq: i64, reason: String| {
        v.broken = Some(Broken { seq, reason });
        Ok(v)
    };
    // The last intact entry's hash, made text only when a verdict is returned.
    let with_last = |mut v: Verdict, prev: &[u8; 64]| {
        if v.entries > 0 {
            v.last_hash = Some(hex_text(prev));
        }
        v
    };
    let mut cps = checkpoints.iter().peekable();
    // The previous entry's hash in hex, as the next entry's hash covers it.
    let mut prev = [0u8; 64];
    prev.copy_from_slice(GENESIS.as_bytes());
    let mut expected = 1i64;
    while let Some(part) = pages.blocking_recv() {
        let Part::Page(page) = part? else { continue };
        for r in &page.rows {
            let col = |i| page.column(r, i);
            let at = col(0);
            if r.seq != expected {
                return fail(
                    with_last(verdict, &prev),
                    expected,
                    format!("entry {expected} is missing (the next entry is {})", r.seq),
                );
            }
            let digest = entry_digest(&HashInput {
                seq: r.seq,
                at,
                actor: col(1),
                operation: col(2),
                target: col(3),
                outcome: col(4),
                details: col(5),
                prev_hash: std::str::from_utf8(&prev).expect("hex digits"),
            });
            if r.hash != Some(digest) {
                return fail(
                    with_last(verdict, &prev),
                    r.seq,
                    format!(
                        "entry {}: its contents do not match its hash (edited, inserted or reordered)",
                        r.seq
                    ),
                );
            }
            let hash = hex64(&digest);
            while let Some(cp) = cps.peek() {
                if cp.seq > r.seq {
                    break;
                }
                let cp = cps.next().expect("peeked");
                if cp.seq < r.seq {
                    return fail(
                        with_last(verdict, &prev),
                        cp.seq,
                        format!("checkpoint at entry {} has no entry", cp.seq),
                    );
                }
                if cp.hash.as_bytes() != hash || cp.at != at {
                    return fail(
                        with_last(verdict, &prev),
                        r.seq,
                        format!(
                            "entry {}: differs from what checkpoint {} signed",
                            r.seq, cp.seq
                        ),
                    );
                }
                if !key.verify(
                    &signing::checkpoint_message(cp.seq, &cp.hash, &cp.at),
                    &cp.signature,
                ) {
                    return fail(
                        with_last(verdict, &prev),
                        r.seq,
                        format!(
                            "checkpoint at entry {}: the signature does not verify with public key {} (it claims key {})",
                            cp.seq,
                            key.key_id(),
                            cp.key_id
                        ),
                    );
                }
            }
            prev = hash;
            verdict.entries += 1;
            verdict.last_seq = r.seq;
            expected += 1;
        }
    }
    let prev_hash = hex_text(&prev);
    if verdict.entries > 0 {
        verdict.last_hash = Some(prev_hash.clone());
    }
    if let Some(cp) = cps.next() {
        return fail(
            verdict.clone(),
            verdict.last_seq + 1,
            format!(
                "checkpoint at entry {} names an entry that is missing: the log was truncated after entry {}",
                cp.seq, verdict.last_seq
            ),
        );
    }
    match head {
        None if verdict.entries > 0 => fail(
            verdict.clone(),
            verdict.last_seq,
            "the signed head is missing: the log's end cannot be vouched for".into(),
        ),
        None => Ok(verdict),
        Some(h) => {
            if !key.verify(&signing::head_message(h.seq, &h.hash, &h.at), &h.signature) {
                let seq = h.seq.min(verdict.last_seq.max(1));
                return fail(
                    verdict,
                    seq,
                    format!(
                        "the signed head does not verify with public key {} (it claims key {})",
                        key.key_id(),
                        h.key_id
                    ),
                );
            }
            if h.seq > verdict.last_seq {
                return fail(
                    verdict.clone(),
                    verdict.last_seq + 1,
                    format!(
                        "the log was truncated after entry {}: the signed head names entry {}",
                        verdict.last_seq, h.seq
                    ),
                );
            }
            if h.seq < verdict.last_seq {
                return fail(
                    verdict,
                    h.seq + 1,
                    format!(
                        "entry {} and later are not covered by the signed head (which names entry {}): appended outside cxguard",
                        h.seq + 1,
                        h.seq
                    ),
                );
            }
            if h.hash != prev_hash {
                return fail(
                    verdict.clone(),
                    verdict.last_seq,
                    format!(
                        "entry {}: differs from what the signed head vouches for",
                        verdict.last_seq
                    ),
                );
            }
            Ok(verdict)
        }
    }
}
