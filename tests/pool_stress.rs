//! The pool under load: every job runs once, every result comes back once
//! and in its worker's order, through an outbox so small that backlogs are
//! the normal path; drains under a full outbox; resizes with jobs in flight.

mod pool_support;

use std::time::Duration;

use pool_support::{job, tiny_config, Ledger, Recorder, Watchdog};
use valkey_iocore::pool::Pool;

/// Submits job `i` to the shared inbox or, for some jobs, to a private inbox
/// of an active worker, publishing some private jobs at once and leaving the
/// rest for the next commit. Returns false when the chosen inbox is full.
fn submit<H: valkey_iocore::pool::Handler>(pool: &mut Pool<H>, i: usize) -> bool {
    let workers = pool.active() - 1;
    if i % 3 == 0 && workers > 0 {
        let id = 1 + (i / 3) % workers;
        !pool.private_inbox_is_full(id) && pool.try_submit_private(id, job(i), i % 5 == 0).is_ok()
    } else {
        pool.try_submit_shared(job(i)).is_ok()
    }
}

#[test]
fn every_job_and_result_once_in_worker_order_through_a_two_slot_outbox() {
    const JOBS: usize = 100_000;
    // A hang never ends; a slow run does. With two slots the outbox moves
    // only as fast as workers retry their backlogs, and where this test
    // shares two CPUs with other busy processes a run has taken 120 s.
    let _watchdog = Watchdog::new("the two-slot outbox stress", Duration::from_secs(300));
    let config = tiny_config("st_a");
    let recorder = Recorder::new(JOBS, config.max_threads);
    let mut pool = Pool::new(config, recorder.clone());
    pool.resize(4);
    pool.set_active(4);

    let mut ledger = Ledger::new(JOBS, 16);
    let mut next = 0;
    let mut round = 0u64;
    while ledger.received < JOBS {
        // Bursts of submissions, then a few results at a time: the outbox
        // (2 slots) is full most of the time and workers keep backlogs.
        let burst = next + 48;
        while next < JOBS.min(burst) && submit(&mut pool, next) {
            next += 1;
        }
        pool.commit();
        ledger.pop_some(&mut pool, 1 + (round % 4) as usize);
        round += 1;
    }

    ledger.assert_all_seen(JOBS);
    recorder.assert_each_ran_once(JOBS);
    assert_eq!(pool.pending_jobs(), 0);
    assert_eq!(pool.submitted(), JOBS as u64);
    assert!(
        ledger.by_worker[1..4].iter().all(|&n| n > 0),
        "every worker took part: {:?}",
        &ledger.by_worker[..4]
    );
}

#[test]
fn drain_under_a_full_outbox_returns_and_every_result_follows() {
    const JOBS: usize = 3_000;
    let _watchdog = Watchdog::new("drain under a full outbox", Duration::from_secs(60));
    let config = valkey_iocore::pool::PoolConfig {
        shared_inbox_capacity: 4096,
        private_inbox_capacity: 1024,
        ..tiny_config("st_d")
    };
    let recorder = Recorder::new(JOBS, config.max_threads);
    let mut pool = Pool::new(config, recorder.clone());
    pool.resize(3);
    pool.set_active(3);

    // Nothing is taken out of the outbox before the drain: its two slots
    // fill at once and everything else piles up in the workers' backlogs.
    for i in 0..JOBS {
        assert!(submit(&mut pool, i), "job {i} did not fit");
    }
    pool.drain();

    assert_eq!(pool.pending_jobs(), 0, "drain returned with jobs pending");
    recorder.assert_each_ran_once(JOBS);
    let mut ledger = Ledger::new(JOBS, 16);
    ledger.pop_until(&mut pool, JOBS, Duration::from_secs(30));
    ledger.assert_all_seen(JOBS);
    assert_eq!(pool.held_results(), 0);
}

#[test]
fn drain_of_deactivated_workers_with_backlogs_returns() {
    const JOBS: usize = 1_000;
    let _watchdog = Watchdog::new("drain of deactivated workers", Duration::from_secs(60));
    let config = valkey_iocore::pool::PoolConfig {
        private_inbox_capacity: 1024,
        ..tiny_config("st_i")
    };
    let recorder = Recorder::new(JOBS, config.max_threads);
    let mut pool = Pool::new(config, recorder.clone());
    pool.resize(3);
    pool.set_active(3);

    // Private jobs, unpublished, then every worker deactivated: the drain
    // must publish them, get them run and keep room in the outbox.
    for i in 0..JOBS {
        let id = 1 + i % 2;
        pool.try_submit_private(id, job(i), false).unwrap();
    }
    pool.set_active(1);
    pool.drain();

    assert_eq!(pool.pending_jobs(), 0);
    assert_eq!(pool.active(), 1, "drain restores the active count");
    let mut ledger = Ledger::new(JOBS, 16);
    ledger.pop_until(&mut pool, JOBS, Duration::from_secs(30));
    recorder.assert_each_ran_once(JOBS);
}

#[test]
fn resize_with_jobs_in_flight_loses_nothing() {
    const PER_STEP: usize = 2_000;
    const SIZES: [usize; 6] = [1, 4, 2, 8, 3, 1];
    const JOBS: usize = PER_STEP * SIZES.len();
    let _watchdog = Watchdog::new("resize with jobs in flight", Duration::from_secs(120));
    let config = valkey_iocore::pool::PoolConfig {
        shared_inbox_capacity: 4096,
        private_inbox_capacity: 1024,
        ..tiny_config("st_r")
    };
    let recorder = Recorder::new(JOBS, config.max_threads);
    let mut pool = Pool::new(config, recorder.clone());
    let mut ledger = Ledger::new(JOBS, 16);

    let mut next = 0;
    for (step, &threads) in SIZES.iter().enumerate() {
        pool.resize(threads);
        assert_eq!(pool.threads(), threads);
        assert_eq!(
            pool.active(),
            1,
            "resize leaves only the main thread active"
        );
        if threads == 1 {
            continue;
        }
        pool.set_active(threads);

        // Submit this step's jobs and take only some results, so the next
        // resize meets queued jobs, unpublished private jobs, a full outbox
        // and backlogs.
        while next < PER_STEP * (step + 1) {
            if submit(&mut pool, next) {
                next += 1;
            } else {
                pool.commit();
                ledger.pop_some(&mut pool, 2);
            }
        }
        ledger.pop_some(&mut pool, 1);
    }

    assert_eq!(pool.threads(), 1);
    ledger.pop_until(&mut pool, next, Duration::from_secs(30));
    ledger.assert_all_seen(next);
    recorder.assert_each_ran_once(next);
    assert_eq!(pool.pending_jobs(), 0);
}
