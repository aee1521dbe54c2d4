//! What the end-to-end tests share.

use std::sync::Arc;
use std::time::Duration;

use common::ops::Health;
use inserter::batch::Routes;
use inserter::pipeline::{self, Pipeline, Stopped};
use prometheus_client::registry::Registry;
use sea_orm::DatabaseConnection;
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

/// Lands the topics of `routes` in `db` with the inserter's pipeline, one record per batch, so that each
/// replayed record meets the row its first copy wrote; returns once no record came for 3 s.
pub async fn land_one_record_a_batch(
    broker: &Broker,
    db: &DatabaseConnection,
    routes: Routes,
) -> inserter::metrics::Metrics {
    let metrics = inserter::metrics::Metrics::new(&mut Registry::default(), &routes.topics());
    let group = unique_name("group");
    let consumer = Arc::new(inserter::consumer::create(&broker.bootstrap_servers(), &group, metrics.clone()).unwrap());
    let shutdown = CancellationToken::new();
    inserter::consumer::subscribe_when_ready(&consumer, &routes.topics(), &shutdown).await.unwrap();
    let options = pipeline::Options {
        group,
        routes,
        batch_size: 1,
        batch_bytes: 1 << 20,
        batch_timeout: Duration::from_millis(50),
        exit_when_idle: Some(Duration::from_secs(3)),
        progress_interval: Duration::from_secs(3600),
    };
    let pipeline = Pipeline::new(consumer, db.clone(), options, metrics.clone(), Health::default());
    let stopped = tokio::time::timeout(Duration::from_secs(120), pipeline.run(shutdown)).await.unwrap().unwrap();
    assert_eq!(stopped, Stopped::Idle);
    metrics
}
