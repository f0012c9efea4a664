//! Single-producer multi-consumer ring: the main thread's shared inbox.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC queue",
//! 1024cores.net, 2010) with the producer side reduced to one thread: every
//! slot carries a sequence number that says which lap of the ring it is ready
//! for, so producer and consumers never read each other's index to decide
//! whether a slot is theirs.
//!
//! Invariants, for the slot at index `i` (masked by `capacity - 1`):
//! - `sequence == i`: empty, ready for the producer's write of item `i`;
//! - `sequence == i + 1`: holds item `i`, ready for the consumer that claims
//!   `head == i`;
//! - `sequence == i + capacity`: item `i` was taken; empty for lap `i + capacity`.
//!
//! `head` is the next index to claim (consumers race for it by CAS); `tail` is
//! the producer's private next index; `head_cache` is the producer's last view
//! of `head`, used only by [`SpmcRing::is_empty`].

use std::ptr;
use std::sync::Arc;

use super::{alloc_slots, check_capacity, free_slots, CacheLine, Word};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// One slot, padded to a cache line so that consumers claiming neighbouring
/// slots do not share a line (`spmcCell` in `queues.h`).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct SpmcSlot {
    sequence: AtomicUsize,
    data: UnsafeCell<Word>,
}

/// Written by the producer only.
#[repr(C)]
#[derive(Debug)]
struct ProducerSide {
    tail: UnsafeCell<usize>,
    head_cache: UnsafeCell<usize>,
}

#[repr(C)]
#[derive(Debug)]
struct Storage {
    slots: *mut SpmcSlot,
    capacity: usize,
}

/// The ring, laid out as `spmcQueue` in `queues.h`.
#[repr(C)]
#[derive(Debug)]
pub struct SpmcRing {
    /// Next index to claim; written by consumers (CAS), read by all.
    head: CacheLine<AtomicUsize>,
    producer: CacheLine<ProducerSide>,
    storage: CacheLine<Storage>,
}

// SAFETY: the slot payloads are handed from the one producer to exactly one
// consumer through the sequence protocol (see the module docs); the producer
// fields are only touched by the thread that holds the producer role, which
// the unsafe methods' contracts require.
unsafe impl Sync for SpmcRing {}
// SAFETY: the ring owns its buffer; the words in it are plain data whose
// meaning belongs to the caller.
unsafe impl Send for SpmcRing {}

impl SpmcRing {
    /// A ring with `capacity` slots. Panics unless `capacity` is a power of two
    /// of at least 2.
    ///
    /// One slot is refused because its sequence numbers collide: "holds item
    /// `i`" (`i + 1`) equals "empty for lap `i + capacity`" (`i + 1`), so the
    /// producer would overwrite an unclaimed item and consumers would spin.
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        check_capacity("SPMC", capacity);
        assert!(
            capacity >= 2,
            "SPMC ring capacity must be at least 2, got {capacity}"
        );
        let slots = alloc_slots(capacity, |i| SpmcSlot {
            sequence: AtomicUsize::new(i),
            data: UnsafeCell::new(ptr::null_mut()),
        });
        Self {
            head: CacheLine(AtomicUsize::new(0)),
            producer: CacheLine(ProducerSide {
                tail: UnsafeCell::new(0),
                head_cache: UnsafeCell::new(0),
            }),
            storage: CacheLine(Storage { slots, capacity }),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.storage.0.capacity
    }

    fn slot(&self, index: usize) -> &SpmcSlot {
        let storage = &self.storage.0;
        // SAFETY: the mask keeps the offset below `capacity`, and `slots`
        // holds `capacity` initialised slots for as long as `self` lives.
        unsafe { &*storage.slots.add(index & (storage.capacity - 1)) }
    }

    /// Appends `item`; returns `false`, changing nothing, when the slot the
    /// producer needs next has not been taken yet (the ring is full).
    ///
    /// # Safety
    /// Only one thread at a time may act as the producer (call `push`,
    /// `is_empty` or `len`).
    pub unsafe fn push(&self, item: Word) -> bool {
        // SAFETY: the producer fields belong to the caller (contract).
        let tail = self.producer.0.tail.with(|t| unsafe { *t });
        let slot = self.slot(tail);

        // Acquire: pairs with the Release store in `pop` that recycled the
        // slot, so the consumer's read of the old payload happens before our
        // write below.
        if slot.sequence.load(Ordering::Acquire) != tail {
            return false;
        }

        // SAFETY: `sequence == tail` means no consumer may touch the payload
        // until the store below publishes it.
        slot.data.with_mut(|d| unsafe { *d = item });

        // Release: pairs with the Acquire load in `pop`, making the payload
        // visible before the slot is seen as full.
        slot.sequence.store(tail.wrapping_add(1), Ordering::Release);
        // SAFETY: producer-owned field (contract).
        self.producer
            .0
            .tail
            .with_mut(|t| unsafe { *t = tail.wrapping_add(1) });
        true
    }

