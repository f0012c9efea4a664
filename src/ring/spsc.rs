//! Single-producer single-consumer ring with batched publication: a worker's
//! private inbox.
//!
//! A classic Lamport ring with cached indices on both sides. The producer
//! writes slots at its private `tail_local` and makes them visible only when
//! it stores `tail` (at once with `push(.., commit = true)`, or later with
//! [`SpscRing::commit`]), so a burst of jobs costs the consumer's cache line
//! one transfer instead of one per job.
//!
//! Invariants: `head <= tail <= tail_local <= head + capacity`; slots in
//! `[head, tail)` are published and belong to the consumer; slots in
//! `[tail, tail_local)` are written but unpublished.

use std::ptr;
use std::sync::Arc;

use super::{alloc_slots, check_capacity, free_slots, CacheLine, Word};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

#[repr(C)]
#[derive(Debug)]
struct ConsumerSide {
    /// Next index to take; written by the consumer.
    head: AtomicUsize,
    /// The consumer's last view of `tail`.
    tail_cache: UnsafeCell<usize>,
}

#[repr(C)]
#[derive(Debug)]
struct ProducerSide {
    /// End of the published items; written by the producer.
    tail: AtomicUsize,
    /// End of the written items, published or not; producer-private.
    tail_local: UnsafeCell<usize>,
    /// The producer's last view of `head`.
    head_cache: UnsafeCell<usize>,
}

#[repr(C)]
#[derive(Debug)]
struct Storage {
    slots: *mut UnsafeCell<Word>,
    capacity: usize,
}

/// The ring, laid out as `spscQueue` in `queues.h`.
#[repr(C)]
#[derive(Debug)]
pub struct SpscRing {
    consumer: CacheLine<ConsumerSide>,
    producer: CacheLine<ProducerSide>,
    storage: CacheLine<Storage>,
}

// SAFETY: each side's private fields are touched only by the thread holding
// that role (the unsafe methods' contracts); slots change hands through the
// Release/Acquire pairs on `head` and `tail`.
unsafe impl Sync for SpscRing {}
// SAFETY: the ring owns its buffer; the words are the caller's plain data.
unsafe impl Send for SpscRing {}

