//! Bluesky events (`bluesky.events`: Jetstream's JSON, one event per record) to rows:
//!
//! - a commit that creates or updates a post: a `bluesky_posts` row; a like, repost or follow: a
//!   `bluesky_interactions` row;
//! - a commit that deletes one of those: a `bluesky_deletions` row, which marks the record's row (a trigger,
//!   whichever is written first);
//! - an `identity` (handle) or `account` (status: taken down, deleted, deactivated, active again) event: a
//!   `bluesky_account_events` row.
//!
//! A record is known by its DID, collection and record key, checked by the contract's rules as the scraper
//! checked them; its record key is a TID, whose time (`rkey_at`) partitions its table. The record itself is
//! read leniently: a field of the wrong type is left out of its column (the event stays whole in `raw`), so
//! a client's quirk costs a column, not the post. The event's `time_us` is the row's version: a replayed or
//! older event never replaces a newer one, and an identical one writes nothing.

use chrono::{DateTime, Utc};
use contract::Topic;
use contract::atproto;
use entity::{bluesky_account_events, bluesky_deletions, bluesky_interactions, bluesky_posts};
use sea_orm::ActiveValue::{NotSet, Set};
use serde::Deserialize;
use serde_json::Value;

use super::json::{parse_object, plain_text};
use super::{DecodeError, Mapping};
use crate::record::{ConsumedRecord, SCRAPED_AT_SKEW};
use crate::tables::Tables;

/// The Bluesky mapping, registered in [`super::MAPPINGS`].
pub(crate) static EVENTS: Events = Events;

pub(crate) struct Events;

pub const POST: &str = "app.bsky.feed.post";
pub const LIKE: &str = "app.bsky.feed.like";
pub const REPOST: &str = "app.bsky.feed.repost";
pub const FOLLOW: &str = "app.bsky.graph.follow";

impl Mapping for Events {
    fn topic(&self) -> &'static Topic {
        &contract::topic::BLUESKY_EVENTS
    }

    fn reads_source(&self, source: &str) -> bool {
        source.starts_with(contract::source::BLUESKY_PREFIX)
    }

    fn map(
        &self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        payload: &[u8],
        tables: &mut Tables,
    ) -> Result<(), DecodeError> {
        match map(payload, record.source(), scraped_at)? {
            Row::Post(model, raw) => tables.bluesky_posts.push(index, model, Some(raw)),
            Row::Interaction(model, raw) => tables.bluesky_interactions.push(index, model, Some(raw)),
            Row::Deletion(model) => tables.bluesky_deletions.push(index, model, None),
            Row::Account(model, raw) => tables.bluesky_account_events.push(index, model, Some(raw)),
        }
        Ok(())
    }
}

/// The row one event becomes, with the event as sent (its `raw`).
#[derive(Clone, Debug)]
pub enum Row {
    Post(bluesky_posts::ActiveModel, Box<str>),
    Interaction(bluesky_interactions::ActiveModel, Box<str>),
    Deletion(bluesky_deletions::ActiveModel),
    Account(bluesky_account_events::ActiveModel, Box<str>),
}

#[derive(Deserialize)]
struct Event {
    did: String,
    time_us: i64,
    kind: String,
    commit: Option<Commit>,
    identity: Option<AccountChange>,
    account: Option<AccountChange>,
}

#[derive(Deserialize)]
struct Commit {
    operation: String,
    collection: String,
    rkey: String,
    cid: Option<String>,
    record: Option<Value>,
}

/// An `identity` or `account` event's own object.
#[derive(Deserialize)]
struct AccountChange {
    seq: Option<i64>,
    time: Option<String>,
    handle: Option<Value>,
    active: Option<Value>,
    status: Option<Value>,
}

