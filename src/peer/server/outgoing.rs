//! `Outgoing`: the send half of a served stream, as an `AsyncWrite` that gives
//! up on a receiver that is not taking bytes. A write fails when the receiver
//! stopped the stream (STOP_SENDING), even while quinn still waits for flow
//! control credit and would not notice by itself, or when a write has made no
//! progress for [`SEND_STALL_TIMEOUT`] (a receiver that stalls, or vanishes
//! and so never acknowledges). Time spent between writes (waiting for the
//! upload limiter or a producer) does not count.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::SendStream;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

/// A write that makes no progress for this long fails. Long enough for a receiver's disk
/// hiccup (it has its stream window of buffered bytes besides), short enough that a
/// streamed-install slot held by a dead receiver is free again within 5 s.
pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(4);

type Stopped = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

pub struct Outgoing {
    send: SendStream,
    /// The peer at the other end.
    to: std::net::SocketAddr,
    stopped: Stopped,
    /// `stopped` has completed (it must not be polled again).
    stop_seen: bool,
    stall: Pin<Box<Sleep>>,
    /// A write is pending; the stall timer runs only then.
    waiting: bool,
}

impl Outgoing {
    pub fn new(send: SendStream, to: std::net::SocketAddr) -> Self {
        let stopped = send.stopped();
        Outgoing {
            send,
            to,
            stopped: Box::pin(async move {
                let _ = stopped.await;
            }),
            stop_seen: false,
            stall: Box::pin(tokio::time::sleep(SEND_STALL_TIMEOUT)),
            waiting: false,
        }
    }

    pub fn stream(&mut self) -> &mut SendStream {
        &mut self.send
    }

    pub fn to(&self) -> std::net::SocketAddr {
        self.to
    }

    /// Finishes the stream and waits, at most `within`, until the receiver has acknowledged
    /// every byte or stopped the stream. A write returns once quinn has buffered the bytes
    /// (up to the connection's send window, seconds of a slow link), so only this tells
    /// that an answer is no longer on its way. Whether it arrived or was stopped in time.
    pub async fn finish_delivered(&mut self, within: Duration) -> bool {
        if self.stop_seen {
            return true;
        }
        if self.send.finish().is_err() {
            return false;
        }
        let ended = tokio::time::timeout(within, self.stopped.as_mut()).await.is_ok();
        self.stop_seen = ended;
        ended
    }
}

impl AsyncWrite for Outgoing {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.stop_seen || this.stopped.as_mut().poll(cx).is_ready() {
            this.stop_seen = true;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the receiver stopped the stream",
            )));
        }
        if !this.waiting {
            this.waiting = true;
            this.stall.as_mut().reset(Instant::now() + SEND_STALL_TIMEOUT);
        }
        match Pin::new(&mut this.send).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.waiting = false;
                Poll::Ready(result.map_err(io::Error::from))
            }
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the receiver took no bytes for {SEND_STALL_TIMEOUT:?}"),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}