impl SpscRing {
    /// A ring with `capacity` slots. Panics unless `capacity` is a power of two.
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        check_capacity("SPSC", capacity);
        let slots = alloc_slots(capacity, |_| UnsafeCell::new(ptr::null_mut()));
        Self {
            consumer: CacheLine(ConsumerSide {
                head: AtomicUsize::new(0),
                tail_cache: UnsafeCell::new(0),
            }),
            producer: CacheLine(ProducerSide {
                tail: AtomicUsize::new(0),
                tail_local: UnsafeCell::new(0),
                head_cache: UnsafeCell::new(0),
            }),
            storage: CacheLine(Storage { slots, capacity }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.storage.0.capacity
    }

    fn slot(&self, index: usize) -> &UnsafeCell<Word> {
        let storage = &self.storage.0;
        // SAFETY: masked below `capacity`; the slots live as long as `self`.
        unsafe { &*storage.slots.add(index & (storage.capacity - 1)) }
    }

    fn tail_local(&self) -> usize {
        // SAFETY: callers are producer methods, whose contract gives the
        // calling thread sole use of the producer's private fields.
        self.producer.0.tail_local.with(|t| unsafe { *t })
    }

    /// Whether the next `push` has no free slot. Publishes pending items
    /// before answering `true`, so a producer that waits for space cannot
    /// wait on items the consumer was never shown.
    ///
    /// # Safety
    /// Only one thread at a time may act as the producer (`is_full`, `push`,
    /// `commit`, `is_empty`).
    pub unsafe fn is_full(&self) -> bool {
        let tail_local = self.tail_local();
        let producer = &self.producer.0;
        // SAFETY: producer-private field (contract).
        if tail_local.wrapping_sub(producer.head_cache.with(|h| unsafe { *h })) < self.capacity() {
            return false;
        }

        // Acquire: pairs with the Release store of `head` in `pop_batch`, so
        // the consumer's reads of the slots it freed happen before we reuse
        // them.
        let head = self.consumer.0.head.load(Ordering::Acquire);
        // SAFETY: producer-private field (contract).
        producer.head_cache.with_mut(|h| unsafe { *h = head });
        if tail_local.wrapping_sub(head) < self.capacity() {
            return false;
        }

        // SAFETY: producer role (contract).
        unsafe { self.commit() };
        true
    }

    /// Writes `item` to the next slot, publishing it (and any earlier
    /// unpublished items) when `commit` is true.
    ///
    /// # Safety
    /// Producer role (see [`is_full`](Self::is_full)), and the ring must not
    /// be full: the caller checked `is_full()` since the last push that could
    /// have filled it.
    pub unsafe fn push(&self, item: Word, commit: bool) {
        let tail_local = self.tail_local();
        // SAFETY: the slot at `tail_local` is outside `[head, tail)`, so the
        // consumer does not read it (not full, per the contract).
        self.slot(tail_local).with_mut(|s| unsafe { *s = item });
        // SAFETY: producer-private field (contract).
        self.producer
            .0
            .tail_local
            .with_mut(|t| unsafe { *t = tail_local.wrapping_add(1) });
        if commit {
            // Release: pairs with the Acquire load of `tail` in `pop_batch`,
            // making the slot writes visible with the new bound.
            self.producer
                .0
                .tail
                .store(tail_local.wrapping_add(1), Ordering::Release);
        }
    }

    /// Publishes every item written since the last publication.
    ///
    /// # Safety
    /// Producer role (see [`is_full`](Self::is_full)).
    pub unsafe fn commit(&self) {
        let tail_local = self.tail_local();
        // Relaxed: only this thread writes `tail`.
        if self.producer.0.tail.load(Ordering::Relaxed) != tail_local {
            // Release: pairs with the Acquire load of `tail` in `pop_batch`.
            self.producer.0.tail.store(tail_local, Ordering::Release);
        }
    }

    /// Moves up to `out.len()` published items, oldest first, into `out`.
    ///
    /// # Safety
    /// Only one thread at a time may act as the consumer.
    pub unsafe fn pop_batch(&self, out: &mut [Word]) -> usize {
        let consumer = &self.consumer.0;
        // Relaxed: only the consumer writes `head`.
        let head = consumer.head.load(Ordering::Relaxed);
        // SAFETY: consumer-private field (contract).
        let mut tail = consumer.tail_cache.with(|t| unsafe { *t });
        if head == tail {
            // Acquire: pairs with the Release stores of `tail` in `push` and
            // `commit`, so the published slots' contents are visible.
            tail = self.producer.0.tail.load(Ordering::Acquire);
            // SAFETY: consumer-private field (contract).
            consumer.tail_cache.with_mut(|t| unsafe { *t = tail });
            if head == tail {
                return 0;
            }
        }

        let count = tail.wrapping_sub(head).min(out.len());
        for (i, out) in out.iter_mut().take(count).enumerate() {
            // SAFETY: slots in `[head, tail)` are published and ours until we
            // advance `head`.
            *out = self.slot(head.wrapping_add(i)).with(|s| unsafe { *s });
        }

        // Release: pairs with the Acquire load of `head` in `is_full`/
        // `is_empty`, so our reads above happen before the producer reuses
        // the slots.
        consumer
            .head
            .store(head.wrapping_add(count), Ordering::Release);
        count
    }

    /// Whether published items are waiting, from the consumer's view.
    ///
    /// # Safety
    /// Consumer role (see [`pop_batch`](Self::pop_batch)).
    pub unsafe fn has_published(&self) -> bool {
        // Relaxed: only the consumer writes `head`.
        let head = self.consumer.0.head.load(Ordering::Relaxed);
        // Acquire: pairs with the Release stores of `tail` in `push` and
        // `commit`, as in `pop_batch`.
        self.producer.0.tail.load(Ordering::Acquire) != head
    }

    /// Whether the consumer has taken every item written, published or not,
    /// as the producer sees it.
    ///
    /// # Safety
    /// Producer role (see [`is_full`](Self::is_full)).
    pub unsafe fn is_empty(&self) -> bool {
        let tail_local = self.tail_local();
        let producer = &self.producer.0;
        // SAFETY: producer-private field (contract).
        if producer.head_cache.with(|h| unsafe { *h }) == tail_local {
            return true;
        }
        // Acquire: pairs with the Release store of `head` in `pop_batch`.
        let head = self.consumer.0.head.load(Ordering::Acquire);
        // SAFETY: producer-private field (contract).
        producer.head_cache.with_mut(|h| unsafe { *h = head });
        head == tail_local
    }
}

impl Drop for SpscRing {
    fn drop(&mut self) {
        let storage = &self.storage.0;
        if !storage.slots.is_null() {
            // SAFETY: allocated by `with_capacity` and dropped once.
            unsafe { free_slots(storage.slots, storage.capacity) };
        }
    }
}

/// Layout of `spscQueue` in `queues.h` on x86-64; C allocates these structs, so
/// they must match byte for byte. `c-tests/layout.c` checks the same numbers
/// against Valkey's own header.
#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SpscRing>() == 192 && align_of::<SpscRing>() == 64);
    assert!(offset_of!(SpscRing, consumer.0.head) == 0);
    assert!(offset_of!(SpscRing, consumer.0.tail_cache) == 8);
    assert!(offset_of!(SpscRing, producer.0.tail) == 64);
    assert!(offset_of!(SpscRing, producer.0.tail_local) == 72);
    assert!(offset_of!(SpscRing, producer.0.head_cache) == 80);
    assert!(offset_of!(SpscRing, storage.0.slots) == 128);
    assert!(offset_of!(SpscRing, storage.0.capacity) == 136);
};

