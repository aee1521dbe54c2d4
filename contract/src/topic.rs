//! The topics of the contract, each with the flag, variable and default that both binaries read it from:
//! `--topic-tweets` / `TOPIC_TWEETS` names the same topic for the scraper that writes it and the inserter
//! that reads it.

use std::fmt;
use std::marker::PhantomData;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

/// One topic of the contract.
#[derive(Debug, PartialEq, Eq)]
pub struct Topic {
    /// The name code and tests know it by (`tweets`).
    pub name: &'static str,
    /// `topic-<name>`.
    pub flag: &'static str,
    /// `TOPIC_<NAME>`.
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Earlier spellings of the flag, still read.
    pub aliases: &'static [&'static str],
}

pub const TWEETS: Topic = Topic {
    name: "tweets",
    flag: "topic-tweets",
    env: "TOPIC_TWEETS",
    default: "twitter.tweets",
    help: "Topic of X posts (raw X API v2 stream lines)",
    aliases: &["tweets", "tweets-topic"],
};

pub const MASTODON_STATUSES: Topic = Topic {
    name: "mastodon-statuses",
    flag: "topic-mastodon-statuses",
    env: "TOPIC_MASTODON_STATUSES",
    default: "mastodon.statuses",
    help: "Topic of Mastodon statuses (the Status JSON of streaming `update` events)",
    aliases: &["mastodon-statuses"],
};

pub const INSTAGRAM_PROFILES: Topic = Topic {
    name: "instagram-profiles",
    flag: "topic-instagram-profiles",
    env: "TOPIC_INSTAGRAM_PROFILES",
    default: "instagram.profiles",
    help: "Topic of Instagram profiles (Graph API `business_discovery` objects and web `data.user` objects)",
    aliases: &["instagram-profiles"],
};

pub const INSTAGRAM_MEDIA: Topic = Topic {
    name: "instagram-media",
    flag: "topic-instagram-media",
    env: "TOPIC_INSTAGRAM_MEDIA",
    default: "instagram.media",
    help: "Topic of Instagram media (Graph API media objects and web timeline nodes)",
    aliases: &["instagram-media"],
};

pub const BLUESKY_EVENTS: Topic = Topic {
    name: "bluesky-events",
    flag: "topic-bluesky-events",
    env: "TOPIC_BLUESKY_EVENTS",
    default: "bluesky.events",
    help: "Topic of Bluesky events (Jetstream's JSON: commits of posts, likes, reposts, follows; identity and account events)",
    aliases: &[],
};

pub const REJECTS: Topic = Topic {
    name: "rejects",
    flag: "topic-rejects",
    env: "TOPIC_REJECTS",
    default: "scraper.rejects",
    help: "Topic of payloads the scraper rejected, with the reason in their `error` header",
    aliases: &["rejects"],
};

/// Every topic of the contract.
pub const ALL: [&Topic; 6] =
    [&TWEETS, &MASTODON_STATUSES, &INSTAGRAM_PROFILES, &INSTAGRAM_MEDIA, &BLUESKY_EVENTS, &REJECTS];

/// The topics a binary takes flags for: those its sources write, or its mappings read.
pub trait TopicList {
    fn topics() -> Vec<&'static Topic>;
}

/// The topic names a binary was configured with, one per topic of its [`TopicList`]; a clap `Args` group under
/// the heading "Topics".
pub struct Topics<L> {
    names: Vec<(&'static Topic, String)>,
    list: PhantomData<L>,
}

impl<L> Topics<L> {
    /// The configured name of `topic`. Panics if `topic` is not in the binary's list: that is a bug.
    pub fn name(&self, topic: &Topic) -> &str {
        self.find(topic.name).unwrap_or_else(|| panic!("topic {} is not configured", topic.name))
    }

    /// The configured name of the topic known as `name` (e.g. `tweets`).
    pub fn find(&self, name: &str) -> Option<&str> {
        self.names.iter().find(|(topic, _)| topic.name == name).map(|(_, configured)| configured.as_str())
    }

    /// Each topic with its configured name, in the list's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Topic, &str)> {
        self.names.iter().map(|(topic, name)| (*topic, name.as_str()))
    }
}

impl<L: TopicList> Topics<L> {
    /// Every flag, for a message.
    pub fn flags() -> String {
        L::topics().iter().map(|topic| format!("--{}", topic.flag)).collect::<Vec<_>>().join(", ")
    }
}

impl<L> Clone for Topics<L> {
    fn clone(&self) -> Self {
        Self { names: self.names.clone(), list: PhantomData }
    }
}

impl<L> fmt::Debug for Topics<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.names.iter().map(|(topic, name)| (topic.name, name))).finish()
    }
}

impl<L> PartialEq for Topics<L> {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl<L: TopicList> FromArgMatches for Topics<L> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let name =
            |topic: &Topic| matches.get_one::<String>(topic.flag).cloned().unwrap_or_else(|| topic.default.into());
        Ok(Self { names: L::topics().into_iter().map(|t| (t, name(t))).collect(), list: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<L: TopicList> Args for Topics<L> {
    fn augment_args(command: Command) -> Command {
        let command = command.next_help_heading("Topics");
        L::topics().into_iter().fold(command, |command, topic| {
            command.arg(
                Arg::new(topic.flag)
                    .long(topic.flag)
                    .aliases(topic.aliases)
                    .env(topic.env)
                    .default_value(topic.default)
                    .value_name("TOPIC")
                    .help(topic.help),
            )
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn each_topic_is_read_from_topic_and_its_name() {
        for topic in ALL {
            assert_eq!(topic.flag, format!("topic-{}", topic.name));
            assert_eq!(topic.env, format!("TOPIC_{}", topic.name.to_uppercase().replace('-', "_")));
        }
    }

    struct Two;
    impl TopicList for Two {
        fn topics() -> Vec<&'static Topic> {
            vec![&TWEETS, &REJECTS]
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        topics: Topics<Two>,
    }

    #[test]
    fn a_topic_has_its_default_its_flag_and_its_old_spelling() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("cli").chain(args.iter().copied())).unwrap();
        assert_eq!(parse(&[]).topics.name(&TWEETS), "twitter.tweets");
        assert_eq!(parse(&["--topic-tweets", "a"]).topics.name(&TWEETS), "a");
        assert_eq!(parse(&["--tweets-topic", "b"]).topics.name(&TWEETS), "b");
        assert_eq!(parse(&["--rejects", "c"]).topics.name(&REJECTS), "c");
        assert_eq!(parse(&[]).topics.find("mastodon-statuses"), None);
        assert_eq!(Topics::<Two>::flags(), "--topic-tweets, --topic-rejects");
    }
}
