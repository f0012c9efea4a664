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

/// Borrows an initialised ring from a C pointer, or stops the process.
///
/// Both failures lead to one cold call. With a single call site the
/// compiler keeps the stack frame that the call needs out of the path of a
/// call that passes; with one call site per check, every call paid a push
/// and a pop for it. The message is built only in [`bad_queue`], so nothing
/// of it is paid by a call that passes.
///
/// # Safety
/// `q` satisfies the crate's pointer rules for a ring.
#[inline(always)]
#[track_caller]
unsafe fn ring<'a, R: Capacity>(q: *mut R, name: &'static str) -> &'a R {
    // SAFETY: `as_ref` checks for null; otherwise valid for the call per
    // the pointer rules.
    match unsafe { q.as_ref() } {
        Some(ring) if ring.slots() != 0 => ring,
        _ => bad_queue(name, q.is_null()),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_queue(name: &str, null: bool) -> ! {
    if null {
        panic!("{name} called with a NULL queue")
    }
    panic!("{name} called on a queue that is not initialised")
}

/// [`ring`] for a batch dequeue: also borrows the caller's output array of
/// `len` pointers, which may be NULL only when `len` is 0. Every failure
/// leads to the same one cold call.
///
/// # Safety
/// As [`ring`], and `out` has room for `len` pointers.
#[inline(always)]
#[track_caller]
unsafe fn ring_and_output<'a, R: Capacity>(
    q: *mut R,
    out: *mut *mut c_void,
    len: usize,
    name: &'static str,
) -> (&'a R, &'a mut [*mut c_void]) {
    // SAFETY: `as_ref` checks for null; otherwise valid per the contract.
    match unsafe { q.as_ref() } {
        Some(ring) if ring.slots() != 0 && (len == 0 || !out.is_null()) => {
            let out = if len == 0 {
                &mut [][..]
            } else {
                // SAFETY: non-null, with room for `len` pointers (contract).
                unsafe { std::slice::from_raw_parts_mut(out, len) }
            };
            (ring, out)
        }
        _ => bad_output(q, name),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_output<R: Capacity>(q: *mut R, name: &'static str) -> ! {
    // SAFETY: `ring` checks the ring again; the caller's contract holds.
    unsafe { ring(q, name) };
    panic!("{name} called with a NULL output array")
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
    // SAFETY: `as_ref`/`as_mut` check for null; otherwise valid (and the
    // ticket unshared) per the contract.
    match unsafe { (q.as_ref(), ticket.as_mut()) } {
        (Some(ring), Some(ticket)) if ring.slots() != 0 && !data.is_null() => {
            ring.push_nonnull(data, ticket)
        }
        // One cold call for every bad argument, as in `ring`.
        _ => bad_mpsc_enqueue(q, data, ticket),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_mpsc_enqueue(q: *mut mpscQueue, data: *mut c_void, ticket: *mut mpscTicket) -> ! {
    // SAFETY: only the ring's capacity is read, under `ring`'s own checks
    // and the caller's contract.
    unsafe { ring(q, "mpscEnqueue") };
    assert!(!ticket.is_null(), "mpscEnqueue called with a NULL ticket");
    assert!(
        !data.is_null(),
        "mpscEnqueue called with a null item: null marks an unwritten slot"
    );
    unreachable!("mpscEnqueue: no bad argument found")
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
    // SAFETY: pointer rules and room in `jobs_out` (contract).
    let (ring, out) = unsafe { ring_and_output(q, jobs_out, max_jobs, "mpscDequeueBatch") };
    if out.is_empty() {
        return 0;
    }
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
    // SAFETY: pointer rules and room in `jobs_out` (contract).
    let (ring, out) = unsafe { ring_and_output(q, jobs_out, num_jobs, "spscDequeueBatch") };
    if out.is_empty() {
        return 0;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    fn item(n: usize) -> *mut c_void {
        n as *mut c_void
    }

    #[test]
    fn a_batch_dequeue_of_nothing_may_pass_a_null_array() {
        let mut q = MaybeUninit::<mpscQueue>::zeroed();
        let mut s = MaybeUninit::<spscQueue>::zeroed();
        let mut ticket = MpscTicket::default();
        // SAFETY: the structs live across the calls, one thread uses them.
        unsafe {
            mpscInit(q.as_mut_ptr(), 4);
            spscInit(s.as_mut_ptr(), 4);
            assert!(mpscEnqueue(q.as_mut_ptr(), item(8), &mut ticket));
            spscEnqueue(s.as_mut_ptr(), item(16), true);
            assert_eq!(mpscDequeueBatch(q.as_mut_ptr(), ptr::null_mut(), 0), 0);
            assert_eq!(spscDequeueBatch(s.as_mut_ptr(), ptr::null_mut(), 0), 0);
            // ...and takes nothing: the items are still there.
            let mut out = [ptr::null_mut(); 4];
            assert_eq!(mpscDequeueBatch(q.as_mut_ptr(), out.as_mut_ptr(), 4), 1);
            assert_eq!(out[0], item(8));
            assert_eq!(spscDequeueBatch(s.as_mut_ptr(), out.as_mut_ptr(), 4), 1);
            assert_eq!(out[0], item(16));
            mpscFree(q.as_mut_ptr());
            spscFree(s.as_mut_ptr());
        }
    }

    // The bad-argument messages come from functions that cannot unwind
    // (`extern "C"`): c-tests/rings_test.c checks them in child processes.
}
