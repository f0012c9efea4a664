//! A worker thread: its loop, its outlet to the main thread, its backlog.
//!
//! The loop takes jobs from the worker's private inbox first (in batches of
//! up to [`BATCH`]), then one job from the shared inbox, and repeats. When
//! both are empty it spins briefly, then sleeps through its [`Parker`] until
//! the main thread wakes it; a deactivated worker sleeps as soon as it is
//! idle. Results go to the outbox through the thread's [`Outlet`]; when the
//! outbox is full they wait, in order, in the outlet's backlog.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::park::Parker;
use super::{Handler, IdlePolicy, Shared};
use crate::job::Job;
use crate::ring::{mpsc, spmc, spsc, Word};
use crate::sync::{spin_loop, yield_now, Arc, AtomicBool, AtomicU64, Ordering};

/// Private-inbox jobs taken per batch.
pub const BATCH: usize = 32;

/// Empty polls before an active worker goes to sleep: long enough to ride
/// out the gap between two bursts of one event-loop iteration, short enough
/// that an idle worker costs next to nothing. Under loom a worker sleeps at
/// once: the spin is a latency measure, not part of any protocol, and each
/// poll would multiply the interleavings to explore.
const SPINS_BEFORE_SLEEP: u32 = if cfg!(loom) { 0 } else { 128 };

/// Longest wait between two retries of a full outbox.
const MAX_BACKLOG_PAUSE: Duration = Duration::from_micros(200);

/// What the main thread and a worker share about that worker.
#[derive(Debug)]
pub(crate) struct WorkerControl {
    pub(crate) parker: Parker,
    /// Written by the main thread; the worker sleeps when idle and inactive.
    pub(crate) active: AtomicBool,
    /// Written by the main thread; the worker exits at the next idle moment.
    pub(crate) stop: AtomicBool,
    /// With `stop`: exit without waiting for the outbox to take the backlog.
    pub(crate) abandon: AtomicBool,
    /// Written by the worker as its last act.
    pub(crate) exited: AtomicBool,
}

/// Per-worker counters, kept by id for the pool's lifetime so totals survive
/// a resize. Written by the worker, read by any thread.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    /// Jobs this worker has run.
    pub(crate) finished: AtomicU64,
    /// Nanoseconds spent running jobs (not spinning, not sleeping). Kept in
    /// nanoseconds so that jobs shorter than a microsecond still count.
    pub(crate) active_time_ns: AtomicU64,
}

impl WorkerStats {
    /// Adds to a counter that only this worker writes: a plain load and
    /// store, no locked read-modify-write.
    fn add(counter: &AtomicU64, n: u64) {
        // Relaxed load: this thread is the only writer.
        let current = counter.load(Ordering::Relaxed);
        // Release: pairs with the Acquire loads in `Pool::pending_jobs`, so a
        // main thread that sees the count also sees the jobs' effects.
        counter.store(current + n, Ordering::Release);
    }
}

#[cfg(not(loom))]
thread_local! {
    static WORKER_ID: Cell<usize> = const { Cell::new(0) };
    static OUTLET: RefCell<Option<Outlet>> = const { RefCell::new(None) };
}
#[cfg(loom)]
loom::thread_local! {
    static WORKER_ID: Cell<usize> = Cell::new(0);
    static OUTLET: RefCell<Option<Outlet>> = RefCell::new(None);
}

/// Runs `f` on the calling thread's outlet slot. (`LocalKey::with_borrow_mut`
/// would do, but loom's `LocalKey` lacks it.)
fn with_outlet<R>(f: impl FnOnce(&mut Option<Outlet>) -> R) -> R {
    OUTLET.with(|outlet| f(&mut outlet.borrow_mut()))
}

/// The id of the calling thread: 0 for any thread that is not a pool worker.
pub fn current_worker_id() -> usize {
    WORKER_ID.with(Cell::get)
}

/// Sends a result to the main thread from a worker: through the outbox, or,
/// when it is full, through the worker's backlog (flushed before its next
/// result, when it is idle, and before it exits). Never blocks.
///
/// Panics when called from a thread that is not a pool worker.
#[track_caller]
pub fn send_to_main(result: Job) {
    with_outlet(|outlet| {
        outlet
            .as_mut()
            .expect("send_to_main called from a thread that is not an I/O worker")
            .send(result)
    })
}

/// A worker's way out: its outbox producer (with its reservation ticket) and
/// the backlog of results the outbox had no room for.
struct Outlet {
    outbox: mpsc::Producer,
    backlog: VecDeque<Word>,
}

impl Outlet {
    fn send(&mut self, result: Job) {
        if !self.backlog.is_empty() {
            self.flush();
        }
        if self.backlog.is_empty() && self.outbox.push(result.word()).is_ok() {
            return;
        }
        self.backlog.push_back(result.word());
    }

    /// Moves as much of the backlog as fits into the outbox, oldest first.
    fn flush(&mut self) {
        while let Some(&front) = self.backlog.front() {
            if self.outbox.push(front).is_err() {
                return;
            }
            self.backlog.pop_front();
        }
    }
}

/// What a worker thread needs; moved into the thread when it is spawned.
pub(crate) struct Worker<H: Handler> {
    pub(crate) id: usize,
    pub(crate) idle: IdlePolicy,
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: Arc<WorkerControl>,
    pub(crate) inbox: spsc::Consumer,
    pub(crate) shared_inbox: spmc::Consumer,
    pub(crate) outbox: mpsc::Producer,
    pub(crate) handler: Arc<H>,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn run(mut self) {
        WORKER_ID.with(|id| id.set(self.id));
        with_outlet(|outlet| {
            *outlet = Some(Outlet {
                outbox: self.outbox.clone(),
                backlog: VecDeque::new(),
            })
        });
        self.handler.on_start(self.id);

        self.serve();

        self.finish_backlog();
        self.handler.on_exit(self.id);
        with_outlet(|outlet| *outlet = None);
        // Release: pairs with the Acquire load in `Pool::stop_workers`; all
        // of this worker's results are in the outbox by now.
        self.control.exited.store(true, Ordering::Release);
    }

