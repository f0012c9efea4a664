//! What the pool's integration tests share: job words, a handler that
//! records every run, a ledger that checks every result, and ways to wait
//! without hanging the test run.
//!
//! Each test file uses only part of this.
#![allow(dead_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use valkey_iocore::job::Job;
use valkey_iocore::pool::{current_worker_id, send_to_main, Handler, Pool, PoolConfig};
use valkey_iocore::ring::Word;

/// Job `i` as a word: an address that is never dereferenced, 8-aligned,
/// tagged with kind `i % 8`.
pub fn job(i: usize) -> Job {
    Job::new(std::ptr::without_provenance_mut((i + 1) * 8), i % 8)
}

/// The index of a job made by [`job`].
pub fn job_index(job: Job) -> usize {
    job.ptr().addr() / 8 - 1
}

/// What a worker reports for one job: which job, which worker ran it, and
/// how many results that worker had produced before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub job: usize,
    pub worker: usize,
    pub seq: u64,
}

const WORKER_BITS: u32 = 8;
const SEQ_BITS: u32 = 26;

impl Report {
    /// Packs the report into a result word (kind = the job's kind).
    fn to_result(self) -> Job {
        assert!(self.worker < 1 << WORKER_BITS && self.seq < 1 << SEQ_BITS);
        let addr = (self.job << (SEQ_BITS + WORKER_BITS))
            | ((self.seq as usize) << WORKER_BITS)
            | self.worker;
        Job::new(
            std::ptr::without_provenance_mut::<c_void>(addr << 3),
            self.job % 8,
        )
    }

    pub fn from_result(word: Word) -> Self {
        let result = Job::from_word(word).expect("a null result word");
        let addr = result.ptr().addr() >> 3;
        let report = Self {
            job: addr >> (SEQ_BITS + WORKER_BITS),
            seq: ((addr >> WORKER_BITS) & ((1 << SEQ_BITS) - 1)) as u64,
            worker: addr & ((1 << WORKER_BITS) - 1),
        };
        assert_eq!(
            result.kind(),
            report.job % 8,
            "result kind lost for {report:?}"
        );
        report
    }
}

/// Runs each job by recording it and sending a [`Report`] back.
///
/// Jobs of kind 7 wait, before reporting, until the gate is open.
pub struct Recorder {
    /// Runs of each job.
    pub runs: Vec<AtomicU8>,
    /// Results each worker id has produced; only that worker writes its own.
    pub produced: Vec<AtomicU64>,
    /// While false, kind-7 jobs block their worker.
    pub gate_open: AtomicBool,
    /// Kind-7 jobs that have started waiting at the gate.
    pub at_gate: AtomicU64,
    /// Workers that have called `on_start`.
    pub started: AtomicU64,
}

impl Recorder {
    pub fn new(jobs: usize, max_threads: usize) -> Arc<Self> {
        Arc::new(Self {
            runs: (0..jobs).map(|_| AtomicU8::new(0)).collect(),
            produced: (0..max_threads).map(|_| AtomicU64::new(0)).collect(),
            gate_open: AtomicBool::new(true),
            at_gate: AtomicU64::new(0),
            started: AtomicU64::new(0),
        })
    }

    pub fn runs_of(&self, i: usize) -> u8 {
        self.runs[i].load(Ordering::Relaxed)
    }

    pub fn total_runs(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| u64::from(r.load(Ordering::Relaxed)))
            .sum()
    }

    /// Asserts that each of the first `n` jobs ran exactly once.
    pub fn assert_each_ran_once(&self, n: usize) {
        for i in 0..n {
            assert_eq!(self.runs_of(i), 1, "job {i} ran {} times", self.runs_of(i));
        }
    }
}

