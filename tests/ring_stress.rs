//! Million-item runs of each ring through its safe handles, with the thread
//! counts Valkey uses them with: every item must arrive exactly once, and in
//! order wherever the ring promises an order.
//!
//! Rings are small (64 slots) so that full rings, refused pushes and
//! wrap-around happen constantly. Too slow for Miri, which runs the smaller
//! threaded tests in `src/ring/*.rs` instead.

#![cfg(not(loom))]

use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use valkey_iocore::ring::{mpsc, spmc, spsc, Word};

const ITEMS: usize = 1 << 20;
const CAPACITY: usize = 64;

fn word(i: usize) -> Word {
    ptr::null_mut::<u8>().wrapping_add(i).cast()
}

fn index(w: Word) -> usize {
    w as usize
}

/// Marks each item in `1..=ITEMS` as seen; fails on a repeat or a stranger.
struct Seen(Vec<bool>);

impl Seen {
    fn new() -> Self {
        Self(vec![false; ITEMS + 1])
    }

    fn mark(&mut self, item: usize) {
        assert!((1..=ITEMS).contains(&item), "item {item} was never pushed");
        assert!(!self.0[item], "item {item} delivered twice");
        self.0[item] = true;
    }

    fn assert_all(&self) {
        let missing = self.0[1..].iter().filter(|&&s| !s).count();
        assert_eq!(missing, 0, "{missing} items lost");
    }
}

/// The shared inbox: the main thread feeds three workers.
#[test]
#[cfg_attr(miri, ignore)]
fn spmc_one_producer_three_consumers() {
    const CONSUMERS: usize = 3;
    let (mut producer, consumer) = spmc::channel(CAPACITY);
    let claimed = Arc::new(AtomicUsize::new(0));

    let workers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let consumer = consumer.clone();
            let claimed = claimed.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    if let Some(w) = consumer.pop() {
                        got.push(index(w));
                        claimed.fetch_add(1, Ordering::Relaxed);
                    } else if claimed.load(Ordering::Relaxed) == ITEMS {
                        return got;
                    } else {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();

    let mut refused = 0usize;
    for i in 1..=ITEMS {
        while producer.push(word(i)).is_err() {
            refused += 1;
            thread::yield_now();
        }
    }

    let mut seen = Seen::new();
    for worker in workers {
        let got = worker.join().unwrap();
        // Claims advance `head`, so one consumer's items are in push order.
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "a consumer saw items out of order"
        );
        got.into_iter().for_each(|i| seen.mark(i));
    }
    seen.assert_all();
    assert!(producer.is_empty());
    assert_eq!(consumer.pop(), None);
    eprintln!("spmc: {ITEMS} items, {refused} refused pushes");
}

/// The outbox: three workers report to the main thread.
#[test]
#[cfg_attr(miri, ignore)]
fn mpsc_three_producers_one_consumer() {
    const PRODUCERS: usize = 3;
    const PER_PRODUCER: usize = ITEMS.div_ceil(PRODUCERS);
    let (producer, mut consumer) = mpsc::channel(CAPACITY);

    let workers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut producer = producer.clone();
            thread::spawn(move || {
                let mut refused = 0usize;
                for i in 0..PER_PRODUCER {
                    // Producer `p` sends p, p + PRODUCERS, p + 2 * PRODUCERS...
                    let item = word(1 + p + i * PRODUCERS);
                    while producer.push(item).is_err() {
                        assert!(producer.has_reservation());
                        refused += 1;
                        thread::yield_now();
                    }
                }
                refused
            })
        })
        .collect();
    drop(producer);

    let total = PRODUCERS * PER_PRODUCER;
    let mut seen = Vec::with_capacity(total + 1);
    seen.resize(total + 1, false);
    let mut last = [None::<usize>; PRODUCERS];
    let mut out = [ptr::null_mut(); 16];
    let mut received = 0;
    while received < total {
        let n = consumer.pop_batch(&mut out);
        if n == 0 {
            thread::yield_now();
        }
        for &w in &out[..n] {
            let item = index(w);
            assert!((1..=total).contains(&item), "item {item} was never pushed");
            assert!(!seen[item], "item {item} delivered twice");
            seen[item] = true;
            // Each producer reserves increasing indices, and the consumer
            // takes indices in order: per-producer FIFO.
            let p = (item - 1) % PRODUCERS;
            assert!(last[p] < Some(item), "producer {p}'s items out of order");
            last[p] = Some(item);
        }
        received += n;
    }

    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(consumer.pop_batch(&mut out), 0, "items beyond those pushed");
    assert!(seen[1..].iter().all(|&s| s), "an item was lost");
    eprintln!("mpsc: {total} items, {refused} refused pushes");
}

/// A worker's private inbox, fed in batches.
#[test]
#[cfg_attr(miri, ignore)]
fn spsc_one_producer_one_consumer_batched() {
    const BATCH: usize = 13;
    let (mut producer, mut consumer) = spsc::channel(CAPACITY);

    let worker = thread::spawn(move || {
        let mut next = 1;
        let mut out = [ptr::null_mut(); 32];
        while next <= ITEMS {
            let n = consumer.pop_batch(&mut out);
            if n == 0 {
                thread::yield_now();
            }
            for &w in &out[..n] {
                assert_eq!(index(w), next, "item lost, repeated or reordered");
                next += 1;
            }
        }
        assert_eq!(consumer.pop_batch(&mut out), 0, "items beyond those pushed");
    });

    let mut refused = 0usize;
    for i in 1..=ITEMS {
        while producer.push(word(i), i % BATCH == 0).is_err() {
            refused += 1;
            thread::yield_now();
        }
    }
    producer.commit();
    worker.join().unwrap();
    assert!(producer.is_empty());
    eprintln!("spsc: {ITEMS} items, {refused} refused pushes");
}
