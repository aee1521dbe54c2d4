//! How one profile or media object becomes a record: keyed by its own `id`, or rejected with the reason when
//! it has none usable or is larger than a record may be. Both Instagram sources offer their objects here.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::numeric_id;
use crate::queue::{Closed, Emitter};

/// How much of an oversize payload the rejects topic keeps: enough to tell what it was.
pub const REJECT_PREFIX_BYTES: usize = 1024;

#[derive(Deserialize)]
struct Identified {
    id: Option<serde_json::Value>,
}

/// Queues `object` to `topic` keyed by its `id`, with `headers`; or rejects it, its reason naming `what` it is
/// (e.g. `Instagram web media`). Returns the key when it was accepted.
pub async fn offer(
    out: &Emitter,
    topic: &str,
    what: &str,
    object: &RawValue,
    headers: &[(&'static str, String)],
    max: usize,
) -> Result<Option<String>, Closed> {
    let bytes = object.get().as_bytes();
    if bytes.len() > max {
        let kept = REJECT_PREFIX_BYTES.min(bytes.len());
        let reason = format!(
            "{what} object of {} bytes, larger than the limit of {max} bytes; this is its first {kept} bytes",
            bytes.len()
        );
        out.reject(bytes[..kept].to_vec(), &reason).await?;
        return Ok(None);
    }
    let reason = match serde_json::from_str::<Identified>(object.get()) {
        Ok(Identified { id: Some(id) }) => match numeric_id(&id) {
            Some(key) => {
                out.accept_with(topic, key.clone(), bytes.to_vec(), headers).await?;
                return Ok(Some(key));
            }
            None => format!("{what} object whose `id` is not a positive integer: {id}"),
        },
        Ok(Identified { id: None }) => format!("{what} object without an `id`"),
        Err(e) => format!("{what} is not a JSON object: {e}"),
    };
    out.reject(bytes.to_vec(), &reason).await?;
    Ok(None)
}

/// `bytes`, or their first KiB when they are larger than `max`: what the rejects topic keeps of a payload.
pub fn prefix(bytes: &[u8], max: usize) -> Vec<u8> {
    if bytes.len() > max { bytes[..REJECT_PREFIX_BYTES.min(bytes.len())].to_vec() } else { bytes.to_vec() }
}
