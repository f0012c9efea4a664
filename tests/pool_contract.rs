//! What the pool promises besides throughput: when jobs may run (private
//! jobs wait for their publication; a parked inactive worker takes none),
//! what active time counts, which calls are refused, and that `abandon`
//! keeps to its timeout.

mod pool_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_support::{job, tiny_config, wait_until, wait_until_parked, Ledger, Recorder, Watchdog};
use valkey_iocore::job::Job;
use valkey_iocore::pool::{current_worker_id, send_to_main, Handler, Pool, PoolConfig};

const PATIENCE: Duration = Duration::from_secs(20);

/// Starts a pool of `threads` with every worker active and started.
fn started_pool(config: PoolConfig, recorder: &Arc<Recorder>, threads: usize) -> Pool<Recorder> {
    let mut pool = Pool::new(config, recorder.clone());
    pool.resize(threads);
    pool.set_active(threads);
    wait_until("workers to start", PATIENCE, || {
        recorder.started.load(Ordering::Acquire) == threads as u64 - 1
    });
    pool
}

// ---- publication of private jobs --------------------------------------------

#[test]
fn private_jobs_wait_for_commit() {
    let _watchdog = Watchdog::new("private_jobs_wait_for_commit", Duration::from_secs(60));
    let recorder = Recorder::new(64, 16);
    let config = PoolConfig {
        private_inbox_capacity: 64,
        ..tiny_config("ct_c")
    };
    let mut pool = started_pool(config, &recorder, 2);

    // Unpublished jobs are invisible to the worker however long it polls:
    // the ring's tail, which the worker reads, has not moved.
    for i in 0..10 {
        pool.try_submit_private(1, job(i), false).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        recorder.total_runs(),
        0,
        "a private job ran before its commit"
    );
    assert_eq!(pool.pending_jobs(), 10);

    pool.commit();
    wait_until("committed jobs to run", PATIENCE, || {
        pool.pending_jobs() == 0
    });
    recorder.assert_each_ran_once(10);
}

#[test]
fn a_full_private_inbox_publishes_what_it_holds() {
    let _watchdog = Watchdog::new("full private inbox", Duration::from_secs(60));
    const CAPACITY: usize = 16;
    let recorder = Recorder::new(64, 16);
    let config = PoolConfig {
        private_inbox_capacity: CAPACITY,
        ..tiny_config("ct_f")
    };
    let mut pool = started_pool(config, &recorder, 2);

    // Hold the worker in a job of kind 7 (index 7), so that it is awake and
    // will look at its inbox again as soon as it is let go.
    recorder.gate_open.store(false, Ordering::Release);
    pool.try_submit_private(1, job(7), true).unwrap();
    wait_until("the worker to reach the gate", PATIENCE, || {
        recorder.at_gate.load(Ordering::Acquire) == 1
    });

    // Fill the rest of the inbox without publishing: `is_full` publishes.
    let mut i = 8;
    while !pool.private_inbox_is_full(1) {
        pool.try_submit_private(1, job(i), false).unwrap();
        i += 1;
    }
    assert_eq!(
        i - 8,
        CAPACITY,
        "the worker took the gate job out of the inbox"
    );

    // No commit from here on: the worker finds the published jobs after the
    // gate job, with no wake-up needed.
    recorder.gate_open.store(true, Ordering::Release);
    wait_until("published jobs to run without a commit", PATIENCE, || {
        pool.pending_jobs() == 0
    });
    assert!(pool.private_inbox_is_empty(1));
    for j in 8..i {
        assert_eq!(recorder.runs_of(j), 1, "job {j}");
    }
}

// ---- activation --------------------------------------------------------------

#[test]
fn a_parked_inactive_worker_takes_no_shared_job() {
    const JOBS: usize = 2_000;
    let _watchdog = Watchdog::new("parked inactive worker", Duration::from_secs(60));
    let recorder = Recorder::new(JOBS + 100, 16);
    let config = PoolConfig {
        shared_inbox_capacity: 4096,
        private_inbox_capacity: 128,
        ..tiny_config("ct_p")
    };
    let mut pool = started_pool(config, &recorder, 3);

    // Worker 2 out, worker 1 in; wait for worker 2 to be in its park.
    pool.set_active(2);
    wait_until_parked("ct_p2", PATIENCE);

    let mut ledger = Ledger::new(JOBS + 100, 16);
    let mut next = 0;
    while next < JOBS {
        if pool.try_submit_shared(job(next)).is_ok() {
            next += 1;
        }
        pool.commit();
        ledger.pop_some(&mut pool, 64);
    }
    ledger.pop_until(&mut pool, JOBS, PATIENCE);
    assert_eq!(
        ledger.by_worker[2], 0,
        "parked inactive worker 2 took shared jobs"
    );
    assert_eq!(ledger.by_worker[1], JOBS);

    // Its private inbox still wakes it.
    for i in JOBS..JOBS + 100 {
        pool.try_submit_private(2, job(i), false).unwrap();
    }
    pool.commit();
    ledger.pop_until(&mut pool, JOBS + 100, PATIENCE);
    assert_eq!(ledger.by_worker[2], 100);
}

