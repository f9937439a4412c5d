//! `StreamInstallFrameSink`: how the sender's archive producer (blocking, on
//! its own thread) hands frames to the QUIC forwarder, through a bounded
//! channel so memory stays flat.
//!
//! The invariant that matters: when the QUIC write fails or the receiver
//! cancels, the forwarder cancels and *closes the receive side before*
//! awaiting the producer. A producer blocked on the full channel then wakes
//! with an error, returns, and drops whatever it holds — in particular the
//! outbound transfer guard, so later installs of the same game are not blocked.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wire::{StreamFrame, StreamFrameError, write_stream_frame};
use crate::peer::ratelimit::RateLimiter;

/// Frames buffered between producer and forwarder (each at most 1 MiB).
pub const FRAME_QUEUE: usize = 8;

/// The transfer was cancelled or the receiver is gone; the producer should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the streamed install was cancelled")]
pub struct SinkClosed;

#[derive(Clone)]
pub struct StreamInstallFrameSink {
    frames: mpsc::Sender<StreamFrame>,
    cancel: CancellationToken,
}

pub struct FrameSource {
    frames: mpsc::Receiver<StreamFrame>,
    cancel: CancellationToken,
}

pub fn frame_channel() -> (StreamInstallFrameSink, FrameSource) {
    let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
    let cancel = CancellationToken::new();
    (
        StreamInstallFrameSink {
            frames: frames_tx,
            cancel: cancel.clone(),
        },
        FrameSource {
            frames: frames_rx,
            cancel,
        },
    )
}

impl StreamInstallFrameSink {
    /// Sends from a blocking thread; waits while the channel is full, and
    /// fails at once when the transfer is cancelled (also while waiting).
    pub fn send_blocking(&self, frame: StreamFrame) -> Result<(), SinkClosed> {
        if self.cancel.is_cancelled() {
            return Err(SinkClosed);
        }
        self.frames.blocking_send(frame).map_err(|_| SinkClosed)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl FrameSource {
    /// Cancels the producer: a send in progress or to come fails.
    fn cancel(&mut self) {
        self.cancel.cancel();
        // Closing wakes a producer blocked on a full channel; dropping would too, but we still own it.
        self.frames.close();
    }
}

/// Writes every frame the producer makes to `writer`, then waits for the producer.
/// On a write failure the producer is cancelled *before* it is awaited.
pub async fn forward_frames<W, T>(
    mut source: FrameSource,
    writer: &mut W,
    producer: JoinHandle<T>,
    upload_limit: Option<&RateLimiter>,
) -> Result<T, StreamFrameError>
where
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = source.frames.recv().await {
        if let (Some(limiter), StreamFrame::Data(bytes)) = (upload_limit, &frame) {
            limiter.acquire(bytes.len()).await;
        }
        if let Err(err) = write_stream_frame(writer, &frame).await {
            source.cancel();
            let _ = producer.await;
            return Err(err);
        }
    }
    writer.flush().await?;
    producer
        .await
        .map_err(|err| StreamFrameError::from(std::io::Error::other(format!("the producer failed: {err}"))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use std::future::Future;

    use bytes::Bytes;

    use super::*;

    /// A writer that accepts `budget` bytes, stalls (a slow receiver: the producer fills the
    /// channel and blocks), then fails like a reset QUIC stream.
    struct FailingWriter {
        budget: usize,
        stall: std::pin::Pin<Box<tokio::time::Sleep>>,
    }

    impl AsyncWrite for FailingWriter {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if self.budget == 0 {
                std::task::ready!(self.stall.as_mut().poll(cx));
                return std::task::Poll::Ready(Err(std::io::Error::other("stream reset by peer")));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Stands in for the outbound transfer guard.
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_wakes_a_producer_blocked_on_the_full_channel() {
        let (sink, source) = frame_channel();
        let held = Arc::new(AtomicBool::new(true));
        let guard = Guard(held.clone());
        let producer = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            // Far more frames than the channel holds: this blocks until cancelled.
            for _ in 0..10_000 {
                if sink
                    .send_blocking(StreamFrame::Data(Bytes::from(vec![0u8; 1024])))
                    .is_err()
                {
                    return "cancelled";
                }
            }
            "ran to the end"
        });
        let mut writer = FailingWriter {
            budget: 10_000,
            stall: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(300))),
        };
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            forward_frames(source, &mut writer, producer, None),
        )
        .await
        .expect("the forwarder must not hang on a blocked producer");
        assert!(result.is_err(), "the write failure is reported");
        assert!(!held.load(Ordering::SeqCst), "the producer ended and dropped its guard");
    }

    #[tokio::test]
    async fn frames_are_forwarded_in_order_and_the_producer_result_returned() {
        let (sink, source) = frame_channel();
        let producer = tokio::task::spawn_blocking(move || {
            for i in 0..20u8 {
                sink.send_blocking(StreamFrame::Data(Bytes::from(vec![i; 3]))).unwrap();
            }
            42
        });
        let mut out = Vec::new();
        assert_eq!(forward_frames(source, &mut out, producer, None).await.unwrap(), 42);
        let mut reader = out.as_slice();
        for i in 0..20u8 {
            let frame = super::super::wire::read_stream_frame(&mut reader).await.unwrap();
            assert_eq!(frame, Some(StreamFrame::Data(Bytes::from(vec![i; 3]))));
        }
    }
}
