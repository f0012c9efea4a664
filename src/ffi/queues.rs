//! `queues.h`: the rings under Valkey's names and prototypes.
//!
//! Every function here takes a pointer to a ring struct that the C caller
//! allocated (see the crate-level pointer rules). `*Init` overwrites whatever
//! the struct held; `*Free` releases the buffer and leaves the struct zeroed,
//! as C's `queues.c` does, so a second `*Free` is harmless. Calling any other
//! function on a zeroed (never initialised, or freed) ring is a precondition
//! violation and stops the process with a message.

#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::c_void;
use std::ptr;

use crate::ring::{MpscRing, MpscTicket, SpmcRing, SpscRing};

/// `mpscQueue` in `queues.h`.
pub type mpscQueue = MpscRing;
/// `spmcQueue` in `queues.h`.
pub type spmcQueue = SpmcRing;
/// `spscQueue` in `queues.h`.
pub type spscQueue = SpscRing;
/// `mpscTicket` in `queues.h`.
pub type mpscTicket = MpscTicket;

/// Borrows an initialised ring from a C pointer.
///
/// The two checks cost a compare and a branch each on the hot path; the
/// message is built only in [`bad_queue`], so that nothing of it (not even
/// spilling `name`) is paid by a call that passes.
///
/// # Safety
/// `q` satisfies the crate's pointer rules for a ring.
#[inline(always)]
#[track_caller]
unsafe fn ring<'a, R: Capacity>(q: *mut R, name: &'static str) -> &'a R {
    if q.is_null() {
        bad_queue(name, "with a NULL queue");
    }
    // SAFETY: non-null, and valid for the call per the pointer rules.
    let ring = unsafe { &*q };
    if ring.slots() == 0 {
        bad_queue(name, "on a queue that is not initialised");
    }
    ring
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_queue(name: &str, what: &str) -> ! {
    panic!("{name} called {what}")
}

trait Capacity {
    fn slots(&self) -> usize;
}

macro_rules! impl_capacity {
    ($($ring:ty),*) => { $(impl Capacity for $ring {
        fn slots(&self) -> usize { self.capacity() }
    })* };
}
impl_capacity!(MpscRing, SpmcRing, SpscRing);

/// Releases a ring's buffer and zeroes the struct, as `*Free` in C does.
///
/// # Safety
/// `q` is null, or points to a ring that is zeroed or was initialised by the
/// matching `*Init`, with no other thread using it.
unsafe fn free_ring<R>(q: *mut R) {
    if q.is_null() {
        return;
    }
    // SAFETY: per the contract the struct is either a live ring, whose drop
    // frees its buffer, or all zero bytes: a null buffer, which drop skips.
    unsafe { ptr::drop_in_place(q) };
    // SAFETY: all-zero is a valid ring (null buffer, zero indices).
    unsafe { ptr::write_bytes(q, 0, 1) };
}

/// Initialises an MPSC queue with a size that must be a power of 2.
///
/// # Safety
/// `q` is writable and not in use by another thread (crate pointer rules).
#[no_mangle]
pub unsafe extern "C" fn mpscInit(q: *mut mpscQueue, queue_size: usize) {
    assert!(!q.is_null(), "mpscInit called with a NULL queue");
    // SAFETY: valid for writes (contract); old contents are not dropped.
    unsafe { q.write(MpscRing::with_capacity(queue_size)) };
}

/// Frees the MPSC queue's buffer and resets its state.
///
/// # Safety
/// `q` is initialised or zeroed, and no other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn mpscFree(q: *mut mpscQueue) {
    // SAFETY: forwarded contract.
    unsafe { free_ring(q) }
}

/// Pushes `data` (non-null); on a full queue keeps the reservation in
/// `ticket` and returns false. Retries must pass the same ticket.
///
/// # Safety
/// `q` is initialised; `ticket` is valid and used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn mpscEnqueue(
    q: *mut mpscQueue,
    data: *mut c_void,
    ticket: *mut mpscTicket,
) -> bool {
    // SAFETY: pointer rules (contract).
    let ring = unsafe { ring(q, "mpscEnqueue") };
    assert!(!ticket.is_null(), "mpscEnqueue called with a NULL ticket");
    // SAFETY: valid and unshared per the contract.
    ring.push(data, unsafe { &mut *ticket })
}

/// Pops up to `max_jobs` items into `jobs_out`, stopping at the first slot
/// reserved but not yet written.
///
/// # Safety
/// `q` is initialised; the caller is the queue's only consumer; `jobs_out`
/// has room for `max_jobs` pointers.
#[no_mangle]
pub unsafe extern "C" fn mpscDequeueBatch(
    q: *mut mpscQueue,
    jobs_out: *mut *mut c_void,
    max_jobs: usize,
) -> usize {
    // SAFETY: pointer rules (contract).
    let ring = unsafe { ring(q, "mpscDequeueBatch") };
    if max_jobs == 0 {
        return 0;
    }
    assert!(
        !jobs_out.is_null(),
        "mpscDequeueBatch called with a NULL output array"
    );
    // SAFETY: room for `max_jobs` pointers (contract).
    let out = unsafe { std::slice::from_raw_parts_mut(jobs_out, max_jobs) };
    // SAFETY: single consumer (contract).
    unsafe { ring.pop_batch(out) }
}

