//! The Kafka side: a group consumer with manual offsets. Its rebalance callback does not assign partitions
//! itself: it hands them to the pipeline, which assigns each at the offset stored with its rows (reading those
//! needs the database, which a callback cannot wait for). librdkafka's group protocol allows this deferred
//! assign: the member stays in the group, heartbeating, until it is made.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::record::ConsumedRecord;

pub type Partition = (String, i32);
pub type IngestConsumer = StreamConsumer<IngestContext>;

/// What a rebalance did, for the pipeline to act on between two polls.
#[derive(Debug, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions given to this member, not yet assigned: the pipeline assigns them at their stored offsets.
    Assigned(Vec<Partition>),
    /// Partitions taken away (already unassigned): records of them not yet written belong to their new owner.
    Revoked(Vec<Partition>),
}

pub struct IngestContext {
    events: Mutex<Vec<RebalanceEvent>>,
    /// Wakes the pipeline: a rebalance is served inside a poll that yields no message.
    event_pushed: Notify,
    metrics: Metrics,
    lag: Mutex<LagSeries>,
}

/// Which partitions may have a lag series, and which have one.
#[derive(Default)]
struct LagSeries {
    /// Given to this member by the group and not taken away since. A statistics report may have been made
    /// before a revoke and be served after it: a partition it still shows must not get its series back.
    owned: BTreeSet<Partition>,
    /// Those with an `inserter_consumer_lag_records` series.
    reported: BTreeSet<Partition>,
}

impl IngestContext {
    /// The rebalance events since the last call.
    pub fn take_events(&self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves once an event is pushed (immediately if one was pushed since the last wait).
    pub async fn event_pushed(&self) {
        self.event_pushed.notified().await;
    }

    fn push(&self, event: RebalanceEvent) {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
        self.event_pushed.notify_one();
    }

    fn lag_series(&self) -> std::sync::MutexGuard<'_, LagSeries> {
        self.lag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partitions' lag series go with them: a revoked partition's last lag would otherwise stay forever.
    fn disown(&self, partitions: impl IntoIterator<Item = Partition>) {
        let mut lag = self.lag_series();
        for partition in partitions {
            lag.owned.remove(&partition);
            if lag.reported.remove(&partition) {
                self.metrics.forget_lag(&partition.0, partition.1);
            }
        }
    }
}

impl ClientContext for IngestContext {
    /// librdkafka's `consumer_lag` of each partition: the end of the partition less its committed offset, -1
    /// while either is unknown (a partition that kept its lag series keeps its last value then).
    fn stats(&self, statistics: Statistics) {
        let mut lag = self.lag_series();
        let mut assigned = BTreeSet::new();
        let mut total = 0;
        for (topic, stats) in &statistics.topics {
            // Partition -1 is librdkafka's internal one for records not yet given a partition; a partition
            // not desired is not assigned (any more).
            for partition in stats.partitions.values().filter(|p| p.partition >= 0 && p.desired) {
                let key = (topic.clone(), partition.partition);
                if !lag.owned.contains(&key) {
                    continue;
                }
                if partition.consumer_lag >= 0 {
                    self.metrics.set_lag(topic, partition.partition, partition.consumer_lag);
                    total += partition.consumer_lag;
                    lag.reported.insert(key.clone());
                }
                assigned.insert(key);
            }
        }
        let gone: Vec<Partition> = lag.reported.difference(&assigned).cloned().collect();
        for (topic, partition) in gone {
            self.metrics.forget_lag(&topic, partition);
            lag.reported.remove(&(topic, partition));
        }
        self.metrics.set_lag_total(total);
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, partitions: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if partitions.count() == 0 {
                    // Nothing to read offsets for, but librdkafka waits for the assign call all the same: under
                    // cooperative-sticky a member that only lost partitions keeps its others paused, and the
                    // whole group waits, until it is made.
                    let assigned = match consumer.rebalance_protocol() {
                        RebalanceProtocol::Cooperative => consumer.incremental_assign(partitions),
                        _ => consumer.assign(partitions),
                    };
                    if let Err(e) = assigned {
                        tracing::warn!(error = %e, "could not acknowledge an empty assignment");
                    }
                    return;
                }
                let partitions = list(partitions);
                tracing::info!(?partitions, "partitions assigned");
                self.lag_series().owned.extend(partitions.iter().cloned());
                self.push(RebalanceEvent::Assigned(partitions));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = ?list(partitions), "partitions revoked");
                let result = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_unassign(partitions),
                    _ => consumer.unassign(),
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not unassign revoked partitions");
                }
                let partitions = list(partitions);
                self.disown(partitions.iter().cloned());
                self.push(RebalanceEvent::Revoked(partitions));
            }
            other => {
                tracing::warn!(error = ?other, "rebalance failed; dropping the assignment");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "could not drop the assignment");
                }
                let owned = std::mem::take(&mut self.lag_series().owned);
                self.disown(owned);
            }
        }
    }
}

/// Assigns `partitions` to `consumer` as the group protocol in use expects.
pub fn assign(consumer: &IngestConsumer, partitions: &TopicPartitionList) -> anyhow::Result<()> {
    match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_assign(partitions),
        _ => consumer.assign(partitions),
    }
    .context("assign partitions")
}

fn list(partitions: &TopicPartitionList) -> Vec<Partition> {
    partitions.elements().iter().map(|p| (p.topic().to_owned(), p.partition())).collect()
}

