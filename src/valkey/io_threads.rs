//! Valkey's I/O threads on the pool: the job kinds, the handlers that run on
//! workers, and the main thread's side of every `io_threads.h` entry point.
//!
//! Behaviour follows Valkey 9.1.2's `io_threads.c` (eligibility rules, state
//! transitions, statistics, log lines), except where `design-docs/` says it
//! deliberately differs: workers sleep instead of spinning, the drain cannot
//! deadlock (so `updateIOThreads` is never refused), and stopping a worker is
//! cooperative.
//!
//! Client and object pointers are Valkey's; the rules for touching them are
//! Valkey's: a client handed to a worker (`io_read_state` or
//! `io_write_state` is `CLIENT_PENDING_IO`) belongs to that worker until its
//! result comes back through the outbox.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ptr::{self, addr_of, addr_of_mut};
use std::sync::atomic::{fence, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::report::{log, Level};
use super::sys::{self, client, connection, robj};
use crate::job::Job;
use crate::pool::scaling::{may_deactivate, Scaler, Step};
use crate::pool::{current_worker_id, send_to_main, Handler, Pool, PoolConfig, Remote};
use crate::sync::Arc;

const C_OK: c_int = sys::C_OK as c_int;
const C_ERR: c_int = sys::C_ERR;

/// Job kinds (`JobRequest` in `io_threads.h`).
const JOB_REQ_READ_CLIENT: usize = sys::JOB_REQ_READ_CLIENT as usize;
const JOB_REQ_WRITE_CLIENT: usize = sys::JOB_REQ_WRITE_CLIENT as usize;
const JOB_REQ_FREE_ARGV: usize = sys::JOB_REQ_FREE_ARGV as usize;
const JOB_REQ_FREE_OBJ: usize = sys::JOB_REQ_FREE_OBJ as usize;
const JOB_REQ_POLL: usize = sys::JOB_REQ_POLL as usize;
const JOB_REQ_ACCEPT: usize = sys::JOB_REQ_ACCEPT as usize;
/// Result kinds (`JobResult`).
const JOB_RES_READ_CLIENT: usize = sys::JOB_RES_READ_CLIENT as usize;
const JOB_RES_WRITE_CLIENT: usize = sys::JOB_RES_WRITE_CLIENT as usize;

const CLIENT_IDLE: u8 = sys::CLIENT_IDLE as u8;
const CLIENT_PENDING_IO: u8 = sys::CLIENT_PENDING_IO as u8;
const CLIENT_COMPLETED_IO: u8 = sys::CLIENT_COMPLETED_IO as u8;

/// Ring sizes of 9.1.2 (`IO_SPMC_QUEUE_SIZE` and friends).
#[cfg(not(feature = "tiny-rings"))]
const SHARED_INBOX_SIZE: usize = 4096;
#[cfg(not(feature = "tiny-rings"))]
const PRIVATE_INBOX_SIZE: usize = 4096;
#[cfg(not(feature = "tiny-rings"))]
const OUTBOX_SIZE: usize = 16384;
/// With `tiny-rings`, every ring has a few slots, so the full-inbox and
/// full-outbox paths (refused offloads, worker backlogs, draining through
/// the holding list) run all the time. For tests only.
#[cfg(feature = "tiny-rings")]
const SHARED_INBOX_SIZE: usize = 4;
#[cfg(feature = "tiny-rings")]
const PRIVATE_INBOX_SIZE: usize = 4;
#[cfg(feature = "tiny-rings")]
const OUTBOX_SIZE: usize = 4;
/// Results handled per batch (`JOB_BATCH_SIZE`).
const RESULT_BATCH: usize = 16;
/// Up to this many active threads the poll job goes to the shared inbox;
/// above it, round-robin to private inboxes.
const POLL_SHARED_UP_TO: usize = 9;
/// Main-thread active time is sampled this often while no worker runs.
const MAIN_THREAD_SAMPLE_US: i64 = 50_000;
/// How long `killIOThreads` waits for workers before leaving them.
const KILL_TIMEOUT: Duration = Duration::from_millis(500);

/// The main thread's state. Only the main thread touches it, except
/// `killIOThreads`, which Valkey's crash handler may call from any thread.
struct IoThreads {
    pool: Option<Pool<ValkeyJobs>>,
    scaler: Scaler,
    last_main_thread_sample_us: i64,
    next_poll_worker: usize,
}

struct MainThreadCell(RefCell<IoThreads>);

// SAFETY: the cell is used from the main thread only: every entry point that
// reaches it asserts so, or runs only there by Valkey's design. The two that
// other threads call, `killIOThreads` and `getIOThreadActiveTimeMicroseconds`
// (both from Valkey's crash report), go through `REMOTE` instead; `kill`
// takes the cell only on the main thread, with `try_borrow_mut`, in case the
// crash interrupted the main thread inside the core.
unsafe impl Sync for MainThreadCell {}

static STATE: MainThreadCell = MainThreadCell(RefCell::new(IoThreads {
    pool: None,
    scaler: Scaler::new(),
    last_main_thread_sample_us: 0,
    next_poll_worker: 0,
}));

/// What threads other than the main thread may use of the pool: the
/// workers' active time (Valkey's crash report reads it on whichever thread
/// crashed) and abandoning the workers (`killIOThreads` from a crash off the
/// main thread). Set once, with the pool.
static REMOTE: OnceLock<Remote> = OnceLock::new();
/// The thread that created the pool, Valkey's main thread, as `pthread_self`
/// gives it: compared without allocating, since `killIOThreads` runs in
/// Valkey's crash handler.
static MAIN_THREAD: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on the state. `f` must not call back into Valkey code that may
/// re-enter an entry point (the RefCell would catch it and panic).
fn with_state<R>(f: impl FnOnce(&mut IoThreads) -> R) -> R {
    f(&mut STATE.0.borrow_mut())
}

fn with_pool<R>(f: impl FnOnce(&mut Pool<ValkeyJobs>) -> R) -> Option<R> {
    with_state(|state| state.pool.as_mut().map(f))
}

/// Valkey's global server struct.
fn server() -> *mut sys::valkeyServer {
    addr_of_mut!(sys::server)
}

#[track_caller]
fn assert_main_thread(entry: &str) {
    let id = current_worker_id();
    assert!(
        id == 0,
        "{entry} called from I/O thread {id}; it must run on the main thread"
    );
}

/// A client's `io_read_state` or `io_write_state` as an atomic.
///
/// C declares both `volatile`, and Valkey's worker-side code (networking.c)
/// stores to them plainly. The crate's own accesses are atomic, so that a
/// race on them always involves Valkey's plain access and never a second
/// non-atomic one of ours. They are Relaxed, as the `volatile` accesses they
/// replace: the hand-over of a client is ordered by the rings (the job's
/// publication, the result's) and by the fences in `accept` and
/// `wait_for_client_io`, not by these words.
///
/// # Safety
/// `state` points to one of the two fields of a live client.
unsafe fn io_state<'a>(state: *mut u8) -> &'a AtomicU8 {
    // SAFETY: per the contract the byte is live; `AtomicU8` has the size and
    // alignment of `u8`, and every other access is `volatile` C or ours.
    unsafe { AtomicU8::from_ptr(state) }
}

/// Reads a client's `io_read_state`.
///
/// # Safety
/// `c` points to a live client.
unsafe fn read_state(c: *mut client) -> u8 {
    // SAFETY: per the contract.
    unsafe { io_state(addr_of_mut!((*c).io_read_state)) }.load(Ordering::Relaxed)
}

/// Reads a client's `io_write_state`.
///
/// # Safety
/// `c` points to a live client.
unsafe fn write_state(c: *mut client) -> u8 {
    // SAFETY: per the contract.
    unsafe { io_state(addr_of_mut!((*c).io_write_state)) }.load(Ordering::Relaxed)
}

/// Sets a client's `io_read_state`.
///
/// # Safety
/// `c` points to a live client that the calling thread owns for I/O.
unsafe fn set_read_state(c: *mut client, state: u8) {
    // SAFETY: per the contract.
    unsafe { io_state(addr_of_mut!((*c).io_read_state)) }.store(state, Ordering::Relaxed);
}

/// Sets a client's `io_write_state`.
///
/// # Safety
/// As for [`set_read_state`].
unsafe fn set_write_state(c: *mut client, state: u8) {
    // SAFETY: per the contract.
    unsafe { io_state(addr_of_mut!((*c).io_write_state)) }.store(state, Ordering::Relaxed);
}

/// `server.io_poll_state` is `_Atomic` in C; bindgen drops the qualifier.
fn io_poll_state() -> &'static AtomicU32 {
    // SAFETY: the field is a 4-byte, 4-aligned `_Atomic` enum that C code
    // accesses only atomically or from the main thread; viewing it as an
    // AtomicU32 matches its size and alignment (asserted below).
    unsafe { AtomicU32::from_ptr(addr_of_mut!((*server()).io_poll_state).cast()) }
}
const _: () = assert!(std::mem::size_of::<sys::AeIoState>() == 4);

