//! SeaORM entities, one module per table, mirroring the `migration` crate's schema column for column (the
//! `schema_matches_migrations` test holds them to it). Each module also describes its table to the pipeline
//! (`description`): the index limits of its text, its partitioning, its publication.

pub mod description;

pub mod bluesky_account_events;
pub mod bluesky_deletions;
pub mod bluesky_interactions;
pub mod bluesky_posts;
pub mod ingest_errors;
pub mod instagram_comments;
pub mod instagram_hashtags;
pub mod instagram_post_hashtags;
pub mod instagram_post_tagged_users;
pub mod instagram_posts;
pub mod instagram_profile_snapshots;
pub mod instagram_profiles;
pub mod kafka_offsets;
pub mod mastodon_status_deletions;
pub mod mastodon_statuses;
pub mod twitter_data;
pub mod twitter_users;

pub mod prelude {
    //! The entities under short names: `TwitterData::find()`.
    pub use crate::bluesky_account_events::Entity as BlueskyAccountEvents;
    pub use crate::bluesky_deletions::Entity as BlueskyDeletions;
    pub use crate::bluesky_interactions::Entity as BlueskyInteractions;
    pub use crate::bluesky_posts::Entity as BlueskyPosts;
    pub use crate::ingest_errors::Entity as IngestErrors;
    pub use crate::instagram_comments::Entity as InstagramComments;
    pub use crate::instagram_hashtags::Entity as InstagramHashtags;
    pub use crate::instagram_post_hashtags::Entity as InstagramPostHashtags;
    pub use crate::instagram_post_tagged_users::Entity as InstagramPostTaggedUsers;
    pub use crate::instagram_posts::Entity as InstagramPosts;
    pub use crate::instagram_profile_snapshots::Entity as InstagramProfileSnapshots;
    pub use crate::instagram_profiles::Entity as InstagramProfiles;
    pub use crate::kafka_offsets::Entity as KafkaOffsets;
    pub use crate::mastodon_status_deletions::Entity as MastodonStatusDeletions;
    pub use crate::mastodon_statuses::Entity as MastodonStatuses;
    pub use crate::twitter_data::Entity as TwitterData;
    pub use crate::twitter_users::Entity as TwitterUsers;
}

pub use description::{Described, EachTable, Facts, tables};

/// Every table, once: what lists the tables (the entity check, the index limits, partition maintenance, the
/// publication's check) goes through this.
pub fn for_each_table(visitor: &mut impl EachTable) {
    visitor.table::<twitter_users::Entity>();
    visitor.table::<twitter_data::Entity>();
    visitor.table::<mastodon_statuses::Entity>();
    visitor.table::<mastodon_status_deletions::Entity>();
    visitor.table::<bluesky_posts::Entity>();
    visitor.table::<bluesky_interactions::Entity>();
    visitor.table::<bluesky_deletions::Entity>();
    visitor.table::<bluesky_account_events::Entity>();
    visitor.table::<instagram_profiles::Entity>();
    visitor.table::<instagram_profile_snapshots::Entity>();
    visitor.table::<instagram_posts::Entity>();
    visitor.table::<instagram_hashtags::Entity>();
    visitor.table::<instagram_post_hashtags::Entity>();
    visitor.table::<instagram_comments::Entity>();
    visitor.table::<instagram_post_tagged_users::Entity>();
    visitor.table::<ingest_errors::Entity>();
    visitor.table::<kafka_offsets::Entity>();
}
