//! What a Jetstream message must be to become a record: a JSON object with the event's `time_us` (a positive
//! integer: the cursor to resume from), its `kind`, and the identity the contract keys it by: a commit's
//! record URI (`at://DID/COLLECTION/RKEY`), an identity or account event's DID. Only those fields are read;
//! the record itself is the inserter's to map, and the message is forwarded as it came.

use contract::atproto::{self, AtError};
use contract::reject::Reject;
use serde::Deserialize;

/// The kinds of event Jetstream sends.
pub const COMMIT: &str = "commit";
pub const IDENTITY: &str = "identity";
pub const ACCOUNT: &str = "account";

/// What a message is.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A record to forward, keyed.
    Keep { key: String, time_us: i64 },
    /// A valid event the source does not keep (a collection not asked for, a kind it does not know): counted
    /// and skipped, with why; its time still moves the cursor.
    Skip { time_us: i64, why: Skipped },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    Collection,
    Kind,
}

impl Skipped {
    pub fn label(self) -> &'static str {
        match self {
            Self::Collection => "collection",
            Self::Kind => "kind",
        }
    }
}

/// Only what the key and the cursor need is read; the rest (the record) is skipped, not built.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    did: Option<std::borrow::Cow<'a, str>>,
    time_us: Option<serde_json::Value>,
    #[serde(borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    commit: Option<Commit<'a>>,
}

#[derive(Deserialize)]
struct Commit<'a> {
    #[serde(borrow)]
    collection: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    rkey: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<std::borrow::Cow<'a, str>>,
}

/// Reads one message's text: its key and time, or why it is not a record. `collections` are those kept.
pub fn read(text: &str, max_bytes: usize, collections: &[String]) -> Result<Read, Reject> {
    if text.len() > max_bytes {
        return Err(Reject::TooLarge { len: text.len(), max: max_bytes });
    }
    // Checked first because serde would also read a struct from an array.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Reject::NotAnObject(text.chars().take(100).collect()),
            Err(e) => Reject::NotJson(e.to_string()),
        });
    }
    let event: Event = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Reject::Shape(e.to_string()),
        _ => Reject::NotJson(e.to_string()),
    })?;
    let time_us = match event.time_us {
        None | Some(serde_json::Value::Null) => return Err(Reject::NoId("time_us")),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(time) if time > 0 => time,
            _ => return Err(Reject::Shape(format!("`time_us` is {n}, not a positive number of microseconds"))),
        },
        Some(other) => return Err(Reject::Shape(format!("`time_us` is {other}, not a number of microseconds"))),
    };
    let did = event.did.ok_or(Reject::NoId("did"))?;
    let key = match event.kind.as_deref() {
        Some(COMMIT) => {
            let commit = event.commit.ok_or(Reject::NoId("commit"))?;
            let collection = commit.collection.ok_or(Reject::NoId("commit.collection"))?;
            let rkey = commit.rkey.ok_or(Reject::NoId("commit.rkey"))?;
            if commit.operation.is_none() {
                return Err(Reject::NoId("commit.operation"));
            }
            if !collections.iter().any(|kept| kept == &collection) {
                // Checked before the key: a collection not kept is skipped whatever its record key.
                if atproto::check_nsid(&collection).is_ok() {
                    return Ok(Read::Skip { time_us, why: Skipped::Collection });
                }
            }
            atproto::record_uri(&did, &collection, &rkey).map_err(|e| bad("did, commit.collection, commit.rkey", e))?
        }
        Some(IDENTITY | ACCOUNT) => {
            atproto::check_did(&did).map_err(|e| bad("did", e))?;
            did.into_owned()
        }
        Some(_) => return Ok(Read::Skip { time_us, why: Skipped::Kind }),
        None => return Err(Reject::NoId("kind")),
    };
    Ok(Read::Keep { key, time_us })
}

fn bad(field: &'static str, error: AtError) -> Reject {
    Reject::BadKey { field, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Vec<String> {
        vec!["app.bsky.feed.post".into(), "app.bsky.feed.like".into()]
    }

    const POST: &str = r#"{"did":"did:plc:eygmaihciaxprqvxpfvl6flk","time_us":1725911162329308,"kind":"commit","commit":{"rev":"3l3qo2vutsw2b","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3qo2vuowo2b","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:02.102Z","langs":["en"],"text":"hi"},"cid":"bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"}}"#;

    #[test]
    fn a_commit_is_keyed_by_its_record_uri_and_an_account_event_by_its_did() {
        assert_eq!(
            read(POST, 10_000, &kept()),
            Ok(Read::Keep {
                key: "at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3l3qo2vuowo2b".into(),
                time_us: 1725911162329308
            })
        );
        let identity = r#"{"did":"did:plc:ufbl4k27gp6kzas5glhz7fim","time_us":1725516665333808,"kind":"identity","identity":{"did":"did:plc:ufbl4k27gp6kzas5glhz7fim","handle":"yohenrique.bsky.social","seq":1409752997,"time":"2024-09-05T06:11:04.870Z"}}"#;
        assert_eq!(
            read(identity, 10_000, &kept()),
            Ok(Read::Keep { key: "did:plc:ufbl4k27gp6kzas5glhz7fim".into(), time_us: 1725516665333808 })
        );
    }

    #[test]
    fn collections_and_kinds_not_kept_are_skipped_with_their_time() {
        let profile = POST.replace("app.bsky.feed.post", "app.bsky.actor.profile").replace("3l3qo2vuowo2b", "self");
        assert_eq!(
            read(&profile, 10_000, &kept()),
            Ok(Read::Skip { time_us: 1725911162329308, why: Skipped::Collection })
        );
        let future = r#"{"did":"did:plc:abc","time_us":5,"kind":"sync","sync":{}}"#;
        assert_eq!(read(future, 10_000, &kept()), Ok(Read::Skip { time_us: 5, why: Skipped::Kind }));
    }

    #[test]
    fn a_message_that_is_not_an_event_says_why() {
        assert!(matches!(read("{\"did\":", 1000, &kept()), Err(Reject::NotJson(_))));
        assert!(matches!(read("[1]", 1000, &kept()), Err(Reject::NotAnObject(_))));
        assert_eq!(read(POST, 10, &kept()), Err(Reject::TooLarge { len: POST.len(), max: 10 }));
        assert_eq!(read(&POST.replace("\"time_us\"", "\"t\""), 10_000, &kept()), Err(Reject::NoId("time_us")));
        assert!(matches!(read(&POST.replace("1725911162329308", "-1"), 10_000, &kept()), Err(Reject::Shape(_))));
        assert!(matches!(read(&POST.replace("1725911162329308", "\"1\""), 10_000, &kept()), Err(Reject::Shape(_))));
        assert!(matches!(read(&POST.replace("did:plc:", "plc:"), 10_000, &kept()), Err(Reject::BadKey { .. })));
        assert!(matches!(read(&POST.replace("3l3qo2vuowo2b", "a/b"), 10_000, &kept()), Err(Reject::BadKey { .. })));
        assert!(matches!(read(&POST.replace("\"kind\":\"commit\",", ""), 10_000, &kept()), Err(Reject::NoId("kind"))));
        assert!(matches!(read(r#"{"did":1,"time_us":1,"kind":"commit"}"#, 10_000, &kept()), Err(Reject::Shape(_))));
        let reason = read(&POST.replace("3l3qo2vuowo2b", "a/b"), 10_000, &kept()).unwrap_err().to_string();
        assert!(reason.contains("is not a record key"), "{reason}");
    }
}
