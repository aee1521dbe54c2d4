//! How one profile or media object becomes a record: keyed by its own `id`, or rejected with the reason when
//! it has none usable or is larger than a record may be. Both Instagram sources offer their objects here.

use serde::Deserialize;
use serde_json::value::RawValue;

use contract::id;
use contract::reject::Reject;

use crate::queue::{Closed, Emitter};

/// How much of an oversize payload the rejects topic keeps: enough to tell what it was.
pub const REJECT_PREFIX_BYTES: usize = contract::reject::KEPT_OF_OVERSIZE;

#[derive(Deserialize)]
struct Identified {
    id: Option<serde_json::Value>,
    ig_id: Option<serde_json::Value>,
}

/// What a record is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyedBy {
    /// The object's `id`.
    Id,
    /// Its `ig_id` (a Graph profile's web id) when it has one, else its `id`: then a Graph and a web record
    /// of one account share a key, and so a partition, and one inserter writes them in order.
    WebIdElseId,
}

/// Queues `object` to `topic` keyed by its `id`, with `headers`; or rejects it, its reason (a
/// [`Reject`]) after `what` it is (e.g. `Instagram web media`). Returns the key when it was accepted.
pub async fn offer(
    out: &Emitter,
    topic: &str,
    what: &str,
    object: &RawValue,
    headers: &[(&'static str, String)],
    max: usize,
) -> Result<Option<String>, Closed> {
    offer_keyed(out, topic, what, object, KeyedBy::Id, headers, max).await
}

/// [`offer`], keyed as `keyed_by` says. The `id` must be an id whatever the key; an `ig_id`, when the key
/// is read from it and it is present, too (the inserter keys the row by it).
pub async fn offer_keyed(
    out: &Emitter,
    topic: &str,
    what: &str,
    object: &RawValue,
    keyed_by: KeyedBy,
    headers: &[(&'static str, String)],
    max: usize,
) -> Result<Option<String>, Closed> {
    let bytes = object.get().as_bytes();
    if bytes.len() > max {
        let kept = REJECT_PREFIX_BYTES.min(bytes.len());
        let reason = Reject::TooLarge { len: bytes.len(), max };
        out.reject(bytes[..kept].to_vec(), &reason.of(format!("{what} object"))).await?;
        return Ok(None);
    }
    let reason = match serde_json::from_str::<Identified>(object.get()) {
        Ok(Identified { id: Some(id), ig_id }) => match (id::from_json(&id), keyed_by, ig_id) {
            (Err(error), _, _) => Reject::BadId { field: "id", error },
            (Ok(id), KeyedBy::Id, _) | (Ok(id), KeyedBy::WebIdElseId, None | Some(serde_json::Value::Null)) => {
                return accept(out, topic, id, bytes, headers).await;
            }
            (Ok(_), KeyedBy::WebIdElseId, Some(web_id)) => match id::from_json(&web_id) {
                Ok(web_id) => return accept(out, topic, web_id, bytes, headers).await,
                Err(error) => Reject::BadId { field: "ig_id", error },
            },
        },
        Ok(Identified { id: None, .. }) => Reject::NoId("id"),
        Err(e) => Reject::NotAnObject(e.to_string()),
    };
    out.reject(bytes.to_vec(), &reason.of(format!("{what} object"))).await?;
    Ok(None)
}

async fn accept(
    out: &Emitter,
    topic: &str,
    id: i64,
    bytes: &[u8],
    headers: &[(&'static str, String)],
) -> Result<Option<String>, Closed> {
    let key = id::canonical(id);
    out.accept_with(topic, key.clone(), bytes.to_vec(), headers).await?;
    Ok(Some(key))
}

/// [`prefix`] of a whole API response, with every `access_token=` value in it (a Graph `paging.next` URL
/// carries the token) replaced by `REDACTED`: what the rejects topic keeps of a page that did not parse.
pub fn redacted_prefix(bytes: &[u8], max: usize) -> Vec<u8> {
    const KEY: &[u8] = b"access_token=";
    let mut out = Vec::with_capacity(bytes.len().min(max));
    let mut rest = bytes;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        out.extend_from_slice(&rest[..at + KEY.len()]);
        out.extend_from_slice(b"REDACTED");
        rest = &rest[at + KEY.len()..];
        // The value ends where the URL's query or the JSON string does.
        let end = rest.iter().position(|b| matches!(b, b'&' | b'"' | b'\\' | b' ' | b'#')).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    prefix(&out, max)
}

/// `bytes`, or their first KiB when they are larger than `max`: what the rejects topic keeps of a payload.
pub fn prefix(bytes: &[u8], max: usize) -> Vec<u8> {
    if bytes.len() > max { bytes[..REJECT_PREFIX_BYTES.min(bytes.len())].to_vec() } else { bytes.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::{REJECT_PREFIX_BYTES, redacted_prefix};

    #[test]
    fn a_rejected_page_keeps_no_token_and_is_bounded() {
        let page = br#"{"data":[{"id":"1"}],"paging":{"next":"https://graph.facebook.com/v21.0/1/recent_media?access_token=EAAB123&after=QVFI","previous":"https://x/?a=1&access_token=EAAB456"}}"#;
        let kept = String::from_utf8(redacted_prefix(page, 10_000)).unwrap();
        assert!(!kept.contains("EAAB123") && !kept.contains("EAAB456"), "{kept}");
        assert!(kept.contains("access_token=REDACTED&after=QVFI"), "{kept}");
        let big = [page.as_slice(), &[b' '; 20_000]].concat();
        let kept = redacted_prefix(&big, 10_000);
        assert_eq!(kept.len(), REJECT_PREFIX_BYTES.min(big.len()));
        assert!(!String::from_utf8_lossy(&kept).contains("EAAB"));
    }
}
