//! loom models of the three rings: every interleaving (up to a preemption
//! bound) of tiny rings with a few items, checking that no item is lost or
//! taken twice, that order holds where the ring promises it, and that nothing
//! is read before it is written.
//!
//! "Read before written" is checked twice over: each slot's payload lives in
//! a loom `UnsafeCell` (through `crate::sync`), and each item also points at a
//! separate payload cell that its producer writes before pushing and its
//! consumer reads after taking it. loom fails the model if a read is not
//! ordered after the write by some Release/Acquire pair.
//!
//! Run with `make loom`, or:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom_rings
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` overrides each model's preemption bound.

#![cfg(loom)]

mod loom_support;

use std::ptr;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use loom_support::model;
use valkey_iocore::ring::{MpscRing, MpscTicket, SpmcRing, SpscRing, Word};

/// Item `i` (from 1) as a word.
fn word(i: usize) -> Word {
    ptr::null_mut::<u8>().wrapping_add(i).cast()
}

fn item(w: Word) -> usize {
    w as usize
}

/// What each item points at: written by its producer before the push, read
/// by whoever takes the item.
struct Payloads(Vec<UnsafeCell<usize>>);

// SAFETY: each cell is written by one producer before its item is pushed and
// read only after the item is taken; the models check exactly that ordering.
unsafe impl Sync for Payloads {}
// SAFETY: plain integers.
unsafe impl Send for Payloads {}

impl Payloads {
    fn new(items: usize) -> Self {
        Self((0..=items).map(|_| UnsafeCell::new(0)).collect())
    }

    /// Fills item `i`'s payload and returns the word to push for it.
    fn fill(&self, i: usize) -> Word {
        // SAFETY: item `i` has not been pushed yet, so no one else reads it.
        self.0[i].with_mut(|p| unsafe { *p = 1000 + i });
        word(i)
    }

    /// Takes delivery of `w`: its payload must be the producer's.
    fn check(&self, w: Word) -> usize {
        let i = item(w);
        assert!((1..self.0.len()).contains(&i), "word {i} was never pushed");
        // SAFETY: loom fails the model if this read is not ordered after the
        // write in `fill`, which is the property under test.
        let payload = self.0[i].with(|p| unsafe { *p });
        assert_eq!(
            payload,
            1000 + i,
            "item {i} taken before its payload was visible"
        );
        i
    }
}

/// Asserts that `taken` holds `1..=items` exactly once each.
fn assert_exactly_once(mut taken: Vec<usize>, items: usize) {
    taken.sort_unstable();
    assert_eq!(
        taken,
        (1..=items).collect::<Vec<_>>(),
        "an item was lost or taken twice"
    );
}

/// How many times a thread tries an operation that can be refused before it
/// hands the rest of its work to the model's main thread.
///
/// Models whose threads spin on each other do not terminate under loom: with
/// two threads yielding in turn, loom may keep scheduling just those two and
/// the path grows past its branch limit. So threads here try a bounded number
/// of times, and the main thread finishes the protocol after joining them.
const ATTEMPTS: usize = 2;

/// SPMC, 2 slots, 1 producer (the model's main thread) and 2 consumers, 3
/// items: the third push needs a slot recycled by a consumer, so the
/// producer's write into a recycled slot races with the consumer's read of it
/// in some interleavings.
#[test]
fn spmc_one_producer_two_consumers() {
    const ITEMS: usize = 3;
    model(2, || {
        let ring = Arc::new(SpmcRing::with_capacity(2));
        let payloads = Arc::new(Payloads::new(ITEMS));

        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (ring, payloads) = (ring.clone(), payloads.clone());
                thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..ATTEMPTS {
                        match ring.pop() {
                            Some(w) => got.push(payloads.check(w)),
                            None => thread::yield_now(),
                        }
                    }
                    got
                })
            })
            .collect();

        let mut next = 1;
        'push: while next <= ITEMS {
            let w = payloads.fill(next);
            for _ in 0..ATTEMPTS {
                // SAFETY: the main thread is the only producer.
                if unsafe { ring.push(w) } {
                    next += 1;
                    continue 'push;
                }
                thread::yield_now();
            }
            break;
        }

        let mut taken = Vec::new();
        for consumer in consumers {
            let got = consumer.join().unwrap();
            // Claims advance `head`, so one consumer's items are in order.
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "a consumer saw items out of order"
            );
            taken.extend(got);
        }

        // Alone now: push what was refused, draining as needed; what is left
        // comes out in push order.
        let mut rest = Vec::new();
        while next <= ITEMS {
            // SAFETY: the main thread is the only producer.
            if unsafe { ring.push(payloads.fill(next)) } {
                next += 1;
            } else {
                rest.push(payloads.check(ring.pop().expect("a full ring must have an item")));
            }
        }
        while let Some(w) = ring.pop() {
            rest.push(payloads.check(w));
        }
        assert!(
            rest.windows(2).all(|w| w[0] < w[1]),
            "items left over out of order"
        );
        taken.extend(rest);
        assert_exactly_once(taken, ITEMS);
        // SAFETY: the main thread is the only producer.
        assert!(unsafe { ring.is_empty() });
    });
}

/// A producer's unfinished work, handed back to the model's main thread: the
/// items it has not pushed, first one possibly reserved in `ticket`.
struct Unsent {
    items: Vec<usize>,
    ticket: MpscTicket,
}

impl Unsent {
    /// Tries each item up to `ATTEMPTS` times, keeping the ticket across
    /// refusals; stops at the first item still refused. Returns whether some
    /// push was refused and then succeeded with the same ticket.
    fn send(&mut self, ring: &MpscRing, payloads: &Payloads) -> bool {
        let mut retried = false;
        while let Some(&i) = self.items.first() {
            let w = payloads.fill(i);
            let mut refused_at = None;
            let mut sent = false;
            for _ in 0..ATTEMPTS {
                if ring.push(w, &mut self.ticket) {
                    sent = true;
                    break;
                }
                assert!(
                    self.ticket.has_reservation,
                    "a refused push must keep its slot"
                );
                assert!(
                    refused_at.map_or(true, |at| at == self.ticket.index),
                    "a retry must keep its reserved index"
                );
                refused_at = Some(self.ticket.index);
                thread::yield_now();
            }
            if !sent {
                return retried;
            }
            assert!(!self.ticket.has_reservation);
            retried |= refused_at.is_some();
            self.items.remove(0);
        }
        retried
    }
}

/// Pops whatever is ready, checking each item's payload.
///
/// # Safety
/// The caller is the ring's only consumer.
unsafe fn pop_into(ring: &MpscRing, payloads: &Payloads, got: &mut Vec<usize>) -> usize {
    let mut out = [ptr::null_mut(); 4];
    // SAFETY: forwarded contract.
    let n = unsafe { ring.pop_batch(&mut out) };
    got.extend(out[..n].iter().map(|&w| payloads.check(w)));
    n
}

/// Finishes the producers' unsent work on the main thread, draining as
/// needed, then drains the ring.
///
/// # Safety
/// The caller is the ring's only consumer, and no other thread pushes.
unsafe fn finish(
    ring: &MpscRing,
    payloads: &Payloads,
    unsent: &mut [Unsent],
    got: &mut Vec<usize>,
) {
    while unsent.iter().any(|u| !u.items.is_empty()) {
        for u in unsent.iter_mut() {
            u.send(ring, payloads);
        }
        // SAFETY: forwarded contract.
        unsafe { pop_into(ring, payloads, got) };
    }
    // SAFETY: forwarded contract.
    while unsafe { pop_into(ring, payloads, got) } > 0 {}
}

/// Executions of the MPSC model in which a producer thread was refused and
/// then succeeded with the same ticket, while the consumer ran: the model
/// asserts this path was explored at least once.
static MPSC_RETRIES: StdAtomicUsize = StdAtomicUsize::new(0);

/// MPSC, 2 slots, 2 producers with 2 items each and 1 consumer: 4 items in 2
/// slots, so producers are refused and retry with their ticket while the
/// consumer frees slots.
#[test]
fn mpsc_two_producers_one_consumer_with_ticket_retry() {
    model(2, || {
        let ring = Arc::new(MpscRing::with_capacity(2));
        let payloads = Arc::new(Payloads::new(4));

        // Producer 0 sends 1 and 3; producer 1 sends 2 and 4.
        let producers: Vec<_> = [[1, 3], [2, 4]]
            .into_iter()
            .map(|items| {
                let (ring, payloads) = (ring.clone(), payloads.clone());
                thread::spawn(move || {
                    let mut unsent = Unsent {
                        items: items.to_vec(),
                        ticket: MpscTicket::default(),
                    };
                    if unsent.send(&ring, &payloads) {
                        MPSC_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    unsent
                })
            })
            .collect();

        // The model's main thread is the consumer.
        let mut got = Vec::new();
        for _ in 0..ATTEMPTS {
            // SAFETY: the main thread is the only consumer.
            if unsafe { pop_into(&ring, &payloads, &mut got) } == 0 {
                thread::yield_now();
            }
        }
        let mut unsent: Vec<_> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        // SAFETY: the main thread is the only consumer, and the producers
        // have finished.
        unsafe { finish(&ring, &payloads, &mut unsent, &mut got) };

        // Per-producer FIFO: odd items are producer 0's, even producer 1's.
        for parity in [1, 0] {
            let mine: Vec<_> = got.iter().filter(|&&i| i % 2 == parity).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "a producer's items out of order"
            );
        }
        assert_exactly_once(got, 4);
    });
    assert!(
        MPSC_RETRIES.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution exercised the full-ring ticket retry"
    );
}

/// MPSC, the retry path on its own: the ring starts full, one producer holds
/// a refused reservation and retries while the consumer drains, and a second
/// producer reserves behind it, so its item may be written before the
/// retried one is and the consumer must not skip the hole.
#[test]
fn mpsc_retry_races_a_later_reservation() {
    model(3, || {
        let ring = Arc::new(MpscRing::with_capacity(2));
        let payloads = Arc::new(Payloads::new(4));
        for i in 1..=2 {
            assert!(ring.push(payloads.fill(i), &mut MpscTicket::default()));
        }
        let mut ticket = MpscTicket::default();
        assert!(!ring.push(payloads.fill(3), &mut ticket));
        assert_eq!(
            ticket,
            MpscTicket {
                index: 2,
                has_reservation: true
            }
        );

        let producers: Vec<_> = [
            Unsent {
                items: vec![3],
                ticket,
            },
            Unsent {
                items: vec![4],
                ticket: MpscTicket::default(),
            },
        ]
        .into_iter()
        .map(|mut unsent| {
            let (ring, payloads) = (ring.clone(), payloads.clone());
            thread::spawn(move || {
                unsent.send(&ring, &payloads);
                unsent
            })
        })
        .collect();

        let mut got = Vec::new();
        for _ in 0..ATTEMPTS {
            // SAFETY: the main thread is the only consumer.
            if unsafe { pop_into(&ring, &payloads, &mut got) } == 0 {
                thread::yield_now();
            }
        }
        let mut unsent: Vec<_> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        // SAFETY: the main thread is the only consumer, and the producers
        // have finished.
        unsafe { finish(&ring, &payloads, &mut unsent, &mut got) };
        assert_eq!(
            got,
            [1, 2, 3, 4],
            "reservation order must be delivery order"
        );
    });
}

/// SPSC, 2 slots, 3 items published in a batch: only the last push commits,
/// so the producer relies on `is_full` publishing the pending items while it
/// waits for room.
#[test]
fn spsc_batched_commit() {
    const ITEMS: usize = 3;
    model(3, || {
        let ring = Arc::new(SpscRing::with_capacity(2));
        let payloads = Arc::new(Payloads::new(ITEMS));

        let consumer = {
            let (ring, payloads) = (ring.clone(), payloads.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut out = [ptr::null_mut(); 2];
                while got.len() < ITEMS {
                    // SAFETY: this thread is the only consumer.
                    let n = unsafe { ring.pop_batch(&mut out) };
                    if n == 0 {
                        thread::yield_now();
                    }
                    got.extend(out[..n].iter().map(|&w| payloads.check(w)));
                }
                got
            })
        };

        for i in 1..=ITEMS {
            let w = payloads.fill(i);
            // SAFETY: the main thread is the only producer, and pushes only
            // after `is_full` said there is room.
            unsafe {
                while ring.is_full() {
                    thread::yield_now();
                }
                ring.push(w, i == ITEMS);
            }
        }

        assert_eq!(consumer.join().unwrap(), [1, 2, 3]);
        // SAFETY: the main thread is the only producer.
        assert!(unsafe { ring.is_empty() });
    });
}

/// SPSC with an explicit `commit` and batches that do not fill the ring:
/// the consumer sees nothing of a batch until it is committed, and all of it
/// afterwards.
#[test]
fn spsc_explicit_commit() {
    model(3, || {
        let ring = Arc::new(SpscRing::with_capacity(4));
        let payloads = Arc::new(Payloads::new(4));

        let consumer = {
            let (ring, payloads) = (ring.clone(), payloads.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut out = [ptr::null_mut(); 4];
                while got.len() < 4 {
                    // SAFETY: this thread is the only consumer.
                    let n = unsafe { ring.pop_batch(&mut out) };
                    if n == 0 {
                        thread::yield_now();
                    }
                    // Batches are published whole: 1-2, then 3-4.
                    assert!(
                        n == 0 || n == 2 || (n == 4 && got.is_empty()),
                        "saw {n} items"
                    );
                    got.extend(out[..n].iter().map(|&w| payloads.check(w)));
                }
                got
            })
        };

        for batch in [[1, 2], [3, 4]] {
            // SAFETY: the main thread is the only producer; 4 slots never
            // fill with 4 items, and `is_full` is checked all the same.
            unsafe {
                for i in batch {
                    assert!(!ring.is_full());
                    ring.push(payloads.fill(i), false);
                }
                ring.commit();
            }
        }

        assert_eq!(consumer.join().unwrap(), [1, 2, 3, 4]);
    });
}

/// SPSC: `is_empty` refreshes the producer's cached head, and `is_full`'s fast
/// path then trusts that cache to reuse slots. So `is_empty`'s load of `head`
/// must synchronise with the consumer like `is_full`'s own does, or the
/// producer could overwrite a slot the consumer is still reading.
#[test]
fn spsc_is_empty_refreshes_the_head_is_full_trusts() {
    const ITEMS: usize = 4;
    model(3, || {
        let ring = Arc::new(SpscRing::with_capacity(2));
        let payloads = Arc::new(Payloads::new(ITEMS));

        let consumer = {
            let (ring, payloads) = (ring.clone(), payloads.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut out = [ptr::null_mut(); 1];
                while got.len() < ITEMS {
                    // SAFETY: this thread is the only consumer.
                    let n = unsafe { ring.pop_batch(&mut out) };
                    if n == 0 {
                        thread::yield_now();
                    }
                    got.extend(out[..n].iter().map(|&w| payloads.check(w)));
                }
                got
            })
        };

        // SAFETY: the main thread is the only producer, and pushes only after
        // `is_full` said there is room.
        unsafe {
            for i in 1..=2 {
                assert!(!ring.is_full());
                ring.push(payloads.fill(i), true);
            }
            for _ in 0..ATTEMPTS {
                if ring.is_empty() {
                    break;
                }
                thread::yield_now();
            }
            for i in 3..=ITEMS {
                while ring.is_full() {
                    thread::yield_now();
                }
                ring.push(payloads.fill(i), true);
            }
        }

        assert_eq!(consumer.join().unwrap(), [1, 2, 3, 4]);
    });
}
