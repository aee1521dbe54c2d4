//! The topics of the Kafka contract and their default names; each can be renamed by a flag.

use clap::Args;

#[derive(Clone, Debug, Args)]
pub struct Topics {
    /// Topic for X posts (raw stream lines)
    #[arg(long, env = "TOPIC_TWEETS", default_value = "twitter.tweets")]
    pub tweets: String,

    /// Topic for Instagram profiles
    #[arg(long, env = "TOPIC_INSTAGRAM_PROFILES", default_value = "instagram.profiles")]
    pub instagram_profiles: String,

    /// Topic for Instagram media
    #[arg(long, env = "TOPIC_INSTAGRAM_MEDIA", default_value = "instagram.media")]
    pub instagram_media: String,

    /// Topic for Mastodon statuses from SSE streams
    #[arg(long, env = "TOPIC_MASTODON_STATUSES", default_value = "mastodon.statuses")]
    pub mastodon_statuses: String,

    /// Topic for payloads that failed validation (with an `error` header)
    #[arg(long, env = "TOPIC_REJECTS", default_value = "scraper.rejects")]
    pub rejects: String,
}

impl Topics {
    pub fn all(&self) -> [&str; 5] {
        [&self.tweets, &self.instagram_profiles, &self.instagram_media, &self.mastodon_statuses, &self.rejects]
    }
}
