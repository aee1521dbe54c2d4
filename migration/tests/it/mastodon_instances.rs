//! The migration that keys Mastodon statuses per instance, on rows written before it: they take the
//! instance of their stream, found from its own statuses, or the one the operator names.

use migration::{Migrator, MigratorTrait};
use sea_orm::{Database, DatabaseConnection};
use testkit::Postgres;

use crate::sql::{exec, lines};

/// Migrations before the one under test.
fn before() -> u32 {
    let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    names.iter().position(|name| name.contains("mastodon_instances")).expect("the migration exists") as u32
}

/// A local status of mastodon.social, a remote one it serves, and a deletion.
async fn old_rows(db: &DatabaseConnection) {
    let status = |id: i64, uri: &str, acct: &str| {
        format!(
            "INSERT INTO mastodon_statuses (id, uri, created_at, account_id, account_acct, account_username, \
             content_html, content_text, visibility, raw, scraped_at) \
             VALUES ({id}, '{uri}', now(), 1, '{acct}', 'a', '', '', 'public', '{{}}', now())"
        )
    };
    exec(db, &status(1, "https://mastodon.social/users/a/statuses/1", "a")).await;
    exec(db, &status(2, "https://Mastodon.Social/users/b/statuses/2", "b")).await;
    exec(db, &status(3, "https://hachyderm.io/users/c/statuses/99", "c@hachyderm.io")).await;
    exec(db, "INSERT INTO mastodon_status_deletions (status_id, deleted_at, source) VALUES (3, now(), 'sse.mastodon')")
        .await;
}

#[tokio::test]
async fn old_rows_take_their_streams_instance_and_down_restores_the_old_key() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(before())).await.unwrap();
    old_rows(&db).await;
    Migrator::up(&db, Some(1)).await.unwrap();

    let all = "SELECT instance FROM mastodon_statuses ORDER BY id";
    assert_eq!(lines(&db, all).await, ["mastodon.social"; 3], "the remote status too: its id is mastodon.social's");
    let deletions = lines(&db, "SELECT instance FROM mastodon_status_deletions").await;
    assert_eq!(deletions, ["mastodon.social"]);
    // The same id from another instance is another row now.
    exec(
        &db,
        "INSERT INTO mastodon_statuses (instance, id, uri, created_at, account_id, account_acct, \
               account_username, content_html, content_text, visibility, raw, scraped_at) \
               VALUES ('fosstodon.org', 1, 'https://fosstodon.org/users/z/statuses/1', now(), 1, 'z', 'z', '', '', \
               'public', '{}', now())",
    )
    .await;
    exec(&db, "DELETE FROM mastodon_statuses WHERE instance = 'fosstodon.org'").await;

    Migrator::down(&db, Some(1)).await.unwrap();
    let ids = lines(&db, "SELECT id::text FROM mastodon_statuses ORDER BY id").await;
    assert_eq!(ids, ["1", "2", "3"]);
}

#[tokio::test]
async fn the_operator_may_name_the_instance() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(before())).await.unwrap();
    old_rows(&db).await;
    let named = format!("{url}?options=-c%20ingest.mastodon_instance%3Dsocial.example");
    let db = Database::connect(&named).await.unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    let all = lines(&db, "SELECT DISTINCT instance FROM mastodon_statuses").await;
    assert_eq!(all, ["social.example"]);
}
