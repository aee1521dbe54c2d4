//! A deterministic generator of X API v2 stream lines: the same seed gives the same posts, byte for byte, so
//! that a replayed run lands the same rows (upserts, not duplicates) and benchmarks are repeatable. Posts have
//! every field the inserter maps (metrics, entities, references, an expanded author), in X's wire format.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

/// Ids start here: realistic 19-digit snowflakes, clear of small test ids.
const FIRST_ID: u64 = 1_800_000_000_000_000_000;
const AUTHORS: u64 = 5_000;
const WORDS: &[&str] = &[
    "data", "pipeline", "kafka", "postgres", "stream", "rust", "ingest", "replay", "change", "capture", "wal",
    "debezium", "batch", "upsert", "latency", "schema", "topic", "offset", "consumer", "scraper",
];
const TAGS: &[&str] = &["DataEngineering", "rustlang", "Kafka", "PostgreSQL", "CDC", "OpenSource"];
const LANGS: &[&str] = &["en", "en", "en", "es", "de", "fr", "ja", "pt"];

/// The `n`th post of the stream seeded with `seed`, as one stream line (no newline).
pub fn line(seed: u64, n: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let id = FIRST_ID + seed.wrapping_mul(1_000_000_000) % 100_000_000_000_000 + n;
    let author = 1_000_000 + rng.below(AUTHORS);
    let base: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
    let created_at = (base + Duration::milliseconds((n * 250) as i64)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let tag = TAGS[rng.below(TAGS.len() as u64) as usize];
    let mentioned = format!("user{}", rng.below(AUTHORS));
    let words: Vec<&str> = (0..8 + rng.below(16)).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
    let text = format!("@{mentioned} {} #{tag}", words.join(" "));
    let mention_start = 0;
    let tag_start = text.chars().count() - tag.chars().count() - 1;
    let replied = rng.below(5) == 0 && n > 0;
    let mut data = json!({
        "id": id.to_string(),
        "text": text,
        "author_id": author.to_string(),
        "created_at": created_at,
        "lang": LANGS[rng.below(LANGS.len() as u64) as usize],
        "conversation_id": (if replied { id - 1 } else { id }).to_string(),
        "possibly_sensitive": false,
        "public_metrics": {
            "retweet_count": rng.below(500), "reply_count": rng.below(100), "like_count": rng.below(5_000),
            "quote_count": rng.below(50), "bookmark_count": rng.below(80), "impression_count": rng.below(100_000)
        },
        "entities": {
            "hashtags": [{"start": tag_start, "end": tag_start + tag.len() + 1, "tag": tag}],
            "mentions": [{"start": mention_start, "end": mentioned.len() + 1, "username": mentioned}]
        },
        "edit_history_tweet_ids": [id.to_string()]
    });
    if replied {
        data["referenced_tweets"] = json!([{"type": "replied_to", "id": (id - 1).to_string()}]);
        data["in_reply_to_user_id"] = json!((1_000_000 + rng.below(AUTHORS)).to_string());
    }
    let line = json!({
        "data": data,
        "includes": {"users": [{
            "id": author.to_string(),
            "username": format!("user{}", author - 1_000_000),
            "name": format!("Synthetic User {}", author - 1_000_000),
            "created_at": "2020-05-01T12:00:00.000Z",
            "description": "A synthetic account for replay runs",
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
    use super::line;
    use crate::x::line::Line;

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
}
