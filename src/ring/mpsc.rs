//! Multi-producer single-consumer ring: the workers' shared outbox.
//!
//! Producers reserve an index with one `fetch_add` on `tail` and then fill
//! the slot at that index; a null slot means "reserved or empty, not yet
//! written", so the consumer stops at the first null it meets and never reads
//! past a slot whose producer is still writing.
//!
//! When a producer's reserved index is a full lap ahead of `head` the ring is
//! full. The reservation cannot be handed back (later producers may already
//! hold later indices), so it is kept in the producer's [`MpscTicket`] and the
//! same index is filled on a later retry. A producer must therefore retry with
//! the same ticket until it succeeds, and must not abandon a ticket holding a
//! reservation: the consumer would wait at that slot forever.
//!
//! Invariants: every slot in `[head, head + capacity)` is null or holds one
//! unconsumed item; the consumer alone advances `head`, after nulling each
//! slot it took.

use std::ptr;
use std::sync::Arc;

use super::{alloc_slots, check_capacity, free_slots, CacheLine, Word};
use crate::sync::{AtomicPtr, AtomicUsize, Ordering, UnsafeCell};

/// A producer's reservation, kept across retries of a full ring
/// (`mpscTicket` in `queues.h`). Start from `MpscTicket::default()`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MpscTicket {
    pub index: usize,
    pub has_reservation: bool,
}

#[repr(C)]
#[derive(Debug)]
struct ConsumerSide {
    /// Next index to take; written by the consumer, read by producers.
    head: AtomicUsize,
    /// The consumer's last view of `tail`.
    tail_cache: UnsafeCell<usize>,
}

#[repr(C)]
#[derive(Debug)]
struct ProducerSide {
    /// Next index to reserve; advanced by producers.
    tail: AtomicUsize,
    /// A recent value of `head`, shared by producers to avoid reading the
    /// consumer's line on every push.
    head_cache: AtomicUsize,
}

#[repr(C)]
#[derive(Debug)]
struct Storage {
    slots: *mut AtomicPtr<std::ffi::c_void>,
    capacity: usize,
}

/// The ring, laid out as `mpscQueue` in `queues.h`.
#[repr(C)]
#[derive(Debug)]
pub struct MpscRing {
    consumer: CacheLine<ConsumerSide>,
    producer: CacheLine<ProducerSide>,
    storage: CacheLine<Storage>,
}

// SAFETY: slots are atomics; `tail_cache` is touched only by the one consumer,
// which `pop_batch`'s contract requires.
unsafe impl Sync for MpscRing {}
// SAFETY: the ring owns its buffer; the words are the caller's plain data.
unsafe impl Send for MpscRing {}