    /// Runs jobs until told to stop.
    fn serve(&mut self) {
        let mut batch = [std::ptr::null_mut(); BATCH];
        let mut idle_polls = 0u32;
        loop {
            // The clock is read before the poll, not once a job is found,
            // so that the read is off the path from a job's arrival to its
            // result. While idle it paces the spin in place of a pause hint.
            let polled_at = Instant::now();
            if self.run_available(&mut batch, polled_at) > 0 {
                idle_polls = 0;
                continue;
            }

            if Self::backlog_len() > 0 {
                // Relaxed: `abandon` is set only when the process is going
                // down; seeing it one retry late costs one more retry. Without
                // this check a worker whose backlog can never drain (nobody
                // empties the outbox any more) would never reach `stop`.
                if self.control.abandon.load(Ordering::Relaxed) {
                    return;
                }
                self.retry_backlog(&mut idle_polls);
                continue;
            }

            // Acquire: pairs with the Release store in `Pool::stop_workers`.
            if self.control.stop.load(Ordering::Acquire) {
                return;
            }

            // Relaxed: a stale answer costs one more poll or one sleep that
            // the activation's wake-up ends (see `park`).
            if self.control.active.load(Ordering::Relaxed)
                && (idle_polls < SPINS_BEFORE_SLEEP || self.idle == IdlePolicy::Spin)
            {
                idle_polls = idle_polls.saturating_add(1);
                continue;
            }

            idle_polls = 0;
            self.sleep();
        }
    }

    /// One pass: private batches until empty, then one shared job. Returns
    /// how many jobs ran and accounts for them: active time runs from
    /// `polled_at`, read just before this pass's first poll, so a pass that
    /// finds work counts its polls too (as 9.1.2 does), and an empty pass
    /// counts nothing.
    fn run_available(&mut self, batch: &mut [Word; BATCH], polled_at: Instant) -> usize {
        let mut ran = 0;

        loop {
            let n = self.inbox.pop_batch(batch);
            if n == 0 {
                break;
            }
            for &word in &batch[..n] {
                self.run_job(word);
            }
            ran += n;
        }

        if let Some(word) = self.shared_inbox.pop() {
            self.run_job(word);
            ran += 1;
        }

        if ran > 0 {
            let stats = &self.shared.stats[self.id];
            WorkerStats::add(&stats.active_time_ns, polled_at.elapsed().as_nanos() as u64);
            WorkerStats::add(&stats.finished, ran as u64);
        }
        ran
    }

    fn run_job(&self, word: Word) {
        let job = Job::from_word(word).expect("a null job word reached an I/O worker");
        self.handler.run(job);
    }

    fn backlog_len() -> usize {
        with_outlet(|outlet| outlet.as_ref().map_or(0, |o| o.backlog.len()))
    }

    /// The outbox was full: retry, pausing longer each time nothing moved.
    fn retry_backlog(&self, idle_polls: &mut u32) {
        let before = Self::backlog_len();
        with_outlet(|outlet| outlet.as_mut().map(Outlet::flush));
        if Self::backlog_len() < before {
            *idle_polls = 0;
            return;
        }
        *idle_polls = idle_polls.saturating_add(1);
        pause(*idle_polls);
    }

    /// Before exiting: every result must reach the outbox, however long the
    /// main thread takes to make room, unless the pool is being abandoned
    /// (process crash), in which case one attempt is made.
    fn finish_backlog(&self) {
        let mut attempts = 0u32;
        while Self::backlog_len() > 0 {
            with_outlet(|outlet| outlet.as_mut().map(Outlet::flush));
            // Relaxed: checked again on the next attempt.
            if self.control.abandon.load(Ordering::Relaxed) {
                return;
            }
            attempts = attempts.saturating_add(1);
            pause(attempts);
        }
    }

    fn sleep(&self) {
        let control = &*self.control;
        control.parker.sleep(
            &self.shared.sleepers,
            || {
                // Acquire on the flags pairs with the main thread's Release
                // stores; the inbox checks are the rings' own Acquire loads.
                control.stop.load(Ordering::Acquire)
                    || self.inbox.has_published()
                    || (control.active.load(Ordering::Acquire) && self.shared_inbox.has_items())
            },
            park,
        );
    }
}

/// Blocks the calling worker until it is unparked.
fn park() {
    #[cfg(not(loom))]
    std::thread::park();
    #[cfg(loom)]
    loom::thread::park();
}

/// Backs off between retries of a full outbox: spin, then yield, then sleep
/// for a growing slice of time, never longer than [`MAX_BACKLOG_PAUSE`].
fn pause(attempt: u32) {
    if attempt < 16 {
        spin_loop();
    } else if attempt < 32 || cfg!(loom) {
        yield_now();
    } else {
        let micros = 1u64 << (attempt - 32).min(8);
        std::thread::sleep(Duration::from_micros(micros).min(MAX_BACKLOG_PAUSE));
    }
}

/// Stats live in a table the pool allocates once; this is its element.
pub(crate) type StatsTable = Box<[crossbeam_utils::CachePadded<WorkerStats>]>;

pub(crate) fn new_stats_table(len: usize) -> StatsTable {
    (0..len)
        .map(|_| crossbeam_utils::CachePadded::new(WorkerStats::default()))
        .collect()
}
