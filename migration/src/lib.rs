//! The schema, as an ordered list of migrations. Each migration is plain SQL (the DDL reads as Postgres
//! sees it, CHECKs, GIN indexes, deferrable foreign keys and replica identities included) with a `down` that
//! undoes exactly its `up`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_twitter;
mod m20261122_000002_instagram;
mod m20261122_000003_ingest_bookkeeping;
mod m20261122_000004_cdc_publication;
mod m20261125_000005_mastodon;
mod m20261201_000006_mastodon_edits_deletions;
mod m20261201_000007_instagram_one_profile_per_account;
mod m20261201_000008_mastodon_instances;
mod m20261201_000009_analyst_views;
mod m20261201_000010_partitioned_posts;
mod m20261207_000011_security;
mod m20261207_000012_bluesky;
mod m20261207_000013_bluesky_in_views;
pub mod retention;
mod sql;

/// The publication Debezium (or any logical-replication client) reads; created by the migrations so that
/// the connector can run with `publication.autocreate.mode=disabled` and no CREATE privilege.
pub const CDC_PUBLICATION: &str = "ingest_cdc";

/// Every table in [`CDC_PUBLICATION`] once all migrations ran: the data tables. The bookkeeping tables
/// (`kafka_offsets`, `ingest_errors`) stay out of the change stream: they are the pipeline's state, not data.
/// The `debezium` role may read these tables and no other: a migration that publishes a table also grants
/// `debezium` SELECT on it (roles.sql gives it nothing by default).
pub const PUBLISHED_TABLES: &[&str] = &[
    "twitter_data",
    "twitter_users",
    "instagram_profiles",
    "instagram_profile_snapshots",
    "instagram_posts",
    "instagram_comments",
    "instagram_hashtags",
    "instagram_post_hashtags",
    "instagram_post_tagged_users",
    "mastodon_statuses",
    "mastodon_status_deletions",
    "bluesky_posts",
    "bluesky_interactions",
    "bluesky_deletions",
    "bluesky_account_events",
];

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_twitter::Migration),
            Box::new(m20261122_000002_instagram::Migration),
            Box::new(m20261122_000003_ingest_bookkeeping::Migration),
            Box::new(m20261122_000004_cdc_publication::Migration),
            Box::new(m20261125_000005_mastodon::Migration),
            Box::new(m20261201_000006_mastodon_edits_deletions::Migration),
            Box::new(m20261201_000007_instagram_one_profile_per_account::Migration),
            Box::new(m20261201_000008_mastodon_instances::Migration),
            Box::new(m20261201_000009_analyst_views::Migration),
            Box::new(m20261201_000010_partitioned_posts::Migration),
            Box::new(m20261207_000011_security::Migration),
            Box::new(m20261207_000012_bluesky::Migration),
            Box::new(m20261207_000013_bluesky_in_views::Migration),
        ]
    }
}
