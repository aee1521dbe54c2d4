//! The logical-replication publication over the data tables, for Debezium's pgoutput plugin. A later
//! migration that adds a data table adds it here with `ALTER PUBLICATION ingest_cdc ADD TABLE ...`.

use sea_orm_migration::prelude::*;

const UP: &str = r#"
CREATE PUBLICATION ingest_cdc FOR TABLE
    twitter_data,
    twitter_users,
    instagram_profiles,
    instagram_profile_snapshots,
    instagram_posts,
    instagram_comments,
    instagram_hashtags,
    instagram_post_hashtags,
    instagram_post_tagged_users;
"#;

const DOWN: &str = "DROP PUBLICATION ingest_cdc;";

crate::sql::sql_migration!(UP, DOWN);
