//! Everything that knows Valkey: its types (bindgen), its allocator, its
//! log and crash report, and the I/O-thread entry points' logic. The C
//! names themselves are exported by `crate::ffi::io_threads`.

mod alloc;
pub(crate) mod io_threads;
pub(crate) mod report;
pub(crate) mod sys;

#[global_allocator]
static ALLOCATOR: alloc::Zmalloc = alloc::Zmalloc;
