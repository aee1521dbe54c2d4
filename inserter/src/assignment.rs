//! Which partitions this member holds, and in what state: the rebalance events the consumer's context reports,
//! the assignment at the offsets stored with the rows (retried with backoff while the database cannot say
//! where to start), the pause that holds the partitions while a full batch waits for the write in flight, and
//! which offsets go to Kafka's commit. It decides; the loop carries its decisions out on the consumer. It
//! holds no clock, so tests drive it with rebalance events alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::Offset;
use tokio::time::Instant;

use common::backoff::Backoff;

use crate::consumer::{Partition, RebalanceEvent};

pub struct Assignment {
    /// Partitions the group gave this member that still wait for their stored offsets to be read.
    waiting: BTreeSet<Partition>,
    next_attempt: Instant,
    backoff: Backoff,
    paused: bool,
    /// Whether any partition was ever assigned: a member still waiting to join the group is not idle.
    ever_assigned: bool,
}

/// Where each waiting partition starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Starts {
    /// Every waiting partition, at its stored offset or, with none stored, at Kafka's committed offset.
    pub offsets: Vec<(Partition, Offset)>,
    /// Those with a stored offset: Kafka's commit is brought up to it, so that librdkafka's lag (measured
    /// against the committed offset, which it does not read for a partition assigned at an offset) is known
    /// before the partition's first batch commits, or for one with nothing new, ever.
    pub stored: BTreeMap<Partition, i64>,
}

/// What the loop should do after a rebalance event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Partitions taken away: the records of them not yet written are their new owner's.
    pub revoked: BTreeSet<Partition>,
}

impl Assignment {
    pub fn new(now: Instant) -> Self {
        Self {
            waiting: BTreeSet::new(),
            next_attempt: now,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
            paused: false,
            ever_assigned: false,
        }
    }

    /// Takes in a rebalance event at `now`.
    pub fn apply(&mut self, event: RebalanceEvent, now: Instant) -> Applied {
        match event {
            RebalanceEvent::Assigned(partitions) => {
                self.waiting.extend(partitions);
                self.next_attempt = now;
                Applied::default()
            }
            RebalanceEvent::Revoked(partitions) => {
                let revoked: BTreeSet<Partition> = partitions.into_iter().collect();
                self.waiting.retain(|p| !revoked.contains(p));
                // `paused` stays: the partitions kept (cooperative assignment) are still paused, and are resumed
                // with the others when the write in flight is durable.
                Applied { revoked }
            }
        }
    }

    /// Partitions wait to be assigned.
    pub fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Whether to read the stored offsets and assign now. Only while no batch is being decoded or written: the
    /// offsets read must include the last batch's, or a partition kept through a rebalance would start before
    /// records it has already written.
    pub fn due(&self, now: Instant, writer_idle: bool) -> bool {
        self.waiting() && writer_idle && now >= self.next_attempt
    }

    /// When [`Self::due`] may next turn true, for the loop's sleep: only while the writer is idle (otherwise the
    /// write's end wakes the loop, and a deadline already past would spin it).
    pub fn wake_at(&self, writer_idle: bool) -> Option<Instant> {
        (self.waiting() && writer_idle).then_some(self.next_attempt)
    }

    /// Where each waiting partition starts, given the offset stored with the rows of each (`stored`).
    pub fn starts(&self, stored: impl Fn(&Partition) -> Option<i64>) -> Starts {
        let mut starts = Starts { offsets: Vec::new(), stored: BTreeMap::new() };
        for partition in &self.waiting {
            match stored(partition) {
                Some(next) => {
                    starts.offsets.push((partition.clone(), Offset::Offset(next)));
                    starts.stored.insert(partition.clone(), next);
                }
                None => starts.offsets.push((partition.clone(), Offset::Stored)),
            }
        }
        starts
    }

    /// The waiting partitions were assigned. Returns whether they are paused and must be resumed: no write is
    /// in flight here, so nothing should stay paused (a resume that failed earlier).
    pub fn assigned(&mut self) -> bool {
        self.waiting.clear();
        self.ever_assigned = true;
        self.backoff.reset();
        self.paused
    }

    /// Reading the offsets or assigning failed at `now`: the next attempt waits; returns how long.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let delay = self.backoff.next_delay();
        self.next_attempt = now + delay;
        delay
    }

    /// Whether to pause the partitions: the next batch is full while a write is in flight, so reading more
    /// would only hold more in memory. Polling goes on (the member stays in the group).
    pub fn should_pause(&self, write_in_flight: bool, next_batch_full: bool) -> bool {
        write_in_flight && next_batch_full && !self.paused
    }

    /// Whether the partitions are paused and a finished write should resume them.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Records that the consumer paused (`true`) or resumed the partitions.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn ever_assigned(&self) -> bool {
        self.ever_assigned
    }
}

/// The offsets of `next_offsets` to commit to Kafka: only the partitions this member still owns (`owned`), as a
/// revoked partition's new owner commits its own progress. Kafka's commit mirrors the database's, for lag tools.
pub fn to_commit(next_offsets: &BTreeMap<Partition, i64>, owned: impl Fn(&Partition) -> bool) -> Vec<(Partition, i64)> {
    next_offsets.iter().filter(|(partition, _)| owned(partition)).map(|(p, next)| (p.clone(), *next)).collect()
}

