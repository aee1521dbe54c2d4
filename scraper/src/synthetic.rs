//! A deterministic generator of X API v2 stream lines: the same seed gives the same posts, byte for byte, so
//! that a replayed run lands the same rows (upserts, not duplicates) and benchmarks are repeatable. Posts have
//! every field the inserter maps (metrics, entities, references, an expanded author), in X's wire format.
//!
//! Nothing it makes can be taken for, or overwrite, a real post or account: its records carry the `source`
//! [`contract::source::REPLAY_SYNTHETIC`] (stored in `twitter_data.source`), its texts start with
//! [`TEXT_PREFIX`], its usernames are longer than X allows, and its ids lie where no X id will be for decades.
//! X ids are snowflakes, `(unix ms - 1288834974657) << 22`, so an id is its creation time: posts get
//! [`POST_IDS`], ids of August 2079 on, and authors [`USER_IDS`], ids of May 2080 on (X's user ids are snowflakes
//! too), both below `i64::MAX` (July 2080), as the id rule and the tables' `bigint` keys need. `twitter_data` is
//! partitioned by days of `tweet_id` from today on, so these rows land in its default partition (which
//! retention never drops; delete them by their `source`), as the earlier synthetic ids of 2024 did.

use std::ops::Range;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

/// Every post id the generator gives: 10^17 ids, snowflake times from 2079-08-05 to 2080-05-07.
pub const POST_IDS: Range<i64> = 9_100_000_000_000_000_000..9_200_000_000_000_000_000;
/// Every author id the generator gives, snowflake times from 2080-05-07 on.
pub const USER_IDS: Range<i64> = 9_200_000_000_000_000_000..9_200_000_000_000_000_000 + AUTHORS as i64;
/// The start of every post's text.
pub const TEXT_PREFIX: &str = "[synthetic] ";
const AUTHORS: u64 = 5_000;
/// Posts are 250 ms apart from 2026-01-01, their times starting over after about 100 years' worth of posts
/// (beyond that a date would overflow, long before the ids run out).
const POST_TIMES: u64 = 100 * 365 * 86_400 * 4;
const WORDS: &[&str] = &[
    "data", "pipeline", "kafka", "postgres", "stream", "rust", "ingest", "replay", "change", "capture", "wal",
    "debezium", "batch", "upsert", "latency", "schema", "topic", "offset", "consumer", "scraper",
];
const TAGS: &[&str] = &["DataEngineering", "rustlang", "Kafka", "PostgreSQL", "CDC", "OpenSource"];
const LANGS: &[&str] = &["en", "en", "en", "es", "de", "fr", "ja", "pt"];

/// The id of the `n`th post of the stream seeded with `seed`. Each seed starts 10^9 ids after the previous
/// one; past the end of [`POST_IDS`] the ids start over at its beginning (after 10^17 posts), so no `n`
/// leaves the range.
pub fn post_id(seed: u64, n: u64) -> i64 {
    let span = (POST_IDS.end - POST_IDS.start) as u64;
    let start = seed.wrapping_mul(1_000_000_000) % 100_000_000_000_000;
    // Both terms are below the span, so neither the sum nor the result overflows.
    POST_IDS.start + ((start + n % span) % span) as i64
}

/// An author's id and username.
fn author(number: u64) -> (i64, String) {
    // Longer than X's 15 characters: no real account has such a name.
    (USER_IDS.start + number as i64, format!("synthetic_user_{number}"))
}

/// The `n`th post of the stream seeded with `seed`, as one stream line (no newline).
pub fn line(seed: u64, n: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let id = post_id(seed, n);
    let number = rng.below(AUTHORS);
    let (author_id, username) = author(number);
    let base: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
    let offset = Duration::milliseconds(((n % POST_TIMES) * 250) as i64);
    let created_at = (base + offset).to_rfc3339_opts(SecondsFormat::Millis, true);
    let tag = TAGS[rng.below(TAGS.len() as u64) as usize];
    let mentioned = author(rng.below(AUTHORS)).1;
    let words: Vec<&str> = (0..8 + rng.below(16)).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
    let text = format!("{TEXT_PREFIX}@{mentioned} {} #{tag}", words.join(" "));
    let mention_start = TEXT_PREFIX.chars().count();
    let tag_start = text.chars().count() - tag.chars().count() - 1;
    let replied = rng.below(5) == 0 && n > 0;
    let parent = if replied { Some(post_id(seed, n - 1)) } else { None };
    let mut data = json!({
        "id": id.to_string(),
        "text": text,
        "author_id": author_id.to_string(),
        "created_at": created_at,
        "lang": LANGS[rng.below(LANGS.len() as u64) as usize],
        "conversation_id": parent.unwrap_or(id).to_string(),
        "possibly_sensitive": false,
        "public_metrics": {
            "retweet_count": rng.below(500), "reply_count": rng.below(100), "like_count": rng.below(5_000),
            "quote_count": rng.below(50), "bookmark_count": rng.below(80), "impression_count": rng.below(100_000)
        },
        "entities": {
            "hashtags": [{"start": tag_start, "end": tag_start + tag.len() + 1, "tag": tag}],
            "mentions": [{"start": mention_start, "end": mention_start + mentioned.len() + 1, "username": mentioned}]
        },
        "edit_history_tweet_ids": [id.to_string()]
    });
    if let Some(parent) = parent {
        data["referenced_tweets"] = json!([{"type": "replied_to", "id": parent.to_string()}]);
        data["in_reply_to_user_id"] = json!(author(rng.below(AUTHORS)).0.to_string());
    }
    let line = json!({
        "data": data,
        "includes": {"users": [{
            "id": author_id.to_string(),
            "username": username,
            "name": format!("Synthetic User {number}"),
            "created_at": "2020-05-01T12:00:00.000Z",
            "description": "A synthetic account of the replay's generator, not a real X account",
            "protected": false,
            "verified": false,
            "public_metrics": {
                "followers_count": rng.below(10_000), "following_count": rng.below(2_000),
                "tweet_count": rng.below(50_000), "listed_count": rng.below(100), "like_count": rng.below(20_000)
            }
        }]}
    });
    serde_json::to_vec(&line).unwrap_or_default()
}