/// Maps one Jetstream event; `source` and `scraped_at` come from the record's headers.
pub fn map(payload: &[u8], source: &str, scraped_at: DateTime<Utc>) -> Result<Row, DecodeError> {
    // The event goes to Postgres as it came; only one that is not storable as it is gets parsed into a tree,
    // to say why, or to be stored as Postgres can.
    let raw: Box<str> = match plain_text(payload) {
        Some(text) => text.into(),
        None => storable(payload)?.to_string().into(),
    };
    // serde would also read the event from an array: what is not an object is said so.
    if !raw.trim_start().starts_with('{') {
        parse_object(payload)?;
    }
    let event: Event = serde_json::from_str(&raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DecodeError::Shape(e.to_string()),
        _ => DecodeError::InvalidJson(e.to_string()),
    })?;
    if event.time_us <= 0 {
        return Err(DecodeError::invalid("time_us", event.time_us.to_string(), "a positive number of microseconds"));
    }
    // The row's version: one far ahead (a server gone wrong, or whoever writes the topic) would keep every
    // later change of the record out, so it counts as no later than the scrape that read it, plus the skew
    // allowed. `raw` keeps what Jetstream sent.
    let event_at = micros(event.time_us, "time_us")?.min(scraped_at + SCRAPED_AT_SKEW);
    match event.kind.as_str() {
        "commit" => {
            let commit = event.commit.ok_or_else(|| DecodeError::Shape("a commit event without `commit`".into()))?;
            commit_row(&event.did, commit, event_at, source, scraped_at, raw)
        }
        kind @ ("identity" | "account") => {
            let change = if kind == "identity" { event.identity } else { event.account };
            let change = change.ok_or_else(|| DecodeError::Shape(format!("an {kind} event without `{kind}`")))?;
            account_row(&event.did, kind, change, event_at, source, scraped_at, raw)
        }
        other => Err(DecodeError::invalid("kind", excerpt(other), "commit, identity or account")),
    }
}

fn commit_row(
    did: &str,
    commit: Commit,
    event_at: DateTime<Utc>,
    source: &str,
    scraped_at: DateTime<Utc>,
    raw: Box<str>,
) -> Result<Row, DecodeError> {
    let uri = atproto::record_uri(did, &commit.collection, &commit.rkey)
        .map_err(|e| DecodeError::Shape(format!("the record's identity: {e}")))?;
    if ![POST, LIKE, REPOST, FOLLOW].contains(&commit.collection.as_str()) {
        return Err(DecodeError::invalid(
            "commit.collection",
            excerpt(&commit.collection),
            "a collection the inserter maps (posts, likes, reposts, follows)",
        ));
    }
    let rkey_at = atproto::tid_micros(&commit.rkey)
        .map_err(|e| {
            DecodeError::Shape(format!("commit.rkey: {e}: posts, likes, reposts and follows are keyed by TIDs"))
        })
        .and_then(|at| micros(at, "commit.rkey"))?;
    if commit.operation == "delete" {
        return Ok(Row::Deletion(bluesky_deletions::ActiveModel {
            did: Set(did.to_owned()),
            collection: Set(commit.collection),
            rkey: Set(commit.rkey),
            rkey_at: Set(rkey_at),
            deleted_at: Set(event_at),
            source: Set(source.to_owned()),
            ingested_at: NotSet,
        }));
    }
    if commit.operation != "create" && commit.operation != "update" {
        return Err(DecodeError::invalid("commit.operation", excerpt(&commit.operation), "create, update or delete"));
    }
    let cid = commit
        .cid
        .filter(|cid| !cid.is_empty())
        .ok_or_else(|| DecodeError::Shape(format!("a {} without `cid`", commit.operation)))?;
    let record = match commit.record {
        Some(Value::Object(record)) => record,
        _ => return Err(DecodeError::Shape(format!("a {} without its `record` object", commit.operation))),
    };
    let created_at = record.get("createdAt").and_then(Value::as_str).and_then(datetime);
    if commit.collection == POST {
        let facets = Facets::of(&record);
        let text = record.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        let reply = |part: &str| {
            let uri = record.get("reply")?.get(part)?.get("uri")?.as_str()?;
            Some(uri.to_owned())
        };
        let model = bluesky_posts::ActiveModel {
            did: Set(did.to_owned()),
            rkey: Set(commit.rkey),
            rkey_at: Set(rkey_at),
            uri: Set(uri),
            cid: Set(cid),
            created_at: Set(created_at),
            text: Set(text),
            langs: Set(strings(record.get("langs"))),
            reply_parent_uri: Set(reply("parent")),
            reply_root_uri: Set(reply("root")),
            quoted_uri: Set(quoted(record.get("embed"))),
            hashtags: Set(facets.tags),
            mentions: Set(facets.mentions),
            links: Set(facets.links),
            event_at: Set(event_at),
            deleted_at: NotSet,
            raw: NotSet,
            source: Set(source.to_owned()),
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        };
        return Ok(Row::Post(model, raw));
    }
    // A like or repost names a post (`subject: {uri, cid}`); a follow, an account (`subject: DID`).
    let subject = record.get("subject");
    let (subject_uri, subject_cid, subject_did) = match subject {
        Some(Value::String(did)) => (None, None, atproto::check_did(did).is_ok().then(|| did.clone())),
        Some(Value::Object(reference)) => {
            let uri = reference.get("uri").and_then(Value::as_str).map(str::to_owned);
            let author =
                uri.as_deref().and_then(|uri| atproto::parse_record_uri(uri).ok()).map(|parts| parts.did.to_owned());
            (uri, reference.get("cid").and_then(Value::as_str).map(str::to_owned), author)
        }
        _ => (None, None, None),
    };
    Ok(Row::Interaction(
        bluesky_interactions::ActiveModel {
            did: Set(did.to_owned()),
            collection: Set(commit.collection),
            rkey: Set(commit.rkey),
            rkey_at: Set(rkey_at),
            uri: Set(uri),
            cid: Set(cid),
            subject_uri: Set(subject_uri),
            subject_cid: Set(subject_cid),
            subject_did: Set(subject_did),
            created_at: Set(created_at),
            event_at: Set(event_at),
            deleted_at: NotSet,
            raw: NotSet,
            source: Set(source.to_owned()),
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        },
        raw,
    ))
}

