//! An idle pool costs no CPU: parked workers, deactivated or not, are
//! blocked in the kernel, not polling.
//!
//! How this is measured, and why the bound is what it is: the process's
//! user + system CPU time (getrusage) is read before and after 300 ms of
//! wall time during which the main thread sleeps. One worker that polled
//! instead of parking would add close to 300 ms (less only if starved of a
//! core); a parked one adds nothing. The bound, 20 ms, leaves room for
//! what else runs in this process (the test harness, the watchdog's 10 ms
//! ticks) and for the kernel's accounting granularity, and is still an
//! order of magnitude below one polling worker. This checks behaviour, not
//! speed: the pass/fail line is between "asleep" and "spinning".
//!
//! The checks share one test function so that no other test runs in this
//! process while the CPU time is measured.

mod pool_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use pool_support::{job, tiny_config, wait_until, Ledger, Recorder, Watchdog};
use valkey_iocore::pool::{Pool, PoolConfig};

const WORKERS: usize = 4;
const WINDOW: Duration = Duration::from_millis(300);
const BOUND: Duration = Duration::from_millis(20);

/// CPU time the process uses while the main thread sleeps for `WINDOW`.
fn cpu_over_window() -> Duration {
    let before = pool_support::process_cpu_time();
    std::thread::sleep(WINDOW);
    pool_support::process_cpu_time().saturating_sub(before)
}

/// Runs jobs `first..first + n` through every worker, so the pool has just
/// been busy, and takes their results.
fn exercise(pool: &mut Pool<Recorder>, ledger: &mut Ledger, first: usize, n: usize) {
    for i in first..first + n {
        let id = 1 + i % WORKERS;
        while pool.try_submit_private(id, job(i), true).is_err() {
            ledger.pop_some(pool, 64);
        }
    }
    pool.commit();
    ledger.pop_until(pool, first + n, Duration::from_secs(20));
}

#[test]
fn an_idle_pool_uses_no_cpu() {
    let _watchdog = Watchdog::new("idle CPU checks", Duration::from_secs(60));
    let recorder = Recorder::new(3_000, 16);
    let config = PoolConfig {
        private_inbox_capacity: 64,
        outbox_capacity: 64,
        ..tiny_config("id_")
    };
    let mut pool = Pool::new(config, recorder.clone());
    let mut ledger = Ledger::new(3_000, 16);
    pool.resize(WORKERS + 1);
    pool.set_active(WORKERS + 1);
    wait_until("workers to start", Duration::from_secs(20), || {
        recorder.started.load(Ordering::Acquire) == WORKERS as u64
    });

    // Active and idle: after a burst, each worker polls briefly and parks.
    exercise(&mut pool, &mut ledger, 0, 1_000);
    std::thread::sleep(Duration::from_millis(50));
    let active_idle = cpu_over_window();

    // Deactivated: each worker parks as soon as it is out of work.
    exercise(&mut pool, &mut ledger, 1_000, 1_000);
    pool.set_active(1);
    std::thread::sleep(Duration::from_millis(50));
    let deactivated = cpu_over_window();

    // And after a drain, which activates every worker for its duration.
    pool.set_active(WORKERS + 1);
    exercise(&mut pool, &mut ledger, 2_000, 1_000);
    pool.set_active(1);
    pool.drain();
    std::thread::sleep(Duration::from_millis(50));
    let drained = cpu_over_window();

    assert!(
        active_idle < BOUND && deactivated < BOUND && drained < BOUND,
        "{WORKERS} idle workers used CPU over {WINDOW:?}: active {active_idle:?}, \
         deactivated {deactivated:?}, after a drain {drained:?} (bound {BOUND:?})"
    );
    eprintln!(
        "CPU over {WINDOW:?}: active idle {active_idle:?}, deactivated {deactivated:?}, \
         after a drain {drained:?}"
    );
}