/// Pending read and write results (`getPendingIOResponsesCount`).
pub(crate) fn pending_responses() -> c_int {
    // SAFETY: main-thread fields of the global server.
    unsafe { ((*server()).stat_io_writes_pending + (*server()).stat_io_reads_pending) as c_int }
}

/// What runs on the workers.
struct ValkeyJobs;

impl Handler for ValkeyJobs {
    fn run(&self, job: Job) {
        let data = job.ptr();
        // SAFETY: each kind's pointer was tagged by the matching submit
        // function below from a live object handed to this worker.
        unsafe {
            match job.kind() {
                JOB_REQ_READ_CLIENT => sys::ioThreadReadQueryFromClient(data.cast()),
                JOB_REQ_WRITE_CLIENT => sys::ioThreadWriteToClient(data.cast()),
                JOB_REQ_FREE_ARGV => free_argv(data.cast()),
                JOB_REQ_FREE_OBJ => sys::decrRefCount(data.cast()),
                JOB_REQ_POLL => poll(data.cast()),
                JOB_REQ_ACCEPT => accept(data.cast()),
                kind => panic!("invalid I/O job kind {kind}"),
            }
        }
    }

    fn on_start(&self, _id: usize) {
        // SAFETY: sets up this thread's shared query buffer, as 9.1.2 does.
        unsafe { sys::initSharedQueryBuf() };
    }

