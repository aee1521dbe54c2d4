//! The operations endpoint of a long-running binary: `GET /metrics` (Prometheus text format) and
//! `GET /healthz` (200 while healthy, 503 with the reason otherwise), and the same split the way Kubernetes
//! probes want it: `GET /livez` (200 while the process answers at all: a restart would not fix a broker or
//! a database that is away) and `GET /readyz` (the health: 503 with the reason while the binary cannot do
//! its job).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// Binds `addr` and serves the endpoint until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("bind the ops endpoint on {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "serving /metrics and /healthz");
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "ops endpoint: accept failed");
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let (registry, health) = (registry.clone(), health.clone());
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &registry, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                if let Err(e) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    tracing::debug!(error = %e, "ops endpoint: connection ended with an error");
                }
            });
        }
    });
    Ok(bound)
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
    use std::net::SocketAddr;
    use std::sync::Arc;

    use prometheus_client::registry::Registry;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    use super::{Health, serve};

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
}
