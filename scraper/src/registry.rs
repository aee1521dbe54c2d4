//! Where sources register: each source module says which `--source` values it runs, the flags it reads
//! (under a help heading of its own), the topics its records go to, when it runs without `--source`, and how
//! it is built from its flags. The binary knows nothing else about them: a new source is a module that
//! implements [`Register`] and one line in [`SOURCES`].

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use contract::{Topic, TopicList};

use crate::source::Source;

/// Every source module, in the order their sources start and their flags show in `--help`.
pub static SOURCES: &[&dyn Registration] = &[
    &crate::x::flags::X,
    &crate::sse::flags::SSE,
    &crate::replay::REPLAY,
    &crate::instagram::flags::INSTAGRAM,
    &crate::bluesky::flags::BLUESKY,
];

/// One `--source` value.
#[derive(Debug)]
pub struct Kind {
    /// Its `--source` value, e.g. `instagram-graph`.
    pub name: &'static str,
    pub help: &'static str,
    /// When it runs without `--source`, for `--help`.
    pub by_default: &'static str,
    /// The topics its records go to (besides the rejects topic, which every source may write).
    pub topics: &'static [&'static Topic],
}

/// Whether a source runs when `--source` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    No,
    Yes,
    /// Only if no other chosen source writes its topics: the web source runs where the Graph source does not.
    UnlessTopicsTaken,
    /// Only if no other source is configured (none is `Yes` or `UnlessTopicsTaken`): the replay, whose posts
    /// would otherwise land in the tables of a stack that reads a real source, mixed with its rows.
    Alone,
}

/// What every source's build gets besides its own flags.
pub struct Shared<'a> {
    pub topics: &'a Topics,
    /// Longest payload accepted, in bytes.
    pub max_record_bytes: usize,
    /// The Kafka client settings, for a source that reads where its last run stopped from its topic.
    pub kafka: &'a rdkafka::ClientConfig,
}

/// What a source module implements.
pub trait Register: Sync {
    /// Its flags: a clap `Args` struct with `#[command(next_help_heading = "...")]`.
    type Args: Args + FromArgMatches;

    fn kinds(&self) -> &'static [Kind];

    fn choice(&self, kind: &Kind, args: &Self::Args) -> Choice;

    /// The sources of `kind` (one, or one per stream its flags name), built from its flags; an error says
    /// what is missing, before anything connects.
    fn build(&self, kind: &Kind, args: &Self::Args, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>>;
}

/// [`Register`] without its `Args` type, so that [`SOURCES`] can list modules of different flags.
pub trait Registration: Sync {
    fn kinds(&self) -> &'static [Kind];
    fn augment(&self, command: Command) -> Command;
    fn choice(&self, kind: &Kind, matches: &ArgMatches) -> Result<Choice, clap::Error>;
    fn build(&self, kind: &Kind, matches: &ArgMatches, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>>;
}

impl<R: Register> Registration for R {
    fn kinds(&self) -> &'static [Kind] {
        Register::kinds(self)
    }

    fn augment(&self, command: Command) -> Command {
        R::Args::augment_args(command)
    }

    fn choice(&self, kind: &Kind, matches: &ArgMatches) -> Result<Choice, clap::Error> {
        Ok(Register::choice(self, kind, &R::Args::from_arg_matches(matches)?))
    }

    fn build(&self, kind: &Kind, matches: &ArgMatches, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        Register::build(self, kind, &R::Args::from_arg_matches(matches)?, shared)
    }
}

fn kinds() -> impl Iterator<Item = (&'static dyn Registration, &'static Kind)> {
    SOURCES.iter().flat_map(|registration| registration.kinds().iter().map(move |kind| (*registration, kind)))
}

/// The topics the scraper writes: each source's, and the rejects topic.
pub struct ScraperTopics;

impl TopicList for ScraperTopics {
    fn topics() -> Vec<&'static Topic> {
        let mut topics: Vec<&'static Topic> = Vec::new();
        for topic in kinds().flat_map(|(_, kind)| kind.topics.iter().copied()).chain([&contract::topic::REJECTS]) {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }
}

/// The scraper's topic names: `--topic-tweets`, ..., `--topic-rejects`.
pub type Topics = contract::Topics<ScraperTopics>;

/// `--source` and every source's flags, as parsed.
#[derive(Clone, Debug)]
pub struct SourceArgs {
    /// The `--source` values given; empty: the defaults.
    chosen: Vec<String>,
    matches: ArgMatches,
}

const SOURCE_FLAG: &str = "source";

impl SourceArgs {
    /// The sources to run, built and validated: a source that is asked for but not configured is an error
    /// here, before anything connects.
    pub fn build(&self, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let plan = self.plan()?;
        // An operator who sees no synthetic posts (or unexpected ones) learns here why.
        for line in &plan.log {
            tracing::info!("{line}");
        }
        let mut sources = Vec::new();
        for (registration, kind) in plan.chosen {
            sources.extend(registration.build(kind, &self.matches, shared)?);
        }
        Ok(sources)
    }