    fn on_exit(&self, _id: usize) {
        // SAFETY: frees this thread's shared query buffer.
        unsafe { sys::freeSharedQueryBuf() };
        // SAFETY: pthread_self has no preconditions.
        let tid = unsafe { libc::pthread_self() };
        log(
            Level::Notice,
            format_args!("IO thread(tid:{tid}) terminated"),
        );
    }
}

/// Frees a command's arguments on a worker. The main thread set the
/// refcount of the last one to free to 0; entries it freed itself are NULL.
///
/// # Safety
/// `argv` is a zmalloc'ed array prepared by `offload_free_argv`.
unsafe fn free_argv(argv: *mut *mut robj) {
    let mut i = 0;
    loop {
        // SAFETY: the array runs at least to the marked last argument.
        let o = unsafe { *argv.add(i) };
        i += 1;
        if o.is_null() {
            continue;
        }
        // SAFETY: a live object this worker now owns a reference to.
        let last = unsafe { sys::serverObject::refcount_raw(o) } == 0;
        if last {
            // SAFETY: as above.
            unsafe { sys::serverObject::set_refcount_raw(o, 1) };
        }
        // SAFETY: drops the reference the main thread handed over.
        unsafe { sys::decrRefCount(o) };
        if last {
            break;
        }
    }
    // SAFETY: the array was allocated with zmalloc and is ours.
    unsafe { sys::valkey_free(argv.cast()) };
}

/// Polls the event loop for the main thread.
///
/// # Safety
/// `el` is the server's event loop, protected from the main thread by
/// `aeSetPollProtect` until `io_poll_state` says DONE.
unsafe fn poll(el: *mut sys::aeEventLoop) {
    let mut no_wait = sys::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: per the contract.
    let events = unsafe { sys::aePoll(el, &mut no_wait) };
    // SAFETY: written here, read by the main thread after the Release below.
    unsafe { (*server()).io_ae_fired_events = events };
    // Release: pairs with the Acquire load in `poll_results`, publishing the
    // fired events and `io_ae_fired_events`.
    io_poll_state().store(sys::AE_IO_STATE_DONE, Ordering::Release);
}

/// Completes a TLS accept for the main thread.
///
/// # Safety
/// `c` is a client whose read state is `CLIENT_PENDING_IO`, owned by this
/// worker until the result is sent.
unsafe fn accept(c: *mut client) {
    // SAFETY: per the contract.
    unsafe { sys::connAccept((*c).conn, None) };
    // Release: the connection's state before the completed flag, for a main
    // thread that reads the flag with `waitForClientIO`'s Acquire fence.
    fence(Ordering::Release);
    // SAFETY: per the contract.
    unsafe { set_read_state(c, CLIENT_COMPLETED_IO) };
    send_to_main(Job::new(c.cast(), JOB_RES_READ_CLIENT));
}

/// The event loop's custom poll procedure while a worker polls.
unsafe extern "C" fn poll_results(el: *mut sys::aeEventLoop) -> c_int {
    // Acquire: pairs with the Release store in `poll`.
    let state = io_poll_state().load(Ordering::Acquire);
    if state == sys::AE_IO_STATE_POLL {
        return 0;
    }
    assert!(
        state == sys::AE_IO_STATE_DONE,
        "unexpected io_poll_state {state}"
    );
    // SAFETY: main-thread fields and calls, as in 9.1.2.
    unsafe {
        (*server()).stat_poll_processed_by_io_threads += 1;
        io_poll_state().store(sys::AE_IO_STATE_NONE, Ordering::Relaxed);
        sys::aeSetCustomPollProc(el, None);
        sys::aeSetPollProtect(el, 0);
        (*server()).io_ae_fired_events
    }
}

fn pool_config() -> PoolConfig {
    // SAFETY: main-thread read of a config string (may be NULL).
    let cpulist = unsafe { (*server()).server_cpulist };
    let cpus = (!cpulist.is_null())
        .then(|| {
            // SAFETY: a NUL-terminated config string.
            unsafe { std::ffi::CStr::from_ptr(cpulist) }
                .to_string_lossy()
                .into_owned()
        })
        .and_then(|list| crate::pool::parse_cpulist(&list).ok());
    PoolConfig {
        max_threads: sys::IO_THREADS_MAX_NUM as usize,
        shared_inbox_capacity: SHARED_INBOX_SIZE,
        private_inbox_capacity: PRIVATE_INBOX_SIZE,
        outbox_capacity: OUTBOX_SIZE,
        cpus,
        name_prefix: "io_thd_".to_owned(),
        ..PoolConfig::default()
    }
}

