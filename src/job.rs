//! Jobs and results as tagged words.
//!
//! A job is a pointer to 8-byte-aligned data with its kind in the low three
//! bits, so one word carries both through a ring. Kinds are the embedder's:
//! the pool never interprets them, it hands the word back to the embedder's
//! handler on a worker (jobs) or to the main thread (results).

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;

use crate::ring::Word;

/// Bits of the word that hold the kind.
pub const KIND_MASK: usize = 0b111;
/// Number of distinct kinds a word can carry.
pub const KIND_COUNT: usize = KIND_MASK + 1;

/// A non-null, 8-byte-aligned pointer tagged with a kind in `0..8`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Job(NonNull<c_void>);

// SAFETY: a job is a word handed from one thread to another; what it points
// to is the embedder's, who guarantees the pointee may be used on the thread
// that runs the job (the whole point of the pool).
unsafe impl Send for Job {}

impl Job {
    /// Tags `ptr` with `kind`.
    ///
    /// Panics when `ptr` is null or not 8-byte aligned (its low bits would be
    /// lost), or when `kind` does not fit in three bits.
    #[track_caller]
    #[inline]
    pub fn new(ptr: *mut c_void, kind: usize) -> Self {
        assert!(
            kind < KIND_COUNT,
            "job kind {kind} does not fit in 3 bits (0..{KIND_COUNT})"
        );
        assert!(
            !ptr.is_null() && ptr.addr() & KIND_MASK == 0,
            "job pointer {ptr:p} is null or not 8-byte aligned; its low 3 bits carry the kind"
        );
        // `map_addr` keeps the pointer's provenance while setting the tag.
        let tagged = ptr.map_addr(|addr| addr | kind);
        // SAFETY: `ptr` is non-null (checked), and or-ing bits in keeps it so.
        Self(unsafe { NonNull::new_unchecked(tagged) })
    }

    /// Rebuilds a job from a word that came out of a ring.
    ///
    /// Returns `None` for a null word.
    #[inline]
    pub fn from_word(word: Word) -> Option<Self> {
        NonNull::new(word).map(Self)
    }

    /// The tagged word, as stored in a ring.
    #[inline]
    pub fn word(self) -> Word {
        self.0.as_ptr()
    }

    /// The kind, `0..8`.
    #[inline]
    pub fn kind(self) -> usize {
        self.0.as_ptr().addr() & KIND_MASK
    }

    /// The untagged pointer.
    #[inline]
    pub fn ptr(self) -> *mut c_void {
        self.0.as_ptr().map_addr(|addr| addr & !KIND_MASK)
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("ptr", &self.ptr())
            .field("kind", &self.kind())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(addr: usize) -> *mut c_void {
        std::ptr::without_provenance_mut(addr)
    }

    #[test]
    fn round_trips_pointer_and_kind() {
        for kind in 0..KIND_COUNT {
            let job = Job::new(aligned(0x1000), kind);
            assert_eq!(job.kind(), kind);
            assert_eq!(job.ptr(), aligned(0x1000));
            assert_eq!(Job::from_word(job.word()), Some(job));
        }
    }

    #[test]
    fn null_word_is_no_job() {
        assert_eq!(Job::from_word(std::ptr::null_mut()), None);
    }

    #[test]
    #[should_panic(expected = "not 8-byte aligned")]
    fn rejects_misaligned_pointer() {
        Job::new(aligned(0x1004), 1);
    }

    #[test]
    #[should_panic(expected = "does not fit in 3 bits")]
    fn rejects_kind_over_seven() {
        Job::new(aligned(0x1000), 8);
    }

    #[test]
    #[should_panic(expected = "null")]
    fn rejects_null() {
        Job::new(std::ptr::null_mut(), 0);
    }
}
