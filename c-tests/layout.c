/* The ring structs and prototypes, checked against Valkey's own queues.h.
 *
 * Valkey allocates the ring structs itself (statics in io_threads.c) and
 * hands them to our functions, so our idea of their layout must match the
 * header's byte for byte. This file only has to compile:
 *
 *  - including both headers makes any prototype that differs between
 *    queues.h and our generated valkey_iocore.h a "conflicting types" error;
 *  - the static asserts pin every size, alignment and field offset to the
 *    numbers the Rust side asserts in the `const _` blocks at the bottom of
 *    src/ring/{mpsc,spmc,spsc}.rs. Change one side and the other fails.
 *
 * x86-64 (64-byte cache lines, 8-byte size_t and pointers) only, like the
 * Rust assertions. */

#include <stdalign.h>
#include <stddef.h>

#include "queues.h"
#include "valkey_iocore.h"

#define LAYOUT(type, size, align)                                      \
    _Static_assert(sizeof(type) == (size), "sizeof(" #type ")");       \
    _Static_assert(alignof(type) == (align), "alignof(" #type ")")

#define FIELD(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), "offsetof(" #type ", " #field ")")

_Static_assert(CACHE_LINE_SIZE == 64, "the Rust rings assume 64-byte cache lines");

LAYOUT(mpscTicket, 16, 8);
FIELD(mpscTicket, index, 0);
FIELD(mpscTicket, has_reservation, 8);

LAYOUT(mpscQueue, 192, 64);
FIELD(mpscQueue, head, 0);
FIELD(mpscQueue, tail_cache, 8);
FIELD(mpscQueue, tail, 64);
FIELD(mpscQueue, head_cache, 72);
FIELD(mpscQueue, buffer, 128);
FIELD(mpscQueue, queue_size, 136);

LAYOUT(spmcCell, 64, 64);
FIELD(spmcCell, sequence, 0);
FIELD(spmcCell, data, 8);

LAYOUT(spmcQueue, 192, 64);
FIELD(spmcQueue, head, 0);
FIELD(spmcQueue, tail, 64);
FIELD(spmcQueue, head_cache, 72);
FIELD(spmcQueue, buffer, 128);
FIELD(spmcQueue, queue_size, 136);

LAYOUT(spscQueue, 192, 64);
FIELD(spscQueue, head, 0);
FIELD(spscQueue, tail_cache, 8);
FIELD(spscQueue, tail, 64);
FIELD(spscQueue, tail_local, 72);
FIELD(spscQueue, head_cache, 80);
FIELD(spscQueue, buffer, 128);
FIELD(spscQueue, queue_size, 136);

/* The atomics the Rust side replaces with std's (AtomicUsize, AtomicPtr)
 * must be plain words, with no lock inside, for the layouts to be shared. */
_Static_assert(sizeof(_Atomic(size_t)) == sizeof(size_t), "_Atomic(size_t) is a plain word");
_Static_assert(sizeof(_Atomic(void *)) == sizeof(void *), "_Atomic(void *) is a plain word");
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "size_t and pointer atomics are always lock-free");