fn configured_threads() -> usize {
    // SAFETY: main-thread config field.
    unsafe { (*server()).io_threads_num as usize }
}

fn active_threads() -> usize {
    // SAFETY: main-thread field.
    unsafe { (*server()).active_io_threads_num as usize }
}

/// Activates the first `active` threads and records it where Valkey looks.
fn set_active(pool: &mut Pool<ValkeyJobs>, active: usize) {
    pool.set_active(active);
    // SAFETY: main-thread field.
    unsafe { (*server()).active_io_threads_num = active as c_int };
}

pub(crate) fn init(prev_threads: c_int) {
    let threads = configured_threads();
    if threads == 1 {
        return;
    }
    assert!(
        threads <= sys::IO_THREADS_MAX_NUM as usize,
        "io-threads {threads} exceeds IO_THREADS_MAX_NUM"
    );
    let _ = prev_threads;
    let first_time = with_state(|state| state.pool.is_none());
    if first_time {
        // SAFETY: main-thread fields and Valkey's one-time set-up, as 9.1.2.
        unsafe {
            (*server()).active_io_threads_num = 1;
            io_poll_state().store(sys::AE_IO_STATE_NONE, Ordering::Relaxed);
            (*server()).io_ae_fired_events = 0;
            sys::prefetchCommandsBatchInit();
        }
        let pool = Pool::new(pool_config(), Arc::new(ValkeyJobs));
        let _ = REMOTE.set(pool.remote());
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as usize;
        // Relaxed: read by `kill`, on this thread or after a crash, when
        // any value but this one means "not the main thread".
        MAIN_THREAD.store(me, Ordering::Relaxed);
        with_state(|state| state.pool = Some(pool));
    }
    with_pool(|pool| {
        pool.resize(threads);
        set_active(pool, 1);
    });
}

pub(crate) fn update(_err: *mut *const std::ffi::c_char) -> c_int {
    assert_main_thread("updateIOThreads");
    let threads = configured_threads();
    let prev = with_pool(|pool| pool.threads()).unwrap_or(1);
    if prev == threads {
        return 1;
    }
    log(
        Level::Notice,
        format_args!("Changing number of IO threads from {prev} to {threads}."),
    );
    if with_state(|state| state.pool.is_none()) {
        init(1);
        return 1;
    }
    // The pool's drain cannot deadlock on a full outbox, so unlike 9.1.2 this
    // never refuses to run under load: results set aside while draining are
    // handed out first by the next `processIOThreadsResponses`.
    with_pool(|pool| {
        pool.drain();
        set_active(pool, 1);
        pool.resize(threads);
    });
    1
}

pub(crate) fn kill() {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    // Relaxed: see `init`.
    if me != MAIN_THREAD.load(Ordering::Relaxed) {
        // A crash on a worker or another thread: the main thread's state is
        // not ours to touch, and the main thread may be using it.
        if let Some(remote) = REMOTE.get() {
            remote.abandon(KILL_TIMEOUT);
        }
        return;
    }
    let Ok(mut state) = STATE.0.try_borrow_mut() else {
        // The main thread was inside the core when the crash happened; its
        // workers are left to the process exit.
        return;
    };
    if let Some(mut pool) = state.pool.take() {
        pool.abandon(KILL_TIMEOUT);
        // Workers that did not exit still hold the rings through their own
        // references; dropping the pool would wait for them.
        std::mem::forget(pool);
    }
}

pub(crate) fn drain() {
    assert_main_thread("drainIOThreadsQueue");
    with_pool(Pool::drain);
}

pub(crate) fn commit() {
    with_pool(Pool::commit);
}

/// Any thread: Valkey's crash report reads it on the thread that crashed.
pub(crate) fn active_time_us(id: c_int) -> i64 {
    let Ok(id) = usize::try_from(id) else {
        return 0;
    };
    REMOTE
        .get()
        .map_or(0, |remote| remote.active_time_us(id) as i64)
}

/// Whether the client has a read or write in a worker's hands.
///
/// # Safety
/// `c` points to a live client.
pub(crate) unsafe fn client_has_pending_io(c: *mut client) -> bool {
    // SAFETY: per the contract.
    unsafe { read_state(c) != CLIENT_IDLE || write_state(c) != CLIENT_IDLE }
}

