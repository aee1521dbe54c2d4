//! `inserter::limits` against the migrated schema: every index over text in `public` (a text or text[]
//! column, directly, as an INCLUDE column or inside an expression such as `lower(username)`) is either in
//! the `indexed` of its entity's description (`limits::indexed()`) or allowed below with the reason no value can outgrow it, so that a new text index
//! without a length rule fails here; and Postgres really indexes a value of `INDEXED_TEXT_MAX_BYTES` in each
//! such column, even lower-cased to more bytes, while it refuses one far past the limit.

use std::collections::{BTreeMap, BTreeSet};

use inserter::limits::{INDEXED_TEXT_MAX_BYTES, indexed};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement, Value};
use testkit::{Postgres, unique_name};

/// Text columns in an index that no description need cover, and why.
const ALLOWED: &[(&str, &str, &str)] = &[
    ("kafka_offsets", "topic", "a Kafka topic name: at most 249 ASCII characters, checked by the broker"),
    ("ingest_errors", "topic", "a Kafka topic name: at most 249 ASCII characters, checked by the broker"),
    ("kafka_offsets", "consumer_group", "the operator's --group, one value for the process, never a record's"),
    (
        "mastodon_statuses",
        "instance",
        "a host name: at most 300 bytes, by CHECK and by the mapping, which dead-letters a longer one",
    ),
    (
        "mastodon_status_deletions",
        "instance",
        "a host name: at most 300 bytes, by CHECK and by the mapping, which dead-letters a longer one",
    ),
    ("seaql_migrations", "version", "sea-orm-migration's own table: the migration names of this repository"),
    ("bluesky_posts", "did", BLUESKY_KEY),
    ("bluesky_posts", "rkey", BLUESKY_KEY),
    ("bluesky_interactions", "did", BLUESKY_KEY),
    ("bluesky_interactions", "collection", BLUESKY_KEY),
    ("bluesky_interactions", "rkey", BLUESKY_KEY),
    ("bluesky_deletions", "did", BLUESKY_KEY),
    ("bluesky_deletions", "collection", BLUESKY_KEY),
    ("bluesky_deletions", "rkey", BLUESKY_KEY),
    ("bluesky_account_events", "did", BLUESKY_KEY),
];

/// Why the Bluesky keys need no length rule (migration's `a_deletion_marks_its_record_whichever_is_written_first`
/// writes the longest key the contract lets through, incompressible, to each table).
const BLUESKY_KEY: &str = "an AT Protocol identity: a DID of at most 2048 bytes, a record key of at most 512, one of three \
                           collections, by CHECK and by contract::atproto on both sides: the longest key fits a btree entry";

/// Each (table, column, index, index definition) where an index of schema `public` holds the column's text:
/// a string type (text, varchar, ...) or an array of one, as a key or INCLUDE column, or referenced inside
/// an index expression. A column inside an expression whose result is a string (`raw ->> 'x'`) counts too,
/// whatever its own type. Columns only in an index's WHERE clause do not: the predicate is not stored. A
/// partitioned table's index stands for its copies on the partitions (the same definition, the same limit).
const TEXT_INDEXES: &str = r#"
WITH idx AS (
    SELECT i.indexrelid, i.indrelid, i.indkey, i.indexprs
    FROM pg_index i
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE n.nspname = 'public' AND NOT t.relispartition
),
covered AS (
    SELECT indexrelid, indrelid, k.attnum, false AS in_expression
    FROM idx, unnest(indkey::int2[]) AS k(attnum)
    WHERE k.attnum <> 0
    UNION
    -- The Vars of the expression trees name the table's columns by number.
    SELECT indexrelid, indrelid, m[1]::int2, true
    FROM idx, regexp_matches(indexprs::text, ':varattno (\d+)', 'g') AS m
    WHERE indexprs IS NOT NULL
),
string_expression AS (
    SELECT DISTINCT idx.indexrelid
    FROM idx
    JOIN pg_attribute ka ON ka.attrelid = idx.indexrelid
    JOIN pg_type kt ON kt.oid = ka.atttypid
    -- int2vector subscripts start at 0, index attributes at 1.
    WHERE idx.indkey[ka.attnum - 1] = 0 AND kt.typcategory = 'S'
)
SELECT DISTINCT t.relname::text AS table_name, a.attname::text AS column_name, ic.relname::text AS index_name,
       pg_get_indexdef(c.indexrelid) AS index_def
