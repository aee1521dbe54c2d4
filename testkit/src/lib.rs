//! The test harness: real services, started by the tests themselves and gone when the test ends.
//!
//! - [`Postgres`]: a throwaway PostgreSQL 15 cluster (`wal_level=logical`) on a free loopback port, with
//!   [`Postgres::migrated_database`] giving each test its own migrated database.
//! - [`connect::Connect`]: Kafka Connect with the Debezium Postgres connector, wired and registered as compose
//!   does it.
//! - [`cdc`]: a pgoutput logical replication slot read directly, for tests that look at the slot itself.
//! - [`Broker`]: Apache Kafka (one KRaft node) on loopback: the one tests share, or one of a test's own that it
//!   can kill and restart; [`jvm`] finds the jars `scripts/install-kafka.sh` installs.
//! - [`http::HttpServer`]: a scripted HTTP/1.1 server that sends exactly the bytes a test gives it, chunk by
//!   chunk, and records every request.
//! - [`jetstream::Jetstream`]: a local Bluesky Jetstream (WebSocket, its real query parameters, filters, cursor
//!   replay and framing), with the faults a client must survive: fragmented frames, pings, stalls, dropped and
//!   closed connections, refused handshakes.
//! - [`Process`]: a binary under test, run as a process that a test can signal or kill.
//! - [`stack`]: the compose stack without containers (roles, migrated `ingest` database, broker, the
//!   pipeline's binaries), for the end-to-end test and the `local-pipeline` runner.
//! - [`prometheus::Prometheus`]: Debian's Prometheus with the compose stack's jobs and alert rules, pointed at
//!   local addresses, for the observability test and `local-pipeline --prometheus`.
//!
//! Postgres, a test's own broker, Kafka Connect and Prometheus run as child processes that die with the test
//! process, even when it is killed, and live in temporary directories that are removed on drop (and swept at
//! the next start if a run crashed). The shared broker outlives the test that started it: a keeper stops it a
//! minute after the last test holding a lease on it has gone.

mod broker;
pub mod cdc;
mod child;
pub mod connect;
pub mod http;
pub mod jetstream;
pub mod jvm;
mod names;
mod postgres;
mod process;
pub mod prometheus;
mod shared;
pub mod stack;

pub use broker::{Broker, TestMessage};
pub use child::free_addr;
pub use names::unique_name;
pub use postgres::{Postgres, TestDatabase};
pub use process::Process;
