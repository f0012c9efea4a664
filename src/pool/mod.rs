//! The I/O worker pool, knowing nothing of Valkey.
//!
//! Thread 0 is the caller, the *main thread*, which owns the [`Pool`] and is
//! the only thread that submits jobs or takes results. Workers have ids
//! `1..threads()`. Each has a private inbox (SPSC); all share one inbox
//! (SPMC); results come back through one outbox (MPSC). A job is a tagged
//! word ([`Job`]) handed to the embedder's [`Handler`] on a worker; a handler
//! answers with [`send_to_main`].
//!
//! Protocols (each documented where it lives, and in
//! `design-docs/pool.md`):
//! - **activation**: the first `k` workers are active; the rest sleep as soon
//!   as they run out of work ([`Pool::set_active`]);
//! - **parking**: an idle worker spins briefly, then sleeps until the main
//!   thread publishes work for it; no wake-up is lost (`park`);
//! - **backlog**: a worker whose result finds the outbox full keeps it, in
//!   order, and retries; it never blocks on the outbox (`worker`);
//! - **drain**: waits until every submitted job has run while moving results
//!   out of the outbox into a holding list, so workers stuck on a full outbox
//!   always make progress ([`Pool::drain`]);
//! - **resize**: drain, deactivate, then spawn or stop workers; stopping is
//!   cooperative and waits for each worker's backlog ([`Pool::resize`]).

mod affinity;
mod park;
pub mod scaling;
mod worker;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use affinity::{parse_cpulist, CpuListError};
pub use worker::{current_worker_id, send_to_main, BATCH};

use crate::job::Job;
use crate::ring::{mpsc, spmc, spsc, Word};
use crate::sync::{fence, thread, yield_now, Arc, AtomicBool, AtomicUsize, Ordering};
use worker::{new_stats_table, StatsTable, Worker, WorkerControl};

/// What the embedder runs on the workers.
pub trait Handler: Send + Sync + 'static {
    /// Runs one job on the calling worker.
    fn run(&self, job: Job);
    /// Called on a new worker before it takes any job.
    fn on_start(&self, _id: usize) {}
    /// Called on a worker after its last job and its last result.
    fn on_exit(&self, _id: usize) {}
}

/// Sizes and thread set-up. The defaults are Valkey 9.1.2's.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most threads, the main thread included (`IO_THREADS_MAX_NUM`).
    pub max_threads: usize,
    pub shared_inbox_capacity: usize,
    pub private_inbox_capacity: usize,
    pub outbox_capacity: usize,
    /// CPUs the workers may run on, in Valkey's `server-cpulist` syntax.
    pub cpus: Option<Vec<usize>>,
    pub stack_size: usize,
    /// Workers are named `{name_prefix}{id}`.
    pub name_prefix: String,
    /// What an idle active worker does; [`IdlePolicy::Park`] unless
    /// benchmarking against 9.1.2's behaviour.
    pub idle: IdlePolicy,
}

/// What an active worker does when it finds no job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Poll briefly, then sleep until the main thread publishes work.
    #[default]
    Park,
    /// Poll forever, as Valkey 9.1.2's workers do: an idle active worker
    /// burns its CPU. Deactivated workers still sleep. For benchmarks that
    /// compare against 9.1.2; never the right choice in production.
    Spin,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_threads: 256,
            shared_inbox_capacity: 4096,
            private_inbox_capacity: 4096,
            outbox_capacity: 16384,
            cpus: None,
            stack_size: 8 << 20,
            name_prefix: "io_thd_".to_owned(),
            idle: IdlePolicy::Park,
        }
    }
}

/// State the main thread and all workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Workers that have announced a sleep (see `park`). Workers write it,
    /// the main thread reads it on every publish.
    pub(crate) sleepers: AtomicUsize,
    /// Per-id counters, indexed by worker id.
    pub(crate) stats: StatsTable,
    /// Every running worker, for [`Remote::abandon`]: written by the main
    /// thread when it spawns or joins a worker, read by whichever thread
    /// abandons the pool. Never held across anything that can block.
    roster: Mutex<Vec<RosterEntry>>,
}

