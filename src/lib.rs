//! Valkey 9.1.2's I/O-threads core in Rust.
//!
//! The main thread (thread 0) owns all server state and hands jobs to worker
//! threads through lock-free rings; workers hand results back the same way.
//! This crate replaces `src/io_threads.c` and `src/queues.c` behind the same
//! C entry points.
//!
//! # Layers
//!
//! - [`ring`]: the three rings (SPMC shared inbox, SPSC private inboxes, MPSC
//!   outbox), safe Rust over `#[repr(C)]` structs laid out as `queues.h`.
//!   Knows nothing of Valkey.
//! - [`job`]: jobs and results as pointers tagged with a kind.
//! - [`pool`]: the worker pool: activation, parking, drain, resize, and the
//!   scaling policy. Knows nothing of Valkey either.
//! - `ffi`: the `extern "C"` functions under Valkey's names. The only place
//!   C names appear.
//!
//! # Pointer rules at the C boundary
//!
//! Every pointer a C caller passes to an exported function must be either
//! null where the function says null is allowed, or:
//! - properly aligned for its type and valid for reads and writes of it for
//!   the whole call;
//! - for a ring struct (`spmcQueue`, `mpscQueue`, `spscQueue`): initialised
//!   by the matching `*Init` and not yet freed, except for `*Init` itself
//!   (which only needs writable memory) and `*Free` (which also accepts a
//!   zeroed struct);
//! - used in the role the function names: the producer-side functions of a
//!   single-producer ring, and the consumer-side functions of a
//!   single-consumer ring, are called by one thread at a time.
//!
//! Null or uninitialised rings and non-power-of-two sizes are detected and
//! stop the process with a message; the roles cannot be checked cheaply and
//! are the caller's to keep.
//!
//! # Panics
//!
//! A panic must never unwind into C. Builds for C callers (the `c-library`
//! feature, which `make` uses) refuse to compile unless panics abort.

#[cfg(all(feature = "c-library", not(panic = "abort")))]
compile_error!(
    "the C library must be built with panic = \"abort\": a panic must never unwind into C \
     (build with the dev or release profile, not the test profile)"
);

pub mod job;
pub mod pool;
pub mod ring;
mod sync;
#[cfg(feature = "valkey")]
mod valkey;

#[cfg(not(loom))]
mod ffi;

#[cfg(all(test, not(loom)))]
mod header_tests {
    /// The committed header must be what cbindgen generates from this source.
    #[test]
    fn committed_header_is_current() {
        let generated = include_str!(env!("IOCORE_GENERATED_HEADER"));
        let committed = include_str!("../include/valkey_iocore.h");
        assert!(
            generated == committed,
            "include/valkey_iocore.h is stale: run `make headers` and commit the result"
        );
    }
}