/// Creates a ring and its two role handles.
#[track_caller]
pub fn channel(capacity: usize) -> (Producer, Consumer) {
    let ring = Arc::new(SpscRing::with_capacity(capacity));
    (Producer { ring: ring.clone() }, Consumer { ring })
}

/// The one producer of an SPSC ring.
#[derive(Debug)]
pub struct Producer {
    ring: Arc<SpscRing>,
}

impl Producer {
    /// Writes `item` if a slot is free, publishing it when `commit` is true;
    /// otherwise publishes what is pending and returns the item back.
    // The word is stored and handed on, never dereferenced: it is the
    // caller's pointer, opaque to the ring.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn push(&mut self, item: Word, commit: bool) -> Result<(), Word> {
        // SAFETY: `Producer` is not `Clone` and takes `&mut self`: one
        // producer; `push` follows an `is_full` that answered false.
        unsafe {
            if self.ring.is_full() {
                return Err(item);
            }
            self.ring.push(item, commit);
        }
        Ok(())
    }

    /// See [`SpscRing::is_full`].
    pub fn is_full(&mut self) -> bool {
        // SAFETY: one producer (see `push`).
        unsafe { self.ring.is_full() }
    }

    /// See [`SpscRing::commit`].
    pub fn commit(&mut self) {
        // SAFETY: one producer (see `push`).
        unsafe { self.ring.commit() }
    }

    /// See [`SpscRing::is_empty`].
    pub fn is_empty(&mut self) -> bool {
        // SAFETY: one producer (see `push`).
        unsafe { self.ring.is_empty() }
    }
}

/// The one consumer of an SPSC ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Arc<SpscRing>,
}

impl Consumer {
    /// See [`SpscRing::has_published`].
    pub fn has_published(&self) -> bool {
        // SAFETY: `Consumer` is not `Clone`: this is the one consumer, and
        // `has_published` only reads, so sharing `&self` is harmless.
        unsafe { self.ring.has_published() }
    }

