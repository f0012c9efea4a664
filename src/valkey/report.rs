//! Valkey's log and crash report, from Rust.
//!
//! Rare events go to Valkey's log through [`log`], which filters by
//! `server.verbosity` as the `serverLog` macro does. Workers never log on
//! their hot path.
//!
//! Every Rust panic in a Valkey build (a broken precondition at the C
//! boundary, an invariant violated) ends in Valkey's `_serverPanic`, so the
//! crash report, the log line with file and line, and the exit look like any
//! other Valkey crash. The hook is installed before `main` runs, so it also
//! covers the queue functions Valkey's unit tests call directly.

use std::ffi::{c_int, CString};
use std::fmt;

use super::sys;

/// Log levels, as in `server.h`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Level {
    Debug = sys::LL_DEBUG,
    Notice = sys::LL_NOTICE,
}

/// Writes one line to Valkey's log, if the configured verbosity lets it.
pub(crate) fn log(level: Level, message: fmt::Arguments<'_>) {
    // SAFETY: `server` is Valkey's global; `verbosity` is a plain int that
    // only CONFIG SET changes, on the main thread; a racy read from a worker
    // at worst logs or skips one line, as the C macro would.
    let verbosity = unsafe { (*std::ptr::addr_of!(sys::server)).verbosity };
    if (level as c_int) < verbosity {
        return;
    }
    let text = c_string(message.to_string());
    // SAFETY: a "%s" format with one valid C string argument.
    unsafe { sys::_serverLog(level as c_int, c"%s".as_ptr(), text.as_ptr()) };
}

/// A C string of `text`, with any interior NUL shown as `\0`.
fn c_string(text: String) -> CString {
    CString::new(text.replace('\0', "\\0")).expect("interior NULs were escaped")
}

extern "C" fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(text) => (*text).to_owned(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "Box<dyn Any>".to_owned()),
        };
        let (file, line) = info
            .location()
            .map_or(("<unknown>", 0), |l| (l.file(), l.line()));
        let file = c_string(file.to_owned());
        let message = c_string(message);
        // SAFETY: a "%s" format with one valid C string; `_serverPanic`
        // prints Valkey's crash report and ends the process (if it returns,
        // the abort that follows every panic in this build does).
        unsafe {
            sys::_serverPanic(
                file.as_ptr(),
                line as c_int,
                c"%s".as_ptr(),
                message.as_ptr(),
            )
        };
    }));
}

/// Runs `install_panic_hook` when the program (or Valkey's unit-test binary)
/// is loaded, before `main`.
#[used]
#[link_section = ".init_array"]
static INSTALL_PANIC_HOOK: extern "C" fn() = install_panic_hook;
