//! How an idle worker sleeps and how the main thread wakes it.
//!
//! Each worker has a [`Parker`]: a state word that is `AWAKE` while it runs,
//! `SLEEPING` from the moment it decides to sleep, and `NOTIFIED` once the
//! main thread has claimed the duty of waking it. The sleeper parks its thread
//! while the word says `SLEEPING`; the waker moves the word to `NOTIFIED` by
//! CAS before unparking, so a worker is woken at most once per sleep however
//! many jobs arrive meanwhile.
//!
//! The race that matters is a worker deciding to sleep just as the main
//! thread publishes work for it. Both sides follow the store-fence-load
//! pattern (Dekker's):
//!
//! ```text
//! worker                               main thread
//! state = SLEEPING; sleepers += 1      publish job / set flag
//! fence(SeqCst)                        fence(SeqCst)
//! re-check for work and flags          if state == SLEEPING: wake
//! ```
//!
//! The two SeqCst fences are totally ordered, so at least one side sees the
//! other's store: either the worker finds the work and does not sleep, or the
//! main thread finds it sleeping and wakes it. The main thread pays the fence
//! at commit points (`Pool::commit`, activation, drain, stop) and when a
//! cheap check says somebody sleeps. A shared-inbox publish does one Relaxed
//! load of the pool's sleeper count and fences only when it is non-zero; a
//! committed private publish loads its worker's state word instead; an
//! uncommitted one loads nothing. A publish whose Relaxed load missed a
//! sleeper is caught by the next commit point, which Valkey reaches before
//! its event loop blocks and before every wait on a worker.

use crate::sync::{fence, AtomicU32, AtomicUsize, Ordering};

const AWAKE: u32 = 0;
const SLEEPING: u32 = 1;
const NOTIFIED: u32 = 2;

/// A worker's sleep state. Written by the worker (`AWAKE` -> `SLEEPING`,
/// `* -> AWAKE`) and by the main thread (`SLEEPING` -> `NOTIFIED`).
#[derive(Debug)]
pub(crate) struct Parker {
    state: AtomicU32,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(AWAKE),
        }
    }

    /// Sleeps until woken, unless `has_reason_to_run` says otherwise after the
    /// sleep has been announced. Runs on the worker that owns the parker.
    ///
    /// `sleepers` is the pool-wide count the main thread reads on each publish.
    /// `park` blocks the thread until it is unparked (it may return early).
    pub(crate) fn sleep(
        &self,
        sleepers: &AtomicUsize,
        has_reason_to_run: impl Fn() -> bool,
        park: impl Fn(),
    ) {
        // Relaxed: ordered before the re-check by the fence below.
        self.state.store(SLEEPING, Ordering::Relaxed);
        sleepers.fetch_add(1, Ordering::Relaxed);

        // SeqCst: pairs with the fence in `wake_if_sleeping`'s callers (see
        // the module docs): after it, either we see their work or they see
        // `SLEEPING`.
        fence(Ordering::SeqCst);

        if !has_reason_to_run() {
            // Acquire: pairs with the AcqRel CAS in `wake_if_sleeping`, so
            // what the waker published before waking us is visible after.
            while self.state.load(Ordering::Acquire) == SLEEPING {
                park();
            }
        }

        // Relaxed: only this thread reads the state as AWAKE; a waker that
        // still sees SLEEPING just unparks a running thread, which is harmless
        // (the next `park` returns at once and the loop above re-checks).
        self.state.store(AWAKE, Ordering::Relaxed);
        sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Claims the wake-up of a sleeping worker. Returns true when the caller
    /// must now unpark the worker's thread. Called by the main thread after a
    /// SeqCst fence that follows whatever it published.
    pub(crate) fn wake_if_sleeping(&self) -> bool {
        // AcqRel: the Release half pairs with the Acquire load in `sleep`, so
        // what the caller published is visible to the woken worker. The
        // Acquire half pairs with nothing (the worker stores SLEEPING
        // Relaxed); the caller's SeqCst fence is what orders this CAS after
        // the publication.
        self.state
            .compare_exchange(SLEEPING, NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the worker has announced a sleep nobody has claimed yet.
    pub(crate) fn is_sleeping(&self) -> bool {
        self.state.load(Ordering::Relaxed) == SLEEPING
    }
}