fn account_row(
    did: &str,
    kind: &str,
    change: AccountChange,
    event_at: DateTime<Utc>,
    source: &str,
    scraped_at: DateTime<Utc>,
    raw: Box<str>,
) -> Result<Row, DecodeError> {
    atproto::check_did(did).map_err(|e| DecodeError::Shape(format!("the account's identity: {e}")))?;
    let seq = change.seq.ok_or_else(|| DecodeError::Shape(format!("an {kind} event without `{kind}.seq`")))?;
    // The relay's own time of the event; Jetstream's when the relay's is missing or not a time.
    let at = change.time.as_deref().and_then(datetime).unwrap_or(event_at);
    let text = |value: Option<Value>| match value {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    };
    Ok(Row::Account(
        bluesky_account_events::ActiveModel {
            did: Set(did.to_owned()),
            seq: Set(seq),
            event_at: Set(at),
            kind: Set(kind.to_owned()),
            handle: Set(text(change.handle)),
            active: Set(change.active.and_then(|active| active.as_bool())),
            status: Set(text(change.status)),
            raw: NotSet,
            source: Set(source.to_owned()),
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        },
        raw,
    ))
}

/// What a post's rich-text facets (and its own `tags`) name: hashtags lower-cased without `#`, mentioned
/// DIDs, linked URIs, each once, in order.
#[derive(Default)]
struct Facets {
    tags: Vec<String>,
    mentions: Vec<String>,
    links: Vec<String>,
}

impl Facets {
    fn of(record: &serde_json::Map<String, Value>) -> Self {
        let mut facets = Self::default();
        let features = record
            .get("facets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|facet| facet.get("features")?.as_array())
            .flatten();
        for feature in features {
            let field = |name: &str| feature.get(name).and_then(Value::as_str);
            match feature.get("$type").and_then(Value::as_str) {
                Some("app.bsky.richtext.facet#tag") => push_tag(&mut facets.tags, field("tag")),
                Some("app.bsky.richtext.facet#mention") => push_once(&mut facets.mentions, field("did")),
                Some("app.bsky.richtext.facet#link") => push_once(&mut facets.links, field("uri")),
                _ => {}
            }
        }
        for tag in record.get("tags").and_then(Value::as_array).into_iter().flatten() {
            push_tag(&mut facets.tags, tag.as_str());
        }
        facets
    }
}

fn push_tag(tags: &mut Vec<String>, tag: Option<&str>) {
    let Some(tag) = tag.map(|t| t.trim_start_matches(['#', '＃']).to_lowercase()).filter(|t| !t.is_empty()) else {
        return;
    };
    if !tags.contains(&tag) {
        tags.push(tag);
    }
}

fn push_once(values: &mut Vec<String>, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty())
        && !values.iter().any(|known| known == value)
    {
        values.push(value.to_owned());
    }
}

/// The strings of a JSON array (a post's `langs`); anything else is none.
fn strings(value: Option<&Value>) -> Vec<String> {
    let mut kept = Vec::new();
    for item in value.and_then(Value::as_array).into_iter().flatten() {
        push_once(&mut kept, item.as_str());
    }
    kept
}

