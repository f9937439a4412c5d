//! Logging: a daily-rolling file in the log dir (always, via tracing-appender)
//! and optionally stderr. `RUST_LOG` overrides the default `info` filter.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_appender::non_blocking::WorkerGuard;

use crate::disk::{CreateFolderError, create_folder};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

pub const LOG_FILE_PREFIX: &str = "lanspread.log";

#[derive(Debug, thiserror::Error)]
#[error("cannot set up logging in {}: {source}", .log_dir.display())]
pub struct LoggingError {
    pub log_dir: PathBuf,
    pub source: CreateFolderError,
}

/// Colour codes only for a person at a terminal: not into a file or a pipe, never with
/// `NO_COLOR` (any value, <https://no-color.org>).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the file.
pub fn init(log_dir: &Path, also_stderr: bool) -> Result<WorkerGuard, LoggingError> {
    let failed = |source| LoggingError {
        log_dir: log_dir.to_owned(),
        source,
    };
    create_folder(log_dir).map_err(failed)?;
    let appender = tracing_appender::rolling::daily(log_dir, LOG_FILE_PREFIX);
    let (file_writer, guard) = tracing_appender::non_blocking(appender);
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,quinn=warn,mdns_sd=warn"));
    let file_layer = fmt::layer()
        .with_writer(file_writer)
        .with_ansi(false)
        .with_filter(filter());
    let stderr_layer = also_stderr.then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour_on_stderr())
            .with_filter(filter())
    });
    let recent_layer = fmt::layer()
        .with_writer(|| RecentLines)
        .with_ansi(false)
        .with_target(false)
        .with_filter(filter());
    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .with(recent_layer)
        .try_init()
        .map_err(|err| failed(std::io::Error::other(err).into()))?;
    Ok(guard)
}

/// Log lines kept for a front end that attaches to the runtime (its snapshot's log).
const RECENT_LINES: usize = 200;
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The last lines logged, oldest first.
pub fn recent_lines() -> Vec<String> {
    RECENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Where the recent-lines layer writes: one formatted event per write.
struct RecentLines;

impl std::io::Write for RecentLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut recent = RECENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(line.to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