    /// Takes the oldest item, or `None` when the ring holds none.
    ///
    /// Any number of threads may call this at once.
    pub fn pop(&self) -> Option<Word> {
        // Relaxed: `head` only names a candidate; whether its slot is ready is
        // decided by the slot's own sequence number.
        let mut head = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);

            // Acquire: pairs with the Release store in `push`, so the payload
            // read below sees what the producer wrote.
            let sequence = slot.sequence.load(Ordering::Acquire);
            let lag = sequence.wrapping_sub(head.wrapping_add(1)) as isize;

            if lag == 0 {
                // Relaxed on both outcomes: the CAS only arbitrates between
                // consumers; the payload's visibility comes from `sequence`.
                match self.head.0.compare_exchange_weak(
                    head,
                    head.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS makes this thread the only
                        // reader of item `head`; the producer will not rewrite
                        // the slot until the store below recycles it.
                        let item = slot.data.with(|d| unsafe { *d });

                        // Release: pairs with the Acquire load in `push`, so
                        // our read above happens before the producer's next
                        // write to this slot.
                        slot.sequence
                            .store(head.wrapping_add(self.capacity()), Ordering::Release);
                        return Some(item);
                    }
                    Err(current) => head = current,
                }
            } else if lag < 0 {
                // The producer has not filled this lap's slot: empty.
                return None;
            } else {
                // Another consumer took item `head` already; start again from
                // the current head.
                head = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether an item is ready to be taken, as a consumer sees it now.
    ///
    /// Any thread may call this; the answer may be stale by the time it
    /// returns.
    pub fn has_items(&self) -> bool {
        // Relaxed: names a candidate slot, as in `pop`.
        let head = self.head.0.load(Ordering::Relaxed);
        // Acquire: pairs with the Release store in `push`, as in `pop`.
        self.slot(head).sequence.load(Ordering::Acquire) == head.wrapping_add(1)
    }

    /// Whether every item pushed has been claimed, as the producer sees it.
    ///
    /// # Safety
    /// Called by the producer (see [`push`](Self::push)).
    pub unsafe fn is_empty(&self) -> bool {
        // SAFETY: producer-owned fields (contract).
        let tail = self.producer.0.tail.with(|t| unsafe { *t });
        // SAFETY: as above.
        if self.producer.0.head_cache.with(|h| unsafe { *h }) == tail {
            return true;
        }

        // Acquire, though nothing is read through it: the consumers' CAS on
        // `head` is Relaxed, so Relaxed would be as correct here. A stale
        // value only makes us report "not empty", which callers treat as the
        // conservative answer.
        let head = self.head.0.load(Ordering::Acquire);
        // SAFETY: producer-owned field (contract).
        self.producer
            .0
            .head_cache
            .with_mut(|h| unsafe { *h = head });
        tail == head
    }

    /// Approximate number of unclaimed items (exact when no consumer is
    /// active).
    ///
    /// # Safety
    /// Called by the producer (see [`push`](Self::push)).
    pub unsafe fn len(&self) -> usize {
        // SAFETY: producer-owned field (contract).
        let tail = self.producer.0.tail.with(|t| unsafe { *t });
        // Relaxed: a sample for the scaling policy, synchronising nothing.
        let head = self.head.0.load(Ordering::Relaxed);
        tail.saturating_sub(head)
    }
}

impl Drop for SpmcRing {
    fn drop(&mut self) {
        let storage = &self.storage.0;
        if !storage.slots.is_null() {
            // SAFETY: allocated by `with_capacity` and dropped once.
            unsafe { free_slots(storage.slots, storage.capacity) };
        }
    }
}

/// Layout of `spmcQueue` in `queues.h` on x86-64; C allocates these structs, so
/// they must match byte for byte. `c-tests/layout.c` checks the same numbers
/// against Valkey's own header.
#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SpmcSlot>() == 64 && offset_of!(SpmcSlot, data) == 8);
    assert!(size_of::<SpmcRing>() == 192 && align_of::<SpmcRing>() == 64);
    assert!(offset_of!(SpmcRing, head.0) == 0);
    assert!(offset_of!(SpmcRing, producer.0.tail) == 64);
    assert!(offset_of!(SpmcRing, producer.0.head_cache) == 72);
    assert!(offset_of!(SpmcRing, storage.0.slots) == 128);
    assert!(offset_of!(SpmcRing, storage.0.capacity) == 136);
};

/// Creates a ring and its two role handles.
#[track_caller]
pub fn channel(capacity: usize) -> (Producer, Consumer) {
    let ring = Arc::new(SpmcRing::with_capacity(capacity));
    (Producer { ring: ring.clone() }, Consumer { ring })
}

