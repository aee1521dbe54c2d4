//! The inserter's own state: the dead-letter table and the consumer offsets it commits with each batch.

use sea_orm_migration::prelude::*;

// One dead letter per Kafka record: replaying a topic re-offers the same bad records, and the unique key
// lets the inserter skip them instead of piling up copies.
const UP: &str = r#"
CREATE TABLE ingest_errors (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL CHECK ("partition" >= 0),
    "offset"    bigint      NOT NULL CHECK ("offset" >= 0),
    key         bytea,
    payload     bytea,
    headers     jsonb,
    error       text        NOT NULL CHECK (error <> ''),
    failed_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_errors_record_key UNIQUE (topic, "partition", "offset")
);
CREATE INDEX ingest_errors_failed_at_idx ON ingest_errors (failed_at);

-- The next offset to read per consumer group and partition, written in the same transaction as the rows.
CREATE TABLE kafka_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    "partition"    integer     NOT NULL CHECK ("partition" >= 0),
    next_offset    bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, "partition")
);
"#;

const DOWN: &str = r#"
DROP TABLE kafka_offsets;
DROP TABLE ingest_errors;
"#;

crate::sql::sql_migration!(UP, DOWN);