    /// See [`SpscRing::pop_batch`].
    pub fn pop_batch(&mut self, out: &mut [Word]) -> usize {
        // SAFETY: `Consumer` is not `Clone` and takes `&mut self`.
        unsafe { self.ring.pop_batch(out) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A distinct non-null word for item `i`, without provenance.
    fn word(i: usize) -> Word {
        ptr::null_mut::<u8>().wrapping_add(i).cast()
    }

    fn index(w: Word) -> usize {
        w as usize
    }

    /// Pops everything currently published, `batch` at a time.
    fn drain(ring: &SpscRing, batch: usize) -> Vec<usize> {
        let mut out = vec![ptr::null_mut(); batch];
        let mut got = Vec::new();
        loop {
            // SAFETY: the test thread is the only consumer.
            let n = unsafe { ring.pop_batch(&mut out) };
            if n == 0 {
                return got;
            }
            got.extend(out[..n].iter().map(|&w| index(w)));
        }
    }

    /// Checks for room, then pushes: the contract of `SpscRing::push`.
    fn push(ring: &SpscRing, i: usize, commit: bool) {
        // SAFETY: the test thread is the only producer; `is_full` is checked
        // right before the push.
        unsafe {
            assert!(!ring.is_full(), "ring full before pushing {i}");
            ring.push(word(i), commit);
        }
    }

    #[test]
    fn new_ring_is_empty() {
        let ring = SpscRing::with_capacity(4);
        assert_eq!(ring.capacity(), 4);
        assert_eq!(drain(&ring, 4), Vec::<usize>::new());
        // SAFETY: the test thread is the only producer.
        unsafe {
            assert!(ring.is_empty());
            assert!(!ring.is_full());
        }
    }

    #[test]
    fn committed_items_come_out_in_order() {
        let ring = SpscRing::with_capacity(8);
        for i in 1..=5 {
            push(&ring, i, true);
        }
        assert_eq!(drain(&ring, 64), vec![1, 2, 3, 4, 5]);
        // SAFETY: the test thread is the only producer.
        assert!(unsafe { ring.is_empty() });
    }

    #[test]
    fn uncommitted_items_stay_hidden_until_commit() {
        let ring = SpscRing::with_capacity(8);
        push(&ring, 1, false);
        push(&ring, 2, false);
        assert_eq!(drain(&ring, 8), Vec::<usize>::new());

        // SAFETY: the test thread is the only producer.
        unsafe { ring.commit() };
        assert_eq!(drain(&ring, 8), vec![1, 2]);

        // A commit with nothing pending publishes nothing.
        // SAFETY: as above.
        unsafe { ring.commit() };
        assert_eq!(drain(&ring, 8), Vec::<usize>::new());
    }

    #[test]
    fn a_committing_push_publishes_earlier_pending_items() {
        let ring = SpscRing::with_capacity(8);
        push(&ring, 1, false);
        push(&ring, 2, false);
        push(&ring, 3, true);
        push(&ring, 4, false);
        assert_eq!(drain(&ring, 8), vec![1, 2, 3]);
        // SAFETY: the test thread is the only producer.
        unsafe { ring.commit() };
        assert_eq!(drain(&ring, 8), vec![4]);
    }

    #[test]
    fn is_full_publishes_pending_items() {
        let ring = SpscRing::with_capacity(4);
        for i in 1..=4 {
            push(&ring, i, false);
        }
        assert_eq!(
            drain(&ring, 8),
            Vec::<usize>::new(),
            "nothing committed yet"
        );

        // SAFETY: the test thread is the only producer.
        assert!(unsafe { ring.is_full() });
        assert_eq!(
            drain(&ring, 8),
            vec![1, 2, 3, 4],
            "is_full must publish what it waits on"
        );
        // SAFETY: as above.
        assert!(!unsafe { ring.is_full() });
    }

    #[test]
    fn a_not_full_answer_publishes_nothing() {
        let ring = SpscRing::with_capacity(4);
        push(&ring, 1, false);
        // SAFETY: the test thread is the only producer.
        assert!(!unsafe { ring.is_full() });
        assert_eq!(drain(&ring, 8), Vec::<usize>::new());
    }

    #[test]
    fn is_empty_counts_unpublished_items() {
        let ring = SpscRing::with_capacity(8);
        push(&ring, 1, false);
        // SAFETY: the test thread is the only producer, throughout the test.
        unsafe {
            assert!(!ring.is_empty(), "written but unpublished is not empty");
            ring.commit();
            assert!(!ring.is_empty());
        }

        push(&ring, 2, true);
        let mut out = [ptr::null_mut(); 1];
        // SAFETY: the test thread is the only consumer.
        assert_eq!(unsafe { ring.pop_batch(&mut out) }, 1);
        // SAFETY: the test thread is the only producer.
        assert!(!unsafe { ring.is_empty() }, "one item is still unconsumed");
        assert_eq!(drain(&ring, 8), vec![2]);
        // SAFETY: as above.
        assert!(unsafe { ring.is_empty() });

        // The cached head now equals the old end; a new push must still
        // count.
        push(&ring, 3, false);
        // SAFETY: as above.
        assert!(!unsafe { ring.is_empty() });
    }

    #[test]
    fn fills_and_wraps_around_for_many_laps() {
        let ring = SpscRing::with_capacity(4);
        for lap in 0..3 {
            for i in 0..4 {
                push(&ring, lap * 4 + i + 1, true);
            }
            // SAFETY: the test thread is the only producer.
            assert!(unsafe { ring.is_full() });
            assert_eq!(
                drain(&ring, 3),
                (lap * 4 + 1..=lap * 4 + 4).collect::<Vec<_>>()
            );
            // SAFETY: as above.
            unsafe {
                assert!(ring.is_empty());
                assert!(!ring.is_full());
            }
        }

        // Staggered: three items in flight while the indices cross many laps.
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for (round, next_in) in (100..160).enumerate() {
            push(&ring, next_in, round % 3 == 0);
            expected.push(next_in);
            // SAFETY: the test thread is the only producer.
            if unsafe { ring.is_full() } {
                got.extend(drain(&ring, 2));
            }
        }
        // SAFETY: as above.
        unsafe { ring.commit() };
        got.extend(drain(&ring, 2));
        assert_eq!(got, expected);
    }

    #[test]
    fn a_partial_batch_takes_a_prefix() {
        let ring = SpscRing::with_capacity(8);
        for i in 1..=5 {
            push(&ring, i, true);
        }
        let mut out = [ptr::null_mut(); 3];
        // SAFETY: the test thread is the only consumer.
        assert_eq!(unsafe { ring.pop_batch(&mut out) }, 3);
        assert_eq!(out, [word(1), word(2), word(3)]);
        // SAFETY: as above.
        assert_eq!(unsafe { ring.pop_batch(&mut []) }, 0);
        assert_eq!(drain(&ring, 64), vec![4, 5]);
    }

    #[test]
    fn capacity_one_works() {
        let ring = SpscRing::with_capacity(1);
        for i in 1..=3 {
            push(&ring, i, false);
            // SAFETY: the test thread is the only producer.
            assert!(unsafe { ring.is_full() });
            assert_eq!(drain(&ring, 2), vec![i]);
        }
    }

    #[test]
    #[should_panic(expected = "SPSC ring capacity must be a non-zero power of two, got 3")]
    fn capacity_must_be_a_power_of_two() {
        SpscRing::with_capacity(3);
    }

    #[test]
    #[should_panic(expected = "SPSC ring capacity must be a non-zero power of two, got 0")]
    fn capacity_must_not_be_zero() {
        let _ = channel(0);
    }

    #[test]
    fn handles_publish_pending_items_when_refusing() {
        let (mut producer, mut consumer) = channel(2);
        assert!(producer.is_empty());
        assert_eq!(producer.push(word(1), false), Ok(()));
        assert_eq!(producer.push(word(2), false), Ok(()));
        assert!(!producer.is_empty());

        let mut out = [ptr::null_mut(); 4];
        assert_eq!(consumer.pop_batch(&mut out), 0);
        assert_eq!(producer.push(word(3), false), Err(word(3)));
        assert_eq!(
            consumer.pop_batch(&mut out),
            2,
            "a refused push publishes the pending items"
        );
        assert_eq!(&out[..2], &[word(1), word(2)]);

        assert_eq!(producer.push(word(3), false), Ok(()));
        assert!(!producer.is_full());
        producer.commit();
        assert_eq!(consumer.pop_batch(&mut out), 1);
        assert_eq!(out[0], word(3));
        assert!(producer.is_empty());
    }

    /// One producer publishing in batches, one consumer: every item arrives
    /// exactly once and in order.
    #[test]
    fn threads_deliver_each_item_once_in_order() {
        const ITEMS: usize = if cfg!(miri) { 300 } else { 50_000 };
        const BATCH: usize = 7;

        let (mut producer, mut consumer) = channel(16);
        let thread = std::thread::spawn(move || {
            let mut next = 1;
            let mut out = [ptr::null_mut(); 5];
            while next <= ITEMS {
                let n = consumer.pop_batch(&mut out);
                if n == 0 {
                    std::thread::yield_now();
                }
                for &w in &out[..n] {
                    assert_eq!(index(w), next, "item lost, repeated or reordered");
                    next += 1;
                }
            }
            assert_eq!(consumer.pop_batch(&mut out), 0, "items beyond those pushed");
        });

        for i in 1..=ITEMS {
            while producer.push(word(i), i % BATCH == 0).is_err() {
                std::thread::yield_now();
            }
        }
        producer.commit();
        thread.join().unwrap();
        assert!(producer.is_empty());
    }
}
