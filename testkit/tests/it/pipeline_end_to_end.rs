//! The pipeline as compose runs it, without containers: the migrations as `ingest_owner`, the scraper
//! replaying 200 posts, the inserter as `inserter`, Postgres with `docker/postgres/roles.sql` applied, and
//! the Debezium connector's pgoutput slot (`docker/debezium/ingest-postgres.json`) read as `debezium`. Every
//! post lands once, the slot carries an insert for each, and each role can do what its process needs and no
//! more.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use migration::CDC_PUBLICATION;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use testkit::cdc::{self, ChangeKind};
use testkit::stack::{DATABASE, Role, Stack, StackOptions};
use testkit::{Process, TestMessage};

const POSTS: u64 = 200;

/// The Debezium connector's configuration, as compose registers it.
fn connector_setting(key: &str) -> String {
    let path = testkit::stack::repository_root().join("docker/debezium/ingest-postgres.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let connector: serde_json::Value = serde_json::from_str(&text).unwrap();
    let config = connector.get("config").unwrap_or(&connector);
    config[key].as_str().unwrap_or_else(|| panic!("no {key} in {}", path.display())).to_owned()
}

/// Only what the binary needs from the environment: no `.env`, no token or SSE URL of the developer's.
fn isolated(mut command: Command, dir: &tempfile::TempDir) -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<(String, String)> =
        command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned()))).collect();
    command.env_clear().envs(kept).env("PATH", path).env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn");
    command.current_dir(dir.path());
    command
}

async fn query(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    query(db, sql).await[0].try_get_by_index(0).unwrap()
}

/// The error `sql` fails with, as `db`'s role; panics if it succeeds.
async fn refused(db: &DatabaseConnection, sql: &str) -> String {
    match db.execute_unprepared(sql).await {
        Ok(_) => panic!("`{sql}` succeeded but must be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn replayed_posts_reach_postgres_and_the_change_stream_under_least_privilege() {
    let stack = Stack::start(&StackOptions::new().unwrap()).await.unwrap();
    stack.migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Debezium's view, from before the first row: the connector's slot on its publication, as its user.
    assert_eq!(connector_setting("database.user"), Role::Debezium.name());
    assert_eq!(connector_setting("database.dbname"), DATABASE);
    assert_eq!(connector_setting("plugin.name"), "pgoutput");
    let (slot, publication) = (connector_setting("slot.name"), connector_setting("publication.name"));
    assert_eq!(publication, CDC_PUBLICATION);
    let debezium = stack.connect(Role::Debezium).await.unwrap();
    cdc::create_slot(&debezium, &slot).await.unwrap();

    let mut command = isolated(stack.scraper(), &dir);
    command
        .env("REPLAY_COUNT", POSTS.to_string())
        .env("REPLAY_RATE", "0")
        .env("TOPIC_PARTITIONS", "3")
        .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0");
    let mut scraper = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    let status = scraper.wait(Duration::from_secs(90)).await.unwrap();
    assert!(status.success(), "{}", scraper.log());
    assert!(scraper.log().contains(&format!("produced={POSTS} ")), "{}", scraper.log());

    // A record no mapping can store: the inserter's role must be able to dead-letter it.
    let poison = TestMessage { key: Some(b"poison".to_vec()), value: Some(b"not json".to_vec()), ..Default::default() };
    stack.broker.produce("twitter.tweets", [poison]).await.unwrap();

    let mut command = isolated(stack.inserter(), &dir);
    command.args(["--exit-when-idle", "5s"]).env("INSERTER_METRICS_ADDR", "127.0.0.1:0").env("BATCH_TIMEOUT", "100ms");
    let mut inserter = Process::spawn(command, &dir.path().join("inserter.log")).unwrap();
    let status = inserter.wait(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());

    // The rows, as the analyst reads them.
    let analyst = stack.connect(Role::Analyst).await.unwrap();
    assert_eq!(count(&analyst, "SELECT count(*) FROM public.twitter_data").await, POSTS as i64, "{}", inserter.log());
    let rows = query(
        &analyst,
        "SELECT tweet_id, text, raw->'data'->>'id', raw->'data'->>'text' FROM public.twitter_data ORDER BY tweet_id",
    )
    .await;
    let mut stored = BTreeSet::new();
    for row in &rows {
        let (id, text): (i64, String) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        let (raw_id, raw_text): (String, String) = (row.try_get_by_index(2).unwrap(), row.try_get_by_index(3).unwrap());
        assert_eq!((id.to_string(), text.as_str()), (raw_id, raw_text.as_str()), "the columns are the post's own");
        assert!(!text.is_empty());
        stored.insert(id.to_string());
    }
    // The generator's posts are marked as made up, with ids no X post has.
    let marked = "SELECT count(*) FROM public.twitter_data WHERE source = 'replay.synthetic'";
    assert_eq!(count(&analyst, marked).await, POSTS as i64);
    let ids = scraper::synthetic::POST_IDS;
    assert!(stored.iter().all(|id| ids.contains(&id.parse().unwrap())), "{stored:?}");
    let owner = stack.connect(Role::Owner).await.unwrap();
    assert_eq!(count(&owner, "SELECT count(*) FROM ingest_errors").await, 1, "the poison record is dead-lettered");

    // The change stream, as Debezium reads it: one insert per stored post, nothing else for twitter_data.
    let changes = cdc::peek_changes(&debezium, &slot, &publication).await.unwrap();
    let tweet_changes: Vec<_> = changes.iter().filter(|c| c.table == "twitter_data").collect();
    assert!(tweet_changes.iter().all(|c| c.kind == ChangeKind::Insert), "{tweet_changes:?}");
    let streamed: BTreeSet<String> = tweet_changes.iter().filter_map(|c| c.columns[0].clone()).collect();
    assert_eq!(tweet_changes.len(), POSTS as usize);
    assert_eq!(streamed, stored, "the slot carries an insert for every stored post");
    assert!(
        changes.iter().all(|c| c.table != "kafka_offsets" && c.table != "ingest_errors"),
        "the bookkeeping tables stay out of the change stream"
    );
    assert!(count(&debezium, "SELECT count(*) FROM public.twitter_data").await > 0, "Debezium can snapshot");

    // Least privilege.
    let inserter_db = stack.connect(Role::Inserter).await.unwrap();
    for (db, role, sql) in [
        (&inserter_db, "inserter", "CREATE TABLE public.sneaky (id int)"),
        (&inserter_db, "inserter", "DELETE FROM public.twitter_data"),
        (&inserter_db, "inserter", "DROP TABLE public.twitter_data"),
        (
            &debezium,
            "debezium",
            "INSERT INTO public.twitter_data (tweet_id, text, source, raw) VALUES (1, 'x', 'x', '{}')",
        ),
        (&debezium, "debezium", "CREATE TABLE public.sneaky (id int)"),
        (&analyst, "analyst", "UPDATE public.twitter_data SET text = 'x'"),
        (&analyst, "analyst", "CREATE TABLE public.sneaky (id int)"),
    ] {
        let error = refused(db, sql).await;
        let refusals = ["permission denied", "must be owner", "read-only transaction"];
        assert!(refusals.iter().any(|r| error.contains(r)), "{role}: `{sql}`: {error}");
    }
}
