//! lanspread: share PC games across a LAN. See README.md for the architecture map.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod beneath;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod content;
pub mod control;
pub mod demo;
pub mod disk;
pub mod durable;
pub mod install;
pub mod layout;
pub mod library;
pub mod logging;
pub mod peer;
pub mod proto;
pub mod systemd;
pub mod ui;
pub mod untrusted;
