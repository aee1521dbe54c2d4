//! The operations endpoint of a long-running binary: `GET /metrics` (Prometheus text format) and
//! `GET /healthz` (200 while healthy, 503 with the reason otherwise), and the same split the way Kubernetes
//! probes want it: `GET /livez` (200 while the process answers at all: a restart would not fix a broker or
//! a database that is away) and `GET /readyz` (the health: 503 with the reason while the binary cannot do
//! its job). Clients that connect and send nothing, or too many at once, or a process out of file
//! descriptors, slow it down for a bounded time but do not stop it answering (`Limits`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// Whether the binary can do its job, and if not, why (e.g. "database unreachable").
#[derive(Clone, Default)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    pub fn set_problem(&self, problem: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(problem.into());
    }

    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn problem(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What one client may hold of the endpoint. Probes and scrapers send their request as soon as they connect
/// and are answered in milliseconds, so the bounds only ever bite a client that connects and waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long a connection may take to send a request's headers, and so also how long a keep-alive
    /// connection may sit idle between requests (hyper starts the same timer for each request).
    pub header_read_timeout: Duration,
    /// Connections served at once. The rest wait in the kernel's accept queue, where they cost no
    /// file descriptor.
    pub max_connections: usize,
    /// The longest a connection lives, however busy: then it is closed after the response in flight ...
    pub max_connection_age: Duration,
    /// ... which gets this long (a client that does not read its response would otherwise hold on).
    pub close_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Prometheus scrapes every 15 s by default and reconnects at once when an idle connection was
            // closed, so 5 s costs it nothing, while a client that sends nothing holds a slot for 5 s at most.
            header_read_timeout: Duration::from_secs(5),
            // A few probes and one or two Prometheus servers need a handful; 32 leaves room and keeps the
            // endpoint's descriptors far below the usual limit of 1024 (the failure had 128).
            max_connections: 32,
            max_connection_age: Duration::from_secs(60),
            close_grace: Duration::from_secs(5),
        }
    }
}

// Accept errors such as EMFILE last until something else closes a descriptor: retrying at once spins and
// logs as fast as the disk takes it (876 MB in 15 s in issue 26). Backing off and logging once per interval
// keeps both bounded.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Binds `addr` and serves the endpoint until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    serve_with(addr, registry, health, shutdown, Limits::default()).await
}

pub(crate) async fn serve_with(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
    limits: Limits,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("bind the ops endpoint on {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "serving /metrics and /healthz");
    // Over the limit, a connection waits to be accepted rather than being closed at once: a probe that is
    // refused counts as failed straight away, while one that waits is answered as soon as a slot frees (in
    // milliseconds behind other probes, a `header_read_timeout` per round of idle clients ahead of it). It
    // waits its turn in the order connections came, rather than racing for each freed slot against a client
    // that reconnects in a loop.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        let mut errors = AcceptErrors::new();
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = shutdown.cancelled() => return,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    errors.succeeded();
                    tokio::spawn(serve_connection(stream, permit, registry.clone(), health.clone(), limits));
                }
                // The peer's doing, for that one connection: the next one may be fine.
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "ops endpoint: a connection was gone before it was accepted")
                }
                Err(e) => {
                    let delay = errors.failed(&e);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    });
    Ok(bound)
}