impl Shared {
    fn active_time_us(&self, id: usize) -> u64 {
        self.stats
            .get(id)
            // Relaxed: a statistic; nothing is read through it.
            .map_or(0, |stats| {
                stats.active_time_ns.load(Ordering::Relaxed) / 1000
            })
    }
}

/// What [`Remote::abandon`] needs of one worker.
#[derive(Debug)]
struct RosterEntry {
    id: usize,
    control: Arc<WorkerControl>,
    thread: thread::Thread,
}

/// The part of the pool any thread may use without the main thread's
/// [`Pool`]: the workers' statistics, and abandoning them when the process
/// goes down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl Remote {
    /// Microseconds worker `id` has spent running jobs; 0 for an id that
    /// never ran.
    pub fn active_time_us(&self, id: usize) -> u64 {
        self.shared.active_time_us(id)
    }

    /// Tells every worker to stop without delivering its backlog, wakes
    /// the sleeping ones, and waits at most `timeout` for them to exit (the
    /// calling worker, if it is one, is not waited for). Returns how many
    /// exited. Joins nothing and never blocks beyond `timeout`: when the
    /// main thread is spawning or joining a worker at that moment, it gives
    /// up at once and returns 0.
    pub fn abandon(&self, timeout: Duration) -> usize {
        let Ok(roster) = self.shared.roster.try_lock() else {
            return 0;
        };
        for worker in roster.iter() {
            // Relaxed, then the Release store of `stop` orders it.
            worker.control.abandon.store(true, Ordering::Relaxed);
            // Release: pairs with the Acquire load in the worker's loop.
            worker.control.stop.store(true, Ordering::Release);
        }
        // SeqCst: the main thread's side of the sleep/wake handshake (see
        // `park`): a worker re-checking after its own fence sees `stop`, or
        // we see it sleeping below. Every worker is unparked anyway.
        fence(Ordering::SeqCst);
        for worker in roster.iter() {
            worker.control.parker.wake_if_sleeping();
            worker.thread.unpark();
        }

        let me = current_worker_id();
        let deadline = Instant::now() + timeout;
        let mut exited = 0;
        for worker in roster.iter().filter(|worker| worker.id != me) {
            // Acquire: pairs with the Release store at the end of `Worker::run`.
            while !worker.control.exited.load(Ordering::Acquire) && Instant::now() < deadline {
                yield_now();
            }
            if worker.control.exited.load(Ordering::Acquire) {
                exited += 1;
            }
        }
        exited
    }
}

/// The main thread's view of one worker.
struct WorkerHandle {
    control: Arc<WorkerControl>,
    inbox: spsc::Producer,
    thread: Option<thread::JoinHandle<()>>,
}

