//! When an HTTPS connection is idle: no request in flight, no byte read or
//! written for a while, and not switched to another protocol. Such a
//! connection is closed, so clients that send a request and then sit on a
//! kept-alive connection cannot hold every slot of the listener.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between a connection's stream, its requests and its watchdog.
#[derive(Clone)]
pub struct IdleWatch(Arc<State>);

struct State {
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last: AtomicU64,
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
}

impl IdleWatch {
    /// A watch for a new connection (active now).
    pub fn new() -> IdleWatch {
        IdleWatch(Arc::new(State {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
        }))
    }

    /// The connection's stream, with every byte counted as activity.
    pub fn wrap<S>(&self, inner: S) -> Watched<S> {
        Watched {
            inner,
            watch: self.clone(),
        }
    }

    /// A request is being handled until the guard drops.
    pub fn request(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// The connection switched protocols (kubectl exec, port-forward): it
    /// is never idle by this measure.
    pub fn upgraded(&self) {
        self.0.upgraded.store(true, Ordering::SeqCst);
    }

    fn touch(&self) {
        let ms = self.0.start.elapsed().as_millis() as u64;
        self.0.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle for `limit`.
    pub async fn expired(&self, limit: Duration) {
        loop {
            let idle_for = self
                .0
                .start
                .elapsed()
                .saturating_sub(Duration::from_millis(self.0.last.load(Ordering::Relaxed)));
            let busy = self.0.in_flight.load(Ordering::SeqCst) > 0
                || self.0.upgraded.load(Ordering::SeqCst);
            if !busy && idle_for >= limit {
                return;
            }
            let wait = if busy { limit } else { limit - idle_for };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    }
}

impl Default for IdleWatch {
    fn default() -> Self {
        IdleWatch::new()
    }
}

/// Marks a request in flight until dropped.
pub struct InFlight(IdleWatch);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0 .0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// A stream whose reads and writes count as activity.
pub struct Watched<S> {
    inner: S,
    watch: IdleWatch,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_without_requests_bytes_or_an_upgrade() {
        let w = IdleWatch::new();
        let busy = w.request();
        let limit = Duration::from_millis(100);
        // A request in flight (held for approval, say) is never idle.
        assert!(
            tokio::time::timeout(Duration::from_millis(400), w.expired(limit))
                .await
                .is_err()
        );
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), w.expired(limit))
            .await
            .expect("idle after the limit");
        w.upgraded();
        assert!(
            tokio::time::timeout(Duration::from_millis(400), w.expired(limit))
                .await
                .is_err()
        );
    }
}
