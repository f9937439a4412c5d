//! Streamed install: the sender expands its archives and streams the files;
//! the receiver writes them straight into staging, checks each file's CRC32
//! and promotes to `local/`, never storing the archives.

pub mod receiver;
pub mod sink;
pub mod wire;
