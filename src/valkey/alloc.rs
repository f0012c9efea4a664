//! Every Rust allocation in a Valkey build goes through zmalloc, so Valkey's
//! `used_memory` and `INFO memory` account for the core's rings, backlogs
//! and threads like any other allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use super::sys;

/// Alignment `valkey_malloc` guarantees for requests of at least this size
/// (jemalloc's and glibc's minimum for 16-byte and larger blocks).
const MALLOC_ALIGN: usize = 16;
/// Alignment `valkey_malloc_cache_aligned` guarantees.
const CACHE_LINE: usize = 64;

pub(crate) struct Zmalloc;

// SAFETY: every branch returns memory of at least `layout.size()` bytes
// aligned to `layout.align()` (by the guarantees above, or by over-allocating
// and aligning by hand), and `dealloc` undoes the matching branch.
unsafe impl GlobalAlloc for Zmalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match kind(layout) {
            // SAFETY: plain zmalloc call; zmalloc aborts rather than return null.
            Kind::Plain => unsafe { sys::valkey_malloc(layout.size()) }.cast(),
            // SAFETY: as above.
            Kind::CacheAligned => unsafe { sys::valkey_malloc_cache_aligned(layout.size()) }.cast(),
            // SAFETY: forwarded to the over-allocating path.
            Kind::Over => unsafe { over_aligned_alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match kind(layout) {
            // SAFETY: `ptr` came from `alloc` with the same layout.
            Kind::Plain | Kind::CacheAligned => unsafe { sys::valkey_free(ptr.cast()) },
            // SAFETY: `ptr` came from `over_aligned_alloc`, which stored the
            // block's start just before it.
            Kind::Over => unsafe { sys::valkey_free(*(ptr.cast::<*mut c_void>()).sub(1)) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match kind(layout) {
            // SAFETY: plain zcalloc call.
            Kind::Plain => unsafe { sys::valkey_calloc(layout.size()) }.cast(),
            _ => {
                // SAFETY: forwarded; the block has `layout.size()` bytes.
                let ptr = unsafe { self.alloc(layout) };
                // SAFETY: as above.
                unsafe { ptr.write_bytes(0, layout.size()) };
                ptr
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align(new_size, layout.align()).unwrap();
        if kind(layout) == Kind::Plain && kind(new_layout) == Kind::Plain {
            // SAFETY: `ptr` came from `valkey_malloc`.
            return unsafe { sys::valkey_realloc(ptr.cast(), new_size) }.cast();
        }
        // SAFETY: allocate, copy the smaller size, free: the default scheme.
        unsafe {
            let new = self.alloc(new_layout);
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
            new
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    CacheAligned,
    Over,
}

fn kind(layout: Layout) -> Kind {
    if layout.align() <= 8 || (layout.align() <= MALLOC_ALIGN && layout.size() >= MALLOC_ALIGN) {
        Kind::Plain
    } else if layout.align() <= CACHE_LINE {
        Kind::CacheAligned
    } else {
        Kind::Over
    }
}

/// Allocates `size + align` bytes, aligns by hand, and keeps the block's
/// start in the word before the returned pointer.
///
/// # Safety
/// `layout.align()` is a power of two larger than a pointer.
unsafe fn over_aligned_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: plain zmalloc call.
    let block: *mut u8 = unsafe { sys::valkey_malloc(layout.size() + layout.align()) }.cast();
    let offset = layout.align() - (block.addr() % layout.align());
    // SAFETY: `offset <= align`, so the result and the word before it
    // (offset >= 8, since align > 8 and block is 8-aligned) lie in the block.
    unsafe {
        let aligned = block.add(offset);
        aligned.cast::<*mut u8>().sub(1).write(block);
        aligned
    }
}
