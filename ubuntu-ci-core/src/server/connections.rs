//! The server's connections: accepted one by one under a cap (past it, a 503 and the
//! connection closed), each with time limits on its request heads (slow or idle clients),
//! and on the pauses in its bodies; the client's address handed to the handlers, which
//! bound event streams per client with it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;

use super::error::ErrorBody;
use crate::config::ServeLimits;
use crate::error::{ErrorKind, Result};

/// The address of the client a request came from (absent for requests that did not come
/// over a connection of [`serve_connections`], as in tests that call the router directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Event streams open per client address.
#[derive(Debug, Default)]
pub(crate) struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One client's event stream, counted while it lives.
#[derive(Debug)]
pub(crate) struct ClientStream {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// Counts one more stream of `ip`, or `None` when it holds `limit` already.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientStream> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientStream {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock() {
            if let Some(count) = open.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// A request body whose pauses between pieces are bounded: a client that stops sending
/// half way frees its connection after `limit`.
struct PausesBounded {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for PausesBounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.limit;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(format!(
                    "the request body paused for more than {} s",
                    this.limit.as_secs()
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a connection past the cap, written before it is closed.
fn refusal() -> Vec<u8> {
    let body = serde_json::to_string(&ErrorBody {
        error: "the server has too many open connections; try again later".to_owned(),
        kind: ErrorKind::Unavailable,
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the open requests end
/// (event streams end with the server's `stopping` signal).
pub(crate) async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    let body_timeout = Duration::from_secs(limits.body_timeout_secs);
    tokio::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, a connection reset before it was taken:
                    // wait a little and go on, as the listener may work again.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = stream.write_all(&refusal()).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let app = app.clone();
        let service = tower::ServiceBuilder::new()
            .map_request(
                move |mut request: hyper::Request<hyper::body::Incoming>| -> Request {
                    request.extensions_mut().insert(ClientAddr(address));
                    request.map(|body| {
                        Body::new(PausesBounded {
                            inner: Body::new(body),
                            limit: body_timeout,
                            sleep: Box::pin(tokio::time::sleep(body_timeout)),
                        })
                    })
                },
            )
            .map_request(super::with_trailing_slash)
            .service(app);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _held = permit;
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, client = %address, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