/// The one producer of an SPMC ring.
#[derive(Debug)]
pub struct Producer {
    ring: Arc<SpmcRing>,
}

impl Producer {
    /// See [`SpmcRing::push`]. Returns the item back when the ring is full.
    // The word is stored and handed on, never dereferenced: it is the
    // caller's pointer, opaque to the ring.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn push(&mut self, item: Word) -> Result<(), Word> {
        // SAFETY: `Producer` is not `Clone` and takes `&mut self`: one producer.
        if unsafe { self.ring.push(item) } {
            Ok(())
        } else {
            Err(item)
        }
    }

    /// See [`SpmcRing::is_empty`]. Takes `&mut self`, unlike `len`: it
    /// refreshes the producer's cached head.
    pub fn is_empty(&mut self) -> bool {
        // SAFETY: one producer (see `push`).
        unsafe { self.ring.is_empty() }
    }

    /// See [`SpmcRing::len`].
    #[allow(clippy::len_without_is_empty)] // `is_empty` needs `&mut self`
    pub fn len(&self) -> usize {
        // SAFETY: one producer (see `push`); `&self` here cannot race with
        // `push`, which needs `&mut self`.
        unsafe { self.ring.len() }
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

/// A consumer of an SPMC ring; clone it for each consuming thread.
#[derive(Debug, Clone)]
pub struct Consumer {
    ring: Arc<SpmcRing>,
}

impl Consumer {
    /// See [`SpmcRing::has_items`].
    pub fn has_items(&self) -> bool {
        self.ring.has_items()
    }

    /// See [`SpmcRing::pop`].
    pub fn pop(&self) -> Option<Word> {
        self.ring.pop()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A distinct non-null word for item `i`, without provenance (Miri's
    /// strict-provenance mode accepts it; nothing dereferences it).
    fn word(i: usize) -> Word {
        ptr::null_mut::<u8>().wrapping_add(i).cast()
    }

    fn index(w: Word) -> usize {
        w as usize
    }

    #[test]
    fn new_ring_is_empty() {
        let ring = SpmcRing::with_capacity(4);
        assert_eq!(ring.capacity(), 4);
        assert_eq!(ring.pop(), None);
        // SAFETY: this thread is the only producer.
        unsafe {
            assert!(ring.is_empty());
            assert_eq!(ring.len(), 0);
        }
    }

    #[test]
    fn items_come_out_in_push_order() {
        let ring = SpmcRing::with_capacity(8);
        for i in 1..=5 {
            // SAFETY: this thread is the only producer.
            assert!(unsafe { ring.push(word(i)) });
        }
        for i in 1..=5 {
            assert_eq!(ring.pop(), Some(word(i)));
        }
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn full_ring_refuses_a_push_and_changes_nothing() {
        let ring = SpmcRing::with_capacity(4);
        // SAFETY: this thread is the only producer, throughout the test.
        unsafe {
            for i in 1..=4 {
                assert!(ring.push(word(i)));
            }
            assert!(!ring.push(word(99)));
            assert!(!ring.push(word(99)));
            assert_eq!(ring.len(), 4);
        }

        for i in 1..=4 {
            assert_eq!(
                ring.pop(),
                Some(word(i)),
                "a refused push must not overwrite a slot"
            );
        }
        assert_eq!(ring.pop(), None);

        // One pop frees exactly one slot.
        // SAFETY: as above.
        unsafe {
            for i in 5..=8 {
                assert!(ring.push(word(i)));
            }
            assert!(!ring.push(word(99)));
        }
        assert_eq!(ring.pop(), Some(word(5)));
        // SAFETY: as above.
        unsafe {
            assert!(ring.push(word(9)));
            assert!(!ring.push(word(99)));
        }
    }

    #[test]
    fn wraps_around_for_many_laps() {
        let ring = SpmcRing::with_capacity(4);

        // Whole laps: fill, refuse, drain.
        for lap in 0..3 {
            for i in 0..4 {
                // SAFETY: this thread is the only producer.
                assert!(unsafe { ring.push(word(lap * 4 + i + 1)) });
            }
            // SAFETY: as above.
            assert!(!unsafe { ring.push(word(usize::MAX)) });
            for i in 0..4 {
                assert_eq!(ring.pop(), Some(word(lap * 4 + i + 1)));
            }
            assert_eq!(ring.pop(), None);
        }

        // Staggered: the ring holds three items while indices cross many laps.
        let mut next_in = 100;
        let mut next_out = 100;
        for _ in 0..3 {
            // SAFETY: as above.
            assert!(unsafe { ring.push(word(next_in)) });
            next_in += 1;
        }
        for _ in 0..50 {
            // SAFETY: as above.
            assert!(unsafe { ring.push(word(next_in)) });
            next_in += 1;
            assert_eq!(ring.pop(), Some(word(next_out)));
            next_out += 1;
        }
        // SAFETY: as above.
        assert_eq!(unsafe { ring.len() }, 3);
    }

    /// With one slot, "full" and "empty for the next lap" have the same
    /// sequence number: a second push would overwrite the unclaimed item.
    #[test]
    #[should_panic(expected = "SPMC ring capacity must be at least 2, got 1")]
    fn capacity_one_is_refused() {
        SpmcRing::with_capacity(1);
    }

    #[test]
    fn capacity_two_alternates_across_laps() {
        let ring = SpmcRing::with_capacity(2);
        for i in 1..=5 {
            // SAFETY: this thread is the only producer.
            unsafe {
                assert!(ring.push(word(2 * i)));
                assert!(ring.push(word(2 * i + 1)));
                assert!(!ring.push(word(99)));
            }
            assert_eq!(ring.pop(), Some(word(2 * i)));
            assert_eq!(ring.pop(), Some(word(2 * i + 1)));
            assert_eq!(ring.pop(), None);
        }
    }

    #[test]
    fn is_empty_and_len_follow_the_consumers() {
        let ring = SpmcRing::with_capacity(8);
        // SAFETY: this thread is the only producer, throughout the test.
        unsafe {
            assert!(ring.push(word(1)));
            assert!(!ring.is_empty());
            assert_eq!(ring.len(), 1);
            assert!(ring.push(word(2)));
            assert_eq!(ring.len(), 2);

            assert_eq!(ring.pop(), Some(word(1)));
            assert!(!ring.is_empty());
            assert_eq!(ring.len(), 1);

            // The cached head was refreshed by the call above; a claim made
            // after it must still be seen.
            assert_eq!(ring.pop(), Some(word(2)));
            assert!(ring.is_empty());
            assert_eq!(ring.len(), 0);

            // And a push after an "empty" answer makes it non-empty again,
            // even though the cached head equals the old tail.
            assert!(ring.push(word(3)));
            assert!(!ring.is_empty());
        }
    }

    #[test]
    fn a_null_word_is_an_item() {
        // Unlike `spmcDequeue`, `pop` tells a null item from an empty ring.
        let ring = SpmcRing::with_capacity(2);
        // SAFETY: this thread is the only producer.
        assert!(unsafe { ring.push(ptr::null_mut()) });
        assert_eq!(ring.pop(), Some(ptr::null_mut()));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    #[should_panic(expected = "SPMC ring capacity must be a non-zero power of two, got 6")]
    fn capacity_must_be_a_power_of_two() {
        SpmcRing::with_capacity(6);
    }

    #[test]
    #[should_panic(expected = "SPMC ring capacity must be a non-zero power of two, got 0")]
    fn capacity_must_not_be_zero() {
        let _ = channel(0);
    }

    #[test]
    fn handles_return_a_refused_item() {
        let (mut producer, consumer) = channel(2);
        assert_eq!(producer.capacity(), 2);
        assert!(producer.is_empty());
        assert_eq!(producer.push(word(1)), Ok(()));
        assert_eq!(producer.push(word(2)), Ok(()));
        assert_eq!(producer.push(word(3)), Err(word(3)));
        assert_eq!(producer.len(), 2);

        let other = consumer.clone();
        assert_eq!(consumer.pop(), Some(word(1)));
        assert_eq!(other.pop(), Some(word(2)));
        assert_eq!(other.pop(), None);
        assert!(producer.is_empty());
    }

    /// One producer, three consumers: every item is claimed exactly once, and
    /// each consumer sees its items in push order.
    #[test]
    fn threads_claim_each_item_exactly_once() {
        const ITEMS: usize = if cfg!(miri) { 300 } else { 50_000 };
        const CONSUMERS: usize = 3;
        use std::sync::atomic::AtomicUsize as StdAtomicUsize;

        let (mut producer, consumer) = channel(8);
        let claimed = Arc::new(StdAtomicUsize::new(0));

        let threads: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let consumer = consumer.clone();
                let claimed = claimed.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        if let Some(w) = consumer.pop() {
                            got.push(index(w));
                            claimed.fetch_add(1, Ordering::Relaxed);
                        } else if claimed.load(Ordering::Relaxed) == ITEMS {
                            return got;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();

        for i in 1..=ITEMS {
            while producer.push(word(i)).is_err() {
                std::thread::yield_now();
            }
        }

        let mut seen = vec![false; ITEMS + 1];
        for thread in threads {
            let got = thread.join().unwrap();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "a consumer saw items out of order"
            );
            for i in got {
                assert!(!seen[i], "item {i} was claimed twice");
                seen[i] = true;
            }
        }
        assert!(seen[1..].iter().all(|&s| s), "an item was lost");
        assert!(producer.is_empty());
    }
}
