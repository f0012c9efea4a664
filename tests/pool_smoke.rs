//! End-to-end: jobs through the shared and private inboxes, results back,
//! with resizes in between.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use valkey_iocore::job::Job;
use valkey_iocore::pool::{send_to_main, Handler, Pool, PoolConfig};

/// Echoes each job back as a result of the same kind, counting runs.
struct Echo {
    runs: AtomicU64,
}

impl Handler for Echo {
    fn run(&self, job: Job) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        send_to_main(job);
    }
}

fn word(i: usize) -> *mut c_void {
    std::ptr::without_provenance_mut((i + 1) * 8)
}

#[test]
fn every_job_runs_once_and_every_result_comes_back() {
    let config = PoolConfig {
        outbox_capacity: 4,
        private_inbox_capacity: 8,
        ..Default::default()
    };
    let handler = Arc::new(Echo {
        runs: AtomicU64::new(0),
    });
    let mut pool = Pool::new(config, handler.clone());
    pool.resize(4);
    pool.set_active(4);

    const JOBS: usize = 20_000;
    let mut seen = vec![false; JOBS];
    let mut out = [std::ptr::null_mut(); 16];
    let mut received = 0;
    let mut next = 0;
    while received < JOBS {
        if next < JOBS {
            let job = Job::new(word(next), next % 2);
            let sent = if next % 3 == 0 {
                let id = 1 + next % 3;
                !pool.private_inbox_is_full(id)
                    && pool.try_submit_private(id, job, next % 7 == 0).is_ok()
            } else {
                pool.try_submit_shared(job).is_ok()
            };
            if sent {
                next += 1;
            }
        }
        pool.commit();
        let n = pool.pop_results(&mut out);
        for &w in &out[..n] {
            let job = Job::from_word(w).unwrap();
            let i = job.ptr().addr() / 8 - 1;
            assert_eq!(job.kind(), i % 2);
            assert!(!seen[i], "result {i} came back twice");
            seen[i] = true;
        }
        received += n;
        if next == JOBS / 2 && pool.threads() == 4 {
            pool.resize(2);
            pool.set_active(2);
        }
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(handler.runs.load(Ordering::Relaxed), JOBS as u64);
    assert_eq!(pool.pending_jobs(), 0);
}
