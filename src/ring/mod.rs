//! Three bounded lock-free rings of pointer-sized words.
//!
//! | ring | producers | consumers | used for |
//! |---|---|---|---|
//! | [`SpmcRing`] | the main thread | any worker | the shared inbox |
//! | [`MpscRing`] | any worker | the main thread | the outbox |
//! | [`SpscRing`] | the main thread | one worker | a worker's private inbox |
//!
//! Each ring is a `#[repr(C)]` struct laid out exactly as Valkey 9.1.2's
//! `queues.h` declares it on x86-64 (64-byte cache lines), so C code that
//! allocates the struct itself can hand it to the exported functions. The
//! layout is asserted at compile time below and, against Valkey's own header,
//! by `c-tests/layout.c`.
//!
//! The ring types expose `unsafe` methods whose contract is the role of the
//! caller (only one thread may act as the single producer or consumer). The
//! safe handles in each module (`spmc::channel` and friends) encode those
//! roles in the type system and are what the worker pool uses.
//!
//! Ring buffers are allocated with the global allocator, which is Valkey's
//! zmalloc when the crate is linked into Valkey (see `crate::valkey`), so
//! `used_memory` accounts for them.

pub mod mpsc;
pub mod spmc;
pub mod spsc;

pub use mpsc::{MpscRing, MpscTicket};
pub use spmc::SpmcRing;
pub use spsc::SpscRing;

use std::alloc::Layout;
use std::ffi::c_void;

/// The cache-line size Valkey's `config.h` uses on x86-64.
pub const CACHE_LINE_SIZE: usize = 64;

/// A pointer-sized item as the C API sees it.
pub type Word = *mut c_void;

/// Aligns its contents to a cache line, as `_Alignas(CACHE_LINE_SIZE)` does
/// on the first field of each group in `queues.h`.
///
/// crossbeam's `CachePadded` is 128 bytes on x86-64 (it pads for adjacent-line
/// prefetching), which would not match the C layout.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub(crate) struct CacheLine<T>(pub(crate) T);

const _: () = assert!(std::mem::align_of::<CacheLine<u8>>() == CACHE_LINE_SIZE);

/// Checks the capacity precondition every ring shares.
///
/// Indices run freely and are masked with `capacity - 1`, which selects a slot
/// only when the capacity is a power of two.
#[track_caller]
pub(crate) fn check_capacity(ring: &str, capacity: usize) {
    assert!(
        capacity.is_power_of_two(),
        "{ring} ring capacity must be a non-zero power of two, got {capacity}"
    );
}

/// Allocates `capacity` slots of `T`, each initialised by `init(index)`.
pub(crate) fn alloc_slots<T>(capacity: usize, init: impl Fn(usize) -> T) -> *mut T {
    let layout = slots_layout::<T>(capacity);
    // SAFETY: the layout has a non-zero size: capacity >= 1 (checked by every
    // caller through `check_capacity`) and no slot type is zero-sized.
    let slots = unsafe { std::alloc::alloc(layout) }.cast::<T>();
    if slots.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    for i in 0..capacity {
        // SAFETY: `i < capacity`, so the write stays inside the allocation.
        unsafe { slots.add(i).write(init(i)) };
    }
    slots
}

/// Drops and frees what [`alloc_slots`] returned.
///
/// # Safety
/// `slots` came from `alloc_slots::<T>(capacity, ..)` and is not used again.
pub(crate) unsafe fn free_slots<T>(slots: *mut T, capacity: usize) {
    // SAFETY: per the contract, `slots` holds `capacity` initialised values.
    unsafe { std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(slots, capacity)) };
    // SAFETY: allocated by `alloc_slots` with exactly this layout.
    unsafe { std::alloc::dealloc(slots.cast(), slots_layout::<T>(capacity)) };
}

fn slots_layout<T>(capacity: usize) -> Layout {
    Layout::array::<T>(capacity).expect("ring capacity overflows the address space")
}
