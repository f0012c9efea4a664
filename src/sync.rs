//! The one place that names atomic and cell types.
//!
//! Under `cfg(loom)` every type here is loom's, so the model checker sees each
//! atomic access and each access to a slot's payload; otherwise they are the
//! standard library's, with identical size and layout to C's `_Atomic`
//! counterparts (the ABI structs in [`crate::ring`] depend on that).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

pub(crate) use std::sync::atomic::Ordering;

#[cfg(loom)]
pub(crate) use loom::{hint::spin_loop, thread, thread::yield_now};
#[cfg(not(loom))]
pub(crate) use std::{hint::spin_loop, thread, thread::yield_now};

/// A cell whose accesses are checked by loom and free otherwise.
///
/// `with`/`with_mut` take closures so that loom can record where a read or a
/// write of the payload begins and ends; the standard build compiles them to a
/// plain pointer access.
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