impl WorkerHandle {
    fn unpark(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

/// The pool. Owned and used by the main thread only (it is neither `Sync`
/// nor `Send`).
pub struct Pool<H: Handler> {
    config: PoolConfig,
    handler: Arc<H>,
    shared: Arc<Shared>,
    shared_inbox: spmc::Producer,
    shared_inbox_consumer: spmc::Consumer,
    outbox: mpsc::Consumer,
    outbox_producer: mpsc::Producer,
    /// `workers[i]` is worker `i + 1`.
    workers: Vec<WorkerHandle>,
    active: usize,
    /// Jobs accepted by an inbox; only the main thread writes it.
    submitted: u64,
    /// Highest worker id ever spawned, plus one: the stats to sum.
    ids_used: usize,
    /// Results taken out of the outbox by a drain or a stop, oldest first;
    /// handed out by `pop_results` before anything still in the outbox.
    holding: VecDeque<Word>,
    /// Set by `abandon`: the workers are gone or stuck, so dropping the pool
    /// must neither drain nor wait for them.
    abandoned: bool,
    _main_thread_only: PhantomData<*mut ()>,
}

impl<H: Handler> Pool<H> {
    /// A pool with no workers yet (`threads() == 1`).
    #[track_caller]
    pub fn new(config: PoolConfig, handler: Arc<H>) -> Self {
        assert!(
            config.max_threads >= 1,
            "a pool needs room for at least the main thread"
        );
        let (shared_inbox, shared_inbox_consumer) = spmc::channel(config.shared_inbox_capacity);
        let (outbox_producer, outbox) = mpsc::channel(config.outbox_capacity);
        // Validate the private inbox size now rather than at the first spawn.
        crate::ring::check_capacity("SPSC", config.private_inbox_capacity);
        let shared = Arc::new(Shared {
            sleepers: AtomicUsize::new(0),
            stats: new_stats_table(config.max_threads),
            roster: Mutex::new(Vec::new()),
        });
        Self {
            config,
            handler,
            shared,
            shared_inbox,
            shared_inbox_consumer,
            outbox,
            outbox_producer,
            workers: Vec::new(),
            active: 1,
            submitted: 0,
            ids_used: 1,
            holding: VecDeque::new(),
            abandoned: false,
            _main_thread_only: PhantomData,
        }
    }

    /// Threads, the main thread included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Active threads, the main thread included: workers `1..active()` run.
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Sets the thread count to `threads`: drains, deactivates every worker,
    /// then spawns the missing workers or stops the surplus ones. New
    /// workers start inactive.
    #[track_caller]
    pub fn resize(&mut self, threads: usize) {
        assert!(
            (1..=self.config.max_threads).contains(&threads),
            "I/O thread count {threads} is outside 1..={}",
            self.config.max_threads
        );
        self.drain();
        self.set_active(1);
        if threads > self.threads() {
            for id in self.threads()..threads {
                self.spawn(id);
            }
        } else if threads < self.threads() {
            self.stop_workers(threads);
        }
    }

    fn spawn(&mut self, id: usize) {
        let (inbox, inbox_consumer) = spsc::channel(self.config.private_inbox_capacity);
        let control = Arc::new(WorkerControl {
            parker: park::Parker::new(),
            active: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            exited: AtomicBool::new(false),
        });
        let worker = Worker {
            id,
            idle: self.config.idle,
            shared: self.shared.clone(),
            control: control.clone(),
            inbox: inbox_consumer,
            shared_inbox: self.shared_inbox_consumer.clone(),
            outbox: self.outbox_producer.clone(),
            handler: self.handler.clone(),
        };
        let cpus = self.config.cpus.clone();
        let thread = thread::Builder::new()
            .name(format!("{}{id}", self.config.name_prefix))
            .stack_size(self.config.stack_size)
            .spawn(move || {
                if let Some(cpus) = cpus {
                    affinity::pin_current_thread(&cpus);
                }
                worker.run();
            })
            .unwrap_or_else(|err| panic!("cannot start I/O thread {id}: {err}"));
        self.roster().push(RosterEntry {
            id,
            control: control.clone(),
            thread: thread.thread().clone(),
        });
        self.workers.push(WorkerHandle {
            control,
            inbox,
            thread: Some(thread),
        });
        self.ids_used = self.ids_used.max(id + 1);
    }

    /// Makes workers `1..active` active and the rest inactive. Inactive
    /// workers finish what their inboxes hold, then sleep until activated.
    #[track_caller]
    pub fn set_active(&mut self, active: usize) {
        assert!(
            (1..=self.threads()).contains(&active),
            "active I/O thread count {active} is outside 1..={}",
            self.threads()
        );
        for (i, worker) in self.workers.iter().enumerate() {
            // Release: pairs with the Acquire load in the worker's sleep
            // re-check.
            worker
                .control
                .active
                .store(i + 1 < active, Ordering::Release);
        }
        self.active = active;

        // SeqCst: the main thread's side of the sleep/wake handshake (see
        // `park`): a worker that re-checks after its own fence sees the flag,
        // or we see it sleeping below.
        fence(Ordering::SeqCst);
        for worker in &self.workers[..active - 1] {
            if worker.control.parker.wake_if_sleeping() {
                worker.unpark();
            }
        }
    }

    /// Puts `job` in the shared inbox; gives it back when the inbox is full
    /// or the pool has no worker to run it.
    #[inline]
    pub fn try_submit_shared(&mut self, job: Job) -> Result<(), Job> {
        if self.workers.is_empty() {
            return Err(job);
        }
        self.shared_inbox.push(job.word()).map_err(|_| job)?;
        self.submitted += 1;
        // Relaxed: the cheap half of the handshake; `commit` is the full one.
        if self.shared.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_for_shared(1);
        }
        Ok(())
    }

    /// Whether worker `id`'s private inbox has no room (publishing what it
    /// holds if so).
    #[track_caller]
    pub fn private_inbox_is_full(&mut self, id: usize) -> bool {
        self.worker_mut(id).inbox.is_full()
    }

    /// Whether worker `id` has taken everything put in its private inbox,
    /// published or not.
    #[track_caller]
    pub fn private_inbox_is_empty(&mut self, id: usize) -> bool {
        self.worker_mut(id).inbox.is_empty()
    }

    /// Puts `job` in worker `id`'s private inbox, publishing it now when
    /// `commit` is true, or at the next [`commit`](Self::commit). Gives the
    /// job back when the inbox is full.
    #[track_caller]
    #[inline]
    pub fn try_submit_private(&mut self, id: usize, job: Job, commit: bool) -> Result<(), Job> {
        let worker = self.worker_mut(id);
        worker.inbox.push(job.word(), commit).map_err(|_| job)?;
        self.submitted += 1;
        if commit {
            let worker = self.worker(id);
            if worker.control.parker.is_sleeping() {
                fence(Ordering::SeqCst);
                if worker.control.parker.wake_if_sleeping() {
                    worker.unpark();
                }
            }
        }
        Ok(())
    }

    /// Publishes every private inbox's pending jobs and wakes any sleeping
    /// worker that has work. After `commit`, every submitted job will run.
    pub fn commit(&mut self) {
        for worker in &mut self.workers {
            worker.inbox.commit();
        }

        // SeqCst: the main thread's side of the sleep/wake handshake (see
        // `park`): any worker that announced its sleep before this fence is
        // counted below; any that announces it later sees our jobs.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.shared.sleepers.load(Ordering::Relaxed) == 0 {
            return;
        }

        for worker in &mut self.workers {
            if worker.control.parker.is_sleeping()
                && !worker.inbox.is_empty()
                && worker.control.parker.wake_if_sleeping()
            {
                worker.unpark();
            }
        }
        let queued = self.shared_inbox.len();
        if queued > 0 {
            self.wake_for_shared(queued);
        }
    }

