//! The replay source: an NDJSON file in X's stream format, or the deterministic synthetic generator, produced
//! like a live X stream (same validation, same rejects) at a chosen rate, up to a chosen count. It runs without
//! `--source` only when no other source is configured, so that the pipeline shows data out of the box and yet
//! made-up posts never land beside a real source's unless the operator names the replay. The generator's
//! records carry a `source` of their own ([`contract::source::REPLAY_SYNTHETIC`]), a replayed file's `replay`.

use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use contract::topic::TWEETS;
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::queue::Emitter;
use crate::registry::{Choice, Kind, Register, Shared};
use crate::source::Source;
use crate::synthetic;
use crate::x::framing::{Frame, LineFramer};
use crate::x::produce::produce;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The replay source's registration, in [`crate::registry::SOURCES`].
pub static REPLAY: ReplayRegistration = ReplayRegistration;

pub struct ReplayRegistration;

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Replay (--source replay)")]
pub struct ReplayArgs {
    /// NDJSON file of X stream lines to replay (unset: the synthetic generator)
    ///
    /// Its records' `source` is `replay`; the generator's posts are marked as made up (`replay.synthetic`).
    #[arg(long, env = "REPLAY_FILE")]
    pub replay_file: Option<PathBuf>,

    /// Records a second; 0 = as fast as the broker takes them
    #[arg(long, env = "REPLAY_RATE", default_value_t = 20)]
    pub replay_rate: u32,

    /// Stop after this many records (unset: the whole file, or forever for the generator)
    #[arg(long, env = "REPLAY_COUNT")]
    pub replay_count: Option<u64>,

    /// Seed of the synthetic generator: the same seed gives the same posts
    #[arg(long, env = "REPLAY_SEED", default_value_t = 1)]
    pub replay_seed: u64,
}

impl Register for ReplayRegistration {
    type Args = ReplayArgs;

    fn kinds(&self) -> &'static [Kind] {
        &[Kind {
            name: "replay",
            help: "An NDJSON file of X stream lines (REPLAY_FILE), or the synthetic generator",
            by_default: "when no other source is configured (beside one, only when named)",
            topics: &[&TWEETS],
        }]
    }

    fn choice(&self, _: &Kind, _: &ReplayArgs) -> Choice {
        Choice::Alone
    }

    fn build(&self, _: &Kind, replay: &ReplayArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        Ok(vec![Box::new(Replay::new(ReplayConfig {
            file: replay.replay_file.clone(),
            rate: NonZeroU32::new(replay.replay_rate),
            count: replay.replay_count,
            seed: replay.replay_seed,
            topic: shared.topics.name(&TWEETS).to_owned(),
            max_line_bytes: shared.max_record_bytes,
        }))])
    }
}

#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// An NDJSON file of X stream lines; `None` replays the synthetic generator.
    pub file: Option<PathBuf>,
    /// Records a second; `None` as fast as the broker takes them.
    pub rate: Option<NonZeroU32>,
    /// Stop after this many lines; `None`: the whole file, or forever for the generator.
    pub count: Option<u64>,
    /// The generator's seed: the same seed replays the same posts.
    pub seed: u64,
    pub topic: String,
    pub max_line_bytes: usize,
}

pub struct Replay {
    config: ReplayConfig,
}

impl Replay {
    pub fn new(config: ReplayConfig) -> Self {
        Self { config }
    }
}

impl Source for Replay {
    fn name(&self) -> String {
        contract::source::REPLAY.into()
    }

    fn record_source(&self) -> String {
        match self.config.file {
            Some(_) => contract::source::REPLAY,
            None => contract::source::REPLAY_SYNTHETIC,
        }
        .into()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topic.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let mut pace = Pace::new(self.config.rate, self.config.count, shutdown);
            match &self.config.file {
                Some(path) => self.replay_file(path, &out, &mut pace).await,
                None => self.generate(&out, &mut pace).await,
            }?;
            tracing::info!(lines = pace.done, "replay finished");
            Ok(())
        })
    }
}

impl Replay {
    async fn generate(&self, out: &Emitter, pace: &mut Pace) -> anyhow::Result<()> {
        tracing::info!(
            seed = self.config.seed,
            source = contract::source::REPLAY_SYNTHETIC,
            first_id = synthetic::post_id(self.config.seed, 0),
            "generating synthetic posts: made up, marked by their source, with ids no X post has"
        );
        for n in 0.. {
            if !pace.next().await {
                break;
            }
            self.produce(Frame::Line(synthetic::line(self.config.seed, n)), out).await?;
        }
        Ok(())
    }

    async fn replay_file(&self, path: &PathBuf, out: &Emitter, pace: &mut Pace) -> anyhow::Result<()> {
        let mut file =
            tokio::fs::File::open(path).await.with_context(|| format!("open the replay file {}", path.display()))?;
        let mut framer = LineFramer::new(self.config.max_line_bytes);
        let mut chunk = vec![0u8; 256 * 1024];
        let mut first = true;
        loop {
            let n = file.read(&mut chunk).await.with_context(|| format!("read {}", path.display()))?;
            // The end of the file ends its last line, newline or not.
            let mut bytes = &chunk[..n];
            if first && bytes.starts_with(UTF8_BOM) {
                // Editors on some systems start a text file with a byte-order mark; it is not part of the line.
                bytes = &bytes[UTF8_BOM.len()..];
            }
            first = false;
            let frames = if n == 0 { framer.push(b"\n") } else { framer.push(bytes) };
            for frame in frames {
                if frame == Frame::Heartbeat {
                    continue;
                }
                if !pace.next().await {
                    return Ok(());
                }
                self.produce(frame, out).await?;
            }
            if n == 0 {
                return Ok(());
            }
        }
    }

    async fn produce(&self, frame: Frame, out: &Emitter) -> anyhow::Result<()> {
        let errors = produce(frame, &self.config.topic, self.config.max_line_bytes, out).await?;
        if !errors.is_empty() {
            tracing::warn!(?errors, "the replay file holds an X error line: skipped, as a live stream would");
        }
        Ok(())
    }
}

/// The rate limit and the count limit, and shutdown.
struct Pace {
    limiter: Option<DefaultDirectRateLimiter>,
    count: Option<u64>,
    done: u64,
    shutdown: CancellationToken,
}

impl Pace {
    fn new(rate: Option<NonZeroU32>, count: Option<u64>, shutdown: CancellationToken) -> Self {
        // A burst of a tenth of a second's worth keeps the rate smooth without a timer per record.
        let limiter = rate.map(|rate| {
            RateLimiter::direct(
                Quota::per_second(rate).allow_burst(NonZeroU32::new((rate.get() / 10).max(1)).unwrap_or(rate)),
            )
        });
        Self { limiter, count, done: 0, shutdown }
    }

    /// Whether another line may go now (after waiting for the rate), or the replay is over.
    async fn next(&mut self) -> bool {
        if self.count.is_some_and(|count| self.done >= count) || self.shutdown.is_cancelled() {
            return false;
        }
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                _ = limiter.until_ready() => {}
                _ = self.shutdown.cancelled() => return false,
            }
        }
        self.done += 1;
        true
    }
}
