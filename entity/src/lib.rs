//! SeaORM entities, one module per table, mirroring the `migration` crate's schema column for column (the
//! `schema_matches_migrations` test holds them to it).

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
