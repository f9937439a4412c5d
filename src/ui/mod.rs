//! Presentation of the runtime's state to people and scripts. It reads
//! `peer` types and never drives the runtime itself.

pub mod format;
pub mod table;
