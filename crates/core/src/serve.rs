//! One way to serve a protocol on a TCP listener.
//!
//! Every listener (PostgreSQL, MySQL, SSH, HTTP) accepts connections the
//! same way, here: at most `max_connections` at once (past that a new one
//! is refused in its protocol's words, where it has some), and a
//! connection that has not finished its handshake (TLS, start-up,
//! authentication) within `handshake_timeout` is closed, so a client that
//! opens a socket and sends nothing cannot hold a task and a slot forever.
//! When the gateway stops, a listener stops accepting and waits (at most
//! `drain_timeout`) for its connections to end: the gateway's stop is
//! part of every session's deadline (see [`crate::deadline`]), so each
//! session tells its client in its own words and records its end, before
//! the trail's closing checkpoint is signed. What is still open after the
//! drain is cut.
//! An adapter supplies only what one connection does
//! ([`ProtocolServer::connection`]) and says when its handshake is over
//! ([`Handshake::established`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// A boxed connection future.
pub type ConnectionFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How many connections a listener holds and how long a handshake may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections served at once; the next is refused.
    pub max_connections: usize,
    /// Time from accept until the adapter calls [`Handshake::established`].
    pub handshake_timeout: Duration,
    /// How long a stopping listener waits for its sessions to end.
    pub drain_timeout: Duration,
}

/// Connections a listener holds when its configuration does not say.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Handshake time a listener allows when its configuration does not say.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a stopping listener waits for its sessions to end.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Given to a connection: it calls [`Handshake::established`] once the
/// client has finished its handshake (TLS, start-up and sign-in), from
/// which point the connection runs as long as its protocol lets it.
/// Dropped without that call before the deadline, the connection is
/// judged by how it ends on its own.
pub struct Handshake(Option<oneshot::Sender<()>>);

impl Handshake {
    /// The handshake is over: the timeout no longer applies.
    pub fn established(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A protocol the gateway serves: what one accepted connection does.
pub trait ProtocolServer: Send + Sync + 'static {
    /// The protocol's name, for logs.
    fn protocol(&self) -> &'static str;

    /// Serve one connection to its end.
    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        handshake: Handshake,
    ) -> ConnectionFuture;

    /// Refuse a connection past the cap, in the protocol's words where it
    /// has some (PostgreSQL's 53300, MySQL's 1040); the default closes it.
    fn refuse_busy(&self, tcp: TcpStream) -> ConnectionFuture {
        drop(tcp);
        Box::pin(async {})
    }
}

/// Accept connections until `shutdown` flips, each in its own task,
/// within `limits`; then drain them (see the module documentation).
pub async fn serve<P: ProtocolServer>(
    server: Arc<P>,
    listener: TcpListener,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut live = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            // Reap ended connections as they go.
            Some(_) = live.join_next(), if !live.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(protocol = server.protocol(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(protocol = server.protocol(), %peer, max = limits.max_connections, "too many connections; refusing one");
            let refusal = server.refuse_busy(tcp);
            tokio::spawn(tokio::time::timeout(limits.handshake_timeout, refusal));
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let protocol = server.protocol();
        let conn = server.clone().connection(tcp, peer, Handshake(Some(tx)));
        live.spawn(async move {
            let _slot = slot;
            run_within(conn, rx, limits.handshake_timeout, protocol, peer).await;
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while live.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            protocol = server.protocol(),
            open = live.len(),
            "connections still open after the drain; cutting them"
        );
        live.shutdown().await;
    }
}

/// Run `conn`, dropping it (which closes its socket) if the handshake is
/// not over within `timeout`.
async fn run_within(
    conn: ConnectionFuture,
    established: oneshot::Receiver<()>,
    timeout: Duration,
    protocol: &'static str,
    peer: SocketAddr,
) {
    let mut conn = conn;
    tokio::select! {
        _ = &mut conn => {}
        r = tokio::time::timeout(timeout, established) => match r {
            Ok(_) => conn.await,
            Err(_) => {
                tracing::info!(protocol, %peer, "handshake not finished in time; connection closed");
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echo one line after a handshake of one byte `h`.
    struct Echo;

    impl ProtocolServer for Echo {
        fn protocol(&self) -> &'static str {
            "echo"
        }

        fn connection(
            self: Arc<Self>,
            mut tcp: TcpStream,
            _peer: SocketAddr,
            mut handshake: Handshake,
        ) -> ConnectionFuture {
            Box::pin(async move {
                let mut b = [0u8; 1];
                if tcp.read_exact(&mut b).await.is_err() || b[0] != b'h' {
                    return;
                }
                handshake.established();
                let mut buf = [0u8; 16];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 || tcp.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            })
        }

        fn refuse_busy(&self, mut tcp: TcpStream) -> ConnectionFuture {
            Box::pin(async move {
                let _ = tcp.write_all(b"busy").await;
            })
        }
    }

    async fn closed(tcp: &mut TcpStream) -> bool {
        let mut b = [0u8; 8];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn idle_handshakes_are_closed_and_the_cap_refuses_in_the_protocols_words() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, rx) = watch::channel(false);
        let limits = ListenerLimits {
            max_connections: 3,
            handshake_timeout: Duration::from_millis(300),
            ..ListenerLimits::default()
        };
        tokio::spawn(serve(Arc::new(Echo), listener, limits, rx));

        // A client that finished its handshake outlives the timeout.
        let mut good = TcpStream::connect(addr).await.unwrap();
        good.write_all(b"h").await.unwrap();
        let mut idle1 = TcpStream::connect(addr).await.unwrap();
        let mut idle2 = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Past the cap: refused in its protocol's words.
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut said = Vec::new();
        extra.read_to_end(&mut said).await.unwrap();
        assert_eq!(said, b"busy");
        // The idle ones are closed after the handshake timeout…
        assert!(closed(&mut idle1).await);
        assert!(closed(&mut idle2).await);
        // …and the served one still works, and its slot is the only one taken.
        good.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        good.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let mut next = TcpStream::connect(addr).await.unwrap();
        next.write_all(b"hok").await.unwrap();
        next.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(&buf[..2], b"ok");
    }
}