    /// Wakes up to `n` sleeping active workers for shared-inbox jobs.
    #[cold]
    fn wake_for_shared(&self, mut n: usize) {
        // SeqCst: as in `commit`.
        fence(Ordering::SeqCst);
        for worker in &self.workers[..self.active - 1] {
            if n == 0 {
                return;
            }
            if worker.control.parker.wake_if_sleeping() {
                worker.unpark();
                n -= 1;
            }
        }
    }

    /// Approximate number of jobs waiting in the shared inbox.
    pub fn shared_inbox_len(&self) -> usize {
        self.shared_inbox.len()
    }

    /// Whether every job put in the shared inbox has been taken.
    pub fn shared_inbox_is_empty(&mut self) -> bool {
        self.shared_inbox.is_empty()
    }

    /// Jobs submitted that have not finished running.
    pub fn pending_jobs(&self) -> u64 {
        let finished: u64 = self.shared.stats[1..self.ids_used]
            .iter()
            // Acquire: pairs with the Release store in `WorkerStats::add`.
            .map(|stats| stats.finished.load(Ordering::Acquire))
            .sum();
        self.submitted - finished
    }

    /// Workers that have announced a sleep and not yet woken: a snapshot,
    /// stale as soon as it is read. A worker counted here while inactive
    /// takes no shared job until it is activated again.
    pub fn sleeping_workers(&self) -> usize {
        // Relaxed: a count for the caller to look at; nothing is published
        // through it.
        self.shared.sleepers.load(Ordering::Relaxed)
    }

