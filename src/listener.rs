//! The listening socket, with the limits poem's own `TcpAcceptor` lacks: a cap on open
//! connections (over all clients and per client address), a pause after an accept error instead
//! of a busy loop, and per connection a deadline for the first request's headers and an idle
//! timeout.
//!
//! poem's server loop drops any error `accept` returns and calls it again at once, so with the
//! descriptors used up (EMFILE) it spins on a core. [`LimitedAcceptor::accept`] therefore never
//! returns an error: it waits and tries again. poem's server also does not expose hyper's
//! header-read timeout, so [`TimedIo`] watches the bytes: the first `\r\n\r\n` ends the first
//! request's headers (or the HTTP/2 preface).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::client_ip::TrustedProxies;
use crate::error_code::ErrorCode;
use crate::limits::{Limits, RETRY_AFTER_SECS};

/// The first pause after an accept error; doubled while errors go on, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Accepts connections within the caps; each comes wrapped in a [`TimedIo`].
pub struct LimitedAcceptor {
    listener: TcpListener,
    local_addr: LocalAddr,
    open: Arc<OpenConnections>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// The answer a connection over a cap gets before it is closed.
    busy: Arc<[u8]>,
}

/// How many connections are open, in all and per client address.
struct OpenConnections {
    max: usize,
    max_per_address: usize,
    /// Addresses the per-address cap does not apply to: a proxy carries many clients.
    exempt: TrustedProxies,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl OpenConnections {
    /// Counts a new connection from `ip`, or says which cap it is over.
    fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max {
            return Err("--max-connections");
        }
        let exempt = self.exempt.trusts(ip);
        let ip = crate::client_ip::bucket(ip);
        let from_ip = counts.per_address.entry(ip).or_default();
        if !exempt && *from_ip >= self.max_per_address {
            return Err("--max-connections-per-address");
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Slot {
            open: Arc::clone(self),
            ip,
        })
    }
}

/// One counted connection; dropping it (the connection closed) uncounts it.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.ip);
            }
        }
    }
}

impl LimitedAcceptor {
    pub fn new(
        listener: std::net::TcpListener,
        limits: &Limits,
        exempt: TrustedProxies,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = LocalAddr(listener.local_addr()?.into());
        let code = ErrorCode::ServerBusy;
        let body = serde_json::json!({
            "error": {"code": code.as_str(), "message": code.default_message()}
        })
        .to_string();
        let busy = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Ok(LimitedAcceptor {
            listener,
            local_addr,
            open: Arc::new(OpenConnections {
                max: limits.connection_cap(),
                max_per_address: limits.max_connections_per_address,
                exempt,
                counts: Mutex::default(),
            }),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            busy: busy.into_bytes().into(),
        })
    }

    /// The next connection within the caps. Errors are waited out, never returned.
    async fn next(&mut self) -> (TcpStream, SocketAddr, Slot) {
        let mut pause = FIRST_PAUSE;
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: retrying at once would only spin. Connections
                    // that end in the meantime give the descriptors back.
                    if pause == FIRST_PAUSE {
                        tracing::warn!(error = %e, "could not accept a connection; pausing");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
            };
            pause = FIRST_PAUSE;
            match self.open.open(peer.ip()) {
                Ok(slot) => return (stream, peer, slot),
                Err(cap) => {
                    tracing::debug!(%peer, cap, "connection refused: over the cap");
                    // Best effort and without waiting: the socket buffer is empty, so a short
                    // answer fits. Then the connection is closed.
                    let _ = stream.try_write(&self.busy);
                }
            }
        }
    }
}

impl Acceptor for LimitedAcceptor {
    type Io = TimedIo;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local_addr.clone()]
    }

    async fn accept(&mut self) -> io::Result<(TimedIo, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, peer, slot) = self.next().await;
        let _ = stream.set_nodelay(true);
        let io = TimedIo::new(stream, slot, self.header_timeout, self.idle_timeout);
        Ok((
            io,
            self.local_addr.clone(),
            RemoteAddr(peer.into()),
            Scheme::HTTP,
        ))
    }
}

/// A connection that fails its reads (so hyper closes it) when the first request's headers are
/// not complete `header_timeout` after it was accepted, or when nothing has been read or written
/// for `idle_timeout`. Reads are where hyper waits for the client, so that is where time is
/// checked; a handler still working is not interrupted.
pub struct TimedIo {
    inner: TcpStream,
    /// While a request's headers are arriving: when they must be complete.
    headers_due: Option<Pin<Box<Sleep>>>,
    header_timeout: Duration,
    /// A response was written since the last headers ended, so the next bytes read begin the
    /// next request on this keep-alive connection, and its headers get their own deadline.
    answered: bool,
    /// The last bytes read while looking for the end of the headers (`\r\n\r\n`).
    tail: u32,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    _slot: Slot,
}

impl TimedIo {
    fn new(inner: TcpStream, slot: Slot, header_timeout: Duration, idle_timeout: Duration) -> Self {
        TimedIo {
            inner,
            headers_due: Some(Box::pin(tokio::time::sleep(header_timeout))),
            header_timeout,
            answered: false,
            tail: 0,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            _slot: slot,
        }
    }

    fn active(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Bytes of a response went out, `first` being where they start. Once a request's headers
    /// are in, the answer (anything but an interim `100 Continue`, after which the body still
    /// comes) ends that request: hyper reads no pipelined request before it answers.
    fn wrote(&mut self, first: &[u8]) {
        self.active();
        if self.headers_due.is_none() && !first.starts_with(b"HTTP/1.1 1") {
            self.answered = true;
        }
    }

    /// Looks for `\r\n\r\n` in `bytes`, carrying the last four bytes across reads.
    fn headers_end_in(&mut self, bytes: &[u8]) -> bool {
        const END: u32 = u32::from_be_bytes(*b"\r\n\r\n");
        bytes.iter().any(|&b| {
            self.tail = (self.tail << 8) | u32::from(b);
            self.tail == END
        })
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.active();
                    if this.answered {
                        this.answered = false;
                        this.tail = 0;
                        this.headers_due = Some(Box::pin(tokio::time::sleep(this.header_timeout)));
                    }
                    if this.headers_due.is_some() && this.headers_end_in(read) {
                        this.headers_due = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Polling the timers registers this task with them, so hyper's next read
                // sees the deadline.
                if let Some(due) = &mut this.headers_due
                    && due.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(timed_out("the request headers took too long")));
                }
                if this.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("the connection was idle too long")));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote(buf);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote(
                bufs.iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]),
            );
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max_per_address: usize) -> Arc<OpenConnections> {
        Arc::new(OpenConnections {
            max: 100,
            max_per_address,
            exempt: TrustedProxies::new(Vec::new()),
            counts: Mutex::default(),
        })
    }

    #[test]
    fn ipv6_connections_share_one_cap_per_64_and_get_it_back_when_closed() {
        let open = caps(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let first = open.open(ip("2001:db8:1:2::1")).unwrap();
        let _second = open.open(ip("2001:db8:1:2::2")).unwrap();
        assert_eq!(
            open.open(ip("2001:db8:1:2:ffff::9")).err(),
            Some("--max-connections-per-address"),
            "a third address of the same /64 is over the cap"
        );
        assert!(
            open.open(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 is another client"
        );
        drop(first);
        assert!(
            open.open(ip("2001:db8:1:2::3")).is_ok(),
            "a closed connection frees its place"
        );
    }
}