/// Where each partition of `assignment` seeks when resumed: the position after the last record read, which
/// librdkafka forgets for a paused partition (it drops what it had fetched but not delivered). A partition
/// with nothing read yet resumes where it is.
pub fn resume_positions(
    assignment: &[Partition],
    position: impl Fn(&Partition) -> Option<i64>,
) -> Vec<(Partition, i64)> {
    assignment.iter().filter_map(|partition| Some((partition.clone(), position(partition)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(partition: i32) -> Partition {
        ("t".to_owned(), partition)
    }

    #[test]
    fn assigned_partitions_start_at_their_stored_offsets_else_at_kafkas_committed_one() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assert!(!assignment.due(now, true), "nothing waits");
        assignment.apply(RebalanceEvent::Assigned(vec![p(0), p(1)]), now);
        assert!(assignment.due(now, true));
        let stored: BTreeMap<Partition, i64> = [(p(1), 42), (p(7), 3)].into();
        let starts = assignment.starts(|partition| stored.get(partition).copied());
        assert_eq!(starts.offsets, [(p(0), Offset::Stored), (p(1), Offset::Offset(42))]);
        assert_eq!(starts.stored, [(p(1), 42)].into(), "only the partitions assigned, and only stored offsets");
        assert!(!assignment.assigned(), "nothing was paused");
        assert!(!assignment.waiting());
        assert!(assignment.ever_assigned());
    }

    #[test]
    fn the_assignment_waits_for_an_idle_writer() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0)]), now);
        assert!(!assignment.due(now, false), "a batch in flight may hold records of the partition");
        assert_eq!(assignment.wake_at(false), None, "the write's end wakes the loop, not a deadline");
        assert_eq!(assignment.wake_at(true), Some(now));
    }

    #[test]
    fn a_failed_assignment_is_retried_with_growing_delays_until_one_succeeds() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0)]), now);
        let first = assignment.failed(now);
        assert!(!assignment.due(now, true));
        assert!(assignment.due(now + first, true));
        let second = assignment.failed(now);
        assert!(second > first, "{second:?} after {first:?}");
        assert!(!assignment.due(now + first, true));
        assignment.assigned();
        assignment.apply(RebalanceEvent::Assigned(vec![p(1)]), now);
        assert_eq!(assignment.failed(now), first, "a success starts the backoff over");
    }

    #[test]
    fn a_revoke_while_paused_keeps_the_other_partitions_paused_until_the_write_ends() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0), p(1)]), now);
        assignment.assigned();
        assert!(assignment.should_pause(true, true));
        assert!(!assignment.should_pause(false, true), "no write in flight: the batch is taken, not held");
        assert!(!assignment.should_pause(true, false));
        assignment.set_paused(true);
        assert!(!assignment.should_pause(true, true), "already paused");
        let applied = assignment.apply(RebalanceEvent::Revoked(vec![p(0)]), now);
        assert_eq!(applied.revoked, [p(0)].into());
        assert!(assignment.paused(), "partition 1 stays paused until the write in flight is durable");
    }

    #[test]
    fn partitions_given_back_before_they_were_assigned_are_not_assigned() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0), p(1)]), now);
        assignment.apply(RebalanceEvent::Revoked(vec![p(0)]), now);
        assert_eq!(assignment.starts(|_| None).offsets, [(p(1), Offset::Stored)]);
        assignment.apply(RebalanceEvent::Revoked(vec![p(1)]), now);
        assert!(!assignment.due(now, true), "nothing is left to assign");
    }

    #[test]
    fn an_assignment_made_while_paused_resumes_the_partitions() {
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0)]), now);
        assignment.assigned();
        assignment.set_paused(true);
        assignment.apply(RebalanceEvent::Assigned(vec![p(1)]), now);
        assert!(assignment.assigned(), "a pause left from a failed resume is lifted with the new assignment");
    }

    #[test]
    fn an_empty_assignment_assigns_nothing_and_leaves_a_pause_to_the_write_in_flight() {
        // Under cooperative-sticky a member that only lost partitions gets an empty assignment; the consumer's
        // context acknowledges it at once. Here it must neither start an assignment nor lift the pause.
        let now = Instant::now();
        let mut assignment = Assignment::new(now);
        assignment.apply(RebalanceEvent::Assigned(vec![p(0), p(1)]), now);
        assignment.assigned();
        assignment.set_paused(true);
        assignment.apply(RebalanceEvent::Revoked(vec![p(1)]), now);
        let applied = assignment.apply(RebalanceEvent::Assigned(Vec::new()), now);
        assert!(applied.revoked.is_empty());
        assert!(!assignment.waiting());
        assert!(!assignment.due(now, true), "nothing to read offsets for");
        assert_eq!(assignment.wake_at(true), None);
        assert!(assignment.paused(), "partition 0 stays paused until the write in flight is durable");
    }

    #[test]
    fn kafkas_commit_covers_only_the_partitions_still_owned() {
        let next = [(p(0), 10), (p(1), 20), (p(2), 30)].into();
        assert_eq!(to_commit(&next, |partition| partition.1 != 1), [(p(0), 10), (p(2), 30)]);
        assert_eq!(to_commit(&next, |_| false), []);
    }

    #[test]
    fn a_resumed_partition_seeks_back_to_the_record_after_the_last_one_read() {
        let positions: BTreeMap<Partition, i64> = [(p(0), 7)].into();
        let seeks = resume_positions(&[p(0), p(1)], |partition| positions.get(partition).copied());
        assert_eq!(seeks, [(p(0), 7)], "partition 1 read nothing: it resumes where it is");
    }
}
