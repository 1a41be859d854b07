//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a burst of connections freed inside its heaps, so
//! without help a relay that once held many peers keeps their memory after they
//! leave. After connections close or finish their handshakes, and after streams
//! end (debounced: one pass per [`TRIM_AFTER`] however many), the service asks
//! the allocator to return every free page.

pub mod tuning;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// How long after a close the trim runs: a wave of closes costs one pass.
pub const TRIM_AFTER: Duration = Duration::from_secs(1);

/// Tells the trimmer that memory was freed.
#[derive(Debug, Clone, Default)]
pub struct Freed(Arc<Notify>);

impl Freed {
    /// Something sizeable was freed (a connection closed).
    pub fn note(&self) {
        self.0.notify_one();
    }

    /// Runs until the runtime ends: after each [`Freed::note`], waits
    /// [`TRIM_AFTER`] and returns free memory to the system.
    pub async fn trim_forever(self) {
        loop {
            self.0.notified().await;
            tokio::time::sleep(TRIM_AFTER).await;
            // Walking the heaps takes a few milliseconds on a big one: off the
            // workers.
            let started = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(return_free_pages).await;
            tracing::debug!(
                took_us = started.elapsed().as_micros() as u64,
                "returned free memory to the system"
            );
        }
    }
}

/// Returns the allocator's free pages to the system (glibc only; elsewhere the
/// allocator does its own thing).
#[allow(unsafe_code)]
pub fn return_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes the
    // allocator's locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn freed_memory_between_live_blocks_goes_back_to_the_system() {
        // 64 MiB in 16 KiB pieces (below glibc's mmap threshold, so inside a
        // heap), every 64th kept: the heap cannot shrink from the top.
        let mut pieces: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 16 << 10]).collect();
        let kept: Vec<Vec<u8>> = pieces.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(pieces);
        let before = rss_kib();
        return_free_pages();
        let after = rss_kib();
        assert!(
            before.saturating_sub(after) > 32 << 10,
            "trim gave back too little: {before} KiB -> {after} KiB"
        );
        assert_eq!(kept.len(), 64);
    }

    #[tokio::test(start_paused = true)]
    async fn notes_are_debounced_and_the_trimmer_keeps_running() {
        let freed = Freed::default();
        let task = tokio::spawn(freed.clone().trim_forever());
        freed.note();
        freed.note();
        tokio::time::sleep(TRIM_AFTER * 3).await;
        freed.note();
        tokio::time::sleep(TRIM_AFTER * 3).await;
        assert!(!task.is_finished());
        task.abort();
    }
}