/// Waits until no worker holds the client.
///
/// # Safety
/// `c` points to a live client; called on the main thread.
pub(crate) unsafe fn wait_for_client_io(c: *mut client) {
    // SAFETY: per the contract.
    if unsafe { !client_has_pending_io(c) } {
        return;
    }
    // Make sure a sleeping worker is woken for the client's job.
    commit();
    let mut rounds = 0u32;
    // SAFETY: per the contract.
    while unsafe { read_state(c) == CLIENT_PENDING_IO || write_state(c) == CLIENT_PENDING_IO } {
        rounds = rounds.saturating_add(1);
        if rounds < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    // Acquire: pairs with the worker's Release fence before it marked the
    // state completed, so its writes to the client are visible.
    fence(Ordering::Acquire);
}

pub(crate) fn before_sleep(current_time_us: i64) {
    if configured_threads() == 1 {
        return;
    }
    assert_main_thread("IOThreadsBeforeSleep");
    commit();

    // SAFETY: main-thread config field.
    let always_active = unsafe { (*server()).io_threads_always_active } != 0;
    if always_active && active_threads() > 1 {
        // Debug mode: all workers active while there is work, none while the
        // main thread sleeps.
        with_pool(|pool| {
            if pool.pending_jobs() == 0 {
                set_active(pool, 1);
            }
        });
    }

    if active_threads() == 1 {
        let due = with_state(|state| {
            let due = current_time_us - state.last_main_thread_sample_us >= MAIN_THREAD_SAMPLE_US;
            if due {
                state.last_main_thread_sample_us = current_time_us;
            }
            due
        });
        if due {
            // SAFETY: Valkey's metric, sampled on the main thread as in 9.1.2.
            unsafe {
                sys::trackInstantaneousMetric(
                    sys::STATS_METRIC_MAIN_THREAD_ACTIVE_TIME as c_int,
                    (*server()).stat_active_time as i64,
                    current_time_us,
                    1_000_000,
                )
            };
        }
    }
}

pub(crate) fn after_sleep(events: c_int) {
    let configured = configured_threads();
    if configured == 1 {
        return;
    }
    assert_main_thread("IOThreadsAfterSleep");
    let active = active_threads();

    // SAFETY: main-thread config field.
    if unsafe { (*server()).io_threads_always_active } != 0 {
        if events > 0 && active < configured {
            with_pool(|pool| {
                let all = pool.threads();
                set_active(pool, all)
            });
        }
        return;
    }

    // SAFETY: main-thread reads of Valkey's clock and metric.
    let (now_ms, main_percent) = unsafe {
        let metric =
            sys::getInstantaneousMetric(sys::STATS_METRIC_MAIN_THREAD_ACTIVE_TIME as c_int);
        ((*server()).mstime, metric as f32 / 10_000.0)
    };
    with_state(|state| {
        let Some(pool) = state.pool.as_mut() else {
            return;
        };
        let step = state
            .scaler
            .after_sleep(now_ms, configured, active, main_percent, || {
                pool.shared_inbox_len()
            });
        match step {
            Step::Stay => {}
            Step::Up(target) => {
                set_active(pool, target);
                if active == 1 {
                    log(
                        Level::Debug,
                        format_args!("IO threads ignition: increased to {target}"),
                    );
                } else {
                    log(
                        Level::Debug,
                        format_args!("IO threads increased from {active} to {target}"),
                    );
                }
            }
            Step::Down(target) => {
                let retiring_empty = pool.private_inbox_is_empty(active - 1);
                let shared_empty = pool.shared_inbox_is_empty();
                if may_deactivate(active, retiring_empty, shared_empty) {
                    set_active(pool, target);
                    log(
                        Level::Debug,
                        format_args!("IO threads decreased from {active} to {target}"),
                    );
                }
            }
        }
    });
}

/// Offloads reading (and parsing) a client's query to a worker.
///
/// # Safety
/// `c` points to a live client; main thread.
pub(crate) unsafe fn send_read(c: *mut client) -> c_int {
    if active_threads() <= 1 {
        return C_ERR;
    }
    // SAFETY: per the contract, for every access below.
    unsafe {
        if (*c).conn.is_null() {
            return C_ERR;
        }
        match read_state(c) {
            // The worker is still reading: the main thread must not race it.
            CLIENT_PENDING_IO => return C_OK,
            // The main thread must finish the completed read first.
            CLIENT_COMPLETED_IO => return C_ERR,
            _ => {}
        }
        if write_state(c) == CLIENT_PENDING_IO {
            return C_OK;
        }
        if sys::getClientType(c) == sys::CLIENT_TYPE_REPLICA as c_int {
            return C_ERR;
        }
        let flags = addr_of!((*c).__bindgen_anon_1.flag);
        if sys::ClientFlags::lua_debug_raw(flags) != 0
            || sys::ClientFlags::blocked_raw(flags) != 0
            || sys::ClientFlags::unblocked_raw(flags) != 0
            || sys::ClientFlags::close_asap_raw(flags) != 0
        {
            return C_ERR;
        }
        if !(*c).slot_migration_job.is_null()
            && !sys::clusterSlotMigrationShouldInstallWriteHandler(c)
        {
            return C_ERR;
        }

        let mut read_flags = if sys::canParseCommand(c) != 0 {
            0
        } else {
            sys::READ_FLAGS_DONT_PARSE
        };
        if sys::authRequired(c) != 0 {
            read_flags |= sys::READ_FLAGS_AUTH_REQUIRED;
        }
        if sys::isReplicatedClient(c) != 0 {
            read_flags |= sys::READ_FLAGS_REPLICATED;
        }
        (*c).read_flags = read_flags as _;
        set_read_state(c, CLIENT_PENDING_IO);
        sys::connSetPostponeUpdateState((*c).conn, sys::clientConnPostponeMaskFromIOState(c));

        let job = Job::new(c.cast(), JOB_REQ_READ_CLIENT);
        if with_pool(|pool| pool.try_submit_shared(job).is_ok()) != Some(true) {
            (*c).read_flags = 0;
            set_read_state(c, CLIENT_IDLE);
            sys::connSetPostponeUpdateState((*c).conn, 0);
            return C_ERR;
        }

        (*server()).stat_io_reads_pending += 1;
        sys::ClientFlags::set_pending_read_raw(addr_of_mut!((*c).__bindgen_anon_1.flag), 1);
    }
    C_OK
}

/// Offloads writing a client's pending replies to a worker.
///
/// # Safety
/// `c` points to a live client; main thread.
pub(crate) unsafe fn send_write(c: *mut client) -> c_int {
    if active_threads() <= 1 {
        return C_ERR;
    }
    // SAFETY: per the contract, for every access below.
    unsafe {
        if (*c).conn.is_null() {
            return C_ERR;
        }
        if write_state(c) != CLIENT_IDLE {
            return C_OK;
        }
        if read_state(c) == CLIENT_PENDING_IO {
            return C_ERR;
        }
        if sys::clientHasPendingReplies(c) == 0 {
            return C_ERR;
        }
        let is_replica = sys::getClientType(c) == sys::CLIENT_TYPE_REPLICA as c_int;
        if is_replica && (*(*c).repl_data).repl_state != sys::REPLICA_STATE_ONLINE as c_int {
            return C_ERR;
        }
        let flags = addr_of_mut!((*c).__bindgen_anon_1.flag);
        if sys::ClientFlags::lua_debug_raw(flags) != 0 {
            return C_ERR;
        }
        if !(*c).slot_migration_job.is_null()
            && !sys::clusterSlotMigrationShouldInstallWriteHandler(c)
        {
            return C_ERR;
        }

        // The worker writes only up to this snapshot of the last block, so it
        // never reads what the main thread appends meanwhile.
        let mut block: *mut sys::clientReplyBlock = ptr::null_mut();
        if is_replica {
            let last = (*(*server()).repl_buffer_blocks).tail;
            (*c).io_last_reply_block = last;
            (*c).io_last_bufpos = (*(*last).value.cast::<sys::replBufBlock>()).used;
        } else {
            let last = (*(*c).reply).tail;
            (*c).io_last_reply_block = last;
            if last.is_null() {
                (*c).io_last_bufpos = (*c).bufpos as usize;
            } else {
                block = (*last).value.cast();
                (*c).io_last_bufpos = (*block).used;
            }
        }
        assert!(
            (*c).bufpos > 0 || (*c).io_last_bufpos > 0 || is_replica,
            "write offload of a client with nothing to write"
        );

        (*c).write_flags = if is_replica {
            sys::WRITE_FLAGS_IS_REPLICA as _
        } else {
            0
        };
        set_write_state(c, CLIENT_PENDING_IO);
        sys::connSetPostponeUpdateState((*c).conn, sys::clientConnPostponeMaskFromIOState(c));

        let job = Job::new(c.cast(), JOB_REQ_WRITE_CLIENT);
        if with_pool(|pool| pool.try_submit_shared(job).is_ok()) != Some(true) {
            set_write_state(c, CLIENT_IDLE);
            sys::connSetPostponeUpdateState((*c).conn, 0);
            (*c).write_flags = 0;
            (*c).io_last_reply_block = ptr::null_mut();
            (*c).io_last_bufpos = 0;
            return C_ERR;
        }

        // Start a new header after the enqueue, so the main thread never
        // extends a header the worker is reading.
        if !is_replica {
            if !block.is_null() {
                if sys::ClientReplyBlockFlags::buf_encoded_raw(addr_of!((*block).flag)) != 0 {
                    (*block).last_header = ptr::null_mut();
                }
            } else if sys::ClientFlags::buf_encoded_raw(flags) != 0 {
                (*c).last_header = ptr::null_mut();
            }
        }
        if sys::ClientFlags::pending_write_raw(flags) != 0 {
            sys::listUnlinkNode(
                (*server()).clients_pending_write,
                addr_of_mut!((*c).clients_pending_write_node),
            );
            sys::ClientFlags::set_pending_write_raw(flags, 0);
        }
        (*server()).stat_io_writes_pending += 1;
    }
    C_OK
}

/// Offloads freeing a command's arguments to the worker that read them.
///
/// # Safety
/// `c` is a live client; `argv` holds `argc` live objects and was allocated
/// with zmalloc; main thread. On `C_OK` the array and its references are
/// the core's.
pub(crate) unsafe fn offload_free_argv(c: *mut client, argc: c_int, argv: *mut *mut robj) -> c_int {
    let active = active_threads();
    if active <= 1 || argc == 0 {
        return C_ERR;
    }
    // SAFETY: per the contract, for every access below.
    unsafe {
        let mut target = (*c).cur_tid as usize;
        if target < 1 || target >= active {
            target = ((*c).id % (active as u64 - 1)) as usize + 1;
        }
        if with_pool(|pool| pool.private_inbox_is_full(target)) != Some(false) {
            return C_ERR;
        }

        let mut last_to_free = None;
        for j in 0..argc as usize {
            let o = *argv.add(j);
            if sys::serverObject::refcount_raw(o) > 1 {
                sys::decrRefCount(o);
                *argv.add(j) = ptr::null_mut();
            } else {
                last_to_free = Some(j);
            }
        }
        let Some(last) = last_to_free else {
            sys::valkey_free(argv.cast());
            return C_OK;
        };

        // A refcount of 0 marks the last argument to free, so the worker
        // needs no argc.
        sys::serverObject::set_refcount_raw(*argv.add(last), 0);
        let job = Job::new(argv.cast(), JOB_REQ_FREE_ARGV);
        let queued = with_pool(|pool| pool.try_submit_private(target, job, false).is_ok());
        assert!(
            queued == Some(true),
            "private inbox {target} filled up between check and push"
        );
    }
    C_OK
}

/// Offloads freeing a raw string object.
///
/// # Safety
/// `o` is a live object; main thread. On `C_OK` the reference is the core's.
pub(crate) unsafe fn offload_free_obj(o: *mut robj) -> c_int {
    if active_threads() <= 1 {
        return C_ERR;
    }
    // SAFETY: per the contract.
    unsafe {
        if sys::serverObject::refcount_raw(o) > 1 {
            return C_ERR;
        }
        if sys::serverObject::encoding_raw(o) != sys::OBJ_ENCODING_RAW
            || sys::serverObject::type__raw(o) != sys::OBJ_STRING
        {
            return C_ERR;
        }
        let job = Job::new(o.cast(), JOB_REQ_FREE_OBJ);
        if with_pool(|pool| pool.try_submit_shared(job).is_ok()) != Some(true) {
            return C_ERR;
        }
        (*server()).stat_io_freed_objects += 1;
    }
    C_OK
}

/// Offloads the event loop's poll to a worker while results are pending.
pub(crate) fn send_poll() {
    let active = active_threads();
    if active <= 1 || pending_responses() == 0 {
        return;
    }
    // Relaxed: only the main thread moves the state away from NONE.
    if io_poll_state().load(Ordering::Relaxed) != sys::AE_IO_STATE_NONE {
        return;
    }
    // SAFETY: main-thread access to the server's event loop.
    let el = unsafe { (*server()).el };
    let job = Job::new(el.cast(), JOB_REQ_POLL);

    io_poll_state().store(sys::AE_IO_STATE_POLL, Ordering::Relaxed);
    // SAFETY: main thread.
    unsafe { sys::aeSetPollProtect(el, 1) };

    let queued = with_state(|state| {
        let pool = state.pool.as_mut()?;
        if active <= POLL_SHARED_UP_TO {
            return pool.try_submit_shared(job).ok();
        }
        state.next_poll_worker = state.next_poll_worker % (active - 1) + 1;
        let id = state.next_poll_worker;
        if pool.private_inbox_is_full(id) {
            return None;
        }
        pool.try_submit_private(id, job, true).ok()
    });
    if queued.is_none() {
        io_poll_state().store(sys::AE_IO_STATE_NONE, Ordering::Relaxed);
        // SAFETY: main thread.
        unsafe { sys::aeSetPollProtect(el, 0) };
        return;
    }
    // SAFETY: main thread.
    unsafe { sys::aeSetCustomPollProc(el, Some(poll_results)) };
}

/// Offloads a TLS accept.
///
/// # Safety
/// `conn` is a live connection; main thread.
pub(crate) unsafe fn send_accept(conn: *mut connection) -> c_int {
    if configured_threads() <= 1 {
        return C_ERR;
    }
    // SAFETY: per the contract, for every access below.
    unsafe {
        if (*conn).flags as u32 & sys::CONN_FLAG_ALLOW_ACCEPT_OFFLOAD == 0 {
            return C_ERR;
        }
        let c: *mut client = sys::connGetPrivateData(conn).cast();
        if read_state(c) != CLIENT_IDLE {
            return C_OK;
        }
        if active_threads() <= 1 {
            return C_ERR;
        }
        let flags = addr_of_mut!((*c).__bindgen_anon_1.flag);
        set_read_state(c, CLIENT_PENDING_IO);
        sys::ClientFlags::set_pending_read_raw(flags, 1);
        sys::connSetPostponeUpdateState((*c).conn, sys::clientConnPostponeMaskFromIOState(c));

        let job = Job::new(c.cast(), JOB_REQ_ACCEPT);
        if with_pool(|pool| pool.try_submit_shared(job).is_ok()) != Some(true) {
            set_read_state(c, CLIENT_IDLE);
            sys::ClientFlags::set_pending_read_raw(flags, 0);
            sys::connSetPostponeUpdateState((*c).conn, 0);
            return C_ERR;
        }
        (*server()).stat_io_reads_pending += 1;
        (*server()).stat_io_accept_offloaded += 1;
    }
    C_OK
}

/// Handles finished reads: runs the parsed commands in one batch, then lets
/// each client's connection resume.
///
/// # Safety
/// Main thread; the clients' reads have completed.
unsafe fn handle_reads(reads: &[*mut client]) {
    // SAFETY: per the contract, for every access below.
    unsafe {
        (*server()).stat_io_reads_pending -= reads.len() as i64;
        assert!(
            (*server()).stat_io_reads_pending >= 0,
            "stat_io_reads_pending went negative"
        );
        let mut ids = [0u64; RESULT_BATCH];
        let mut n = 0;
        for &c in reads {
            let id = (*c).id;
            if sys::processClientIOReadsDone(c) != 0 {
                ids[n] = id;
                n += 1;
            }
        }
        (*server()).stat_io_reads_processed += reads.len() as i64;
        sys::processClientsCommandsBatch();

        for &id in &ids[..n] {
            let c = sys::lookupClientByID(id);
            if c.is_null() || (*c).conn.is_null() {
                continue;
            }
            if sys::processPendingCommandAndInputBuffer(c) == C_OK {
                sys::beforeNextClient(c);
            }
            // The client may have been freed by its commands.
            let c = sys::lookupClientByID(id);
            if c.is_null() || (*c).conn.is_null() {
                continue;
            }
            sys::connSetPostponeUpdateState((*c).conn, sys::clientConnPostponeMask(c));
            sys::connUpdateState((*c).conn);
        }
    }
}

/// Handles finished writes.
///
/// # Safety
/// Main thread; the clients' writes have completed.
unsafe fn handle_writes(writes: &[*mut client]) {
    // SAFETY: per the contract.
    unsafe {
        (*server()).stat_io_writes_pending -= writes.len() as i64;
        assert!(
            (*server()).stat_io_writes_pending >= 0,
            "stat_io_writes_pending went negative"
        );
        for &c in writes {
            (*server()).stat_io_writes_processed += 1;
            sys::processClientIOWriteDone(c);
        }
    }
}

/// Takes every result the workers have sent and handles it, in batches of
/// up to 16. Returns how many were handled.
pub(crate) fn process_responses() -> c_int {
    if pending_responses() == 0 {
        return 0;
    }
    let mut total = 0;
    let mut words = [ptr::null_mut::<c_void>(); RESULT_BATCH];
    loop {
        let mut reads = [ptr::null_mut::<client>(); RESULT_BATCH];
        let mut writes = [ptr::null_mut::<client>(); RESULT_BATCH];
        let (mut n_reads, mut n_writes) = (0, 0);

        let received = with_pool(|pool| {
            let received = pool.pop_results(&mut words);
            if received == 0 && total == 0 {
                // Results are due but none came: make sure no worker holding
                // one of their jobs sleeps through a missed cheap wake-up.
                pool.commit();
            }
            received
        })
        .unwrap_or(0);
        for &word in &words[..received] {
            let result = Job::from_word(word).expect("a null result word in the outbox");
            let c: *mut client = result.ptr().cast();
            match result.kind() {
                JOB_RES_READ_CLIENT => {
                    // SAFETY: the worker is done with the client.
                    let state = unsafe { read_state(c) };
                    assert!(
                        state == CLIENT_COMPLETED_IO,
                        "read result for a client in state {state}"
                    );
                    reads[n_reads] = c;
                    n_reads += 1;
                }
                JOB_RES_WRITE_CLIENT => {
                    // SAFETY: as above.
                    let state = unsafe { write_state(c) };
                    assert!(
                        state == CLIENT_COMPLETED_IO,
                        "write result for a client in state {state}"
                    );
                    writes[n_writes] = c;
                    n_writes += 1;
                }
                kind => panic!("unknown I/O result kind {kind}"),
            }
        }
        total += received;

        // SAFETY: main thread; these clients' I/O has completed.
        unsafe {
            if n_reads > 0 {
                handle_reads(&reads[..n_reads]);
            }
            if n_writes > 0 {
                handle_writes(&writes[..n_writes]);
            }
        }
        if received < RESULT_BATCH {
            return total as c_int;
        }
    }
}