#[test]
fn reactivated_workers_take_shared_jobs_again() {
    const JOBS: usize = 400;
    let _watchdog = Watchdog::new("reactivation", Duration::from_secs(60));
    let recorder = Recorder::new(JOBS, 16);
    let mut pool = started_pool(tiny_config("ct_r"), &recorder, 2);

    // Deactivate the only worker, let it park, queue shared jobs: nothing
    // may run them. Activation must wake it.
    pool.set_active(1);
    wait_until_parked("ct_r1", PATIENCE);
    for i in 0..32 {
        pool.try_submit_shared(job(i)).unwrap();
    }
    pool.commit();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        recorder.total_runs(),
        0,
        "an inactive, parked worker ran a shared job"
    );

    pool.set_active(2);
    let mut ledger = Ledger::new(JOBS, 16);
    ledger.pop_until(&mut pool, 32, PATIENCE);
    recorder.assert_each_ran_once(32);
}

// ---- active time ---------------------------------------------------------------

/// Sleeps 5 ms per job: time a worker spends in a handler.
struct Sleeper;

impl Handler for Sleeper {
    fn run(&self, job: Job) {
        std::thread::sleep(Duration::from_millis(5));
        send_to_main(job);
    }
}

#[test]
fn active_time_grows_only_while_jobs_run() {
    let _watchdog = Watchdog::new("active time", Duration::from_secs(60));
    let mut pool = Pool::new(tiny_config("ct_t"), Arc::new(Sleeper));
    pool.resize(3);
    pool.set_active(3);

    // An idle active pool: workers spin briefly, then sleep; neither counts.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.active_time_us(1), 0);
    assert_eq!(pool.active_time_us(2), 0);

    for i in 0..10 {
        pool.try_submit_private(1, job(i), true).unwrap();
    }
    pool.commit();
    wait_until("the sleeping jobs to finish", PATIENCE, || {
        pool.pending_jobs() == 0
    });
    let busy = pool.active_time_us(1);
    assert!(busy >= 10 * 5_000, "10 jobs of 5 ms counted as {busy} us");
    assert_eq!(pool.active_time_us(2), 0, "worker 2 ran nothing");

    // `pending_jobs` saw the jobs finish, so the time is final: it must not
    // grow while the pool idles.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.active_time_us(1), busy, "active time grew while idle");
    assert_eq!(
        pool.active_time_us(0),
        0,
        "the main thread has no active time"
    );
    assert_eq!(pool.active_time_us(10_000), 0, "an unknown id has none");

    let mut out = [std::ptr::null_mut(); 16];
    let mut results = 0;
    wait_until("results", PATIENCE, || {
        results += pool.pop_results(&mut out);
        results == 10
    });
}

// ---- refused calls -------------------------------------------------------------

fn pool_of(threads: usize) -> Pool<Recorder> {
    let mut pool = Pool::new(tiny_config("ct_x"), Recorder::new(8, 16));
    pool.resize(threads);
    pool
}

#[test]
#[should_panic(expected = "I/O thread count 0 is outside 1..=16")]
fn resize_to_zero_threads_panics() {
    pool_of(1).resize(0);
}

#[test]
#[should_panic(expected = "I/O thread count 17 is outside 1..=16")]
fn resize_beyond_max_threads_panics() {
    pool_of(1).resize(17);
}

#[test]
#[should_panic(expected = "active I/O thread count 0 is outside 1..=3")]
fn zero_active_threads_panics() {
    pool_of(3).set_active(0);
}

#[test]
#[should_panic(expected = "active I/O thread count 4 is outside 1..=3")]
fn more_active_threads_than_threads_panics() {
    pool_of(3).set_active(4);
}

#[test]
#[should_panic(expected = "no I/O worker with id 0")]
fn private_submit_to_the_main_thread_panics() {
    let _ = pool_of(3).try_submit_private(0, job(0), true);
}

#[test]
#[should_panic(expected = "no I/O worker with id 3 (workers are 1..3)")]
fn private_submit_beyond_the_workers_panics() {
    let _ = pool_of(3).try_submit_private(3, job(0), true);
}

#[test]
#[should_panic(expected = "no I/O worker with id 5")]
fn private_inbox_is_full_of_an_unknown_worker_panics() {
    pool_of(2).private_inbox_is_full(5);
}

#[test]
#[should_panic(expected = "no I/O worker with id 1 (workers are 1..1)")]
fn private_inbox_is_empty_without_workers_panics() {
    pool_of(1).private_inbox_is_empty(1);
}

#[test]
#[should_panic(expected = "not 8-byte aligned")]
fn misaligned_job_panics() {
    Job::new(std::ptr::without_provenance_mut(0x1003), 0);
}

#[test]
#[should_panic(expected = "does not fit in 3 bits")]
fn kind_over_seven_panics() {
    Job::new(std::ptr::without_provenance_mut(0x1000), 8);
}

