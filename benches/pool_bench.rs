//! The pool microbenchmark's Rust side: one scenario per run.
//!
//! ```text
//! pool_bench park|spin SCENARIO WORKERS [SCALE]
//! ```
//!
//! runs the pool with [`IdlePolicy::Park`] or [`IdlePolicy::Spin`] and
//! prints one line, `VARIANT SCENARIO WORKERS key=value...`, for
//! `benches/run-pool.py`, which alternates this program with
//! `benches/pool_bench_c.c` (the same main thread around 9.1.2's
//! `IOThreadMain`) and writes the table. The two files run the same steps in
//! the same order; change them together. SCALE (default 1) multiplies the
//! job counts, for quick runs while developing.
//!
//! Scenarios, all through the shared inbox, with results popped from the
//! outbox in batches of 16 as Valkey's main thread pops them:
//! - `rtt`: one job in flight; each round trip is timed from the submit to
//!   the result's arrival. Keys `p50_ns`, `p99_ns`.
//! - `tput`: up to [`IN_FLIGHT`] jobs in flight until [`TPUT_JOBS`] are back,
//!   or fewer when [`TPUT_LIMIT`] passes first. Keys `jobs_per_s`,
//!   `cpu_s_per_mjob` (process CPU time, all threads), `jobs`.
//! - `idle`: a light load, one job per millisecond tick for [`IDLE_TICKS`]
//!   ticks. At each tick the main thread takes whatever results are back,
//!   submits one job, commits and sleeps until the next tick (as Valkey's
//!   main thread sleeps in its event loop), so the CPU time is the workers'
//!   idle cost, not the main thread's waiting. Keys `cpu_s_per_mjob`,
//!   `cpu_per_wall_s`, and `late`: ticks at which the previous job's result
//!   was not back yet.
//!
//! Threads are pinned: the main thread on the first CPU the process may use,
//! every worker on the second (all on the first when there is one).
//! A job's handler sends the job's own word back.

use std::hint::spin_loop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use valkey_iocore::job::Job;
use valkey_iocore::pool::{send_to_main, Handler, IdlePolicy, Pool, PoolConfig};
use valkey_iocore::ring::Word;

/// Results popped per call, as Valkey's `JOB_BATCH_SIZE`.
const OUT_BATCH: usize = 16;
const RTT_WARMUP: f64 = 2_000.0;
const RTT_TRIPS: f64 = 20_000.0;
const TPUT_JOBS: f64 = 400_000.0;
const IN_FLIGHT: u64 = 256;
/// When a `tput` run stops submitting, however few jobs are done: with two
/// workers on one CPU a preempted worker can hold up the outbox for a whole
/// time slice.
const TPUT_LIMIT: Duration = Duration::from_millis(500);
const IDLE_WARMUP: usize = 20;
const IDLE_TICKS: f64 = 2_000.0;
const IDLE_TICK_NS: i64 = 1_000_000;

/// Sends each job straight back.
struct Echo;

impl Handler for Echo {
    fn run(&self, job: Job) {
        send_to_main(job);
    }
}

/// The main thread's three steps: submit, commit, pop.
struct Main {
    pool: Pool<Echo>,
    out: [Word; OUT_BATCH],
}

impl Main {
    fn new(idle: IdlePolicy, workers: usize, worker_cpu: usize) -> Self {
        let config = PoolConfig {
            idle,
            cpus: Some(vec![worker_cpu]),
            ..Default::default()
        };
        let mut pool = Pool::new(config, Arc::new(Echo));
        pool.resize(workers + 1);
        pool.set_active(workers + 1);
        Self {
            pool,
            out: [std::ptr::null_mut(); OUT_BATCH],
        }
    }

    fn submit(&mut self, n: u64) -> bool {
        let word = std::ptr::without_provenance_mut((n as usize % 4096 + 1) * 8);
        self.pool.try_submit_shared(Job::new(word, 0)).is_ok()
    }

    fn commit(&mut self) {
        self.pool.commit();
    }

    fn pop_results(&mut self) -> usize {
        self.pool.pop_results(&mut self.out)
    }

    fn pop_all(&mut self) -> u64 {
        let mut got = 0;
        loop {
            match self.pop_results() {
                0 => return got,
                n => got += n as u64,
            }
        }
    }

    fn wait_for_one(&mut self) {
        while self.pop_results() == 0 {
            spin_loop();
        }
    }
}

fn rtt(main: &mut Main, scale: f64) -> String {
    let (warmup, trips) = ((RTT_WARMUP * scale) as usize, (RTT_TRIPS * scale) as usize);
    let mut took = Vec::with_capacity(trips);

    for i in 0..warmup + trips {
        let t0 = Instant::now();
        while !main.submit(i as u64) {
            spin_loop();
        }
        main.commit();
        main.wait_for_one();
        if i >= warmup {
            took.push(t0.elapsed().as_nanos() as u64);
        }
    }

    percentiles(&mut took)
}

