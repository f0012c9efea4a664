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
        self.producer.0.tail_local.with_mut(|t| unsafe { *t = tail_local.wrapping_add(1) });
        if commit {
            // Release: pairs with the Acquire load of `tail` in `pop_batch`,
            // making the slot writes visible with the new bound.
            self.producer.0.tail.store(tail_local.wrapping_add(1), Ordering::Release);
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
        consumer.head.store(head.wrapping_add(count), Ordering::Release);
        count
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
    /// See [`SpscRing::pop_batch`].
    pub fn pop_batch(&mut self, out: &mut [Word]) -> usize {
        // SAFETY: `Consumer` is not `Clone` and takes `&mut self`.
        unsafe { self.ring.pop_batch(out) }
    }
}
