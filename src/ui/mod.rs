//! Presentation of the runtime's state to people and scripts. It reads
//! `peer` types and drives the runtime only through `PeerCommand`s.
//!
//! The TUI: [`app`] holds the state (pure), [`input`] maps keys to actions
//! (one table, which also makes the help overlay), [`render`] and [`panes`]
//! draw `&App`, [`terminal`] owns the terminal, [`run`] is the event loop.
//!
//! The line-mode front end of the commands that print lines ([`line`]) sits beside it.

pub mod app;
pub mod format;
pub mod input;
pub mod line;
pub mod panes;
pub mod render;
pub mod run;
pub mod saved;
pub mod table;
pub mod terminal;
#[cfg(test)]
mod test_support;
pub mod text;

pub use app::Attachment;
pub use run::{TuiContext, TuiError, require_terminal, run_tui, run_tui_on};
