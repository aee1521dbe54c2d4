//! The second key kind of the contract: AT Protocol (Bluesky) identities, which are not 64-bit ids. A record
//! is known by its repository's DID, its collection and its record key, and keyed by its URI,
//! `at://DID/COLLECTION/RKEY`, so that a record's create, updates and delete share a partition and keep their
//! order; an account's events (handle changes, take-downs) are keyed by its DID. The scraper keys a record only
//! if [`record_uri`] (or [`check_did`]) accepts its parts, and the inserter reads the parts through the same
//! checks, so no record the scraper acknowledged fails the inserter's check of its key.
//!
//! The syntax is the AT Protocol specification's (atproto.com/specs: did, nsid, record-key, tid), checked
//! byte by byte, with its length limits, which also keep every key within what a Postgres index holds.

/// A DID is at most 2 KiB (the DID specification's limit, which atproto adopts).
pub const MAX_DID: usize = 2048;
/// An NSID is at most 317 characters: 253 of domain authority, a dot, 63 of name.
pub const MAX_NSID: usize = 317;
/// A record key is 1 to 512 characters.
pub const MAX_RKEY: usize = 512;
/// A TID is 13 characters of base32-sortable.
const TID_LEN: usize = 13;
/// The base32-sortable alphabet, in value order (and so in byte order: a TID sorts as its time does).
const BASE32_SORTABLE: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Why a value is not the identity it should be. Its text is the reason a reject or a dead letter gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    #[error("`{0}` is not a DID (`did:METHOD:ID`, ASCII letters, digits and `._:%-`, at most 2048 bytes)")]
    Did(String),
    #[error("`{0}` is not an NSID (a collection such as `app.bsky.feed.post`)")]
    Nsid(String),
    #[error("`{0}` is not a record key (1 to 512 of ASCII letters, digits and `._:~-`, not `.` or `..`)")]
    RecordKey(String),
    #[error("`{0}` is not a TID (13 characters of base32-sortable, the time the record was made)")]
    Tid(String),
    #[error("`{0}` is not a record URI (`at://DID/COLLECTION/RKEY`)")]
    Uri(String),
}

/// Longest value quoted in an error: enough to recognise it.
const QUOTED: usize = 80;

fn quoted(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTED).collect::<String>().escape_debug().to_string();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// `did:METHOD:ID`: a lower-case method, then ASCII letters, digits and `._:%-`, not ending in `:` or `%`.
pub fn check_did(did: &str) -> Result<(), AtError> {
    let bad = || AtError::Did(quoted(did));
    if did.len() > MAX_DID {
        return Err(bad());
    }
    let rest = did.strip_prefix("did:").ok_or_else(bad)?;
    let (method, id) = rest.split_once(':').ok_or_else(bad)?;
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_lowercase());
    let id_ok = id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:%-".contains(&b))
        && id.bytes().last().is_some_and(|b| b != b':' && b != b'%');
    if method_ok && id_ok { Ok(()) } else { Err(bad()) }
}

/// A collection's NSID: at least three dot-separated segments of at most 63 characters; the domain
/// authority's segments are letters, digits and inner hyphens (the first not starting with a digit), the
/// name's letters and digits, starting with a letter.
pub fn check_nsid(nsid: &str) -> Result<(), AtError> {
    let bad = || AtError::Nsid(quoted(nsid));
    if nsid.len() > MAX_NSID {
        return Err(bad());
    }
    let segments: Vec<&str> = nsid.split('.').collect();
    if segments.len() < 3 || segments.iter().any(|s| s.is_empty() || s.len() > 63) {
        return Err(bad());
    }
    let (name, authority) = segments.split_last().ok_or_else(bad)?;
    let authority_ok = authority.iter().enumerate().all(|(i, segment)| {
        segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !segment.starts_with('-')
            && !segment.ends_with('-')
            && (i > 0 || !segment.as_bytes()[0].is_ascii_digit())
    });
    let name_ok = name.as_bytes()[0].is_ascii_alphabetic() && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if authority_ok && name_ok { Ok(()) } else { Err(bad()) }
}

/// A record key: 1 to 512 of ASCII letters, digits and `._:~-`, neither `.` nor `..`.
pub fn check_rkey(rkey: &str) -> Result<(), AtError> {
    let ok = !rkey.is_empty()
        && rkey.len() <= MAX_RKEY
        && rkey != "."
        && rkey != ".."
        && rkey.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:~-".contains(&b));
    if ok { Ok(()) } else { Err(AtError::RecordKey(quoted(rkey))) }
}

/// The record's key: `at://DID/COLLECTION/RKEY`, each part checked.
pub fn record_uri(did: &str, collection: &str, rkey: &str) -> Result<String, AtError> {
    check_did(did)?;
    check_nsid(collection)?;
    check_rkey(rkey)?;
    Ok(format!("at://{did}/{collection}/{rkey}"))
}

/// A record URI's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordUri<'a> {
    pub did: &'a str,
    pub collection: &'a str,
    pub rkey: &'a str,
}

