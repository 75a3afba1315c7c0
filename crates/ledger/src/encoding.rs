//! Encoding and clock helpers every part of the ledger shares: the stored time format,
//! milliseconds for the outbox's schedule, and lowercase hex for hashes, key ids and
//! random ids.

/// The stored time format: UTC with microseconds, so it sorts as text.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

pub(crate) fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        // Not security-relevant (ids and lease tokens): fall back to time-derived bytes.
        let n = now_ms() as u64 ^ (std::process::id() as u64) << 32;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (n >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
    hex(&b)
}

/// Lowercase hex of `bytes`, in one allocation: audit hashes, key ids and random ids
/// here, digests and pseudonyms in `guard`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn timestamps_sort_as_text() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(super::timestamp(t), "2023-11-14T22:13:20.000000Z");
    }
}
