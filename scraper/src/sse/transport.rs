//! eventsource-client's HTTP transport, lent the scraper's reqwest client (rustls on ring), with each response
//! body watched for stalls and for an event too large to buffer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use launchdarkly_sdk_transport::{ByteStream, HttpTransport, Request, Response, ResponseFuture, TransportError};
use tokio::time::{Instant, Sleep};

use super::REJECT_PREFIX_BYTES;
use crate::http::Redirect;

/// Lends eventsource-client the scraper's reqwest client, and watches each response body.
#[derive(Clone)]
pub(super) struct ReqwestTransport {
    pub(super) client: reqwest::Client,
    pub(super) stall_timeout: Duration,
    /// Bytes one event may take on the wire before the connection is dropped.
    pub(super) event_limit: usize,
}

impl HttpTransport for ReqwestTransport {
    fn request(&self, request: Request<Option<Bytes>>) -> ResponseFuture {
        let (parts, body) = request.into_parts();
        let mut builder = self.client.request(parts.method, parts.uri.to_string()).headers(parts.headers);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let (stall_timeout, event_limit) = (self.stall_timeout, self.event_limit);
        let pending = builder.send();
        Box::pin(Exclusive::new(async move {
            let response = pending.await.map_err(without_url)?;
            // eventsource-client follows a 301 or a 307 itself, to any host and with every header of the request
            // (`Authorization` too): it must never see one.
            if let Some(redirect) = Redirect::of(response.status(), response.headers(), response.url()) {
                return Err(TransportError::new(redirect));
            }
            let (status, headers) = (response.status(), response.headers().clone());
            let watched = Watched {
                inner: Box::pin(response.bytes_stream()),
                stall_timeout,
                deadline: Box::pin(tokio::time::sleep(stall_timeout)),
                bound: EventBound::new(event_limit),
            };
            let body: ByteStream = Box::pin(Exclusive::new(watched));
            let mut response = Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        }))
    }
}

/// Nothing arrived on a response body for the stall timeout.
#[derive(Debug, thiserror::Error)]
#[error("nothing arrived for {0:?}")]
pub(super) struct Stalled(Duration);

/// An event grew past the limit on the wire before it ended.
#[derive(Debug, thiserror::Error)]
#[error("an event exceeded {limit} bytes")]
pub(super) struct RunawayEvent {
    pub(super) limit: usize,
    /// Its first bytes on the wire, for the rejects topic.
    pub(super) prefix: Vec<u8>,
}

/// A response body that fails when it stalls or when one event grows past the limit.
struct Watched {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    stall_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    bound: EventBound,
}

impl Stream for Watched {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.deadline.as_mut().reset(Instant::now() + this.stall_timeout);
                match this.bound.feed(&bytes) {
                    Ok(()) => Poll::Ready(Some(Ok(bytes))),
                    Err(runaway) => Poll::Ready(Some(Err(TransportError::new(runaway)))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(without_url(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(TransportError::new(Stalled(this.stall_timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Counts the bytes of the event being received, from the raw stream: an event ends at an empty line, and
/// comment lines do not count (the parser hands them out at once instead of buffering them), though a
/// single endless line of any kind does.
struct EventBound {
    limit: usize,
    /// Bytes of the current event so far, terminators included.
    event: usize,
    /// Bytes of the current line so far.
    line: usize,
    line_is_comment: bool,
    at_line_start: bool,
    /// The last byte was `\r`, so a `\n` now completes the same terminator.
    after_cr: bool,
    /// Whether that `\n` belongs to the event (it does not after a comment or an empty line).
    lf_counts: bool,
    prefix: Vec<u8>,
}

impl EventBound {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event: 0,
            line: 0,
            line_is_comment: false,
            at_line_start: true,
            after_cr: false,
            lf_counts: false,
            prefix: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), RunawayEvent> {
        for &byte in bytes {
            if byte == b'\n' && self.after_cr {
                self.after_cr = false;
                if self.lf_counts {
                    self.record(byte);
                }
                continue;
            }
            let terminator = byte == b'\n' || byte == b'\r';
            self.after_cr = byte == b'\r';
            if terminator && self.at_line_start {
                // An empty line: the event is complete.
                self.event = 0;
                self.prefix.clear();
                self.lf_counts = false;
                continue;
            }
            if self.at_line_start {
                self.line_is_comment = byte == b':';
                self.line = 0;
            }
            self.line += 1;
            if !self.line_is_comment {
                self.record(byte);
            }
            self.at_line_start = terminator;
            self.lf_counts = !self.line_is_comment;
            if self.event > self.limit || self.line > self.limit {
                let prefix = std::mem::take(&mut self.prefix);
                return Err(RunawayEvent { limit: self.limit, prefix });
            }
        }
        Ok(())
    }

    fn record(&mut self, byte: u8) {
        self.event += 1;
        if self.prefix.len() < REJECT_PREFIX_BYTES {
            self.prefix.push(byte);
        }
    }
}

/// Makes a `Send` future or stream `Sync` too, as eventsource-client requires of its transport: it is only
/// ever polled through `&mut`, so the lock is never taken, let alone contended.
struct Exclusive<T>(Mutex<Pin<Box<T>>>);

impl<T> Exclusive<T> {
    fn new(inner: T) -> Self {
        Self(Mutex::new(Box::pin(inner)))
    }

    fn get(self: Pin<&mut Self>) -> Pin<&mut T> {
        self.get_mut().0.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut()
    }
}

impl<T: Future> Future for Exclusive<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get().poll(cx)
    }
}

impl<T: Stream> Stream for Exclusive<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_bound_counts_one_event_at_a_time_and_not_comments() {
        let mut bound = EventBound::new(24);
        for _ in 0..100 {
            bound.feed(b":thump\n:thump\r\n").unwrap();
        }
        bound.feed(b"event: update\r\ndata: 1\r\n\r\n").unwrap();
        bound.feed(b"data: 0123456789\n\ndata: 0123").unwrap();
        let runaway = bound.feed(b"456789abcdefghij").unwrap_err();
        assert_eq!(runaway.prefix, b"data: 0123456789abcdefghi");
    }
}

/// `error` without the request's URL, which reqwest puts in its message: `SSE_URL` may carry a token in its
/// query, and the message is logged.
fn without_url(error: reqwest::Error) -> TransportError {
    TransportError::new(error.without_url())
}

#[cfg(test)]
mod url_tests {
    use super::without_url;

    #[tokio::test]
    async fn a_transport_error_does_not_show_the_url_or_its_token() {
        // Nothing listens on port 1.
        let client = crate::http::client(std::time::Duration::from_secs(5)).unwrap();
        let error = client.get("http://127.0.0.1:1/stream?access_token=SECRET123").send().await.unwrap_err();
        assert!(format!("{error:#}").contains("SECRET123"), "reqwest's own message shows it: {error:#}");
        let shown = format!("{:#}", anyhow::Error::from(without_url(error)));
        assert!(!shown.contains("SECRET123") && !shown.contains("127.0.0.1:1/stream"), "{shown}");
    }
}
