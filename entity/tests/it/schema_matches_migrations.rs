//! The entities against the migrated database: every table has an entity, every entity column exists with
//! the same type and nullability, and a fully populated row of each entity reads back unchanged.

use chrono::{DateTime, TimeZone, Utc};
use entity::*;
use migration::Migrator;
use sea_orm::sea_query::ColumnType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IdenStatic, IntoActiveModel, Iterable, NotSet,
    QueryFilter, Statement,
};
use serde_json::json;
use testkit::Postgres;

/// (column, udt_name, nullable) as Postgres reports them.
type Columns = Vec<(String, String, bool)>;

fn udt_name(column_type: &ColumnType) -> String {
    match column_type {
        ColumnType::BigInteger => "int8".into(),
        ColumnType::Integer => "int4".into(),
        ColumnType::Text | ColumnType::String(_) => "text".into(),
        ColumnType::Boolean => "bool".into(),
        ColumnType::TimestampWithTimeZone => "timestamptz".into(),
        ColumnType::JsonBinary => "jsonb".into(),
        ColumnType::VarBinary(_) | ColumnType::Binary(_) | ColumnType::Blob => "bytea".into(),
        ColumnType::Array(inner) => format!("_{}", udt_name(inner)),
        other => format!("unmapped {other:?}"),
    }
}

fn entity_columns<E: EntityTrait>() -> (String, Columns) {
    let mut columns: Columns = E::Column::iter()
        .map(|c| {
            let def = c.def();
            (c.as_str().to_owned(), udt_name(def.get_column_type()), def.is_null())
        })
        .collect();
    columns.sort();
    (E::default().table_name().to_owned(), columns)
}

async fn database_columns(db: &DatabaseConnection) -> Vec<(String, Columns)> {
    // Tables only: the analysts' views are queries over them, not rows an entity reads or writes. A
    // partitioned table is one table (its partitions are where it keeps its rows, not tables of their own).
    let sql = "SELECT c.table_name::text, c.column_name::text, c.udt_name::text, c.is_nullable = 'YES'
               FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               JOIN pg_class r ON r.oid = format('%I.%I', c.table_schema, c.table_name)::regclass
               WHERE c.table_schema = 'public' AND c.table_name <> 'seaql_migrations'
                 AND t.table_type = 'BASE TABLE' AND NOT r.relispartition
               ORDER BY 1, 2";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let mut tables: Vec<(String, Columns)> = Vec::new();
    for row in rows {
        let table: String = row.try_get_by_index(0).unwrap();
        let column =
            (row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap(), row.try_get_by_index(3).unwrap());
        match tables.last_mut() {
            Some((name, columns)) if *name == table => columns.push(column),
            _ => tables.push((table, vec![column])),
        }
    }
    tables
}

#[tokio::test]
async fn every_table_has_an_entity_with_the_same_columns() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap();

    struct Collect(Vec<(String, Columns)>);
    impl EachTable for Collect {
        fn table<E: Described>(&mut self) {
            self.0.push(entity_columns::<E>());
        }
    }
    let mut entities = Collect(Vec::new());
    for_each_table(&mut entities);
    let mut entities = entities.0;
    entities.sort();
    assert_eq!(entities, database_columns(&db.conn).await);
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_748_786_591 + seconds, 123_456_000).unwrap()
}

/// Inserts `model` as it is and reads it back by primary key.
async fn round_trip<E>(
    db: &DatabaseConnection,
    model: E::Model,
    id: <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType,
) where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + PartialEq + std::fmt::Debug + Clone,
{
    E::insert(model.clone().into_active_model()).exec_without_returning(db).await.unwrap();
    let read = E::find_by_id(id).one(db).await.unwrap().expect("the row just inserted");
    assert_eq!(read, model);
}

