//! A scripted HTTP/1.1 server on a free loopback port, for testing HTTP clients against the exact bytes a real
//! API sends: each connection is answered by the next [`Reply`] of the script, written chunk by chunk with
//! `Transfer-Encoding: chunked`, with pauses, and with an abrupt close (no final chunk) where the script says
//! so. Every request is recorded, so that a test can assert on what the client asked for.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One step of a reply body.
#[derive(Clone, Debug)]
pub enum Part {
    /// Bytes sent as one HTTP chunk (and, on loopback, usually one read on the client side).
    Chunk(Vec<u8>),
    /// Wait before the next part.
    Pause(Duration),
    /// Stop sending but keep the connection open, until the client gives up.
    Hang,
    /// Close the connection without the final chunk: a connection dropped mid-stream.
    Drop,
}

/// The answer to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<Part>,
}

impl Reply {
    /// A 200 streaming `application/json` reply made of `body`; ends cleanly unless `body` says otherwise.
    pub fn stream(body: Vec<Part>) -> Self {
        Self { status: 200, headers: vec![("content-type".into(), "application/json".into())], body }
    }

    /// A reply with `status` and a whole JSON body.
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![Part::Chunk(body.as_bytes().to_vec())],
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/2/tweets/sample/stream?tweet.fields=id`.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').filter_map(|pair| pair.split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| decode(v))
    }
}

type Responder = Box<dyn FnMut(&Request) -> Reply + Send>;

/// A running server; dropping it stops accepting.
pub struct HttpServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    accept: JoinHandle<()>,
}

impl HttpServer {
    /// Serves `replies` in order, one a connection; once they are used up, every further request gets
    /// `after` (e.g. a reply that hangs, so that a client under test cannot spin).
    pub async fn scripted(replies: Vec<Reply>, after: Reply) -> Result<Self> {
        let mut queue = VecDeque::from(replies);
        Self::with(move |_| queue.pop_front().unwrap_or_else(|| after.clone())).await
    }

    /// Answers each request with what `respond` returns for it.
    pub async fn with(respond: impl FnMut(&Request) -> Reply + Send + 'static) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("bind the test HTTP server")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let responder: Arc<Mutex<Responder>> = Arc::new(Mutex::new(Box::new(respond)));
        let seen = requests.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, responder) = (seen.clone(), responder.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, seen, responder).await;
                });
            }
        });
        Ok(Self { addr, requests, accept })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads requests on one connection and answers each (keep-alive), until the client or a reply closes it.
async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Request>>>, responder: Arc<Mutex<Responder>>) -> Result<()> {
    // A reply goes out in several small writes; without this, Nagle's algorithm and the client's delayed ACK
    // hold each reply back about 40 ms.
    stream.set_nodelay(true)?;
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await? else { return Ok(()) };
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(request.clone());
        let reply = (responder.lock().unwrap_or_else(|e| e.into_inner()))(&request);
        if !write_reply(&mut stream, &reply).await? {
            return Ok(());
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Option<Request>> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    buffer.drain(..head_end + 4);
    while buffer.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer.drain(..length).collect();
    Ok(Some(Request { method, target, headers, body }))
}

/// Writes `reply`; returns whether the connection can serve another request.
async fn write_reply(stream: &mut TcpStream, reply: &Reply) -> Result<bool> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("transfer-encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    for part in &reply.body {
        match part {
            Part::Chunk(bytes) if bytes.is_empty() => {}
            Part::Chunk(bytes) => {
                let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
                framed.extend_from_slice(bytes);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).await?;
                stream.flush().await?;
            }
            Part::Pause(duration) => tokio::time::sleep(*duration).await,
            Part::Hang => {
                // Wait for the client to close; whatever it sends is ignored.
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                return Ok(false);
            }
            Part::Drop => {
                stream.shutdown().await.ok();
                return Ok(false);
            }
        }
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.flush().await?;
    Ok(true)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