impl MpscRing {
    /// A ring with `capacity` slots. Panics unless `capacity` is a power of two.
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        check_capacity("MPSC", capacity);
        let slots = alloc_slots(capacity, |_| AtomicPtr::new(ptr::null_mut()));
        Self {
            consumer: CacheLine(ConsumerSide {
                head: AtomicUsize::new(0),
                tail_cache: UnsafeCell::new(0),
            }),
            producer: CacheLine(ProducerSide {
                tail: AtomicUsize::new(0),
                head_cache: AtomicUsize::new(0),
            }),
            storage: CacheLine(Storage { slots, capacity }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.storage.0.capacity
    }

    fn slot(&self, index: usize) -> &AtomicPtr<std::ffi::c_void> {
        let storage = &self.storage.0;
        // SAFETY: masked below `capacity`; the slots live as long as `self`.
        unsafe { &*storage.slots.add(index & (storage.capacity - 1)) }
    }

    /// Writes `item` (non-null) into the slot the ticket reserves, reserving
    /// one first if it holds none. Returns `false` when that slot is still a
    /// lap ahead of the consumer; the ticket then keeps the reservation and
    /// the caller must retry with it.
    ///
    /// Any number of threads may push at once, each with its own ticket.
    #[track_caller]
    pub fn push(&self, item: Word, ticket: &mut MpscTicket) -> bool {
        assert!(!item.is_null(), "MPSC push of a null item: null marks an unwritten slot");

        let index = if ticket.has_reservation {
            ticket.index
        } else {
            // Relaxed: the reservation orders nothing by itself; the consumer
            // learns of the item through the slot's own Release store.
            self.producer.0.tail.fetch_add(1, Ordering::Relaxed)
        };

        // Acquire (both loads): pairs with the consumer's Release store of
        // `head` in `pop_batch`, which follows its nulling of the slots it
        // took, so a slot we see as free has really been emptied.
        let mut head = self.producer.0.head_cache.load(Ordering::Acquire);
        if index.wrapping_sub(head) >= self.capacity() {
            head = self.consumer.0.head.load(Ordering::Acquire);
            // Release: republishes what we acquired above to the producers
            // that read `head_cache` with Acquire.
            self.producer.0.head_cache.store(head, Ordering::Release);
            if index.wrapping_sub(head) >= self.capacity() {
                *ticket = MpscTicket { index, has_reservation: true };
                return false;
            }
        }

        // Release: pairs with the Acquire load of the slot in `pop_batch`, so
        // whatever the item points to is visible to the consumer with it.
        self.slot(index).store(item, Ordering::Release);
        ticket.has_reservation = false;
        true
    }

    /// Moves up to `out.len()` items, oldest first, into `out`; stops early at
    /// the first reserved slot that is not written yet. Returns the count.
    ///
    /// # Safety
    /// Only one thread at a time may act as the consumer.
    pub unsafe fn pop_batch(&self, out: &mut [Word]) -> usize {
        // Relaxed: only the consumer writes `head`.
        let mut head = self.consumer.0.head.load(Ordering::Relaxed);
        // SAFETY: consumer-owned field (contract).
        let mut tail = self.consumer.0.tail_cache.with(|t| unsafe { *t });
        if head == tail {
            // Relaxed: `tail` only bounds the scan. Reservations are made with
            // a Relaxed fetch_add, so there is no Release to pair with; each
            // slot's own Release/Acquire pair publishes its item.
            tail = self.producer.0.tail.load(Ordering::Relaxed);
            // SAFETY: consumer-owned field (contract).
            self.consumer.0.tail_cache.with_mut(|t| unsafe { *t = tail });
            if head == tail {
                return 0;
            }
        }

        let limit = tail.wrapping_sub(head).min(out.len());
        let mut taken = 0;
        while taken < limit {
            let slot = self.slot(head);
            // Acquire: pairs with the Release store in `push`.
            let item = slot.load(Ordering::Acquire);
            if item.is_null() {
                break;
            }
            out[taken] = item;
            // Relaxed: published to producers by the Release store of `head`
            // below.
            slot.store(ptr::null_mut(), Ordering::Relaxed);
            head = head.wrapping_add(1);
            taken += 1;
        }

        if taken > 0 {
            // Release: pairs with the producers' Acquire loads of `head`, so
            // the nulling above happens before they refill these slots.
            self.consumer.0.head.store(head, Ordering::Release);
        }
        taken
    }
}

impl Drop for MpscRing {
    fn drop(&mut self) {
        let storage = &self.storage.0;
        if !storage.slots.is_null() {
            // SAFETY: allocated by `with_capacity` and dropped once.
            unsafe { free_slots(storage.slots, storage.capacity) };
        }
    }
}

/// Layout of `mpscQueue` in `queues.h` on x86-64; C allocates these structs, so
/// they must match byte for byte. `c-tests/layout.c` checks the same numbers
/// against Valkey's own header.
#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<MpscTicket>() == 16 && align_of::<MpscTicket>() == 8);
    assert!(offset_of!(MpscTicket, index) == 0 && offset_of!(MpscTicket, has_reservation) == 8);
    assert!(size_of::<MpscRing>() == 192 && align_of::<MpscRing>() == 64);
    assert!(offset_of!(MpscRing, consumer.0.head) == 0);
    assert!(offset_of!(MpscRing, consumer.0.tail_cache) == 8);
    assert!(offset_of!(MpscRing, producer.0.tail) == 64);
    assert!(offset_of!(MpscRing, producer.0.head_cache) == 72);
    assert!(offset_of!(MpscRing, storage.0.slots) == 128);
    assert!(offset_of!(MpscRing, storage.0.capacity) == 136);
};

/// Creates a ring, the consumer handle and a producer handle to clone.
#[track_caller]
pub fn channel(capacity: usize) -> (Producer, Consumer) {
    let ring = Arc::new(MpscRing::with_capacity(capacity));
    (Producer { ring: ring.clone(), ticket: MpscTicket::default() }, Consumer { ring })
}

/// A producer of an MPSC ring with its own ticket. Cloning gives a producer
/// with a fresh ticket.
#[derive(Debug)]
pub struct Producer {
    ring: Arc<MpscRing>,
    ticket: MpscTicket,
}

impl Clone for Producer {
    fn clone(&self) -> Self {
        Self { ring: self.ring.clone(), ticket: MpscTicket::default() }
    }
}

impl Producer {
    /// See [`MpscRing::push`]. On `Err` the reservation is kept, and the next
    /// push through this handle fills the same slot.
    pub fn push(&mut self, item: Word) -> Result<(), Word> {
        if self.ring.push(item, &mut self.ticket) {
            Ok(())
        } else {
            Err(item)
        }
    }

    /// Whether this producer holds a reserved, unfilled slot.
    pub fn has_reservation(&self) -> bool {
        self.ticket.has_reservation
    }
}

/// The one consumer of an MPSC ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Arc<MpscRing>,
}

impl Consumer {
    /// See [`MpscRing::pop_batch`].
    pub fn pop_batch(&mut self, out: &mut [Word]) -> usize {
        // SAFETY: `Consumer` is not `Clone` and takes `&mut self`.
        unsafe { self.ring.pop_batch(out) }
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}
