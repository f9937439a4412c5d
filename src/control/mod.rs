//! The control socket: one runtime per state dir, and every front end (the TUI, `get`,
//! `status`, ...) talks to it. `wire` is what a front end and a runtime say; `socket` is
//! the socket's file (0600, stale ones replaced). Serving sessions on it comes next.

pub mod client;
pub mod hub;
pub mod socket;
pub mod wire;