FROM covered c
JOIN pg_class t ON t.oid = c.indrelid
JOIN pg_class ic ON ic.oid = c.indexrelid
JOIN pg_attribute a ON a.attrelid = c.indrelid AND a.attnum = c.attnum AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_type el ON el.oid = ty.typelem AND ty.typcategory = 'A'
WHERE ty.typcategory = 'S' OR el.typcategory = 'S'
   OR (c.in_expression AND c.indexrelid IN (SELECT indexrelid FROM string_expression))
ORDER BY 1, 2, 3
"#;

/// (table, column) -> the definitions of the indexes holding its text.
async fn text_indexes(db: &DatabaseConnection) -> BTreeMap<(String, String), Vec<String>> {
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Postgres, TEXT_INDEXES)).await.unwrap();
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for row in rows {
        let key = (row.try_get("", "table_name").unwrap(), row.try_get("", "column_name").unwrap());
        found.entry(key).or_default().push(row.try_get("", "index_def").unwrap());
    }
    found
}

/// The found (table, column) pairs neither a description nor `ALLOWED` covers, with their indexes.
fn uncovered(found: &BTreeMap<(String, String), Vec<String>>) -> Vec<String> {
    let covered: BTreeSet<(&str, &str)> =
        indexed().iter().map(|e| (e.table, e.column)).chain(ALLOWED.iter().map(|(t, c, _)| (*t, *c))).collect();
    found
        .iter()
        .filter(|((table, column), _)| !covered.contains(&(table.as_str(), column.as_str())))
        .map(|((table, column), indexes)| format!("{table}.{column}: {}", indexes.join("; ")))
        .collect()
}

#[tokio::test]
async fn every_text_index_has_a_length_rule_and_every_rule_an_index() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    let found = text_indexes(&db).await;
    for ((table, column), indexes) in &found {
        println!("{table}.{column}: {}", indexes.join("; "));
    }

    let missing = uncovered(&found);
    assert!(
        missing.is_empty(),
        "text indexed without a length rule: add each to its entity's description, `indexed` (or, if no value can \
         outgrow the index, to ALLOWED here with the reason):\n{}",
        missing.join("\n")
    );
    let stale: Vec<String> = indexed()
        .iter()
        .map(|e| (e.table, e.column))
        .chain(ALLOWED.iter().map(|(t, c, _)| (*t, *c)))
        .filter(|(table, column)| !found.contains_key(&(table.to_string(), column.to_string())))
        .map(|(table, column)| format!("{table}.{column}"))
        .collect();
    assert!(stale.is_empty(), "entries with no text index behind them: {stale:?}");
}

#[tokio::test]
async fn a_new_text_index_of_any_form_is_reported_uncovered() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    assert_eq!(uncovered(&text_indexes(&db).await), Vec::<String>::new());
    db.execute_unprepared(
        r#"
        CREATE INDEX scratch_plain ON instagram_comments (author_username);
        CREATE INDEX scratch_expression ON instagram_comments (media_id, upper(text));
        CREATE INDEX scratch_json ON twitter_users ((raw ->> 'location'));
        CREATE INDEX scratch_include ON mastodon_statuses (account_id) INCLUDE (account_acct);
        ALTER TABLE instagram_posts ADD COLUMN scratch_tags varchar(20000)[];
        CREATE INDEX scratch_varchar_array ON instagram_posts USING gin (scratch_tags);
        CREATE INDEX scratch_predicate ON instagram_posts (like_count) WHERE caption IS NOT NULL;
        "#,
    )
    .await
    .unwrap();
    let reported: Vec<String> =
        uncovered(&text_indexes(&db).await).iter().map(|line| line.split(':').next().unwrap().to_owned()).collect();
    assert_eq!(
        reported,
        [
            "instagram_comments.author_username",
            "instagram_comments.text",
            "instagram_posts.scratch_tags",
            "mastodon_statuses.account_acct",
            "twitter_users.raw",
        ],
        "a column only in a WHERE clause (instagram_posts.caption) is not stored in the index"
    );
}

/// Characters a column may hold (its CHECK constraints).
#[derive(Clone, Copy, PartialEq)]
enum Alphabet {
    Any,
    /// `name = lower(name)`, or a reference to such a name.
    LowerCase,
    /// `[A-Za-z0-9_-]`.
    Shortcode,
}