#[tokio::test]
async fn a_fully_populated_row_of_every_entity_reads_back_unchanged() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;

    let user = twitter_users::Model {
        user_id: 2244994945,
        username: "XDevelopers".into(),
        name: Some("Developers".into()),
        description: Some("The voice of the X Dev team".into()),
        location: Some("127.0.0.1".into()),
        url: Some("https://t.co/3ZX3TNiZCY".into()),
        profile_image_url: Some("https://pbs.twimg.com/profile_images/x.jpg".into()),
        verified: Some(true),
        verified_type: Some("business".into()),
        protected: Some(false),
        created_at: Some(at(-1_000_000)),
        followers_count: Some(570_000),
        following_count: Some(2_000),
        tweet_count: Some(14_000),
        listed_count: Some(1_600),
        like_count: Some(2_100),
        raw: json!({"id": "2244994945", "username": "XDevelopers"}),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<twitter_users::Entity>(&db, user, 2244994945).await;

    let tweet = twitter_data::Model {
        tweet_id: 1_460_323_737_035_677_698,
        text: "Introducing a new era for the X Developer Platform! 📣 #api @XDevelopers https://t.co/x".into(),
        author_id: Some(2244994945),
        created_at: Some(at(-60)),
        lang: Some("en".into()),
        conversation_id: Some(1_460_323_737_035_677_698),
        in_reply_to_user_id: Some(783214),
        replied_to_id: Some(1_460_323_737_035_677_000),
        quoted_id: Some(1_460_323_737_035_677_001),
        retweeted_id: Some(1_460_323_737_035_677_002),
        retweet_count: Some(1),
        reply_count: Some(2),
        like_count: Some(3),
        quote_count: Some(4),
        bookmark_count: Some(5),
        impression_count: Some(6),
        possibly_sensitive: Some(false),
        hashtags: vec!["api".into(), "Ünïcode".into()],
        mentions: vec!["XDevelopers".into()],
        urls: vec!["https://developer.x.com".into()],
        source: "x.sample".into(),
        raw: json!({"data": {"id": "1460323737035677698", "text": "…"}}),
        scraped_at: at(0),
        ingested_at: at(2),
    };
    round_trip::<twitter_data::Entity>(&db, tweet, 1_460_323_737_035_677_698).await;

    let profile = instagram_profiles::Model {
        user_id: 1_620_131,
        graph_user_id: Some(17_841_400_008_460_056),
        username: Some("bluebottle".into()),
        full_name: Some("Blue Bottle Coffee".into()),
        biography: Some("Coffee".into()),
        external_url: Some("https://bluebottlecoffee.com".into()),
        profile_pic_url: Some("https://scontent.cdninstagram.com/p.jpg".into()),
        category: Some("Coffee Shop".into()),
        is_private: Some(false),
        is_verified: Some(true),
        is_business: Some(true),
        followers_count: Some(426_000),
        follows_count: Some(120),
        media_count: Some(1_200),
        source: Some("instagram.graph.business_discovery".into()),
        raw: Some(json!({"id": "17841400008460056", "ig_id": 1620131})),
        scraped_at: Some(at(0)),
        ingested_at: at(1),
    };
    round_trip::<instagram_profiles::Entity>(&db, profile, 1_620_131).await;

    let snapshot = instagram_profile_snapshots::Model {
        user_id: 1_620_131,
        scraped_at: at(0),
        followers_count: Some(426_000),
        follows_count: Some(120),
        media_count: Some(1_200),
        source: "instagram.graph.business_discovery".into(),
        ingested_at: at(1),
    };
    round_trip::<instagram_profile_snapshots::Entity>(&db, snapshot, (1_620_131, at(0))).await;

    let post = instagram_posts::Model {
        media_id: 3_123_456_789_012_345_678,
        shortcode: "CtJ-abc_123".into(),
        graph_media_id: Some(17_895_695_668_004_550),
        owner_id: Some(1_620_131),
        media_type: Some("CAROUSEL_ALBUM".into()),
        caption: Some("Morning #coffee".into()),
        permalink: Some("https://www.instagram.com/p/CtJ-abc_123/".into()),
        media_url: Some("https://scontent.cdninstagram.com/m.jpg".into()),
        thumbnail_url: Some("https://scontent.cdninstagram.com/t.jpg".into()),
        taken_at: Some(at(-3600)),
        like_count: Some(321),
        comments_count: Some(2),
        video_view_count: Some(0),
        source: "instagram.graph.business_discovery".into(),
        raw: json!({"id": "17895695668004550"}),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<instagram_posts::Entity>(&db, post, 3_123_456_789_012_345_678).await;

    let comment = |comment_id: i64, parent_comment_id: Option<i64>| instagram_comments::Model {
        comment_id,
        media_id: 3_123_456_789_012_345_678,
        parent_comment_id,
        author_id: Some(1_620_131),
        author_username: Some("bluebottle".into()),
        text: "Thanks!".into(),
        like_count: Some(4),
        created_at: Some(at(-10)),
        source: "instagram.graph.business_discovery".into(),
        raw: json!({"id": comment_id.to_string()}),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<instagram_comments::Entity>(&db, comment(17_858_893_269_000_001, None), 17_858_893_269_000_001).await;
    let reply = comment(17_858_893_269_000_002, Some(17_858_893_269_000_001));
    round_trip::<instagram_comments::Entity>(&db, reply, 17_858_893_269_000_002).await;

    let hashtag = instagram_hashtags::Model {
        name: "coffee".into(),
        graph_hashtag_id: Some(17_843_853_986_012_965),
        first_seen_at: at(0),
    };
    round_trip::<instagram_hashtags::Entity>(&db, hashtag, "coffee".to_owned()).await;

    let link = instagram_post_hashtags::Model { media_id: 3_123_456_789_012_345_678, hashtag: "coffee".into() };
    round_trip::<instagram_post_hashtags::Entity>(&db, link, (3_123_456_789_012_345_678, "coffee".into())).await;

    let tagged = instagram_post_tagged_users::Model { media_id: 3_123_456_789_012_345_678, user_id: 1_620_131 };
    round_trip::<instagram_post_tagged_users::Entity>(&db, tagged, (3_123_456_789_012_345_678, 1_620_131)).await;

    let status = mastodon_statuses::Model {
        instance: "mastodon.social".into(),
        id: 113_512_893_421_773_000,
        url: Some("https://mastodon.social/@Gargron/113512893421773000".into()),
        uri: "https://mastodon.social/users/Gargron/statuses/113512893421773000".into(),
        created_at: at(-60),
        account_id: 1,
        account_acct: "Gargron".into(),
        account_username: "Gargron".into(),
        content_html: "<p>Hello &amp; welcome <a href=\"https://mastodon.social/tags/rust\">#<span>Rust</span></a></p>"
            .into(),
        content_text: "Hello & welcome #Rust".into(),
        spoiler_text: "food".into(),
        visibility: "public".into(),
        language: Some("en".into()),
        sensitive: Some(true),
        in_reply_to_id: Some(113_512_893_421_772_000),
        reblog_of_id: Some(113_512_893_421_771_000),
        tags: vec!["rust".into(), "ünïcode".into()],
        mentions: vec!["Gargron".into(), "someone@example.org".into()],
        reblogs_count: Some(1),
        favourites_count: Some(2),
        replies_count: Some(3),
        edited_at: Some(at(-30)),
        deleted_at: Some(at(-10)),
        raw: json!({"id": "113512893421773000", "content": "<p>…</p>"}),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<mastodon_statuses::Entity>(&db, status, ("mastodon.social".to_owned(), 113_512_893_421_773_000)).await;

    let deletion = mastodon_status_deletions::Model {
        instance: "mastodon.social".into(),
        status_id: 113_512_893_421_779_999,
        deleted_at: at(-5),
        source: "sse.mastodon".into(),
        ingested_at: at(1),
    };
    round_trip::<mastodon_status_deletions::Entity>(
        &db,
        deletion,
        ("mastodon.social".to_owned(), 113_512_893_421_779_999),
    )
    .await;

    let did = "did:plc:z72i7hdynmk6r22z27h6tvur".to_owned();
    let post = bluesky_posts::Model {
        did: did.clone(),
        rkey: "3l3qo2vuowo2b".into(),
        rkey_at: at(-120),
        uri: format!("at://{did}/app.bsky.feed.post/3l3qo2vuowo2b"),
        cid: "bafyreig2fjxi3rptqdgylg7e5hmjl6mcke7rn2b6cugzlqq3i4zu6rq52q".into(),
        created_at: Some(at(-119)),
        text: "Hello #Rust @alice.bsky.social https://example.com 🦀".into(),
        langs: vec!["en".into()],
        reply_parent_uri: Some(format!("at://{did}/app.bsky.feed.post/3l3qo2vuowo2a")),
        reply_root_uri: Some(format!("at://{did}/app.bsky.feed.post/3l3qo2vuowo22")),
        quoted_uri: Some("at://did:plc:other/app.bsky.feed.post/3l3qo2vuowo2c".into()),
        hashtags: vec!["Rust".into()],
        mentions: vec!["did:plc:alice".into()],
        links: vec!["https://example.com".into()],
        event_at: at(-60),
        deleted_at: Some(at(-10)),
        raw: json!({"did": did, "kind": "commit", "commit": {"operation": "create"}}),
        source: "bluesky.jetstream".into(),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<bluesky_posts::Entity>(&db, post, (did.clone(), "3l3qo2vuowo2b".to_owned(), at(-120))).await;

    let like = bluesky_interactions::Model {
        did: did.clone(),
        collection: "app.bsky.feed.like".into(),
        rkey: "3l3qo2vuowo3b".into(),
        rkey_at: at(-100),
        uri: format!("at://{did}/app.bsky.feed.like/3l3qo2vuowo3b"),
        cid: "bafyreia".into(),
        subject_uri: Some("at://did:plc:other/app.bsky.feed.post/3l3qo2vuowo2c".into()),
        subject_cid: Some("bafyreib".into()),
        subject_did: Some("did:plc:other".into()),
        created_at: Some(at(-99)),
        event_at: at(-50),
        deleted_at: Some(at(-5)),
        raw: json!({"did": did, "kind": "commit"}),
        source: "bluesky.jetstream".into(),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    let key = (did.clone(), "app.bsky.feed.like".to_owned(), "3l3qo2vuowo3b".to_owned(), at(-100));
    round_trip::<bluesky_interactions::Entity>(&db, like, key).await;

    let deleted = bluesky_deletions::Model {
        did: did.clone(),
        collection: "app.bsky.graph.follow".into(),
        rkey: "3l3qo2vuowo4b".into(),
        rkey_at: at(-90),
        deleted_at: at(-5),
        source: "bluesky.jetstream".into(),
        ingested_at: at(1),
    };
    let key = (did.clone(), "app.bsky.graph.follow".to_owned(), "3l3qo2vuowo4b".to_owned(), at(-90));
    round_trip::<bluesky_deletions::Entity>(&db, deleted, key).await;

    let event = bluesky_account_events::Model {
        did: did.clone(),
        seq: 4_519_203_117,
        event_at: at(-30),
        kind: "account".into(),
        handle: Some("alice.bsky.social".into()),
        active: Some(false),
        status: Some("takendown".into()),
        raw: json!({"did": did, "kind": "account"}),
        source: "bluesky.jetstream".into(),
        scraped_at: at(0),
        ingested_at: at(1),
    };
    round_trip::<bluesky_account_events::Entity>(&db, event, (did.clone(), 4_519_203_117, at(-30))).await;

    let offsets = kafka_offsets::Model {
        consumer_group: "inserter".into(),
        topic: "twitter.tweets".into(),
        partition: 3,
        next_offset: 42,
        updated_at: at(0),
    };
    round_trip::<kafka_offsets::Entity>(&db, offsets, ("inserter".into(), "twitter.tweets".into(), 3)).await;

    // The dead-letter id is GENERATED ALWAYS: insert without it, then compare everything else.
    let dead_letter = ingest_errors::Model {
        id: 0,
        topic: "twitter.tweets".into(),
        partition: 0,
        offset: 7,
        key: Some(b"1460323737035677698".to_vec()),
        payload: Some(vec![b'{', 0xff, 0xfe, 0]),
        headers: Some(json!({"source": "x.sample"})),
        error: "invalid UTF-8 at byte 1".into(),
        failed_at: at(0),
    };
    let mut active = dead_letter.clone().into_active_model();
    active.id = NotSet;
    ingest_errors::Entity::insert(active).exec_without_returning(&db).await.unwrap();
    let read =
        ingest_errors::Entity::find().filter(ingest_errors::Column::Offset.eq(7)).one(&db).await.unwrap().unwrap();
    assert!(read.id > 0);
    assert_eq!(ingest_errors::Model { id: read.id, ..dead_letter }, read);
}

/// The names a query's first column returns, sorted.
async fn names(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let mut names: Vec<String> = rows.iter().map(|row| row.try_get_by_index(0).unwrap()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_description_says_what_the_migrations_made_of_its_table() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    let described = |pick: fn(&Facts) -> bool| {
        let mut tables: Vec<String> = tables().iter().filter(|f| pick(f)).map(|f| f.table.to_owned()).collect();
        tables.sort();
        tables
    };
    let published =
        format!("SELECT tablename::text FROM pg_publication_tables WHERE pubname = '{}'", migration::CDC_PUBLICATION);
    assert_eq!(described(|f| f.published), names(&db, &published).await);
    let mut constant: Vec<String> = migration::PUBLISHED_TABLES.iter().map(|t| t.to_string()).collect();
    constant.sort();
    assert_eq!(described(|f| f.published), constant, "migration::PUBLISHED_TABLES, which the connector is held to");
    let partitioned = "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = 'public' AND c.relkind = 'p'";
    assert_eq!(described(|f| f.partitioned), names(&db, partitioned).await);
}