/// A group consumer for `group` that stores no offset by itself: offsets are committed only after the rows.
pub fn create(bootstrap_servers: &str, group: &str, metrics: Metrics) -> anyhow::Result<IngestConsumer> {
    let mut config = common::kafka::client_config(bootstrap_servers, std::env::vars());
    config
        .set("group.id", group)
        .set("client.id", "inserter")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // The lag metrics come from the statistics; KAFKA_STATISTICS_INTERVAL_MS overrides how often.
    if config.get("statistics.interval.ms").is_none() {
        config.set("statistics.interval.ms", "5000");
    }
    // librdkafka prefetches up to 64 MiB per partition by default; a batch never needs that much ahead, and
    // the memory is better bounded (KAFKA_QUEUED_MAX_MESSAGES_KBYTES overrides it).
    if config.get("queued.max.messages.kbytes").is_none() {
        config.set("queued.max.messages.kbytes", "8192");
    }
    let context =
        IngestContext { events: Mutex::new(Vec::new()), event_pushed: Notify::new(), metrics, lag: Mutex::default() };
    config.create_with_context(context).context("create the Kafka consumer")
}

/// How often to look for topics that do not exist yet.
const TOPIC_POLL: Duration = Duration::from_secs(2);

/// Subscribes to `topics` as they come to exist. It waits until at least one does (the scraper creates them),
/// subscribes to those, and looks for the others in the background, widening the subscription when they
/// appear: a source nobody scrapes yet must not hold back the others. Subscribing to a missing topic instead
/// would have librdkafka report it as an error on every metadata refresh, and notice its creation only at
/// the next refresh (minutes by default).
pub async fn subscribe_when_ready(
    consumer: &Arc<IngestConsumer>,
    topics: &[&str],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let mut announced = false;
    let missing = loop {
        match missing_topics(consumer.clone(), topics.clone()).await {
            Ok(missing) if missing.len() < topics.len() => break missing,
            Ok(missing) if !announced => {
                tracing::info!(?missing, "waiting for topics to be created");
                announced = true;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read the cluster's topics yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TOPIC_POLL) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    };
    let existing = existing_topics(&topics, &missing);
    consumer.subscribe(&existing).context("subscribe")?;
    if missing.is_empty() {
        tracing::info!(?topics, "subscribed");
    } else {
        tracing::info!(subscribed = ?existing, ?missing, "subscribed; missing topics are added once they exist");
        // A weak handle: once the pipeline is done with the consumer, dropping it must close it (and leave
        // the group) without waiting for this watch to notice.
        tokio::spawn(add_topics_once_created(Arc::downgrade(consumer), topics, missing, shutdown.clone()));
    }
    Ok(())
}

/// Widens the subscription to `topics` whenever one of `missing` appears, until none is missing, the
/// consumer is gone, or shutdown. Re-subscribing rebalances the group; the pipeline handles that like any
/// rebalance (what it held of a revoked partition is read again from the offsets stored with the rows).
async fn add_topics_once_created(
    consumer: Weak<IngestConsumer>,
    topics: Vec<String>,
    mut missing: Vec<String>,
    shutdown: CancellationToken,
) {
    while !missing.is_empty() {
        tokio::select! {
            _ = tokio::time::sleep(TOPIC_POLL) => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(consumer) = consumer.upgrade() else { return };
        let now_missing = match missing_topics(consumer.clone(), missing.clone()).await {
            Ok(now_missing) if now_missing.len() < missing.len() => now_missing,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "cannot read the cluster's topics; retrying");
                continue;
            }
        };
        let existing = existing_topics(&topics, &now_missing);
        match consumer.subscribe(&existing) {
            Ok(()) => {
                tracing::info!(subscribed = ?existing, missing = ?now_missing, "topics created: subscription widened");
                missing = now_missing;
            }
            Err(e) => tracing::warn!(error = %e, "widening the subscription failed; retrying"),
        }
    }
}

fn existing_topics<'a>(topics: &'a [String], missing: &[String]) -> Vec<&'a str> {
    topics.iter().filter(|t| !missing.contains(t)).map(String::as_str).collect()
}

/// Those of `topics` the cluster does not have (or has without partitions yet).
async fn missing_topics(consumer: Arc<IngestConsumer>, topics: Vec<String>) -> anyhow::Result<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).context("fetch Kafka metadata")?;
        Ok(topics
            .into_iter()
            .filter(|name| {
                !metadata.topics().iter().any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            })
            .collect())
    })
    .await?
}

/// Copies a message out of the consumer's buffers, so that it can outlive the poll.
pub fn detach(message: &BorrowedMessage<'_>) -> ConsumedRecord {
    ConsumedRecord {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers: headers(message),
        timestamp: message.timestamp().to_millis().and_then(chrono::DateTime::from_timestamp_millis),
    }
}

/// The message's headers, read through librdkafka itself: rdkafka's own reader panics on a header name that
/// is not UTF-8, which any producer can send. Such a name is kept with its bytes escaped.
fn headers(message: &BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    use rdkafka::bindings as rd;
    let mut list: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: the message pointer is valid for the borrow; librdkafka keeps ownership of the headers, which
    // live as long as the message, and every pointer it hands out is read before the borrow ends.
    unsafe {
        if rd::rd_kafka_message_headers(message.ptr(), &mut list) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || list.is_null()
        {
            return Vec::new();
        }
        let count = rd::rd_kafka_header_cnt(list);
        let mut headers = Vec::with_capacity(count);
        for index in 0..count {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
            let err = rd::rd_kafka_header_get_all(list, index, &mut name, &mut value, &mut size);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(name).to_bytes();
            let name = match std::str::from_utf8(name) {
                Ok(name) => name.to_owned(),
                Err(_) => crate::record::escape_bytes(name),
            };
            let value = (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec());
            headers.push((name, value));
        }
        headers
    }
}