/// splitmix64: tiny, fast, and the same on every platform.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::Value;

    use super::{POST_IDS, SplitMix, TEXT_PREFIX, USER_IDS, line, post_id};
    use crate::x::line::Line;

    /// The lowest id of any X snowflake made after 2078; every synthetic id is above it.
    const FAR_FLOOR: i64 = 9_000_000_000_000_000_000;

    /// When X would have made a post or account of snowflake `id`.
    fn snowflake_time(id: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis((id >> 22) + 1_288_834_974_657).unwrap()
    }

    /// Every id a line holds, each as the id rule reads it, and whether it is a post's (or else a user's).
    fn ids(line: &[u8]) -> Vec<(i64, bool)> {
        let line: Value = serde_json::from_slice(line).unwrap();
        let data = &line["data"];
        let mut ids = vec![(&data["id"], true), (&data["conversation_id"], true), (&data["author_id"], false)];
        ids.extend(data["edit_history_tweet_ids"].as_array().unwrap().iter().map(|id| (id, true)));
        ids.extend(data["referenced_tweets"].as_array().into_iter().flatten().map(|r| (&r["id"], true)));
        if !data["in_reply_to_user_id"].is_null() {
            ids.push((&data["in_reply_to_user_id"], false));
        }
        ids.extend(line["includes"]["users"].as_array().unwrap().iter().map(|u| (&u["id"], false)));
        ids.into_iter().map(|(id, post)| (contract::id::from_json(id).unwrap(), post)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_lines_and_another_seed_other_ones() {
        assert_eq!(line(7, 42), line(7, 42));
        assert_ne!(line(7, 42), line(8, 42));
    }

    #[test]
    fn every_line_is_a_post_with_a_unique_id() {
        let mut ids = std::collections::HashSet::new();
        for n in 0..1_000 {
            match Line::classify(&line(1, n)) {
                Line::Post { id } => assert!(ids.insert(id)),
                other => panic!("line {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_id_is_one_x_has_given_or_will_give_for_decades() {
        let span = (POST_IDS.end - POST_IDS.start) as u64;
        let edges = [0, 1, 2, 99_999, 100_000, span - 1, span, span + 1, u64::MAX / 2, u64::MAX - 1, u64::MAX];
        let mut random = SplitMix(20_260_101);
        let mut cases: Vec<(u64, u64)> = Vec::new();
        for seed in edges {
            cases.extend(edges.iter().map(|&n| (seed, n)));
        }
        // Where a seed's ids reach the end of the range and start over.
        let start = |seed: u64| seed.wrapping_mul(1_000_000_000) % 100_000_000_000_000;
        for seed in [1, 7, u64::MAX] {
            cases.extend((span - start(seed) - 2..span - start(seed) + 2).map(|n| (seed, n)));
        }
        for _ in 0..5_000 {
            let (seed, n) = (random.next(), random.next());
            cases.extend([(seed, n), (seed % 1_000, n % 100_000)]);
        }
        let after_2078 = DateTime::parse_from_rfc3339("2079-01-01T00:00:00Z").unwrap();
        for (seed, n) in cases {
            let line = line(seed, n);
            for (id, post) in ids(&line) {
                assert!(id >= FAR_FLOOR, "seed {seed}, post {n}: id {id}");
                assert!(snowflake_time(id) > after_2078, "seed {seed}, post {n}: id {id} of {}", snowflake_time(id));
                let range = if post { POST_IDS } else { USER_IDS };
                assert!(range.contains(&id), "seed {seed}, post {n}: id {id} outside {range:?}");
            }
            assert_eq!(ids(&line)[0].0, post_id(seed, n));
        }
    }

    #[test]
    fn the_text_and_the_author_say_they_are_synthetic_and_the_entities_point_into_the_text() {
        for n in 0..200 {
            let line: Value = serde_json::from_slice(&line(3, n)).unwrap();
            let text = line["data"]["text"].as_str().unwrap();
            assert!(text.starts_with(TEXT_PREFIX), "{text}");
            let chars: Vec<char> = text.chars().collect();
            let entity = |kind: &str, field: &str, sign: char| {
                let entity = &line["data"]["entities"][kind][0];
                let (start, end) =
                    (entity["start"].as_u64().unwrap() as usize, entity["end"].as_u64().unwrap() as usize);
                let name = entity[field].as_str().unwrap().to_owned();
                assert_eq!(chars[start..end].iter().collect::<String>(), format!("{sign}{name}"), "{text}");
                name
            };
            assert!(entity("mentions", "username", '@').starts_with("synthetic_user_"));
            entity("hashtags", "tag", '#');
            let user = &line["includes"]["users"][0];
            let username = user["username"].as_str().unwrap();
            assert!(username.len() > 15, "longer than any X username: {username}");
            assert!(user["name"].as_str().unwrap().starts_with("Synthetic User "));
        }
    }
}
