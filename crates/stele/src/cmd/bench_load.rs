//! The HTTP load generator of the benches: raw HTTP/1.1 over keep-alive TCP connections, one
//! request in flight per connection, like `wrk`.
//!
//! Why not an HTTP client library: the client shares the two cores with the server it
//! measures. hyper's client spent about 15 CPU-µs per single-event request here (a quarter of
//! the machine in `http-single`), reqwest more. This one writes a prebuilt request head and
//! the body, reads the status line and `Content-Length`, and reads the body through: a few
//! µs. It still checks every answer (status 2xx, whole body), so a failing server cannot pass
//! for a fast one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send, from how many connections, for how long.
pub(crate) struct Load {
    /// The server.
    pub addr: SocketAddr,
    /// Request target, such as `/v1/events`.
    pub path: String,
    /// Extra request headers (`Content-Type`, `Content-Encoding`, `Authorization`, …).
    pub headers: Vec<(&'static str, String)>,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Events each successful request counts for.
    pub events_per_request: u64,
}

impl Load {
    /// POSTs to `url` (`http://HOST:PORT/PATH`) with `Content-Type: content_type`, from
    /// `connections` connections for `duration`; other headers go in [`Load::headers`].
    ///
    /// # Errors
    /// `url` is not an `http://` URL with a numeric address.
    pub(crate) fn post(
        url: &str,
        content_type: &str,
        connections: usize,
        duration: Duration,
        events_per_request: u64,
    ) -> Result<Load> {
        let uri: hyper::Uri = url.parse().context("bench URL")?;
        let addr = uri
            .authority()
            .context("bench URL without an address")?
            .as_str()
            .parse()
            .context("bench URL address")?;
        Ok(Load {
            addr,
            path: uri.path().to_owned(),
            headers: vec![("Content-Type", content_type.to_owned())],
            connections,
            duration,
            events_per_request,
        })
    }
}

/// What a run measured.
pub(crate) struct Measured {
    /// Events acknowledged (successful requests × events per request).
    pub events: u64,
    /// Wall time from the first request to the stop.
    pub secs: f64,
}

/// Sends `make(n)` as the body of the n-th request (numbered across connections) until the
/// duration is over or `make` returns `None` on every connection.
///
/// # Errors
/// A connection could not be made, or any request failed or got a non-2xx answer (its
/// status and the start of its body are in the error).
pub(crate) async fn run<F>(load: Load, make: F) -> Result<Measured>
where
    F: Fn(u64) -> Option<Bytes> + Send + Sync + 'static,
{
    let mut head_prefix = format!("POST {} HTTP/1.1\r\nHost: {}\r\n", load.path, load.addr);
    for (name, value) in &load.headers {
        head_prefix.push_str(&format!("{name}: {value}\r\n"));
    }
    let head_prefix: Arc<str> = head_prefix.into();
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failure = Arc::new(Mutex::new(None::<String>));
    let mut streams = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let stream = TcpStream::connect(load.addr)
            .await
            .with_context(|| format!("connecting to {}", load.addr))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(streams.len());
    for mut stream in streams {
        let (head_prefix, make, next, done, stop, failure) = (
            head_prefix.clone(),
            make.clone(),
            next.clone(),
            done.clone(),
            stop.clone(),
            failure.clone(),
        );
        let per_request = load.events_per_request;
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while !stop.load(Ordering::Relaxed) {
                let Some(body) = make(next.fetch_add(1, Ordering::Relaxed)) else {
                    break; // out of distinct bodies
                };
                match exchange(&mut stream, &head_prefix, &body, &mut buf).await {
                    Ok(()) => {
                        done.fetch_add(per_request, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert_with(|| format!("{e:#}"));
                        break;
                    }
                }
            }
        }));
    }
    // Until the duration is over, or every connection ran out of bodies or failed.
    let deadline = start + load.duration;
    while Instant::now() < deadline && !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(20).min(deadline - Instant::now())).await;
    }
    stop.store(true, Ordering::Relaxed);
    let events = done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    if let Some(f) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("a bench request failed: {f}");
    }
    Ok(Measured { events, secs })
}

/// One request and its whole answer on a kept-alive connection.
async fn exchange(
    stream: &mut TcpStream,
    head_prefix: &str,
    body: &[u8],
    buf: &mut Vec<u8>,
) -> Result<()> {
    let head = format!("{head_prefix}Content-Length: {}\r\n\r\n", body.len());
    if body.len() <= 16 * 1024 {
        // One write, so a small request leaves in one segment.
        buf.clear();
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(body);
        stream.write_all(buf).await?;
    } else {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
    }
    buf.clear();
    let head_end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end + 4;
        }
        read_more(stream, buf).await?;
    };
    let head = buf.get(..head_end).unwrap_or_default();
    let head = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed status line: {head:?}"))?;
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<usize>().context("Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("the bench client reads only Content-Length answers, got {line:?}");
        }
    }
    let length = length.context("answer without Content-Length")?;
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    if !(200..300).contains(&status) {
        let text = buf
            .get(head_end..head_end + length.min(300))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(text);
        bail!("HTTP {status}: {text}");
    }
    Ok(())
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
    }
    let n = stream.read_buf(buf).await?;
    if n == 0 {
        bail!("the server closed the connection");
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
