//! The inserter: consumes the scraper's topics and lands each record in Postgres.
//!
//! The loop (`pipeline`) joins three parts: `pending` (the records read, and when they make a batch),
//! `assignment` (the partitions held: where each starts, the pause, Kafka's commit mirror) and `flush` (a
//! batch made durable). A batch's records go down the write path:
//!
//! ```text
//! batch     records routed by topic to their mapping (mapping/): rows, or a dead letter with its reason
//!   -> tables    the rows, table by table, in write order, each table with its rule
//!   -> table     one table's rows: duplicates folded, key order, chunks of statements
//!   -> limits    values too long for an index left out (kept in raw)
//!   -> guard     the upsert rule: which columns a newer scrape replaces, keeps or sets once
//!   -> encode    one binary array per column
//!   -> writer    one transaction with the offsets (offsets); a refused row isolated and dead-lettered
//! ```

pub(crate) mod assignment;
pub mod batch;
pub mod consumer;
pub mod database;
pub(crate) mod encode;
pub mod failure;
pub mod flush;
pub(crate) mod guard;
pub mod limits;
pub mod mapping;
pub mod metrics;
pub mod offsets;
pub mod partitions;
pub(crate) mod pending;
pub mod pipeline;
pub mod record;
pub mod redrive;
pub mod settings;
pub(crate) mod table;
pub(crate) mod tables;
pub mod writer;