/// Initialises an SPMC queue with a size that must be a power of 2.
///
/// # Safety
/// As [`mpscInit`].
#[no_mangle]
pub unsafe extern "C" fn spmcInit(q: *mut spmcQueue, queue_size: usize) {
    assert!(!q.is_null(), "spmcInit called with a NULL queue");
    // SAFETY: valid for writes (contract); old contents are not dropped.
    unsafe { q.write(SpmcRing::with_capacity(queue_size)) };
}

/// Frees the SPMC queue's buffer and resets its state.
///
/// # Safety
/// As [`mpscFree`].
#[no_mangle]
pub unsafe extern "C" fn spmcFree(q: *mut spmcQueue) {
    // SAFETY: forwarded contract.
    unsafe { free_ring(q) }
}

/// Whether every pushed item has been taken, from the producer's view.
///
/// # Safety
/// `q` is initialised; the caller is the queue's only producer.
#[no_mangle]
pub unsafe extern "C" fn spmcIsEmpty(q: *mut spmcQueue) -> bool {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spmcIsEmpty").is_empty() }
}

/// Approximate number of items in the queue.
///
/// # Safety
/// As [`spmcIsEmpty`].
#[no_mangle]
pub unsafe extern "C" fn spmcSize(q: *mut spmcQueue) -> usize {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spmcSize").len() }
}

/// Pushes `data`; false if the queue is full.
///
/// # Safety
/// As [`spmcIsEmpty`].
#[no_mangle]
pub unsafe extern "C" fn spmcEnqueue(q: *mut spmcQueue, data: *mut c_void) -> bool {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spmcEnqueue").push(data) }
}

/// Pops the oldest item, or NULL if the queue is empty.
///
/// # Safety
/// `q` is initialised. Any thread may call it.
#[no_mangle]
pub unsafe extern "C" fn spmcDequeue(q: *mut spmcQueue) -> *mut c_void {
    // SAFETY: pointer rules (contract).
    unsafe { ring(q, "spmcDequeue") }
        .pop()
        .unwrap_or(ptr::null_mut())
}

/// Initialises an SPSC queue with a size that must be a power of 2.
///
/// # Safety
/// As [`mpscInit`].
#[no_mangle]
pub unsafe extern "C" fn spscInit(q: *mut spscQueue, queue_size: usize) {
    assert!(!q.is_null(), "spscInit called with a NULL queue");
    // SAFETY: valid for writes (contract); old contents are not dropped.
    unsafe { q.write(SpscRing::with_capacity(queue_size)) };
}

/// Frees the SPSC queue's buffer and resets its state.
///
/// # Safety
/// As [`mpscFree`].
#[no_mangle]
pub unsafe extern "C" fn spscFree(q: *mut spscQueue) {
    // SAFETY: forwarded contract.
    unsafe { free_ring(q) }
}

/// Whether the queue is full; publishes pending items before saying so.
///
/// # Safety
/// `q` is initialised; the caller is the queue's only producer.
#[no_mangle]
pub unsafe extern "C" fn spscIsFull(q: *mut spscQueue) -> bool {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spscIsFull").is_full() }
}

/// Pushes `data`, publishing it at once if `commit` is true. The caller must
/// have seen `spscIsFull()` return false since the queue could last fill.
///
/// # Safety
/// As [`spscIsFull`], and the queue is not full.
#[no_mangle]
pub unsafe extern "C" fn spscEnqueue(q: *mut spscQueue, data: *mut c_void, commit: bool) {
    // SAFETY: pointer rules, producer role and room (contract).
    unsafe { ring(q, "spscEnqueue").push(data, commit) }
}

/// Publishes any pending batched pushes.
///
/// # Safety
/// As [`spscIsFull`].
#[no_mangle]
pub unsafe extern "C" fn spscCommit(q: *mut spscQueue) {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spscCommit").commit() }
}

/// Pops up to `num_jobs` published items into `jobs_out`.
///
/// # Safety
/// `q` is initialised; the caller is the queue's only consumer; `jobs_out`
/// has room for `num_jobs` pointers.
#[no_mangle]
pub unsafe extern "C" fn spscDequeueBatch(
    q: *mut spscQueue,
    jobs_out: *mut *mut c_void,
    num_jobs: usize,
) -> usize {
    // SAFETY: pointer rules (contract).
    let ring = unsafe { ring(q, "spscDequeueBatch") };
    if num_jobs == 0 {
        return 0;
    }
    assert!(
        !jobs_out.is_null(),
        "spscDequeueBatch called with a NULL output array"
    );
    // SAFETY: room for `num_jobs` pointers (contract).
    let out = unsafe { std::slice::from_raw_parts_mut(jobs_out, num_jobs) };
    // SAFETY: single consumer (contract).
    unsafe { ring.pop_batch(out) }
}

/// Whether the consumer has taken every pushed item, from the producer's view.
///
/// # Safety
/// As [`spscIsFull`].
#[no_mangle]
pub unsafe extern "C" fn spscIsEmpty(q: *mut spscQueue) -> bool {
    // SAFETY: pointer rules and producer role (contract).
    unsafe { ring(q, "spscIsEmpty").is_empty() }
}
