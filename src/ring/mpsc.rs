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
        assert!(
            !item.is_null(),
            "MPSC push of a null item: null marks an unwritten slot"
        );
        self.push_nonnull(item, ticket)
    }

    /// [`push`](Self::push) without its null check, for a caller that has
    /// made it already (the C boundary folds it into its own checks). A
    /// null item here breaks no memory safety, but the consumer would take
    /// it for an unwritten slot and stop there for good.
    #[inline(always)]
    pub(crate) fn push_nonnull(&self, item: Word, ticket: &mut MpscTicket) -> bool {
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
                *ticket = MpscTicket {
                    index,
                    has_reservation: true,
                };
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
            self.consumer
                .0
                .tail_cache
                .with_mut(|t| unsafe { *t = tail });
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
    (
        Producer {
            ring: ring.clone(),
            ticket: MpscTicket::default(),
        },
        Consumer { ring },
    )
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
        Self {
            ring: self.ring.clone(),
            ticket: MpscTicket::default(),
        }
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

    /// Pops everything currently poppable, `batch` at a time.
    fn drain(ring: &MpscRing, batch: usize) -> Vec<usize> {
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

    fn push(ring: &MpscRing, i: usize) {
        let mut ticket = MpscTicket::default();
        assert!(ring.push(word(i), &mut ticket), "push of {i} refused");
        assert_eq!(
            ticket,
            MpscTicket {
                index: ticket.index,
                has_reservation: false
            }
        );
    }

    #[test]
    fn new_ring_is_empty() {
        let ring = MpscRing::with_capacity(4);
        assert_eq!(ring.capacity(), 4);
        assert_eq!(drain(&ring, 4), Vec::<usize>::new());
    }

    #[test]
    fn items_come_out_in_reservation_order() {
        let ring = MpscRing::with_capacity(8);
        for i in 1..=5 {
            push(&ring, i);
        }
        assert_eq!(drain(&ring, 8), vec![1, 2, 3, 4, 5]);
        assert_eq!(drain(&ring, 8), Vec::<usize>::new());
    }

    #[test]
    fn a_short_output_takes_a_prefix_and_leaves_the_rest() {
        let ring = MpscRing::with_capacity(8);
        for i in 1..=5 {
            push(&ring, i);
        }
        let mut out = [ptr::null_mut(); 2];
        // SAFETY: the test thread is the only consumer.
        assert_eq!(unsafe { ring.pop_batch(&mut out) }, 2);
        assert_eq!(out, [word(1), word(2)]);
        // SAFETY: as above.
        assert_eq!(unsafe { ring.pop_batch(&mut []) }, 0);
        assert_eq!(drain(&ring, 2), vec![3, 4, 5]);
    }

    #[test]
    fn full_ring_keeps_the_reservation_and_the_retry_fills_it() {
        let ring = MpscRing::with_capacity(4);
        for i in 1..=4 {
            push(&ring, i);
        }

        // The fifth reservation is index 4, a lap ahead of head 0: refused,
        // and kept however often the full ring refuses it again.
        let mut ticket = MpscTicket::default();
        assert!(!ring.push(word(5), &mut ticket));
        assert_eq!(
            ticket,
            MpscTicket {
                index: 4,
                has_reservation: true
            }
        );
        assert!(!ring.push(word(5), &mut ticket));
        assert_eq!(
            ticket,
            MpscTicket {
                index: 4,
                has_reservation: true
            }
        );

        // Another producer reserves behind it (index 5), also refused.
        let mut later = MpscTicket::default();
        assert!(!ring.push(word(6), &mut later));
        assert_eq!(
            later,
            MpscTicket {
                index: 5,
                has_reservation: true
            }
        );

        // Free two slots; both retries now land in their reserved slots, in
        // the opposite order to reservation.
        let mut out = [ptr::null_mut(); 2];
        // SAFETY: the test thread is the only consumer.
        assert_eq!(unsafe { ring.pop_batch(&mut out) }, 2);
        assert!(ring.push(word(6), &mut later));
        assert!(!later.has_reservation);
        assert!(ring.push(word(5), &mut ticket));
        assert!(!ticket.has_reservation);

        assert_eq!(drain(&ring, 8), vec![3, 4, 5, 6]);
    }

    #[test]
    fn consumer_stops_at_a_reserved_unwritten_slot() {
        let ring = MpscRing::with_capacity(4);
        for i in 1..=4 {
            push(&ring, i);
        }
        let mut stalled = MpscTicket::default();
        assert!(!ring.push(word(5), &mut stalled));
        assert_eq!(drain(&ring, 8), vec![1, 2, 3, 4]);

        // Index 5 is written while index 4 is still only reserved: the
        // consumer must not pass the hole.
        push(&ring, 6);
        assert_eq!(drain(&ring, 8), Vec::<usize>::new());

        assert!(ring.push(word(5), &mut stalled));
        assert_eq!(drain(&ring, 8), vec![5, 6]);
    }

    #[test]
    fn wraps_around_for_many_laps() {
        let ring = MpscRing::with_capacity(4);
        for lap in 0..3 {
            for i in 0..4 {
                push(&ring, lap * 4 + i + 1);
            }
            assert_eq!(
                drain(&ring, 3),
                (lap * 4 + 1..=lap * 4 + 4).collect::<Vec<_>>()
            );
        }

        // Interleaved, as queues.c's own test does, but across many laps.
        let mut next_in = 100;
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for _ in 0..40 {
            for _ in 0..3 {
                push(&ring, next_in);
                expected.push(next_in);
                next_in += 1;
            }
            got.extend(drain(&ring, 2));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn capacity_one_works() {
        let ring = MpscRing::with_capacity(1);
        for i in 1..=3 {
            push(&ring, i);
            let mut ticket = MpscTicket::default();
            assert!(!ring.push(word(99), &mut ticket));
            assert_eq!(drain(&ring, 2), vec![i]);
            assert!(ring.push(word(100 + i), &mut ticket));
            assert_eq!(drain(&ring, 2), vec![100 + i]);
        }
    }

    #[test]
    #[should_panic(expected = "MPSC push of a null item")]
    fn null_items_are_refused() {
        let ring = MpscRing::with_capacity(4);
        ring.push(ptr::null_mut(), &mut MpscTicket::default());
    }

    #[test]
    #[should_panic(expected = "MPSC ring capacity must be a non-zero power of two, got 12")]
    fn capacity_must_be_a_power_of_two() {
        MpscRing::with_capacity(12);
    }

    #[test]
    #[should_panic(expected = "MPSC ring capacity must be a non-zero power of two, got 0")]
    fn capacity_must_not_be_zero() {
        let _ = channel(0);
    }

    #[test]
    fn handles_keep_the_ticket_between_pushes() {
        let (mut first, mut consumer) = channel(2);
        assert_eq!(consumer.capacity(), 2);
        let mut second = first.clone();
        assert_eq!(first.push(word(1)), Ok(()));
        assert_eq!(first.push(word(2)), Ok(()));

        assert_eq!(first.push(word(3)), Err(word(3)));
        assert!(first.has_reservation());
        let mut third = first.clone();
        assert!(
            !third.has_reservation(),
            "a clone starts with a fresh ticket"
        );
        assert_eq!(second.push(word(4)), Err(word(4)));

        let mut out = [ptr::null_mut(); 4];
        assert_eq!(consumer.pop_batch(&mut out), 2);
        assert_eq!(second.push(word(4)), Ok(()));
        assert_eq!(first.push(word(3)), Ok(()));
        assert!(!first.has_reservation());
        assert_eq!(consumer.pop_batch(&mut out), 2);
        assert_eq!(&out[..2], &[word(3), word(4)]);
        assert_eq!(third.push(word(5)), Ok(()));
    }

    /// Three producers, one consumer: every item arrives exactly once, and
    /// each producer's items arrive in the order it pushed them.
    #[test]
    fn threads_deliver_each_item_exactly_once() {
        const PER_PRODUCER: usize = if cfg!(miri) { 100 } else { 20_000 };
        const PRODUCERS: usize = 3;

        let (producer, mut consumer) = channel(8);
        let threads: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let mut producer = producer.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        // Item = producer in the high bits, sequence + 1 below.
                        let item = word((p << 24) | (i + 1));
                        while producer.push(item).is_err() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(producer);

        let mut last = [0; PRODUCERS];
        let mut out = [ptr::null_mut(); 5];
        let mut received = 0;
        while received < PRODUCERS * PER_PRODUCER {
            let n = consumer.pop_batch(&mut out);
            if n == 0 {
                std::thread::yield_now();
            }
            for &w in &out[..n] {
                let (p, seq) = (index(w) >> 24, index(w) & 0xff_ffff);
                assert_eq!(
                    seq,
                    last[p] + 1,
                    "producer {p}: item lost, repeated or reordered"
                );
                last[p] = seq;
            }
            received += n;
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(consumer.pop_batch(&mut out), 0, "items beyond those pushed");
        assert_eq!(last, [PER_PRODUCER; PRODUCERS]);
    }
}