async fn serve_connection(
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    registry: Arc<Registry>,
    health: Health,
    limits: Limits,
) {
    let service = hyper::service::service_fn(move |request| {
        let response = respond(&request, &registry, &health);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = tokio::time::sleep(limits.max_connection_age) => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.close_grace, connection.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::debug!("ops endpoint: a connection did not close in time and was dropped");
                    return;
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "ops endpoint: connection ended with an error");
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The back-off after failed accepts, and their log: one line per `ACCEPT_LOG_INTERVAL` at most, with the
/// number of failures left out since the previous one. The interval holds across successes, so a limit that is
/// hit and freed over and over does not log each time.
struct AcceptErrors {
    backoff: Backoff,
    logged_at: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn new() -> Self {
        Self { backoff: Backoff::new(ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX), logged_at: None, suppressed: 0 }
    }

    /// Logs if the interval allows; returns how long to wait before accepting again.
    fn failed(&mut self, e: &io::Error) -> Duration {
        let delay = self.backoff.next_delay();
        if self.logged_at.is_some_and(|at| at.elapsed() < ACCEPT_LOG_INTERVAL) {
            self.suppressed += 1;
        } else {
            tracing::warn!(
                error = %e,
                retry_in = ?delay,
                suppressed = self.suppressed,
                "ops endpoint: accept failed; backing off"
            );
            self.logged_at = Some(Instant::now());
            self.suppressed = 0;
        }
        delay
    }

    fn succeeded(&mut self) {
        self.backoff.reset();
    }
}

fn respond(request: &Request<Incoming>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => {
                    let mut response = text(StatusCode::OK, body);
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    response
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics failed: {e}\n")),
            }
        }
        "/healthz" | "/readyz" => match health.problem() {
            None => text(StatusCode::OK, "ok\n".into()),
            Some(problem) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
        },
        "/livez" => text(StatusCode::OK, "alive\n".into()),
        _ => text(StatusCode::NOT_FOUND, "try /metrics, /healthz, /livez or /readyz\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use prometheus_client::registry::Registry;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_util::sync::CancellationToken;

    use super::{AcceptErrors, Health, Limits, serve, serve_with};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
    }

    #[tokio::test]
    async fn liveness_holds_while_readiness_follows_the_health() {
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let addr =
            serve("127.0.0.1:0".parse().unwrap(), Arc::new(Registry::default()), health.clone(), shutdown.clone())
                .await
                .unwrap();
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/livez").await.0, 200);

        health.set_problem("database unreachable");
        assert_eq!(get(addr, "/readyz").await, (503, "database unreachable\n".to_owned()));
        assert_eq!(get(addr, "/healthz").await.0, 503, "/healthz means what it meant: ready");
        assert_eq!(get(addr, "/livez").await.0, 200, "a restart would not bring the database back");
        assert_eq!(get(addr, "/nothing").await.0, 404);
        shutdown.cancel();
    }

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let shutdown = CancellationToken::new();
        let addr = serve_with(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Registry::default()),
            Health::default(),
            shutdown.clone(),
            limits,
        )
        .await
        .unwrap();
        (addr, shutdown)
    }

    /// What the server sent until it closed `stream`, or None if it was still open after `timeout`.
    async fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> Option<String> {
        let mut received = Vec::new();
        let read = async {
            let mut buffer = [0; 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                }
            }
        };
        tokio::time::timeout(timeout, read).await.ok()?;
        Some(String::from_utf8_lossy(&received).into_owned())
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_whole_request_is_closed_after_the_header_timeout() {
        let header_read_timeout = Duration::from_millis(500);
        let (addr, shutdown) = start(Limits { header_read_timeout, ..Limits::default() }).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n").await.unwrap();
        let mut kept_alive = TcpStream::connect(addr).await.unwrap();
        kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();

        let timeout = Duration::from_secs(10);
        assert_eq!(read_until_closed(&mut silent, timeout).await.as_deref(), Some(""), "silent: open after 10 s");
        assert!(read_until_closed(&mut partial, timeout).await.is_some(), "half a header: open after 10 s");
        let answered = read_until_closed(&mut kept_alive, timeout).await.expect("idle keep-alive: open after 10 s");
        assert!(answered.starts_with("HTTP/1.1 200") && answered.ends_with("ok\n"), "{answered}");
        assert!(started.elapsed() >= header_read_timeout, "closed before the timeout: {:?}", started.elapsed());
        shutdown.cancel();
    }

    #[tokio::test]
    async fn connections_over_the_limit_wait_and_healthz_is_answered_once_idle_ones_time_out() {
        let header_read_timeout = Duration::from_secs(1);
        let (addr, shutdown) = start(Limits { header_read_timeout, max_connections: 2, ..Limits::default() }).await;
        // Two take the slots, the third waits behind them, and so does the probe.
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let asked = Instant::now();
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), get(addr, "/healthz"))
            .await
            .expect("/healthz unanswered 20 s after the idle connections came");
        let waited = asked.elapsed();
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        assert!(waited >= header_read_timeout / 2, "answered after {waited:?}: the limit did not hold");
        for stream in &mut idle {
            assert!(read_until_closed(stream, Duration::from_secs(10)).await.is_some(), "an idle one stayed open");
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_busy_keep_alive_connection_is_closed_after_its_age_between_responses() {
        let max_connection_age = Duration::from_secs(1);
        let (addr, shutdown) = start(Limits { max_connection_age, ..Limits::default() }).await;
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answered = 0;
        'requests: while started.elapsed() < Duration::from_secs(10) {
            if stream.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n").await.is_err() {
                break;
            }
            let mut response = Vec::new();
            let mut buffer = [0; 1024];
            while !response.ends_with(b"alive\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => {
                        assert!(response.is_empty(), "a response was cut: {}", String::from_utf8_lossy(&response));
                        break 'requests;
                    }
                    Ok(n) => response.extend_from_slice(&buffer[..n]),
                }
            }
            answered += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lived = started.elapsed();
        assert!(answered > 1, "the connection was kept alive");
        assert!(lived >= max_connection_age && lived < Duration::from_secs(10), "closed after {lived:?}");
        shutdown.cancel();
    }

    #[test]
    fn accept_errors_back_off_to_a_second_and_log_once_per_interval() {
        let mut errors = AcceptErrors::new();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let delays: Vec<u128> = (0..10).map(|_| errors.failed(&emfile).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(errors.suppressed, 9, "the first failure was logged, the nine after it counted");
        errors.succeeded();
        assert_eq!(errors.failed(&emfile), Duration::from_millis(10), "an accept resets the back-off");
        assert_eq!(errors.suppressed, 10, "but not the log's interval");
    }
}
