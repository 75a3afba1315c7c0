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
    let mut cps = checkpoints.iter().peekable();
    // The previous entry's hash in hex, as the next entry's hash covers it.
    let mut prev = [0u8; 64];
    prev.copy_from_slice(GENESIS.as_bytes());
    while let Some(part) = pages.blocking_recv() {
        let Part::Page(page) = part? else { continue };
        for r in &page.rows {
            match check_entry(&page, r, verdict.last_seq + 1, &prev, &mut cps, key) {
                Ok(hash) => prev = hash,
                Err(broken) => {
                    if verdict.entries > 0 {
                        verdict.last_hash = Some(hex_text(&prev));
                    }
                    verdict.broken = Some(broken);
                    return Ok(verdict);
                }
            }
            verdict.entries += 1;
            verdict.last_seq = r.seq;
        }
    }
    let prev_hash = hex_text(&prev);
    if verdict.entries > 0 {
        verdict.last_hash = Some(prev_hash.clone());
    }
    let end = match cps.next() {
        Some(cp) => Err(Broken {
            seq: verdict.last_seq + 1,
            reason: format!(
                "checkpoint at entry {} names an entry that is missing: the log was truncated after entry {}",
                cp.seq, verdict.last_seq
            ),
        }),
        None => check_head(head.as_ref(), &verdict, &prev_hash, key),
    };
    verdict.broken = end.err();
    Ok(verdict)
}

/// One entry: it follows the last without a gap, its hash covers its contents and the
/// previous hash, and every checkpoint at it signed that hash. Returns its hash in hex.
fn check_entry<'a>(
    page: &crate::pages::Page,
    r: &crate::pages::Raw,
    expected: i64,
    prev: &[u8; 64],
    cps: &mut std::iter::Peekable<std::slice::Iter<'a, crate::audit::Checkpoint>>,
    key: &PublicKey,
) -> std::result::Result<[u8; 64], Broken> {
    let broken = |seq: i64, reason: String| Broken { seq, reason };
    let col = |i| page.column(r, i);
    let at = col(0);
    if r.seq != expected {
        return Err(broken(
            expected,
            format!("entry {expected} is missing (the next entry is {})", r.seq),
        ));
    }
    let digest = entry_digest(&HashInput {
        seq: r.seq,
        at,
        actor: col(1),
        operation: col(2),
        target: col(3),
        outcome: col(4),
        details: col(5),
        prev_hash: std::str::from_utf8(prev).expect("hex digits"),
    });
    if r.hash != Some(digest) {
        return Err(broken(
            r.seq,
            format!(
                "entry {}: its contents do not match its hash (edited, inserted or reordered)",
                r.seq
            ),
        ));
    }
    let hash = hex64(&digest);
    while let Some(cp) = cps.next_if(|cp| cp.seq <= r.seq) {
        if cp.seq < r.seq {
            return Err(broken(
                cp.seq,
                format!("checkpoint at entry {} has no entry", cp.seq),
            ));
        }
        if cp.hash.as_bytes() != hash || cp.at != at {
            return Err(broken(
                r.seq,
                format!(
                    "entry {}: differs from what checkpoint {} signed",
                    r.seq, cp.seq
                ),
            ));
        }
        if !key.verify(
            &signing::checkpoint_message(cp.seq, &cp.hash, &cp.at),
            &cp.signature,
        ) {
            return Err(broken(
                r.seq,
                format!(
                    "checkpoint at entry {}: the signature does not verify with public key {} (it claims key {})",
                    cp.seq,
                    key.key_id(),
                    cp.key_id
                ),
            ));
        }
    }
    Ok(hash)
}

/// The signed head vouches for exactly the last entry: signed by `key`, naming its
/// sequence number and hash.
fn check_head(
    head: Option<&crate::audit::Checkpoint>,
    v: &Verdict,
    prev_hash: &str,
    key: &PublicKey,
) -> std::result::Result<(), Broken> {
    let broken = |seq: i64, reason: String| Err(Broken { seq, reason });
    let Some(h) = head else {
        if v.entries > 0 {
            return broken(
                v.last_seq,
                "the signed head is missing: the log's end cannot be vouched for".into(),
            );
        }
        return Ok(());
    };
    if !key.verify(&signing::head_message(h.seq, &h.hash, &h.at), &h.signature) {
        return broken(
            h.seq.min(v.last_seq.max(1)),
            format!(
                "the signed head does not verify with public key {} (it claims key {})",
                key.key_id(),
                h.key_id
            ),
        );
    }
    if h.seq > v.last_seq {
        return broken(
            v.last_seq + 1,
            format!(
                "the log was truncated after entry {}: the signed head names entry {}",
                v.last_seq, h.seq
            ),
        );
    }
    if h.seq < v.last_seq {
        return broken(
            h.seq + 1,
            format!(
                "entry {} and later are not covered by the signed head (which names entry {}): appended outside cxguard",
                h.seq + 1,
                h.seq
            ),
        );
    }
    if h.hash != prev_hash {
        return broken(
            v.last_seq,
            format!(
                "entry {}: differs from what the signed head vouches for",
                v.last_seq
            ),
        );
    }
    Ok(())
}
