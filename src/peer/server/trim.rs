//! Giving memory that served streams freed back to the system.
//!
//! glibc's malloc gives memory back to the system on its own only from the top
//! of a heap; memory freed below a long-lived allocation stays resident. So a
//! burst of streams (an attack of un-ACKed chunk requests, or just a busy
//! party) can leave the process near its peak long after the streams ended:
//! measured with `tests/hostile_peers.rs`, 103 MiB of a 104 MiB peak stayed
//! resident for more than 30 s after the attacker's connections were closed,
//! against 19 MiB 8 s after with this trim. `malloc_trim` returns the free
//! pages of every arena; it costs a few milliseconds, so it runs at most once
//! per [`TRIM_INTERVAL`], only after a stream ended, on a blocking thread.
//! (Another allocator would do this by itself, for a C dependency and a
//! second allocator to reason about.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const TRIM_INTERVAL: Duration = Duration::from_secs(2);

/// Set when a stream ends; the server's trim tick clears it and trims.
#[derive(Default)]
pub struct FreedMemory(AtomicBool);

impl FreedMemory {
    pub fn stream_ended(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Trims (on a blocking thread) if a stream ended since the last call.
    pub fn trim_if_freed(&self) {
        if self.0.swap(false, Ordering::Relaxed) {
            tokio::task::spawn_blocking(release_free_pages);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the crate's one unsafe block: a plain libc call with no pointers
fn release_free_pages() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) return memory by themselves or offer no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}
