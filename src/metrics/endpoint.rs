//! The `[metrics]` endpoint: a minimal HTTP/1.x responder on its own listener.
//! `GET /metrics` gets `200` with the metrics; any other request line gets `404`.
//! One request per connection (`Connection: close`), which is how Prometheus
//! scrapes anyway, so there is no keep-alive state to bound.
//!
//! Every resource is bounded: at most [`MAX_SCRAPES`] connections at once (more
//! are closed on accept), a request head of at most [`MAX_REQUEST`] bytes read
//! within [`REQUEST_TIMEOUT`], the answer written within [`WRITE_TIMEOUT`], and
//! the registry's part of a scrape awaited for at most [`CENSUS_TIMEOUT`] (the
//! registry's own figures then keep their last values, the rest is current).
//!
//! The body is OpenMetrics text (what `prometheus-client` writes: counters end in
//! `_total`, the body ends in `# EOF`), so it is served as
//! `application/openmetrics-text`, which Prometheus reads natively.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, info, warn};

use super::Metrics;
use crate::core::link_status::LinkStatus;
use crate::core::registry::Census;
use crate::logging::redact;

/// The path that serves the metrics.
pub const PATH: &str = "/metrics";
/// Connections served at once; Prometheus opens one per scrape.
pub const MAX_SCRAPES: usize = 8;
/// Most bytes of a request head (request line and headers).
pub const MAX_REQUEST: usize = 8192;
/// Bound on reading the request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on writing the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on waiting for the registry's figures.
pub const CENSUS_TIMEOUT: Duration = Duration::from_secs(2);
/// The content type of the metrics (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A scrape's request for the registry's figures: the service task answers it.
pub type CensusRequest = oneshot::Sender<Census>;

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
    /// Any other method or path.
    NotFound,
    /// Not an HTTP/1.x request head.
    BadRequest,
    /// A head longer than [`MAX_REQUEST`].
    TooLarge,
}

/// Looks at the bytes of a request read so far: `None` until the head is complete.
pub fn route(head: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if head.len() >= MAX_REQUEST => return Some(Route::TooLarge),
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Route::BadRequest),
    }
    // A query string (`?format=…`) changes nothing here.
    let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
    if req.method == Some("GET") && path == PATH {
        Some(Route::Metrics)
    } else {
        Some(Route::NotFound)
    }
}

/// The whole answer to `route`; `body` is the metrics for [`Route::Metrics`].
pub fn response(route: Route, body: &str) -> Vec<u8> {
    let (status, content_type, body) = match route {
        Route::Metrics => ("200 OK", CONTENT_TYPE, body),
        Route::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at GET /metrics\n",
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "not an HTTP/1.x request\n",
        ),
        Route::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            "request head too large\n",
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a scrape reads besides the data path's own counters.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The counters.
    pub metrics: Metrics,
    /// Asks the service task for the registry's figures.
    pub census: mpsc::Sender<CensusRequest>,
    /// The component link's state.
    pub link: watch::Receiver<LinkStatus>,
}

impl Sources {
    /// The metrics as they are now.
    async fn scrape(&self) -> String {
        let (tx, rx) = oneshot::channel();
        let census = match self.census.try_send(tx) {
            Ok(()) => tokio::time::timeout(CENSUS_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok),
            // The service task is gone (stopping) or has scrapes queued already.
            Err(_) => None,
        };
        if census.is_none() {
            debug!("metrics scrape: no figures from the registry; keeping the last ones");
        }
        let link = self.link.borrow().clone();
        self.metrics.observe(census.as_ref(), Some(&link));
        self.metrics.render()
    }
}

/// Logs where the endpoint listens (and a warning if that is not loopback).
pub fn announce(listener: &TcpListener) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    info!(metrics = %redact::addr(addr), "metrics endpoint listening");
    if !addr.ip().is_loopback() {
        warn!(
            metrics = %redact::addr(addr),
            "the metrics endpoint listens beyond loopback: whoever reaches it can read the service's counters; firewall it"
        );
    }
}