    /// Jobs accepted by an inbox since the pool was created.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Moves up to `out.len()` results into `out`, oldest first: those a
    /// drain or stop set aside, then those in the outbox. Fewer than
    /// `out.len()` means the outbox had nothing more to give: a short pop
    /// from the ring may only mean that its cached tail ran out, so the
    /// outbox is asked again until it fills `out` or gives nothing, as 9.1.2
    /// fills its response batches.
    pub fn pop_results(&mut self, out: &mut [Word]) -> usize {
        let mut n = 0;
        while n < out.len() {
            match self.holding.pop_front() {
                Some(result) => {
                    out[n] = result;
                    n += 1;
                }
                None => break,
            }
        }

        while n < out.len() {
            let popped = self.outbox.pop_batch(&mut out[n..]);
            if popped == 0 {
                break;
            }
            n += popped;
        }
        n
    }

    /// Results already out of the outbox, waiting in the holding list.
    pub fn held_results(&self) -> usize {
        self.holding.len()
    }

    /// Moves everything in the outbox to the holding list, making room for
    /// workers' backlogs. Returns how many results moved.
    fn hold_results(&mut self) -> usize {
        let mut batch = [std::ptr::null_mut(); 64];
        let mut moved = 0;
        loop {
            let n = self.outbox.pop_batch(&mut batch);
            if n == 0 {
                return moved;
            }
            self.holding.extend(&batch[..n]);
            moved += n;
        }
    }

    /// Returns once every submitted job has run.
    ///
    /// While it waits, it keeps the outbox empty by moving results into the
    /// holding list, so a worker whose results found the outbox full always
    /// gets room: the drain cannot deadlock however many jobs are in flight.
    /// Inactive workers are activated for the drain and deactivated after.
    pub fn drain(&mut self) {
        self.commit();
        if self.pending_jobs() == 0 {
            return;
        }

        let active = self.active;
        if active < self.threads() {
            self.set_active(self.threads());
        }
        let mut idle_rounds = 0u32;
        while self.pending_jobs() != 0 {
            if self.hold_results() > 0 {
                idle_rounds = 0;
            } else {
                idle_rounds = idle_rounds.saturating_add(1);
                wait_a_little(idle_rounds);
                if idle_rounds % 64 == 0 {
                    // A sleeper that missed a cheap wake-up is caught here.
                    self.commit();
                }
            }
        }
        if active < self.threads() {
            self.set_active(active);
        }
    }

    /// Stops workers `first_id..threads()` cooperatively: each finishes its
    /// current job and delivers its backlog, exits, and is joined. Their
    /// inboxes must be empty (the caller drained).
    fn stop_workers(&mut self, first_id: usize) {
        let stopping = first_id - 1..self.workers.len();
        for worker in &self.workers[stopping.clone()] {
            // Release: pairs with the Acquire load in the worker's loop.
            worker.control.stop.store(true, Ordering::Release);
        }
        // SeqCst: the sleep/wake handshake (see `park`).
        fence(Ordering::SeqCst);
        for worker in &self.workers[stopping.clone()] {
            worker.control.parker.wake_if_sleeping();
            worker.unpark();
        }

        let mut idle_rounds = 0u32;
        // Acquire: pairs with the Release store of `exited` at the end of
        // `Worker::run`.
        while !self.workers[stopping.clone()]
            .iter()
            .all(|worker| worker.control.exited.load(Ordering::Acquire))
        {
            if self.hold_results() > 0 {
                idle_rounds = 0;
            } else {
                idle_rounds = idle_rounds.saturating_add(1);
                wait_a_little(idle_rounds);
            }
        }
        for mut worker in self.workers.drain(stopping) {
            if let Some(thread) = worker.thread.take() {
                if thread.join().is_err() {
                    panic!("an I/O thread panicked while stopping");
                }
            }
        }
        self.roster().retain(|worker| worker.id < first_id);
    }

