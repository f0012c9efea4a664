//! loom models of the worker pool: the real `Pool`, with rings of 2-4 slots
//! and one worker, under every interleaving up to a preemption bound.
//!
//! What each model checks, in the pool's own terms:
//! - a job published while its worker is going to sleep runs after the next
//!   commit (no lost wake-up), for the shared and the private inbox;
//! - a worker that is inactive and has announced its sleep takes no shared
//!   job, and activation wakes it;
//! - a drain with a full outbox (2 slots) and a backlog returns, and every
//!   result comes back afterwards, in order;
//! - a resize with jobs queued, unpublished and backlogged loses nothing.
//!
//! A lost wake-up or a drain that cannot finish shows up as loom's
//! "deadlock" or "exceeded maximum number of branches" failure: the main
//! thread waits in a loop that nothing would ever end.
//!
//! Under loom, an idle worker sleeps without spinning first (the spin is a
//! latency measure, not part of a protocol), and the worker's backlog
//! retries yield instead of sleeping.
//!
//! Run with `make loom`, or:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom_pool
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` overrides each model's preemption bound.

#![cfg(loom)]

mod loom_support;

use std::ffi::c_void;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use loom_support::model;
use valkey_iocore::job::Job;
use valkey_iocore::pool::{send_to_main, Handler, Pool, PoolConfig};
use valkey_iocore::ring::Word;

/// Rings as small as each ring allows.
fn tiny_config() -> PoolConfig {
    PoolConfig {
        max_threads: 4,
        shared_inbox_capacity: 4,
        private_inbox_capacity: 2,
        outbox_capacity: 2,
        ..Default::default()
    }
}

fn job(i: usize) -> Job {
    Job::new(std::ptr::without_provenance_mut::<c_void>((i + 1) * 8), 0)
}

fn index(word: Word) -> usize {
    Job::from_word(word).unwrap().ptr().addr() / 8 - 1
}

/// Sends every job back, counting runs in a loom atomic so the model sees
/// them.
#[derive(Default)]
struct Echo {
    runs: AtomicUsize,
}

impl Handler for Echo {
    fn run(&self, job: Job) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        send_to_main(job);
    }
}

impl Echo {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::Relaxed)
    }
}

/// Takes results until `n` have come back, yielding to the workers between
/// tries; returns their job indices in arrival order.
fn wait_for_results<H: Handler>(pool: &mut Pool<H>, n: usize) -> Vec<usize> {
    let mut got = Vec::new();
    let mut out = [std::ptr::null_mut(); 4];
    while got.len() < n {
        let k = pool.pop_results(&mut out);
        got.extend(out[..k].iter().map(|&w| index(w)));
        if k == 0 {
            thread::yield_now();
        }
    }
    got
}

/// A pool with one worker, active or not.
fn one_worker(handler: &Arc<Echo>, active: bool) -> Pool<Echo> {
    let mut pool = Pool::new(tiny_config(), handler.clone());
    pool.resize(2);
    if active {
        pool.set_active(2);
    }
    pool
}

/// The worker, just activated, finds nothing and goes to sleep while the
/// main thread publishes a shared job: one commit must get it run.
#[test]
fn a_shared_job_published_as_the_worker_sleeps_runs_after_commit() {
    model(2, || {
        let handler = Arc::new(Echo::default());
        let mut pool = one_worker(&handler, true);

        pool.try_submit_shared(job(0)).unwrap();
        pool.commit();
        assert_eq!(wait_for_results(&mut pool, 1), [0]);
        assert_eq!(handler.runs(), 1);
    });
}

/// The same race through the private inbox, published only by the commit.
#[test]
fn a_private_job_published_as_the_worker_sleeps_runs_after_commit() {
    model(2, || {
        let handler = Arc::new(Echo::default());
        let mut pool = one_worker(&handler, true);

        pool.try_submit_private(1, job(0), false).unwrap();
        pool.commit();
        assert_eq!(wait_for_results(&mut pool, 1), [0]);
    });
}

/// An inactive worker that has announced its sleep is not woken by shared
/// jobs or commits, takes none of them, and is woken by its activation.
///
/// The main thread looks once, without waiting: loom does not run a thread
/// that yields in a loop while another can run, so a waiting loop would only
/// ever see a worker already parked. Looking once covers every point the
/// worker may have reached after its announcement (between it and its
/// re-check, or parked); schedules where it has not announced yet have
/// nothing to check.
#[test]
fn a_sleeping_inactive_worker_takes_no_shared_job_until_activated() {
    model(3, || {
        let handler = Arc::new(Echo::default());
        let mut pool = one_worker(&handler, false);
        if pool.sleeping_workers() == 0 {
            return;
        }

        pool.try_submit_shared(job(0)).unwrap();
        pool.commit();
        thread::yield_now();
        assert_eq!(
            handler.runs(),
            0,
            "a sleeping inactive worker ran a shared job"
        );

        pool.set_active(2);
        assert_eq!(wait_for_results(&mut pool, 1), [0]);
    });
}

/// Three results for a two-slot outbox that nobody empties before the
/// drain: the third waits in the worker's backlog. The drain must return,
/// and all three results must follow, in the order the worker made them.
///
/// Bound 1: the drain's wait loop and the worker's backlog retries multiply
/// the interleavings; at bound 2 this model ran for over 12 minutes without
/// finishing on a 2-CPU machine, at bound 1 it takes seconds.
#[test]
fn drain_with_a_full_outbox_and_a_backlog_returns() {
    model(1, || {
        let handler = Arc::new(Echo::default());
        let mut pool = one_worker(&handler, true);

        for i in 0..3 {
            pool.try_submit_shared(job(i)).unwrap();
        }
        pool.drain();
        assert_eq!(pool.pending_jobs(), 0);
        assert_eq!(handler.runs(), 3);
        assert_eq!(wait_for_results(&mut pool, 3), [0, 1, 2]);
    });
}

/// Jobs in every state at a resize: one shared, one private published, one
/// private unpublished. Shrinking to the main thread alone drains them,
/// stops the worker after its backlog, and loses nothing.
///
/// Bound 1 for the same reason (seconds); at bound 2 it passes in about two
/// minutes on a 2-CPU machine (`LOOM_MAX_PREEMPTIONS=2`).
#[test]
fn resize_with_jobs_in_flight_loses_nothing() {
    model(1, || {
        let handler = Arc::new(Echo::default());
        let mut pool = one_worker(&handler, true);

        pool.try_submit_shared(job(0)).unwrap();
        pool.try_submit_private(1, job(1), true).unwrap();
        pool.try_submit_private(1, job(2), false).unwrap();
        pool.resize(1);

        assert_eq!(pool.threads(), 1);
        assert_eq!(handler.runs(), 3);
        let mut got = wait_for_results(&mut pool, 3);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    });
}