#[test]
#[should_panic(expected = "a pool needs room for at least the main thread")]
fn a_pool_without_the_main_thread_panics() {
    let config = PoolConfig {
        max_threads: 0,
        ..tiny_config("ct_x")
    };
    Pool::new(config, Recorder::new(1, 1));
}

#[test]
#[should_panic(expected = "SPSC ring capacity must be a non-zero power of two, got 12")]
fn a_private_inbox_of_twelve_panics() {
    let config = PoolConfig {
        private_inbox_capacity: 12,
        ..tiny_config("ct_x")
    };
    Pool::new(config, Recorder::new(1, 16));
}

#[test]
#[should_panic(expected = "MPSC ring capacity must be a non-zero power of two, got 0")]
fn an_empty_outbox_panics() {
    let config = PoolConfig {
        outbox_capacity: 0,
        ..tiny_config("ct_x")
    };
    Pool::new(config, Recorder::new(1, 16));
}

#[test]
#[should_panic(expected = "send_to_main called from a thread that is not an I/O worker")]
fn send_to_main_off_a_worker_panics() {
    send_to_main(job(0));
}

#[test]
fn the_main_thread_is_worker_zero() {
    assert_eq!(current_worker_id(), 0);
}

#[test]
fn shared_jobs_are_refused_without_workers() {
    let mut pool = pool_of(1);
    assert_eq!(pool.try_submit_shared(job(0)), Err(job(0)));
    assert_eq!(pool.pending_jobs(), 0);
    pool.drain();
}

// ---- abandon -------------------------------------------------------------------

#[test]
fn abandon_returns_within_its_timeout_with_a_worker_stuck_in_a_handler() {
    let _watchdog = Watchdog::new("abandon", Duration::from_secs(60));
    let recorder = Recorder::new(64, 16);
    let mut pool = started_pool(tiny_config("ct_a"), &recorder, 4);

    // Worker 2 is stuck in a job; more jobs wait behind it, unrun.
    recorder.gate_open.store(false, Ordering::Release);
    pool.try_submit_private(2, job(7), true).unwrap();
    wait_until("worker 2 to be stuck", PATIENCE, || {
        recorder.at_gate.load(Ordering::Acquire) == 1
    });
    for i in 8..20 {
        pool.try_submit_private(2, job(i), true).unwrap();
    }

    let timeout = Duration::from_millis(200);
    let began = Instant::now();
    let exited = pool.abandon(timeout);
    let took = began.elapsed();
    assert_eq!(exited, 2, "workers 1 and 3 exit, stuck worker 2 does not");
    assert!(
        took < timeout + Duration::from_secs(2),
        "abandon took {took:?} with a {timeout:?} timeout"
    );

    // Dropping an abandoned pool neither drains nor waits for the stuck
    // worker; letting it go afterwards is harmless.
    drop(pool);
    recorder.gate_open.store(true, Ordering::Release);
}

#[test]
fn abandon_of_an_idle_pool_stops_every_worker() {
    let _watchdog = Watchdog::new("abandon of an idle pool", Duration::from_secs(60));
    let recorder = Recorder::new(8, 16);
    let mut pool = started_pool(tiny_config("ct_b"), &recorder, 5);
    pool.set_active(2);
    assert_eq!(pool.abandon(Duration::from_secs(10)), 4);
}

#[test]
fn abandon_stops_a_worker_whose_backlog_can_never_drain() {
    let _watchdog = Watchdog::new("abandon with a backlog", Duration::from_secs(60));
    let recorder = Recorder::new(64, 16);
    let mut pool = started_pool(tiny_config("ct_d"), &recorder, 2);

    // Nobody takes results: the two-slot outbox fills and the worker keeps
    // the rest in its backlog, retrying, as it would after a crash.
    for i in 0..10 {
        pool.try_submit_private(1, job(i), true).unwrap();
    }
    wait_until("every job to run", PATIENCE, || pool.pending_jobs() == 0);

    let timeout = Duration::from_secs(5);
    let began = Instant::now();
    assert_eq!(
        pool.abandon(timeout),
        1,
        "the worker with a backlog must exit"
    );
    assert!(
        began.elapsed() < timeout,
        "abandon waited out its timeout for a worker with a backlog"
    );
}

#[test]
fn a_remote_abandons_from_another_thread_while_the_pool_is_kept() {
    let _watchdog = Watchdog::new("remote abandon", Duration::from_secs(60));
    let recorder = Recorder::new(8, 16);
    let mut pool = started_pool(tiny_config("ct_e"), &recorder, 4);
    pool.set_active(2);

    // A crash handler on some other thread has only the remote handle.
    let remote = pool.remote();
    let exited = std::thread::spawn(move || remote.abandon(Duration::from_secs(10)))
        .join()
        .unwrap();
    assert_eq!(exited, 3, "every worker exits, active or parked");
    assert_eq!(pool.abandon(Duration::from_secs(1)), 3);
}
