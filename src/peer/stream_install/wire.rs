//! Frames of a streamed install, after the `StreamInstallAccepted` response
//! header: `[tag: u8][len: u32 BE][payload]`. Tag 0 is a JSON control frame
//! (at most `MAX_FRAME_LEN`), tag 1 raw file bytes (at most `MAX_DATA_FRAME`).
//! Every path is validated on receipt, before the frame is handed on.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::layout::{PathError, validate_relative_path};
use crate::proto::{FrameError, MAX_FRAME_LEN, read_body};

/// The largest data frame; the sender cuts file bytes into pieces of at most this.
pub const MAX_DATA_FRAME: usize = 1 << 20;

const TAG_CONTROL: u8 = 0;
const TAG_DATA: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamControl {
    Directory {
        path: String,
    },
    /// A file follows as data frames. `crc32` is what the archive records for it, if anything.
    BeginFile {
        path: String,
        size: u64,
        crc32: Option<u32>,
    },
    /// The file's bytes are complete; `crc32` is the sender's own checksum of them, if it has one.
    EndFile {
        crc32: Option<u32>,
    },
    /// The sender is still checking its archives against their recorded hashes, `bytes` of
    /// `total` so far. Sent only before the first entry, at most every second, so that a long
    /// check is not taken for a stalled sender.
    Checking {
        bytes: u64,
        total: u64,
    },
    /// Everything was sent.
    Done {
        files: u64,
        dirs: u64,
        bytes: u64,
    },
    /// The sender failed (e.g. a corrupt archive); the receiver rolls back.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    Control(StreamControl),
    Data(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum StreamFrameError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    #[error("data frame of {0} bytes exceeds the {MAX_DATA_FRAME}-byte limit")]
    DataTooLarge(usize),
    #[error("unsafe path from the sender: {0}")]
    Path(#[from] PathError),
}

impl From<std::io::Error> for StreamFrameError {
    fn from(err: std::io::Error) -> Self {
        StreamFrameError::Frame(FrameError::from(err))
    }
}

pub async fn write_stream_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &StreamFrame,
) -> Result<(), StreamFrameError> {
    let (tag, payload): (u8, Bytes) = match frame {
        StreamFrame::Control(control) => (
            TAG_CONTROL,
            serde_json::to_vec(control).map_err(FrameError::from)?.into(),
        ),
        StreamFrame::Data(bytes) => (TAG_DATA, bytes.clone()),
    };
    let limit = if tag == TAG_CONTROL {
        MAX_FRAME_LEN
    } else {
        MAX_DATA_FRAME
    };
    if payload.len() > limit {
        return Err(StreamFrameError::DataTooLarge(payload.len()));
    }
    let mut header = [0u8; 5];
    header[0] = tag;
    header[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    writer.write_all(&header).await?;
    writer.write_all(&payload).await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` when the stream ended cleanly between frames.
pub async fn read_stream_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<StreamFrame>, StreamFrameError> {
    let mut tag = [0u8; 1];
    if reader.read(&mut tag).await? == 0 {
        return Ok(None);
    }
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    match tag[0] {
        TAG_CONTROL => {
            if len > MAX_FRAME_LEN {
                return Err(FrameError::TooLarge {
                    len,
                    limit: MAX_FRAME_LEN,
                }
                .into());
            }
            let body = read_body(reader, len).await?;
            let control: StreamControl = serde_json::from_slice(&body).map_err(FrameError::from)?;
            if let StreamControl::Directory { path } | StreamControl::BeginFile { path, .. } = &control {
                validate_relative_path(path)?;
            }
            Ok(Some(StreamFrame::Control(control)))
        }
        TAG_DATA => {
            if len > MAX_DATA_FRAME {
                return Err(StreamFrameError::DataTooLarge(len));
            }
            Ok(Some(StreamFrame::Data(read_body(reader, len).await?.into())))
        }
        other => Err(StreamFrameError::UnknownTag(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_frames_are_rejected() {
        let frames = [
            StreamFrame::Control(StreamControl::Directory { path: "maps".into() }),
            StreamFrame::Control(StreamControl::BeginFile {
                path: "maps/a.bsp".into(),
                size: 3,
                crc32: Some(7),
            }),
            StreamFrame::Data(Bytes::from_static(b"abc")),
            StreamFrame::Control(StreamControl::EndFile { crc32: None }),
            StreamFrame::Control(StreamControl::Done {
                files: 1,
                dirs: 1,
                bytes: 3,
            }),
        ];
        let mut buffer = Vec::new();
        for frame in &frames {
            write_stream_frame(&mut buffer, frame).await.unwrap();
        }
        let mut reader = buffer.as_slice();
        for frame in &frames {
            assert_eq!(read_stream_frame(&mut reader).await.unwrap().as_ref(), Some(frame));
        }
        assert_eq!(read_stream_frame(&mut reader).await.unwrap(), None);

        let mut traversal = Vec::new();
        let control = StreamControl::BeginFile {
            path: "../../etc/passwd".into(),
            size: 1,
            crc32: None,
        };
        write_stream_frame(&mut traversal, &StreamFrame::Control(control))
            .await
            .unwrap();
        let err = read_stream_frame(&mut traversal.as_slice()).await.unwrap_err();
        assert!(matches!(err, StreamFrameError::Path(_)), "{err}");

        let mut oversized = vec![TAG_DATA];
        oversized.extend_from_slice(&((MAX_DATA_FRAME + 1) as u32).to_be_bytes());
        let err = read_stream_frame(&mut oversized.as_slice()).await.unwrap_err();
        assert!(matches!(err, StreamFrameError::DataTooLarge(_)), "{err}");
        let err = read_stream_frame(&mut [9u8, 0, 0, 0, 0].as_slice()).await.unwrap_err();
        assert!(matches!(err, StreamFrameError::UnknownTag(9)), "{err}");
    }
}