    /// The roster, for the main thread, which is its only writer: the lock
    /// is only ever contended by an abandoning thread, which does not wait.
    fn roster(&self) -> std::sync::MutexGuard<'_, Vec<RosterEntry>> {
        // A poisoned lock only means a panic elsewhere; the list is intact.
        self.shared
            .roster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A handle on the pool's statistics and on [`Remote::abandon`], for
    /// threads other than the main thread.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.shared.clone(),
        }
    }

    /// Stops every worker without waiting for results to be taken, for use
    /// when the process is going down (Valkey's crash handler). Waits at
    /// most `timeout` for workers to exit; ones that do not (stuck, or the
    /// thread that crashed) are left running. Returns how many exited.
    ///
    /// May be called from any thread, including a worker.
    pub fn abandon(&mut self, timeout: Duration) -> usize {
        self.abandoned = true;
        let exited = self.remote().abandon(timeout);
        for worker in &mut self.workers {
            // Acquire: pairs with the Release store at the end of `Worker::run`.
            if worker.control.exited.load(Ordering::Acquire) {
                if let Some(thread) = worker.thread.take() {
                    let _ = thread.join();
                }
            }
        }
        exited
    }

    /// Microseconds worker `id` has spent running jobs.
    pub fn active_time_us(&self, id: usize) -> u64 {
        self.shared.active_time_us(id)
    }

    /// Jobs worker `id` has run.
    pub fn finished_by(&self, id: usize) -> u64 {
        self.shared
            .stats
            .get(id)
            .map_or(0, |stats| stats.finished.load(Ordering::Acquire))
    }

    #[track_caller]
    fn worker(&self, id: usize) -> &WorkerHandle {
        match id.checked_sub(1).and_then(|i| self.workers.get(i)) {
            Some(worker) => worker,
            None => panic!(
                "no I/O worker with id {id} (workers are 1..{})",
                self.threads()
            ),
        }
    }

    #[track_caller]
    fn worker_mut(&mut self, id: usize) -> &mut WorkerHandle {
        let threads = self.threads();
        match id.checked_sub(1).and_then(|i| self.workers.get_mut(i)) {
            Some(worker) => worker,
            None => panic!("no I/O worker with id {id} (workers are 1..{threads})"),
        }
    }
}

impl<H: Handler> Drop for Pool<H> {
    fn drop(&mut self) {
        if self.abandoned {
            // Workers that did not exit in time are left running (detached);
            // they own what they use through their `Arc`s.
            return;
        }
        if std::thread::panicking() {
            self.abandon(Duration::from_millis(100));
            return;
        }
        self.drain();
        self.stop_workers(1);
    }
}

/// The main thread's pause while it waits on workers: spin, then yield.
fn wait_a_little(round: u32) {
    if round < 32 {
        crate::sync::spin_loop();
    } else {
        yield_now();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Idle;

    impl Handler for Idle {
        fn run(&self, _job: Job) {}
    }

    fn word(i: usize) -> Word {
        std::ptr::null_mut::<u8>().wrapping_add(8 * i).cast()
    }

    /// Results that arrive after the outbox's consumer cached its tail still
    /// fill the batch: a short batch must mean an empty outbox, or Valkey's
    /// response processing returns with results left behind.
    #[test]
    fn pop_results_fills_the_batch_past_the_cached_tail() {
        let mut pool = Pool::new(PoolConfig::default(), Arc::new(Idle));
        let mut producer = pool.outbox_producer.clone();
        let mut out = [std::ptr::null_mut(); 16];

        for i in 1..=20 {
            producer.push(word(i)).unwrap();
        }
        assert_eq!(pool.pop_results(&mut out), 16);
        // The consumer's cached tail now stops at 20.
        for i in 21..=32 {
            producer.push(word(i)).unwrap();
        }

        assert_eq!(pool.pop_results(&mut out), 16);
        assert_eq!(out, std::array::from_fn(|i| word(17 + i)));
        assert_eq!(pool.pop_results(&mut out), 0);
    }
}
