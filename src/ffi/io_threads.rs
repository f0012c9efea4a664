//! `io_threads.h`: Valkey's I/O-thread entry points, plus `waitForClientIO`
//! (declared in `server.h`), `commitIOJobs` and `getPendingIOResponsesCount`.
//!
//! Each is a thin shim over `crate::valkey::io_threads`. Client, connection
//! and object pointers follow the crate's pointer rules and Valkey's
//! ownership rules for I/O: a client handed to a worker is not touched by
//! the main thread until its result is processed. Unless an entry point says
//! otherwise it runs on the main thread, which the main-thread-only entry
//! points assert.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, c_longlong, c_void};

use crate::job::{Job, KIND_COUNT};
use crate::pool::{current_worker_id, send_to_main};
use crate::valkey::io_threads as core;
use crate::valkey::sys::{client, connection, robj};

/// Starts workers `prev_threads_num..io_threads_num` (all of them, the first
/// time), inactive.
#[no_mangle]
pub extern "C" fn initIOThreads(prev_threads_num: c_int) {
    core::init(prev_threads_num);
}

/// Stops every worker without waiting on the main thread; waits a bounded
/// time for them to exit. Safe to call from Valkey's crash handler on any
/// thread; never hangs.
#[no_mangle]
pub extern "C" fn killIOThreads() {
    core::kill();
}

/// 1 on the main thread, 0 on a worker.
#[no_mangle]
pub extern "C" fn inMainThread() -> c_int {
    (current_worker_id() == 0) as c_int
}

/// The calling thread's id: 0 for the main thread, 1.. for workers.
#[no_mangle]
pub extern "C" fn getCurTid() -> c_int {
    current_worker_id() as c_int
}

/// Offloads reading the client's query; C_OK if a worker has (or already
/// had) it, C_ERR if the main thread must read.
///
/// # Safety
/// `c` is a live client (crate pointer rules).
#[no_mangle]
pub unsafe extern "C" fn trySendReadToIOThreads(c: *mut client) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::send_read(c) }
}

/// Offloads writing the client's replies; C_OK if a worker has (or already
/// had) it, C_ERR if the main thread must write.
///
/// # Safety
/// `c` is a live client.
#[no_mangle]
pub unsafe extern "C" fn trySendWriteToIOThreads(c: *mut client) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::send_write(c) }
}

/// Offloads freeing a raw string object; on C_OK the reference is the core's.
///
/// # Safety
/// `o` is a live object.
#[no_mangle]
pub unsafe extern "C" fn tryOffloadFreeObjToIOThreads(o: *mut robj) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::offload_free_obj(o) }
}

/// Offloads freeing `argc` arguments and the zmalloc'ed `argv` array; on
/// C_OK both are the core's.
///
/// # Safety
/// `c` is a live client; `argv` holds `argc` live objects.
#[no_mangle]
pub unsafe extern "C" fn tryOffloadFreeArgvToIOThreads(
    c: *mut client,
    argc: c_int,
    argv: *mut *mut robj,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::offload_free_argv(c, argc, argv) }
}

/// Scaling after the event loop's sleep.
#[no_mangle]
pub extern "C" fn IOThreadsAfterSleep(numevents: c_int) {
    core::after_sleep(numevents);
}

/// Publishes batched jobs and samples load before the event loop sleeps.
#[no_mangle]
pub extern "C" fn IOThreadsBeforeSleep(current_time: c_longlong) {
    core::before_sleep(current_time);
}

/// Returns once every job handed to the workers has run. Cannot deadlock:
/// results that arrive meanwhile are set aside for the next
/// `processIOThreadsResponses`.
#[no_mangle]
pub extern "C" fn drainIOThreadsQueue() {
    core::drain();
}

/// Offloads the event loop's poll while I/O results are pending.
#[no_mangle]
pub extern "C" fn trySendPollJobToIOThreads() {
    core::send_poll();
}

/// Offloads a TLS accept; C_OK if a worker has (or already had) it.
///
/// # Safety
/// `conn` is a live connection whose private data is its client.
#[no_mangle]
pub unsafe extern "C" fn trySendAcceptToIOThreads(conn: *mut connection) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::send_accept(conn) }
}

/// Applies `server.io_threads_num` (CONFIG SET io-threads): drains, then
/// starts or stops workers. Always succeeds (returns 1); `err` is untouched.
#[no_mangle]
pub extern "C" fn updateIOThreads(err: *mut *const c_char) -> c_int {
    core::update(err)
}

/// Microseconds worker `id` has spent running jobs.
#[no_mangle]
pub extern "C" fn getIOThreadActiveTimeMicroseconds(id: c_int) -> c_longlong {
    core::active_time_us(id)
}

/// 1 if a worker holds the client's read or write.
///
/// # Safety
/// `c` is a live client.
#[no_mangle]
pub unsafe extern "C" fn clientHasPendingIO(c: *mut client) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { core::client_has_pending_io(c) as c_int }
}

/// Handles every result the workers have sent; returns how many.
#[no_mangle]
pub extern "C" fn processIOThreadsResponses() -> c_int {
    core::process_responses()
}

/// Sends a result of kind `type` (0..8) for `data` (8-byte aligned) to the
/// main thread. Called on a worker, by the handlers Valkey runs there.
#[no_mangle]
pub extern "C" fn sendToMainThread(data: *mut c_void, r#type: c_int) {
    assert!(
        current_worker_id() != 0,
        "sendToMainThread called from a thread that is not an I/O worker"
    );
    let Ok(kind) = usize::try_from(r#type) else {
        panic!(
            "job kind {} does not fit in 3 bits (0..{KIND_COUNT})",
            r#type
        );
    };
    send_to_main(Job::new(data, kind));
}

/// Waits until no worker holds the client.
///
/// # Safety
/// `c` is a live client.
#[no_mangle]
pub unsafe extern "C" fn waitForClientIO(c: *mut client) {
    // SAFETY: forwarded contract.
    unsafe { core::wait_for_client_io(c) }
}

/// Publishes the jobs batched in the workers' private inboxes.
#[no_mangle]
pub extern "C" fn commitIOJobs() {
    core::commit();
}

/// Read and write results not yet processed.
#[no_mangle]
pub extern "C" fn getPendingIOResponsesCount() -> c_int {
    core::pending_responses()
}