/// Reads `at://DID/COLLECTION/RKEY` back into its parts, each checked (no part may hold a `/`).
pub fn parse_record_uri(uri: &str) -> Result<RecordUri<'_>, AtError> {
    let bad = || AtError::Uri(quoted(uri));
    let rest = uri.strip_prefix("at://").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, '/');
    let (Some(did), Some(collection), Some(rkey)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    check_did(did)?;
    check_nsid(collection)?;
    check_rkey(rkey)?;
    Ok(RecordUri { did, collection, rkey })
}

/// The microseconds since the Unix epoch that a TID encodes: its 64 bits are a zero, 53 bits of microseconds
/// and 10 bits of clock id, written in base32-sortable, 13 characters.
pub fn tid_micros(tid: &str) -> Result<i64, AtError> {
    let bad = || AtError::Tid(quoted(tid));
    if tid.len() != TID_LEN {
        return Err(bad());
    }
    let mut value: u64 = 0;
    for byte in tid.bytes() {
        let digit = BASE32_SORTABLE.iter().position(|&b| b == byte).ok_or_else(bad)?;
        value = (value << 5) | digit as u64;
    }
    // 13 characters carry 65 bits: the first character's top bit would overflow, and the top bit of the
    // 64 must be zero; both are the rule that the first character is one of `234567abcdefghij`.
    if !b"234567abcdefghij".contains(&tid.as_bytes()[0]) {
        return Err(bad());
    }
    Ok((value >> 10) as i64)
}

/// The TID of `micros` and `clock_id` (0 to 1023): how a client names a record it makes now.
pub fn tid(micros: i64, clock_id: u16) -> String {
    let value = ((micros as u64 & ((1 << 53) - 1)) << 10) | u64::from(clock_id & 0x3ff);
    (0..TID_LEN).rev().map(|i| BASE32_SORTABLE[((value >> (5 * i)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids_follow_the_specification() {
        for good in ["did:plc:z72i7hdynmk6r22z27h6tvur", "did:web:example.com", "did:web:localhost%3A1234", "did:m:v"] {
            assert_eq!(check_did(good), Ok(()), "{good}");
        }
        let long = format!("did:plc:{}", "a".repeat(MAX_DID));
        for bad in [
            "",
            "did:",
            "did:plc",
            "did:PLC:abc",
            "did:plc:",
            "did:plc:abc:",
            "did:plc:ab%",
            "DID:plc:a",
            "did:plc:a/b",
            "did:plc:a b",
            "did:plc:é",
            &long,
        ] {
            assert!(check_did(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nsids_follow_the_specification() {
        for good in ["app.bsky.feed.post", "com.example.fooBar", "net.users.bob.ping", "a-0.b-1.c", "a.b.c"] {
            assert_eq!(check_nsid(good), Ok(()), "{good}");
        }
        for bad in [
            "app.bsky",
            "app..post",
            "1app.bsky.post",
            "app.bsky.feed.po-st",
            "app.bsky.feed.1post",
            "-a.b.c",
            "app.bsky.feed.post/x",
            "",
        ] {
            assert!(check_nsid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_keys_follow_the_specification() {
        for good in ["3jui7kd54zh2y", "self", "example.com", "~1.2-3_", "pre:fix", "_"] {
            assert_eq!(check_rkey(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a#b", "a?b", "é", &"a".repeat(MAX_RKEY + 1)] {
            assert!(check_rkey(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_uri_is_made_and_read_back_with_the_same_checks() {
        let uri = record_uri("did:plc:abc", "app.bsky.feed.post", "3l3qo2vuowo2b").unwrap();
        assert_eq!(uri, "at://did:plc:abc/app.bsky.feed.post/3l3qo2vuowo2b");
        let parts = parse_record_uri(&uri).unwrap();
        assert_eq!((parts.did, parts.collection, parts.rkey), ("did:plc:abc", "app.bsky.feed.post", "3l3qo2vuowo2b"));
        assert!(record_uri("did:plc:abc", "app.bsky.feed.post", "a/b").is_err());
        for bad in ["at://did:plc:abc/app.bsky.feed.post", "https://did:plc:abc/a.b.c/x", "at://did:plc:abc/a.b.c/x/y"]
        {
            assert!(parse_record_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tid_is_the_time_its_record_was_made() {
        // From the atproto specification's examples: 3jzfcijpj2z2a.
        let micros = tid_micros("3jzfcijpj2z2a").unwrap();
        assert_eq!(tid(micros, 0).len(), 13);
        let now = 1_765_000_000_123_456;
        assert_eq!(tid_micros(&tid(now, 1023)), Ok(now));
        assert!(tid(now, 0) < tid(now + 1, 0), "TIDs sort as their times");
        for bad in ["", "3jzfcijpj2z2", "3jzfcijpj2z2aa", "kjzfcijpj2z2a", "3jzfcijpj2z21", "3JZFCIJPJ2Z2A"] {
            assert!(tid_micros(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_long_bad_value_is_quoted_short() {
        let reason = check_did(&"x".repeat(100_000)).unwrap_err().to_string();
        assert!(reason.len() < 300, "{reason}");
    }
}
