//! The Bluesky mapping on Jetstream output in its real format (`tests/fixtures/bluesky`, whose README says
//! where each shape comes from): every typed column of every event of the sample stream against the values
//! computed apart from this code (`expected.json`), each event kind to its table, and a reason for every
//! event that cannot be a row. The rows are then written to a migrated database.

use chrono::{DateTime, TimeZone, Utc};
use entity::{bluesky_account_events, bluesky_interactions, bluesky_posts};
use inserter::mapping::DecodeError;
use inserter::mapping::bluesky::{Row, map};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/bluesky/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn scraped_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 19, 5, 40, 0).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn texts(value: &Value) -> Vec<String> {
    let mut items: Vec<String> = value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    items.sort();
    items
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

fn optional(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn check_post(post: &bluesky_posts::ActiveModel, expected: &Value) {
    let line = &expected["line"];
    assert_eq!(post.did.as_ref(), expected["did"].as_str().unwrap(), "{line}");
    assert_eq!(post.rkey.as_ref(), expected["rkey"].as_str().unwrap(), "{line}");
    assert_eq!(post.rkey_at.as_ref(), &at(expected["rkey_at"].as_str().unwrap()), "{line}");
    assert_eq!(post.uri.as_ref(), expected["uri"].as_str().unwrap(), "{line}");
    assert_eq!(post.cid.as_ref(), expected["cid"].as_str().unwrap(), "{line}");
    assert_eq!(post.created_at.as_ref(), &expected["created_at"].as_str().map(at), "{line}");
    assert_eq!(post.text.as_ref(), expected["text"].as_str().unwrap(), "{line}");
    assert_eq!(sorted(post.langs.as_ref().clone()), texts(&expected["langs"]), "{line}");
    assert_eq!(post.reply_parent_uri.as_ref(), &optional(&expected["reply_parent_uri"]), "{line}");
    assert_eq!(post.reply_root_uri.as_ref(), &optional(&expected["reply_root_uri"]), "{line}");
    assert_eq!(post.quoted_uri.as_ref(), &optional(&expected["quoted_uri"]), "{line}");
    assert_eq!(sorted(post.hashtags.as_ref().clone()), texts(&expected["hashtags"]), "{line}");
    assert_eq!(sorted(post.mentions.as_ref().clone()), texts(&expected["mentions"]), "{line}");
    assert_eq!(sorted(post.links.as_ref().clone()), texts(&expected["links"]), "{line}");
    assert_eq!(post.event_at.as_ref().timestamp_micros(), expected["time_us"].as_i64().unwrap(), "{line}");
    assert_eq!(post.source.as_ref(), "bluesky.jetstream");
    assert_eq!(post.scraped_at.as_ref(), &scraped_at());
}

fn check_interaction(row: &bluesky_interactions::ActiveModel, expected: &Value) {
    let line = &expected["line"];
    assert_eq!(row.collection.as_ref(), expected["collection"].as_str().unwrap(), "{line}");
    assert_eq!(row.rkey_at.as_ref(), &at(expected["rkey_at"].as_str().unwrap()), "{line}");
    assert_eq!(row.uri.as_ref(), expected["uri"].as_str().unwrap(), "{line}");
    assert_eq!(row.cid.as_ref(), expected["cid"].as_str().unwrap(), "{line}");
    if let Some(subject) = expected.get("subject_uri") {
        assert_eq!(row.subject_uri.as_ref(), &optional(subject), "{line}");
    }
    if let Some(subject) = expected.get("subject_did") {
        assert_eq!(row.subject_did.as_ref(), &optional(subject), "{line}");
    }
    assert!(row.subject_did.as_ref().is_some(), "{line}: a like, repost or follow names whom it is about");
}

#[test]
fn every_event_of_the_sample_stream_maps_to_its_table_with_its_columns() {
    let expected: Value = serde_json::from_slice(&fixture("expected.json")).unwrap();
    let expected = expected["events.jsonl"].as_array().unwrap();
    let events = String::from_utf8(fixture("events.jsonl")).unwrap();
    let (mut posts, mut interactions, mut deletions, mut accounts, mut refused) = (0, 0, 0, 0, 0);
    for (line, event) in events.lines().enumerate() {
        let want = &expected[line];
        assert_eq!(want["line"].as_u64(), Some(line as u64 + 1));
        let collection = want["collection"].as_str().unwrap_or_default();
        match map(event.as_bytes(), "bluesky.jetstream", scraped_at()) {
            Ok(Row::Post(post, raw)) => {
                check_post(&post, want);
                assert_eq!(&*raw, event, "raw is the event as it came");
                posts += 1;
            }
            Ok(Row::Interaction(row, _)) => {
                check_interaction(&row, want);
                interactions += 1;
            }
            Ok(Row::Deletion(deletion)) => {
                assert_eq!(deletion.collection.as_ref(), collection);
                assert_eq!(deletion.rkey.as_ref(), want["rkey"].as_str().unwrap());
                assert_eq!(deletion.deleted_at.as_ref().timestamp_micros(), want["time_us"].as_i64().unwrap());
                deletions += 1;
            }
            Ok(Row::Account(row, _)) => {
                assert_eq!(row.kind.as_ref(), want["kind"].as_str().unwrap());
                assert_eq!(row.did.as_ref(), want["did"].as_str().unwrap());
                accounts += 1;
            }
            Err(error) => {
                // The collections the inserter does not map (the scraper does not forward them either).
                assert!(
                    !["app.bsky.feed.post", "app.bsky.feed.like"].contains(&collection),
                    "line {}: {error}",
                    line + 1
                );
                assert!(error.to_string().contains("a collection the inserter maps"), "{error}");
                refused += 1;
            }
        }
    }
    assert_eq!((posts, interactions, deletions, accounts, refused), (11, 3, 2, 5, 2));
}

#[test]
fn an_account_taken_down_is_recorded_with_its_status() {
    let Row::Account(row, _) = map(&fixture("account_takendown.json"), "bluesky.jetstream", scraped_at()).unwrap()
    else {
        panic!("an account event is an account row")
    };
    let row: bluesky_account_events::ActiveModel = row;
    assert_eq!(row.kind.as_ref(), "account");
    assert_eq!(row.active.as_ref(), &Some(false));
    assert_eq!(row.status.as_ref().as_deref(), Some("takendown"));
    assert!(*row.seq.as_ref() > 0);
    let Row::Account(identity, _) = map(&fixture("identity.json"), "bluesky.jetstream", scraped_at()).unwrap() else {
        panic!("an identity event is an account row")
    };
    assert!(identity.handle.as_ref().is_some());
}

#[test]
fn an_event_that_cannot_be_a_row_says_why() {
    let post = String::from_utf8(fixture("events.jsonl")).unwrap().lines().next().unwrap().to_owned();
    let reason = |event: &str| map(event.as_bytes(), "bluesky.jetstream", scraped_at()).unwrap_err().to_string();
    let cases = [
        (post.replace("\"rkey\":\"3lbbpk45ags2f\"", "\"rkey\":\"self\""), "TID"),
        (post.replace("\"rkey\":\"3lbbpk45ags2f\"", "\"rkey\":\"a/b\""), "not a record key"),
        (post.replace("did:plc:hwknt7izxqqpaxcwfnddnmg5", "plc:x"), "not a DID"),
        (post.replace("\"operation\":\"create\"", "\"operation\":\"merge\""), "create, update or delete"),
        (post.replace("\"kind\":\"commit\"", "\"kind\":\"sync\""), "commit, identity or account"),
        (post.replace("\"time_us\":1731994420800952", "\"time_us\":-3"), "positive"),
        (post.replace("\"time_us\":1731994420800952", "\"time_us\":\"soon\""), "expected shape"),
        (post.replace(",\"cid\":\"bafyreiel2eoh7r5f2mwmfbixnikmm2bpwxvzqei6ezem6dm7rt52xkx4lu\"", ""), "without `cid`"),
        (post[..post.len() / 2].to_owned(), "not valid JSON"),
        ("[]".to_owned(), "not an object"),
    ];
    for (event, why) in cases {
        let reason = reason(&event);
        assert!(reason.contains(why), "{why}: {reason}");
    }
    let invalid_utf8 = [&post.as_bytes()[..40], b"\xff", &post.as_bytes()[40..]].concat();
    assert!(matches!(map(&invalid_utf8, "bluesky.jetstream", scraped_at()), Err(DecodeError::InvalidUtf8 { .. })));
}

#[test]
fn a_nul_anyone_may_type_in_a_post_becomes_a_replacement_character_not_a_dead_letter() {
    let post = String::from_utf8(fixture("events.jsonl")).unwrap().lines().next().unwrap().to_owned();
    let with_nul = post.replace("Good morning!", "Good \\u0000morning!").replace("\"langs\"", "\"la\\u0000ngs\"");
    let Ok(Row::Post(row, raw)) = map(with_nul.as_bytes(), "bluesky.jetstream", scraped_at()) else {
        panic!("{with_nul}")
    };
    assert_eq!(row.text.as_ref(), "Good \u{FFFD}morning! Coffee first, then the database migration.");
    assert!(
        !raw.contains("\\u0000") && raw.contains("Good \u{FFFD}morning!") && raw.contains("la\u{FFFD}ngs"),
        "{raw}"
    );
}

#[test]
fn a_post_with_fields_of_the_wrong_type_keeps_its_row_and_loses_only_those_columns() {
    let post = String::from_utf8(fixture("events.jsonl")).unwrap().lines().next().unwrap().to_owned();
    let odd = post
        .replace("\"langs\":[\"en\"]", "\"langs\":\"en\",\"facets\":{\"a\":1},\"reply\":[1]")
        .replace("\"createdAt\":\"2024-11-19T05:33:39.567Z\"", "\"createdAt\":\"2024-11-19T05:33:39\"");
    let Ok(Row::Post(row, _)) = map(odd.as_bytes(), "bluesky.jetstream", scraped_at()) else { panic!("{odd}") };
    assert_eq!(row.langs.as_ref(), &Vec::<String>::new());
    assert_eq!(row.created_at.as_ref(), &None, "a time without its zone is not a time");
    assert_eq!(row.reply_parent_uri.as_ref(), &None);
    assert_eq!(row.text.as_ref(), "Good morning! Coffee first, then the database migration.");
}