    /// The sources to run, and the lines that say why, for the log at start-up.
    fn plan(&self) -> Result<Plan, clap::Error> {
        let mut choices = Vec::new();
        for (registration, kind) in kinds() {
            choices.push((registration, kind, registration.choice(kind, &self.matches)?));
        }
        let configured: Vec<&str> = choices
            .iter()
            .filter(|c| matches!(c.2, Choice::Yes | Choice::UnlessTopicsTaken))
            .map(|c| c.1.name)
            .collect();
        if !self.chosen.is_empty() {
            // In registry order, each once, whatever the order and repetitions of the flag.
            let chosen: Vec<_> = kinds().filter(|(_, kind)| self.chosen.iter().any(|name| name == kind.name)).collect();
            let mut log = vec![format!("sources to run: {}, as SCRAPER_SOURCES (--source) names them", names(&chosen))];
            for (_, kind, _) in choices.iter().filter(|c| c.2 == Choice::Alone) {
                if !chosen.iter().any(|(_, named)| named.name == kind.name) {
                    log.push(format!("{} not started: SCRAPER_SOURCES (--source) does not name it", kind.name));
                }
            }
            return Ok(Plan { chosen, log });
        }
        let mut taken: Vec<&Topic> =
            choices.iter().filter(|c| c.2 == Choice::Yes).flat_map(|c| c.1.topics.iter().copied()).collect();
        let mut chosen = Vec::new();
        let mut alone = Vec::new();
        for (registration, kind, choice) in choices {
            let runs = match choice {
                Choice::Yes => true,
                Choice::No => false,
                Choice::UnlessTopicsTaken => !kind.topics.iter().any(|topic| taken.contains(topic)),
                Choice::Alone => configured.is_empty(),
            };
            if choice == Choice::Alone {
                alone.push(if runs {
                    format!("{} started: no other source is configured", kind.name)
                } else {
                    format!(
                        "{} not started: a real source is configured ({}); name it in SCRAPER_SOURCES to run it \
                         beside them",
                        kind.name,
                        configured.join(", ")
                    )
                });
            }
            if runs {
                if choice == Choice::UnlessTopicsTaken {
                    taken.extend(kind.topics.iter().copied());
                }
                chosen.push((registration, kind));
            }
        }
        let mut log =
            vec![format!("sources to run: {}, chosen by their settings (SCRAPER_SOURCES is unset)", names(&chosen))];
        log.extend(alone);
        Ok(Plan { chosen, log })
    }
}

/// What [`SourceArgs::plan`] decided.
struct Plan {
    chosen: Vec<(&'static dyn Registration, &'static Kind)>,
    log: Vec<String>,
}

fn names(chosen: &[(&'static dyn Registration, &'static Kind)]) -> String {
    chosen.iter().map(|(_, kind)| kind.name).collect::<Vec<_>>().join(", ")
}

impl FromArgMatches for SourceArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let chosen =
            matches.get_many::<String>(SOURCE_FLAG).map(|values| values.cloned().collect()).unwrap_or_default();
        Ok(Self { chosen, matches: matches.clone() })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for SourceArgs {
    fn augment_args(command: Command) -> Command {
        let values: Vec<PossibleValue> =
            kinds().map(|(_, kind)| PossibleValue::new(kind.name).help(kind.help)).collect();
        let defaults: Vec<String> = kinds().map(|(_, kind)| format!("{} {}", kind.name, kind.by_default)).collect();
        let source = Arg::new(SOURCE_FLAG)
            .long(SOURCE_FLAG)
            .env("SCRAPER_SOURCES")
            .value_name("SOURCE")
            .value_delimiter(',')
            .action(ArgAction::Append)
            .value_parser(PossibleValuesParser::new(values))
            .help(format!("Sources to run, comma-separated [default: {}]", defaults.join("; ")));
        let command = command.next_help_heading("Sources").arg(source);
        SOURCES.iter().fold(command, |command, registration| registration.augment(command))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}