/// Serves the endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, sources: Sources) {
    announce(&listener);
    let sources = Arc::new(sources);
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, mostly: wait a moment rather than spin.
                warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(peer = %redact::addr(peer), "metrics endpoint busy; connection closed");
            continue;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            answer(tcp, peer, &sources).await;
            drop(slot);
        });
    }
}

/// Reads one request and answers it, each within its bound.
async fn answer(mut tcp: TcpStream, peer: SocketAddr, sources: &Sources) {
    let route = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut tcp)).await {
        Ok(Some(route)) => route,
        Ok(None) => return,
        Err(_) => {
            debug!(peer = %redact::addr(peer), "metrics request not complete in time; closed");
            return;
        }
    };
    let body = match route {
        Route::Metrics => sources.scrape().await,
        _ => String::new(),
    };
    let reply = response(route, &body);
    let write = async {
        tcp.write_all(&reply).await?;
        tcp.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(peer = %redact::addr(peer), "metrics answer not written: {e}"),
        Err(_) => debug!(peer = %redact::addr(peer), "metrics answer not taken in time; closed"),
    }
}

/// Reads until the request head is complete (or too long); `None` if the peer
/// closed or the read failed first.
async fn read_request(tcp: &mut TcpStream) -> Option<Route> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_REQUEST - head.len()).min(chunk.len());
        let n = tcp.read(&mut chunk[..room]).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(route) = route(&head) {
            return Some(route);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_metrics_is_served_and_everything_else_is_not_found() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Route::Metrics)
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Route::Metrics)
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(
            route(b"GET /metricsx HTTP/1.1\r\n\r\n"),
            Some(Route::NotFound)
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Route::NotFound)
        );
        assert_eq!(
            route(b"\x16\x03\x01garbage\r\n\r\n"),
            Some(Route::BadRequest)
        );
    }

    #[test]
    fn an_incomplete_head_waits_until_it_is_too_long() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST, b'a');
        assert_eq!(route(&long), Some(Route::TooLarge));
    }

    #[test]
    fn answers_carry_their_length_and_close() {
        let text = String::from_utf8(response(Route::Metrics, "a 1\n# EOF\n")).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
            "{text}"
        );
        assert!(text.contains("Content-Length: 10\r\nConnection: close\r\n\r\na 1\n# EOF\n"));
        let text = String::from_utf8(response(Route::NotFound, "ignored")).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(!text.contains("ignored"), "{text}");
    }

    #[tokio::test]
    async fn a_scrape_over_loopback_reads_the_registry_and_the_link() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        metrics.received.inc_by(42);
        let (census_tx, mut census_rx) = mpsc::channel::<CensusRequest>(MAX_SCRAPES);
        let (_link_tx, link) = watch::channel(LinkStatus {
            state: crate::core::link_status::LinkState::Online,
            since_unix: 1,
            logins: 3,
        });
        let server = tokio::spawn(serve(
            listener,
            Sources {
                metrics,
                census: census_tx,
                link,
            },
        ));
        // Plays the service task: answers every census request.
        let registry = tokio::spawn(async move {
            while let Some(reply) = census_rx.recv().await {
                let _ = reply.send(Census {
                    streams: 2,
                    ..Census::default()
                });
            }
        });
        let get = |request: &'static str| async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            tcp.read_to_string(&mut out).await.unwrap();
            out
        };
        let bound = Duration::from_secs(10);
        let body = tokio::time::timeout(bound, get("GET /metrics HTTP/1.1\r\n\r\n"))
            .await
            .unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
        assert!(body.contains("\ndsps_received_bytes_total 42\n"), "{body}");
        assert!(body.contains("\ndsps_streams 2\n"), "{body}");
        assert!(body.contains("\ndsps_link_up 1\n"), "{body}");
        assert!(body.contains("\ndsps_link_reconnects_total 2\n"), "{body}");
        let other = tokio::time::timeout(bound, get("GET /other HTTP/1.1\r\n\r\n"))
            .await
            .unwrap();
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        server.abort();
        registry.abort();
    }
}