/// An event Postgres cannot store as it is, made storable. A NUL character (`\u0000`), which Postgres takes in
/// neither `text` nor `jsonb`, is anyone's to type in a post, so it becomes U+FFFD (in `raw` and the columns):
/// the author's post lands instead of becoming a dead letter. What is not JSON stays a dead letter, with why.
fn storable(payload: &[u8]) -> Result<Value, DecodeError> {
    match parse_object(payload) {
        Err(DecodeError::Nul { .. }) => {
            let text =
                std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })?;
            let mut value: Value = serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
            replace_nul(&mut value);
            Ok(value)
        }
        other => other,
    }
}

fn replace_nul(value: &mut Value) {
    const REPLACEMENT: &str = "\u{FFFD}";
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', REPLACEMENT),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for key in keys {
                if let Some(item) = map.remove(&key) {
                    map.insert(key.replace('\0', REPLACEMENT), item);
                }
            }
            map.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

/// The post a quote embeds: `app.bsky.embed.record`'s `record.uri`, or `app.bsky.embed.recordWithMedia`'s
/// `record.record.uri`.
fn quoted(embed: Option<&Value>) -> Option<String> {
    let embed = embed?;
    let record = match embed.get("$type").and_then(Value::as_str)? {
        "app.bsky.embed.record" => embed.get("record")?,
        "app.bsky.embed.recordWithMedia" => embed.get("record")?.get("record")?,
        _ => return None,
    };
    record.get("uri")?.as_str().map(str::to_owned)
}

/// An atproto datetime: RFC 3339 with a zone (the specification's rule). A time without one, which some
/// clients sent, is not a time the post can be placed at: NULL, and `raw` keeps what was sent.
fn datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc))
}

fn micros(micros: i64, field: &str) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| DecodeError::invalid(field, micros.to_string(), "a time in microseconds since 1970"))
}

fn excerpt(text: &str) -> String {
    text.chars().take(100).collect::<String>().escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn facets_give_lower_cased_tags_mentions_and_links_once_each() {
        let record = json!({
            "facets": [
                {"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "RustLang"}]},
                {"features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:a"}]},
                {"features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://x.example"}, {"$type": "app.bsky.richtext.facet#tag", "tag": "rustlang"}]},
                {"features": "not an array"},
                "not an object"
            ],
            "tags": ["#Data", 5, "data"]
        });
        let facets = Facets::of(record.as_object().unwrap());
        assert_eq!(facets.tags, ["rustlang", "data"]);
        assert_eq!(facets.mentions, ["did:plc:a"]);
        assert_eq!(facets.links, ["https://x.example"]);
    }

    #[test]
    fn a_quote_is_the_embedded_records_uri() {
        let plain = json!({"$type": "app.bsky.embed.record", "record": {"uri": "at://did:plc:a/app.bsky.feed.post/3k", "cid": "c"}});
        assert_eq!(quoted(Some(&plain)).as_deref(), Some("at://did:plc:a/app.bsky.feed.post/3k"));
        let media = json!({"$type": "app.bsky.embed.recordWithMedia", "record": {"record": {"uri": "at://x/y.z.w/1"}}});
        assert_eq!(quoted(Some(&media)).as_deref(), Some("at://x/y.z.w/1"));
        assert_eq!(quoted(Some(&json!({"$type": "app.bsky.embed.images"}))), None);
    }

    #[test]
    fn an_event_time_counts_as_no_later_than_the_scrape_that_read_it() {
        let scraped_at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let far = r#"{"did":"did:plc:a","time_us":9000000000000000,"kind":"account","account":{"active":true,"did":"did:plc:a","seq":1}}"#;
        let Row::Account(row, _) = map(far.as_bytes(), "bluesky.jetstream", scraped_at).unwrap() else { panic!() };
        assert_eq!(*row.event_at.as_ref(), scraped_at + SCRAPED_AT_SKEW);
    }

    #[test]
    fn a_datetime_needs_its_zone() {
        assert!(datetime("2024-11-19T05:33:57.000Z").is_some());
        assert!(datetime("2024-11-19T05:33:57+09:00").is_some());
        assert_eq!(datetime("2024-11-19T05:33:57"), None);
        assert_eq!(datetime("yesterday"), None);
    }
}
