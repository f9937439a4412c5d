//! The wire protocol shared by client and server.
//!
//! One bidirectional QUIC stream carries one request. A control frame is a
//! 4-byte big-endian length followed by that many bytes of JSON; frames over
//! [`MAX_FRAME_LEN`] are rejected before anything is allocated. File bytes
//! follow their response header raw, so they are never JSON-encoded.
//!
//! Every relative path that crosses the wire goes through
//! [`validate_relative_path`], on both sides, before it touches a filesystem.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bumped whenever a request or response changes shape incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
/// TLS application protocol; a peer speaking another major version fails the handshake.
pub const ALPN: &[u8] = b"lanspread/1";
/// Hard limit for one control frame. A file list of a large game is well under this.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// The largest range one `GetGameFileChunk` may ask for.
pub const MAX_CHUNK_LEN: u64 = 64 << 20;
/// Longest relative path accepted from the network.
pub const MAX_PATH_LEN: usize = 4096;

/// The root-level sentinel whose presence means "downloaded".
pub const VERSION_FILE: &str = "version.ini";
/// Where a new `version.ini` is written before its atomic rename.
pub const VERSION_TMP_FILE: &str = ".version.ini.tmp";
/// Where an old `version.ini` is parked while a download runs.
pub const VERSION_DISCARDED_FILE: &str = ".version.ini.discarded";
/// The installed game; never announced or served.
pub const LOCAL_DIR: &str = "local";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check and handshake; the answer carries the peer's identity.
    Ping(Hello),
    ListGames,
    GetGame {
        id: String,
    },
    /// The whole file: a `FileData` header, then exactly `size` raw bytes.
    GetGameFileData {
        id: String,
        path: String,
    },
    /// A byte range: a `FileChunk` header, then exactly `len` raw bytes.
    GetGameFileChunk {
        id: String,
        path: String,
        offset: u64,
        len: u64,
    },
    /// The game's archives expanded by the sender: `StreamInstallAccepted`, then stream frames.
    StreamInstall {
        id: String,
        version: String,
    },
}

/// Who a peer is; sent in both directions of a ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    /// Random per process; tells one peer seen at two addresses apart from two peers.
    pub peer_id: String,
    pub name: String,
    /// Changes whenever the peer's announced library changes, so others re-fetch only then.
    pub library_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong(Hello),
    Games { games: Vec<GameSummary> },
    GameDetails(GameDetails),
    FileData { size: u64 },
    FileChunk { offset: u64, len: u64 },
    StreamInstallAccepted,
    Error { kind: ErrorKind, message: String },
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request could not be parsed (garbage, wrong shape, too large).
    BadRequest,
    /// The peers speak different protocol versions.
    ProtocolMismatch,
    /// The id is not in the serving peer's catalog or not downloaded there.
    UnknownGame,
    /// The path is not a valid relative path inside a game.
    InvalidPath,
    /// The path is valid but no such file is served.
    NotFound,
    /// The byte range lies outside the file or is too long.
    InvalidRange,
    /// The server failed for a reason of its own (e.g. an I/O error).
    Internal,
    /// The request is valid but cannot be served right now; try again later.
    Busy,
}

/// What a peer announces about one downloaded game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSummary {
    pub id: String,
    pub name: String,
    pub version: String,
    /// Total size of the served files in bytes.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameDetails {
    pub id: String,
    pub version: String,
    pub files: Vec<GameFileDescription>,
}

/// One entry of a game's file list. `path` is relative to the game root and `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GameFileDescription {
    pub path: String,
    pub size: u64,
    pub is_dir: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("stream ended before a complete frame")]
    Truncated,
    #[error("stream I/O failed: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(err)
        }
    }
}

/// Writes one length-prefixed JSON frame.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(message)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: body.len() });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge { len: body.len() })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    Ok(())
}

/// Reads one length-prefixed JSON frame, rejecting oversized ones before reading their body.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len_bytes = [0u8; 4];
    reader.read_exact(&mut len_bytes).await?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("path {0:?} is absolute")]
    Absolute(String),
    #[error("path {0:?} must use '/' separators and no NUL bytes")]
    BadCharacter(String),
    #[error("path {0:?} has an empty, '.' or '..' component")]
    BadComponent(String),
    #[error("path {0:?} names a reserved entry")]
    Reserved(String),
    #[error("game id {0:?} must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit")]
    BadGameId(String),
}