fn alphabet_of(table: &str, column: &str) -> Alphabet {
    match (table, column) {
        ("instagram_hashtags", "name") | ("instagram_post_hashtags", "hashtag") => Alphabet::LowerCase,
        ("instagram_posts", "shortcode") => Alphabet::Shortcode,
        _ => Alphabet::Any,
    }
}

fn statement(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A row holding `value` in `table.column` with the other columns it needs (`id` keeps its key unique), and
/// the rows it references. Those come first only for a value meant to be accepted: an index is checked as
/// the row is inserted, a foreign key only at the end of the statement, so an overlong value fails at the
/// row's own index even without them.
fn insert(table: &str, column: &str, value: &str, id: i64) -> (Vec<Statement>, Statement) {
    let values = || [Value::from(value), Value::from(id)];
    let row = |sql: &str| statement(sql, values());
    match (table, column) {
        ("twitter_data", "hashtags" | "mentions") => (
            vec![],
            row(&format!(
                "INSERT INTO twitter_data (tweet_id, text, source, raw, scraped_at, {column}) \
                 VALUES ($2, '', 'test', '{{}}', now(), ARRAY[$1])"
            )),
        ),
        ("mastodon_statuses", "tags" | "mentions") => (
            vec![],
            row(&format!(
                "INSERT INTO mastodon_statuses (instance, id, uri, created_at, account_id, account_acct, account_username, \
                 content_html, content_text, visibility, raw, scraped_at, {column}) \
                 VALUES ('i', $2, 'u', now(), 1, 'a', 'a', '', '', 'public', '{{}}', now(), ARRAY[$1])"
            )),
        ),
        ("twitter_users", "username") => {
            (vec![], row("INSERT INTO twitter_users (user_id, username, raw, scraped_at) VALUES ($2, $1, '{}', now())"))
        }
        ("instagram_profiles", "username") => {
            (vec![], row("INSERT INTO instagram_profiles (user_id, username) VALUES ($2, $1)"))
        }
        ("instagram_hashtags", "name") => {
            (vec![], statement("INSERT INTO instagram_hashtags (name) VALUES ($1)", [value.into()]))
        }
        ("instagram_post_hashtags", "hashtag") => (
            vec![
                statement("INSERT INTO instagram_hashtags (name) VALUES ($1) ON CONFLICT DO NOTHING", [value.into()]),
                statement(
                    "INSERT INTO instagram_posts (media_id, shortcode, source, raw, scraped_at) \
                     VALUES ($1, 'p' || $1::text, 'test', '{}', now())",
                    [id.into()],
                ),
            ],
            row("INSERT INTO instagram_post_hashtags (media_id, hashtag) VALUES ($2, $1)"),
        ),
        ("instagram_posts", "shortcode") => (
            vec![],
            row("INSERT INTO instagram_posts (media_id, shortcode, source, raw, scraped_at) \
                 VALUES ($2, $1, 'test', '{}', now())"),
        ),
        ("bluesky_posts", "hashtags" | "mentions" | "reply_root_uri") => {
            let value = if column == "reply_root_uri" { "$1" } else { "ARRAY[$1]" };
            (
                vec![],
                row(&format!(
                    "INSERT INTO bluesky_posts (did, rkey, rkey_at, uri, cid, text, event_at, raw, source, scraped_at, \
                     {column}) VALUES ('did:plc:a', 'r' || $2::text, now(), 'u', 'c', '', now(), '{{}}', 'test', now(), \
                     {value})"
                )),
            )
        }
        ("bluesky_interactions", "subject_uri" | "subject_did") => (
            vec![],
            row(&format!(
                "INSERT INTO bluesky_interactions (did, collection, rkey, rkey_at, uri, cid, event_at, raw, source, \
                 scraped_at, {column}) VALUES ('did:plc:a', 'app.bsky.feed.like', 'r' || $2::text, now(), 'u', 'c', \
                 now(), '{{}}', 'test', now(), $1)"
            )),
        ),
        _ => panic!("a description indexes {table}.{column}: add how to insert a row holding it"),
    }
}

/// `bytes` bytes of text that neither pglz nor anything else compresses much: characters drawn by a linear
/// congruential generator from `alphabet` (CJK ideographs, 3 bytes each and caseless, or the shortcode
/// alphabet), padded with ASCII to the exact length.
fn incompressible(alphabet: Alphabet, bytes: usize, seed: u64) -> String {
    const SHORTCODE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut text = String::with_capacity(bytes);
    loop {
        let c = match alphabet {
            Alphabet::Shortcode => char::from(SHORTCODE[next() as usize % 64]),
            Alphabet::Any | Alphabet::LowerCase => char::from_u32(0x4E00 + next() % 0x5200).unwrap(),
        };
        if text.len() + c.len_utf8() > bytes {
            break;
        }
        text.push(c);
    }
    while text.len() < bytes {
        text.push('a');
    }
    text
}

/// The value of `bytes` bytes that grows most under `lower()`, within `alphabet`: `Ⱥ` (2 bytes) lower-cases
/// to `ⱥ` (3 bytes). A lower-case-only column gets `ⱥ` itself, which lower() keeps at 3 bytes.
fn widest_lowered(alphabet: Alphabet, bytes: usize) -> Option<String> {
    let (c, width) = match alphabet {
        Alphabet::Any => ('Ⱥ', 2),
        Alphabet::LowerCase => ('ⱥ', 3),
        Alphabet::Shortcode => return None,
    };
    Some(format!("{}{}", c.to_string().repeat(bytes / width), "a".repeat(bytes % width)))
}

fn sqlstate(error: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error else {
        return None;
    };
    e.as_database_error().and_then(|e| e.code()).map(|code| code.into_owned())
}

async fn run(db: &DatabaseConnection, statements: Vec<Statement>) -> Result<(), DbErr> {
    for statement in statements {
        db.execute_raw(statement).await?;
    }
    Ok(())
}

#[tokio::test]
async fn each_indexed_column_takes_a_value_at_the_limit_and_refuses_one_far_past_it() {
    let pg = Postgres::start().await.unwrap();
    // A database whose lower() folds beyond ASCII (the test cluster's default locale C folds only ASCII), as
    // a production database in a UTF-8 locale does.
    let name = unique_name("limits");
    let admin = Database::connect(pg.url("postgres")).await.unwrap();
    let create = format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.utf8'");
    admin.execute_unprepared(&create).await.unwrap();
    admin.close().await.unwrap();
    let db = Database::connect(pg.url(&name)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();

    let widest = widest_lowered(Alphabet::Any, INDEXED_TEXT_MAX_BYTES).unwrap();
    let lowered = db
        .query_one_raw(statement("SELECT octet_length(lower($1))::bigint AS n", [widest.into()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lowered.try_get::<i64>("", "n").unwrap(), 1536, "lower() grows Ⱥ (2 bytes) to ⱥ (3 bytes)");

    let mut id = 0;
    let mut refusals = Vec::new();
    for entry in indexed() {
        let (table, column) = (entry.table, entry.column);
        let alphabet = alphabet_of(table, column);
        // The widest lowered value compresses well, so it shows lower()'s growth is indexed, and the
        // incompressible one that 1024 bytes fit uncompressed; no value is both, and 1536 bytes and a header
        // would still fit a btree's 2704.
        let at_limit = [
            widest_lowered(alphabet, INDEXED_TEXT_MAX_BYTES),
            Some(incompressible(alphabet, INDEXED_TEXT_MAX_BYTES, id as u64)),
        ];
        for value in at_limit.into_iter().flatten() {
            assert_eq!(value.len(), INDEXED_TEXT_MAX_BYTES);
            id += 1;
            let (before, row) = insert(table, column, &value, id);
            if let Err(error) = run(&db, before.into_iter().chain([row]).collect()).await {
                panic!("{table}.{column} refused {} bytes ({value:.12}...): {error}", value.len());
            }
        }

        id += 1;
        let far_past = incompressible(alphabet, 3000, id as u64);
        let (_, row) = insert(table, column, &far_past, id);
        let error = db.execute_raw(row).await.expect_err(&format!("{table}.{column} took 3000 incompressible bytes"));
        let message = error.to_string();
        assert_eq!(sqlstate(&error).as_deref(), Some("54000"), "{table}.{column}: {message}");
        assert!(
            message.contains("index row size") && message.contains(&format!("for index \"{table}_")),
            "{table}.{column} was refused by another index: {message}"
        );
        println!("{table}.{column}: {message}");
        refusals.push(message);
    }
    assert!(refusals.iter().any(|m| m.contains("exceeds maximum 2712")), "no GIN refusal: {refusals:#?}");
    assert!(refusals.iter().any(|m| m.contains("exceeds btree version 4 maximum 2704")), "no btree refusal");
}