fn tput(main: &mut Main, scale: f64) -> String {
    let mut total = (TPUT_JOBS * scale) as u64;
    let (mut sent, mut got, mut passes) = (0u64, 0u64, 0u32);

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    while got < total {
        while sent < total && sent - got < IN_FLIGHT && main.submit(sent) {
            sent += 1;
        }
        main.commit();
        let n = main.pop_results();
        got += n as u64;
        if n == 0 {
            spin_loop();
        }

        passes = passes.wrapping_add(1);
        if passes % 1024 == 0 && sent < total && t0.elapsed() >= TPUT_LIMIT {
            total = sent;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;

    format!(
        "jobs_per_s={:.0} cpu_s_per_mjob={:.4} jobs={total}",
        total as f64 / wall,
        cpu / total as f64 * 1e6
    )
}

fn idle(main: &mut Main, scale: f64) -> String {
    let ticks = (IDLE_TICKS * scale) as usize;
    let (mut sent, mut got, mut late) = (0u64, 0u64, 0u64);
    let mut next = now_timespec();
    let (mut cpu0, mut t0) = (0.0, Instant::now());

    for i in 0..IDLE_WARMUP + ticks {
        sleep_until(&mut next);
        if i == IDLE_WARMUP {
            cpu0 = cpu_seconds();
            t0 = Instant::now();
            late = 0;
        }

        got += main.pop_all();
        if got < sent {
            late += 1;
        }
        while !main.submit(sent) {
            spin_loop();
        }
        sent += 1;
        main.commit();
    }
    sleep_until(&mut next);
    while got < sent {
        got += main.pop_all();
        spin_loop();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;

    format!(
        "cpu_s_per_mjob={:.4} cpu_per_wall_s={:.4} late={late}",
        cpu / ticks as f64 * 1e6,
        cpu / wall
    )
}

/// The median and the 99th percentile, picked as the C side picks them.
fn percentiles(took: &mut [u64]) -> String {
    took.sort_unstable();
    let n = took.len();
    format!("p50_ns={} p99_ns={}", took[n / 2], took[n * 99 / 100])
}

fn cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data; all-zero is a valid value to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn now_timespec() -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now
}

/// Advances `next` by one tick and sleeps until then (absolute, so the
/// ticks do not drift by the time each one takes).
fn sleep_until(next: &mut libc::timespec) {
    next.tv_nsec += IDLE_TICK_NS;
    if next.tv_nsec >= 1_000_000_000 {
        next.tv_nsec -= 1_000_000_000;
        next.tv_sec += 1;
    }
    // SAFETY: `next` is a valid timespec; a null remainder is allowed with
    // TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            next,
            std::ptr::null_mut(),
        )
    } != 0
    {}
}

/// The first two CPUs this process may use: the main thread's and the
/// workers' (the same one when only one is allowed).
fn pick_cpus() -> (usize, usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity failed");
    let capacity = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: every `cpu` is below the set's capacity.
    let mut allowed = (0..capacity).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) });
    let main = allowed.next().expect("no CPU allowed");
    (main, allowed.next().unwrap_or(main))
}

fn pin_self(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from `pick_cpus`, so it is below the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(rc, 0, "cannot pin the main thread");
}

fn main() {
    // A plain `cargo bench` or `cargo test --benches` passes only flags
    // (`--bench`): nothing to run then, since the table needs the C side too.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let usage = "usage: pool_bench park|spin rtt|tput|idle WORKERS [SCALE] (or: make bench-pool)";
    let (variant, scenario) = match args.as_slice() {
        [variant, scenario, _, ..] => (variant.as_str(), scenario.as_str()),
        [] => {
            eprintln!("{usage}");
            return;
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let idle_policy = match variant {
        "park" => IdlePolicy::Park,
        "spin" => IdlePolicy::Spin,
        _ => panic!("{usage}"),
    };
    let workers: usize = args[2].parse().expect(usage);
    let scale: f64 = args.get(3).map_or(1.0, |s| s.parse().expect(usage));
    assert!((1..=8).contains(&workers) && scale > 0.0, "{usage}");

    let (main_cpu, worker_cpu) = pick_cpus();
    pin_self(main_cpu);
    let mut main = Main::new(idle_policy, workers, worker_cpu);

    let figures = match scenario {
        "rtt" => rtt(&mut main, scale),
        "tput" => tput(&mut main, scale),
        "idle" => idle(&mut main, scale),
        _ => panic!("{usage}"),
    };
    println!("{variant} {scenario} {workers} {figures} cpus={main_cpu}/{worker_cpu}");
}