/// Names inside a game root that belong to lanspread, never to the game's payload.
pub fn is_reserved_name(name: &str) -> bool {
    name.starts_with(".local.")
        || name.starts_with(".lanspread")
        || name == VERSION_TMP_FILE
        || name == VERSION_DISCARDED_FILE
}

/// The one validator for relative paths from the network (server and client side):
/// non-empty, `/`-separated, not absolute, no empty/`.`/`..` components, and
/// nothing reserved (`local/` at the root, `.local.*`, `.lanspread*`, temp sentinels).
pub fn validate_relative_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') || path.starts_with('\\') || has_drive_prefix(path) {
        return Err(PathError::Absolute(path.to_owned()));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(PathError::BadCharacter(path.to_owned()));
    }
    for (index, component) in path.split('/').enumerate() {
        if component.is_empty() || component == "." || component == ".." {
            return Err(PathError::BadComponent(path.to_owned()));
        }
        if is_reserved_name(component) || (index == 0 && component == LOCAL_DIR) {
            return Err(PathError::Reserved(path.to_owned()));
        }
    }
    Ok(())
}

fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Game ids name directories directly under the game dir, so they are kept to a safe alphabet.
pub fn validate_game_id(id: &str) -> Result<(), PathError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(PathError::BadGameId(id.to_owned()))
    }
}

/// Validates `relative` and joins it onto `root` component by component.
pub fn resolve_in_root(root: &Path, relative: &str) -> Result<PathBuf, PathError> {
    validate_relative_path(relative)?;
    let mut path = root.to_path_buf();
    path.extend(relative.split('/'));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_relative_paths() {
        for path in [
            "game.rar",
            "data/maps/dm1.pk3",
            "a b/c-d_e.f",
            "localdata/x",
            "sub/local",
        ] {
            assert_eq!(validate_relative_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn rejects_traversal_absolute_and_reserved_paths() {
        let cases = [
            ("", PathError::Empty),
            ("../../etc/passwd", PathError::BadComponent("../../etc/passwd".into())),
            ("a/../b", PathError::BadComponent("a/../b".into())),
            ("a//b", PathError::BadComponent("a//b".into())),
            ("./a", PathError::BadComponent("./a".into())),
            ("a/", PathError::BadComponent("a/".into())),
            ("/etc/passwd", PathError::Absolute("/etc/passwd".into())),
            ("C:/windows", PathError::Absolute("C:/windows".into())),
            ("a\\..\\b", PathError::BadCharacter("a\\..\\b".into())),
            ("a\0b", PathError::BadCharacter("a\0b".into())),
            ("local/game.exe", PathError::Reserved("local/game.exe".into())),
            (".local.installing/x", PathError::Reserved(".local.installing/x".into())),
            ("x/.lanspread_owned", PathError::Reserved("x/.lanspread_owned".into())),
            (".version.ini.tmp", PathError::Reserved(".version.ini.tmp".into())),
        ];
        for (path, expected) in cases {
            assert_eq!(validate_relative_path(path), Err(expected), "{path:?}");
        }
        assert_eq!(validate_relative_path(&"a/".repeat(3000)), Err(PathError::TooLong));
    }

    #[test]
    fn game_ids_are_safe_directory_names() {
        assert!(validate_game_id("openarena").is_ok());
        assert!(validate_game_id("cs1.6_x-y").is_ok());
        for bad in ["", "..", ".hidden", "A", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_game_id(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_rejected() {
        let request = Request::GetGameFileChunk {
            id: "openarena".into(),
            path: "data.pk3".into(),
            offset: 10,
            len: 20,
        };
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &request).await.unwrap();
        let decoded: Request = read_frame(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(decoded, request);

        let mut oversized = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        oversized.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut oversized.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        let mut truncated = 10u32.to_be_bytes().to_vec();
        truncated.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut truncated.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::Truncated), "{err}");

        let mut wrong_shape = Vec::new();
        write_frame(&mut wrong_shape, &serde_json::json!({"type": "get_game", "idd": 3}))
            .await
            .unwrap();
        let err = read_frame::<_, Request>(&mut wrong_shape.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }
}