impl Handler for Recorder {
    fn run(&self, job: Job) {
        let i = job_index(job);
        self.runs[i].fetch_add(1, Ordering::Relaxed);
        if job.kind() == 7 {
            self.at_gate.fetch_add(1, Ordering::AcqRel);
            while !self.gate_open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let worker = current_worker_id();
        assert_ne!(worker, 0, "a job ran off the pool's workers");
        let seq = self.produced[worker].load(Ordering::Relaxed);
        self.produced[worker].store(seq + 1, Ordering::Relaxed);
        send_to_main(
            Report {
                job: i,
                worker,
                seq,
            }
            .to_result(),
        );
    }

    fn on_start(&self, _id: usize) {
        self.started.fetch_add(1, Ordering::AcqRel);
    }
}

/// The main thread's account of results: each job's result arrives once,
/// and each worker's results arrive in the order it produced them (its
/// sequence numbers, with no gap).
pub struct Ledger {
    seen: Vec<bool>,
    next_seq: Vec<u64>,
    pub received: usize,
    /// Results taken per worker id.
    pub by_worker: Vec<usize>,
}

impl Ledger {
    pub fn new(jobs: usize, max_threads: usize) -> Self {
        Self {
            seen: vec![false; jobs],
            next_seq: vec![0; max_threads],
            received: 0,
            by_worker: vec![0; max_threads],
        }
    }

    pub fn take(&mut self, result: Word) -> Report {
        let report = Report::from_result(result);
        assert!(
            !self.seen[report.job],
            "result of job {} came back twice",
            report.job
        );
        self.seen[report.job] = true;
        assert_eq!(
            report.seq, self.next_seq[report.worker],
            "worker {}'s results out of order or lost: got its result #{}, expected #{}",
            report.worker, report.seq, self.next_seq[report.worker]
        );
        self.next_seq[report.worker] += 1;
        self.by_worker[report.worker] += 1;
        self.received += 1;
        report
    }

    /// Pops what the pool has; returns how many results were taken.
    pub fn pop_some<H: Handler>(&mut self, pool: &mut Pool<H>, at_most: usize) -> usize {
        let mut out = [std::ptr::null_mut(); 64];
        let n = pool.pop_results(&mut out[..at_most.min(64)]);
        for &result in &out[..n] {
            self.take(result);
        }
        n
    }

    /// Pops until `total` results have come back, failing after `timeout`.
    pub fn pop_until<H: Handler>(&mut self, pool: &mut Pool<H>, total: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.received < total {
            if self.pop_some(pool, 64) == 0 {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {total} results came back within {timeout:?}",
                    self.received
                );
                std::thread::yield_now();
            }
        }
    }

    pub fn assert_all_seen(&self, n: usize) {
        if let Some(i) = self.seen[..n].iter().position(|&s| !s) {
            panic!("no result for job {i}");
        }
    }
}

/// A config with small rings, so that full rings and backlogs are common.
pub fn tiny_config(prefix: &str) -> PoolConfig {
    PoolConfig {
        max_threads: 16,
        shared_inbox_capacity: 64,
        private_inbox_capacity: 16,
        outbox_capacity: 2,
        stack_size: 256 << 10,
        name_prefix: prefix.to_owned(),
        ..Default::default()
    }
}

/// Aborts the process if not dropped within `limit`: a hang in the pool
/// (a lost wake-up, a drain that never returns) fails the run instead of
/// stalling it.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(what: &'static str, limit: Duration) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("watchdog: {what} did not finish within {limit:?}");
            std::process::abort();
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Polls `condition` every millisecond; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The scheduler state (`R`, `S`, ...) of this process's thread named
/// `name`, from `/proc/self/task/*/stat`.
pub fn thread_state(name: &str) -> Option<char> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // The state follows the parenthesised name, which may hold spaces.
        return stat.rsplit_once(") ")?.1.chars().next();
    }
    None
}

/// Waits until the worker thread `name` is sleeping in the kernel and stays
/// so over a few looks. For a worker with no backlog whose handler is not
/// running, the only place it can sleep is its park.
pub fn wait_until_parked(name: &str, timeout: Duration) {
    let mut sleeping_looks = 0;
    wait_until(&format!("{name} to park"), timeout, || {
        if thread_state(name) == Some('S') {
            sleeping_looks += 1;
        } else {
            sleeping_looks = 0;
        }
        sleeping_looks >= 5
    });
}

/// User + system CPU time of the whole process.
pub fn process_cpu_time() -> Duration {
    // SAFETY: rusage is plain data; all-zero is a valid value to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let micros = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}
