/* The rings, tested from C through the queues.h ABI.
 *
 * One source, two builds:
 *   rings_test-rust    linked with valkey-iocore's static library; built with
 *                      IOCORE_RUST, so the prototypes also come from our
 *                      generated header and a mismatch with queues.h is a
 *                      compile error. Also runs the precondition tests.
 *   rings_test-valkey  linked with Valkey's own queues.c (and valkey_shim.c).
 *
 * Both builds must pass every shared test. The single-threaded tests also
 * record each observation (what a call returned, what a ticket holds) in a
 * trace, written with --trace FILE; `make test-c` requires the two builds'
 * traces to be identical, which catches differences the checks do not pin.
 *
 * Items are small integers cast to pointers; 0 is never used, since NULL
 * means "empty" to spmcDequeue and "unwritten" to the MPSC ring.
 *
 * The last line of output is "N passed, N failed"; the exit status is 1 if
 * any test failed. */

#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queues.h"
#ifdef IOCORE_RUST
#include "valkey_iocore.h"
#endif

/* ---- Harness --------------------------------------------------------- */

static atomic_int failures; /* checks failed in the current test */
static FILE *trace;         /* --trace FILE, or NULL */
static const char *current_test;

static void fail(int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", current_test, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    atomic_fetch_add(&failures, 1);
}

#define CHECK(cond)                                       \
    do {                                                  \
        if (!(cond)) fail(__LINE__, "failed: %s", #cond); \
    } while (0)

#define CHECK_EQ(actual, expected)                                            \
    do {                                                                      \
        uintmax_t a_ = (uintmax_t)(uintptr_t)(actual);                        \
        uintmax_t e_ = (uintmax_t)(uintptr_t)(expected);                      \
        if (a_ != e_) fail(__LINE__, "%s is %ju, expected %ju", #actual, a_, e_); \
    } while (0)

/* Records `what` and its value in the trace, and returns the value. */
static uintmax_t observe(const char *what, uintmax_t value) {
    if (trace) fprintf(trace, "%s: %s = %ju\n", current_test, what, value);
    return value;
}

#define OBS(e) observe(#e, (uintmax_t)(uintptr_t)(e))

static void *item(uintptr_t n) {
    return (void *)n;
}

/* Waits a little: spins first, then lets another thread have the CPU (the
 * stress tests run more threads than this machine may have cores). */
static void backoff(unsigned *spins) {
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

/* ---- SPMC ------------------------------------------------------------- */

static void test_spmc_empty_full_wraparound(void) {
    spmcQueue q;
    spmcInit(&q, 4);

    CHECK(OBS(spmcIsEmpty(&q)));
    CHECK_EQ(OBS(spmcDequeue(&q)), 0);

    for (uintptr_t i = 1; i <= 4; i++) CHECK(OBS(spmcEnqueue(&q, item(i))));
    CHECK(!OBS(spmcEnqueue(&q, item(5))));
    CHECK(!OBS(spmcIsEmpty(&q)));

    /* One taken frees exactly one slot. */
    CHECK_EQ(OBS(spmcDequeue(&q)), 1);
    CHECK(OBS(spmcEnqueue(&q, item(5))));
    CHECK(!OBS(spmcEnqueue(&q, item(6))));
    for (uintptr_t i = 2; i <= 5; i++) CHECK_EQ(OBS(spmcDequeue(&q)), i);
    CHECK_EQ(OBS(spmcDequeue(&q)), 0);
    CHECK(OBS(spmcIsEmpty(&q)));

    /* Many laps at every fill level: order is kept across the wrap. */
    uintptr_t next_in = 6, next_out = 6;
    for (int lap = 0; lap < 250; lap++) {
        int fill = 1 + lap % 4;
        for (int k = 0; k < fill; k++) CHECK(spmcEnqueue(&q, item(next_in++)));
        for (int k = 0; k < fill; k++) CHECK_EQ(spmcDequeue(&q), next_out++);
    }
    OBS(next_out);
    CHECK_EQ(OBS(spmcDequeue(&q)), 0);

    spmcFree(&q);
}

static void test_spmc_size(void) {
    spmcQueue q;
    spmcInit(&q, 8);

    CHECK_EQ(OBS(spmcSize(&q)), 0);
    for (uintptr_t i = 1; i <= 5; i++) spmcEnqueue(&q, item(i));
    CHECK_EQ(OBS(spmcSize(&q)), 5);
    spmcDequeue(&q);
    spmcDequeue(&q);
    CHECK_EQ(OBS(spmcSize(&q)), 3);
    for (uintptr_t i = 6; i <= 10; i++) spmcEnqueue(&q, item(i));
    CHECK_EQ(OBS(spmcSize(&q)), 8);
    CHECK(!OBS(spmcEnqueue(&q, item(11))));
    CHECK_EQ(OBS(spmcSize(&q)), 8);
    while (spmcDequeue(&q) != NULL) {}
    CHECK_EQ(OBS(spmcSize(&q)), 0);

    spmcFree(&q);
}

/* ---- MPSC ------------------------------------------------------------- */

static void test_mpsc_empty_full_wraparound(void) {
    mpscQueue q;
    mpscTicket t = {0};
    void *out[16];
    mpscInit(&q, 8);

    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 16)), 0);
    for (uintptr_t i = 1; i <= 8; i++) CHECK(OBS(mpscEnqueue(&q, item(i), &t)));
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 0)), 0);
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 3)), 3);
    for (uintptr_t i = 0; i < 3; i++) CHECK_EQ(out[i], i + 1);
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 16)), 5);
    for (uintptr_t i = 0; i < 5; i++) CHECK_EQ(out[i], i + 4);
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 16)), 0);

    /* Many laps at every fill level, taken in batches of up to three. */
    uintptr_t next_in = 9, next_out = 9;
    for (int lap = 0; lap < 200; lap++) {
        int fill = 1 + lap % 8;
        for (int k = 0; k < fill; k++) CHECK(mpscEnqueue(&q, item(next_in++), &t));
        while (next_out < next_in) {
            size_t n = mpscDequeueBatch(&q, out, 3);
            CHECK(n > 0 && n <= 3);
            if (n == 0) break;
            for (size_t k = 0; k < n; k++) CHECK_EQ(out[k], next_out++);
        }
    }
    OBS(next_out);
    CHECK(!OBS(t.has_reservation));

    mpscFree(&q);
}

/* A full ring keeps the producer's reservation in its ticket; retrying with
 * the ticket fills that same slot, so the item keeps its place in line. */
static void test_mpsc_ticket_retry(void) {
    mpscQueue q;
    mpscTicket t = {0};
    void *out[8];
    mpscInit(&q, 4);

    for (uintptr_t i = 1; i <= 4; i++) CHECK(OBS(mpscEnqueue(&q, item(i), &t)));
    CHECK(!OBS(mpscEnqueue(&q, item(5), &t)));
    CHECK(OBS(t.has_reservation));
    CHECK_EQ(OBS(t.index), 4);

    /* Still full: the retry must not take a second index. */
    CHECK(!OBS(mpscEnqueue(&q, item(5), &t)));
    CHECK_EQ(OBS(t.index), 4);

    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 1)), 1);
    CHECK_EQ(out[0], 1);
    CHECK(OBS(mpscEnqueue(&q, item(5), &t)));
    CHECK(!OBS(t.has_reservation));

    /* Had a retry reserved again, a hole would stop the consumer here. */
    CHECK(!OBS(mpscEnqueue(&q, item(6), &t)));
    CHECK_EQ(OBS(t.index), 5);
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 8)), 4);
    for (uintptr_t i = 0; i < 4; i++) CHECK_EQ(out[i], i + 2);
    CHECK(OBS(mpscEnqueue(&q, item(6), &t)));
    CHECK(OBS(mpscEnqueue(&q, item(7), &t)));
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 8)), 2);
    CHECK_EQ(out[0], 6);
    CHECK_EQ(out[1], 7);

    mpscFree(&q);
}

/* Two producers hit a full ring; the later one retries first. The consumer
 * must stop at the earlier reservation, still unwritten, and then see both
 * items in reservation order. */
static void test_mpsc_reservation_blocks_consumer(void) {
    mpscQueue q;
    mpscTicket a = {0}, b = {0}, fill = {0};
    void *out[8];
    mpscInit(&q, 4);

    for (uintptr_t i = 1; i <= 4; i++) CHECK(mpscEnqueue(&q, item(i), &fill));
    CHECK(!OBS(mpscEnqueue(&q, item(100), &a)));
    CHECK(!OBS(mpscEnqueue(&q, item(200), &b)));
    CHECK_EQ(OBS(a.index), 4);
    CHECK_EQ(OBS(b.index), 5);

    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 8)), 4);
    CHECK(OBS(mpscEnqueue(&q, item(200), &b)));
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 8)), 0);

    CHECK(OBS(mpscEnqueue(&q, item(100), &a)));
    CHECK_EQ(OBS(mpscDequeueBatch(&q, out, 8)), 2);
    CHECK_EQ(out[0], 100);
    CHECK_EQ(out[1], 200);
    CHECK(!OBS(a.has_reservation));
    CHECK(!OBS(b.has_reservation));

    mpscFree(&q);
}

/* ---- SPSC ------------------------------------------------------------- */

/* Items pushed without commit stay invisible to the consumer until the
 * producer commits (or pushes with commit), which publishes all of them. */
static void test_spsc_commit_visibility(void) {
    spscQueue q;
    void *out[8];
    spscInit(&q, 8);

    CHECK(OBS(spscIsEmpty(&q)));
    CHECK(!OBS(spscIsFull(&q)));
    spscEnqueue(&q, item(1), false);
    spscEnqueue(&q, item(2), false);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 0);
    CHECK(!OBS(spscIsEmpty(&q)));

    spscCommit(&q);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 2);
    CHECK_EQ(out[0], 1);
    CHECK_EQ(out[1], 2);

    spscEnqueue(&q, item(3), true);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 1);
    CHECK_EQ(out[0], 3);

    /* A committing push publishes the uncommitted ones before it. */
    spscEnqueue(&q, item(4), false);
    spscEnqueue(&q, item(5), true);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 0)), 0);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 2);
    CHECK_EQ(out[0], 4);
    CHECK_EQ(out[1], 5);

    /* Committing with nothing pending changes nothing. */
    spscCommit(&q);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 0);
    CHECK(OBS(spscIsEmpty(&q)));

    spscFree(&q);
}

/* spscIsFull publishes pending items before answering true, so a producer
 * that waits for room never waits on items the consumer cannot see. */
static void test_spsc_full_publishes_pending(void) {
    spscQueue q;
    void *out[8];
    spscInit(&q, 4);

    for (uintptr_t i = 1; i <= 4; i++) {
        CHECK(!OBS(spscIsFull(&q)));
        spscEnqueue(&q, item(i), false);
    }
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 0);
    CHECK(OBS(spscIsFull(&q)));
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 2)), 2);
    CHECK_EQ(out[0], 1);
    CHECK_EQ(out[1], 2);

    /* Not full: nothing is published by asking. */
    CHECK(!OBS(spscIsFull(&q)));
    spscEnqueue(&q, item(5), false);
    CHECK(!OBS(spscIsFull(&q)));
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 2);
    CHECK_EQ(out[0], 3);
    CHECK_EQ(out[1], 4);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 0);
    spscCommit(&q);
    CHECK_EQ(OBS(spscDequeueBatch(&q, out, 8)), 1);
    CHECK_EQ(out[0], 5);

    spscFree(&q);
}

static void test_spsc_wraparound(void) {
    spscQueue q;
    void *out[4];
    spscInit(&q, 4);

    uintptr_t next_in = 1, next_out = 1;
    for (int lap = 0; lap < 300; lap++) {
        int fill = 1 + lap % 4;
        for (int k = 0; k < fill; k++) {
            CHECK(!spscIsFull(&q));
            spscEnqueue(&q, item(next_in++), (lap + k) % 3 == 0);
        }
        if (fill == 4) {
            CHECK(spscIsFull(&q)); /* and so publishes */
        } else {
            spscCommit(&q);
        }
        size_t batch = 1 + lap % 3;
        while (next_out < next_in) {
            size_t n = spscDequeueBatch(&q, out, batch);
            CHECK(n > 0 && n <= batch);
            if (n == 0) break;
            for (size_t k = 0; k < n; k++) CHECK_EQ(out[k], next_out++);
        }
    }
    OBS(next_out);
    CHECK(OBS(spscIsEmpty(&q)));

    spscFree(&q);
}

/* ---- Producer views, free and re-init -------------------------------- */

/* IsEmpty answers for the producer: an SPSC item counts from the moment it
 * is written, committed or not; either ring is empty again once the
 * consumer has taken everything. */
static void test_is_empty_producer_views(void) {
    spmcQueue m;
    spscQueue s;
    void *out[4];
    spmcInit(&m, 4);
    spscInit(&s, 4);

    CHECK(OBS(spmcEnqueue(&m, item(1))));
    CHECK(!OBS(spmcIsEmpty(&m)));
    CHECK_EQ(OBS(spmcDequeue(&m)), 1);
    CHECK(OBS(spmcIsEmpty(&m)));
    CHECK(OBS(spmcIsEmpty(&m))); /* from the refreshed cache */

    spscEnqueue(&s, item(1), false);
    CHECK(!OBS(spscIsEmpty(&s)));
    CHECK_EQ(OBS(spscDequeueBatch(&s, out, 4)), 0);
    spscCommit(&s);
    CHECK(!OBS(spscIsEmpty(&s)));
    CHECK_EQ(OBS(spscDequeueBatch(&s, out, 4)), 1);
    CHECK(OBS(spscIsEmpty(&s)));

    spmcFree(&m);
    spscFree(&s);
}

/* Free leaves a zeroed struct that may be freed again or initialised anew. */
static void test_free_twice_and_reinit(void) {
    spmcQueue m;
    mpscQueue p;
    spscQueue s;
    mpscTicket t = {0};
    void *out[2];

    spmcInit(&m, 2);
    mpscInit(&p, 2);
    spscInit(&s, 2);
    spmcEnqueue(&m, item(1));
    mpscEnqueue(&p, item(1), &t);
    spscEnqueue(&s, item(1), true);
    spmcFree(&m);
    mpscFree(&p);
    spscFree(&s);
    spmcFree(&m);
    mpscFree(&p);
    spscFree(&s);

    /* Re-initialised rings start empty, whatever they held before. */
    spmcInit(&m, 2);
    mpscInit(&p, 2);
    spscInit(&s, 2);
    CHECK_EQ(OBS(spmcDequeue(&m)), 0);
    CHECK_EQ(OBS(spmcSize(&m)), 0);
    CHECK_EQ(OBS(mpscDequeueBatch(&p, out, 2)), 0);
    CHECK_EQ(OBS(spscDequeueBatch(&s, out, 2)), 0);
    CHECK(OBS(spscIsEmpty(&s)));
    spmcFree(&m);
    mpscFree(&p);
    spscFree(&s);
}

/* ---- Stress ----------------------------------------------------------- */

/* Small rings, so the stress tests wrap and fill constantly. */
#define STRESS_RING 64

#define SPMC_ITEMS (1u << 20)
#define SPMC_CONSUMERS 3
#define SPMC_STOP ((void *)UINTPTR_MAX)

struct spmc_stress {
    spmcQueue q;
    pthread_barrier_t start;
    _Atomic uint8_t *seen; /* times each item was taken */
    atomic_size_t taken;
};

static void *spmc_stress_consumer(void *arg) {
    struct spmc_stress *s = arg;
    uintptr_t last = 0;
    size_t taken = 0;
    unsigned spins = 0;

    pthread_barrier_wait(&s->start);
    for (;;) {
        void *v = spmcDequeue(&s->q);
        if (v == NULL) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        if (v == SPMC_STOP) break;
        uintptr_t n = (uintptr_t)v;
        if (n == 0 || n > SPMC_ITEMS) {
            fail(__LINE__, "consumer took item %ju, never pushed", (uintmax_t)n);
            break;
        }
        /* Consumers claim indices in increasing order, so each one sees its
         * own items in increasing order. */
        if (n <= last) fail(__LINE__, "consumer took %ju after %ju", (uintmax_t)n, (uintmax_t)last);
        last = n;
        atomic_fetch_add_explicit(&s->seen[n], 1, memory_order_relaxed);
        taken++;
    }
    atomic_fetch_add(&s->taken, taken);
    return NULL;
}

static void test_stress_spmc_1p3c(void) {
    struct spmc_stress s = {0};
    pthread_t consumers[SPMC_CONSUMERS];

    spmcInit(&s.q, STRESS_RING);
    s.seen = calloc(SPMC_ITEMS + 1, sizeof *s.seen);
    pthread_barrier_init(&s.start, NULL, SPMC_CONSUMERS + 1);
    for (int i = 0; i < SPMC_CONSUMERS; i++)
        pthread_create(&consumers[i], NULL, spmc_stress_consumer, &s);

    pthread_barrier_wait(&s.start);
    for (uintptr_t n = 1; n <= SPMC_ITEMS + SPMC_CONSUMERS; n++) {
        void *v = n <= SPMC_ITEMS ? item(n) : SPMC_STOP;
        unsigned spins = 0;
        while (!spmcEnqueue(&s.q, v)) backoff(&spins);
    }
    for (int i = 0; i < SPMC_CONSUMERS; i++) pthread_join(consumers[i], NULL);

    CHECK_EQ(atomic_load(&s.taken), SPMC_ITEMS);
    size_t wrong = 0;
    for (size_t n = 1; n <= SPMC_ITEMS; n++) wrong += s.seen[n] != 1;
    CHECK_EQ(wrong, 0);
    CHECK(OBS(spmcIsEmpty(&s.q)));
    CHECK_EQ(OBS(spmcSize(&s.q)), 0);

    pthread_barrier_destroy(&s.start);
    free(s.seen);
    spmcFree(&s.q);
}

#define MPSC_PRODUCERS 3
#define MPSC_PER_PRODUCER 350000u /* 1,050,000 in all */

struct mpsc_stress {
    mpscQueue q;
    pthread_barrier_t start;
    atomic_size_t full_retries;
};

struct mpsc_producer {
    struct mpsc_stress *s;
    uintptr_t id; /* 1-based, in the item's high half */
};

static void *mpsc_stress_producer(void *arg) {
    struct mpsc_producer *p = arg;
    mpscTicket ticket = {0};
    size_t retries = 0;

    pthread_barrier_wait(&p->s->start);
    for (uintptr_t seq = 1; seq <= MPSC_PER_PRODUCER; seq++) {
        void *v = item(p->id << 32 | seq);
        unsigned spins = 0;
        while (!mpscEnqueue(&p->s->q, v, &ticket)) {
            if (!ticket.has_reservation) fail(__LINE__, "full ring but no reservation");
            retries++;
            backoff(&spins);
        }
    }
    atomic_fetch_add(&p->s->full_retries, retries);
    return NULL;
}

static void test_stress_mpsc_3p1c(void) {
    struct mpsc_stress s = {0};
    struct mpsc_producer producers[MPSC_PRODUCERS];
    pthread_t threads[MPSC_PRODUCERS];
    uintptr_t next[MPSC_PRODUCERS + 1];
    void *out[16];

    mpscInit(&s.q, STRESS_RING);
    pthread_barrier_init(&s.start, NULL, MPSC_PRODUCERS + 1);
    for (int i = 0; i < MPSC_PRODUCERS; i++) {
        producers[i] = (struct mpsc_producer){.s = &s, .id = (uintptr_t)i + 1};
        pthread_create(&threads[i], NULL, mpsc_stress_producer, &producers[i]);
    }
    for (int i = 0; i <= MPSC_PRODUCERS; i++) next[i] = 1;

    pthread_barrier_wait(&s.start);
    size_t total = (size_t)MPSC_PRODUCERS * MPSC_PER_PRODUCER, taken = 0;
    unsigned spins = 0;
    while (taken < total) {
        size_t n = mpscDequeueBatch(&s.q, out, 16);
        if (n == 0) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        for (size_t k = 0; k < n; k++) {
            uintptr_t v = (uintptr_t)out[k], id = v >> 32, seq = v & 0xffffffffu;
            /* Each producer's items arrive once each, in its push order. */
            if (id < 1 || id > MPSC_PRODUCERS || seq != next[id]) {
                fail(__LINE__, "took producer %ju item %ju, expected item %ju", (uintmax_t)id,
                     (uintmax_t)seq, (uintmax_t)(id <= MPSC_PRODUCERS ? next[id] : 0));
            } else {
                next[id]++;
            }
        }
        taken += n;
    }
    for (int i = 0; i < MPSC_PRODUCERS; i++) pthread_join(threads[i], NULL);

    CHECK_EQ(taken, total);
    CHECK_EQ(OBS(mpscDequeueBatch(&s.q, out, 16)), 0);
    if (atomic_load(&s.full_retries) == 0) fprintf(stderr, "  note: the ring never filled\n");

    pthread_barrier_destroy(&s.start);
    mpscFree(&s.q);
}

#define SPSC_ITEMS (1u << 21)

struct spsc_stress {
    spscQueue q;
    pthread_barrier_t start;
};

static void *spsc_stress_consumer(void *arg) {
    struct spsc_stress *s = arg;
    void *out[32];
    uintptr_t next = 1;
    unsigned spins = 0;

    pthread_barrier_wait(&s->start);
    while (next <= SPSC_ITEMS) {
        size_t n = spscDequeueBatch(&s->q, out, 32);
        if (n == 0) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        for (size_t k = 0; k < n; k++, next++) {
            if ((uintptr_t)out[k] != next) {
                fail(__LINE__, "took %ju, expected %ju", (uintmax_t)(uintptr_t)out[k],
                     (uintmax_t)next);
                return NULL;
            }
        }
    }
    return NULL;
}

static void test_stress_spsc_1p1c(void) {
    struct spsc_stress s = {0};
    pthread_t consumer;

    spscInit(&s.q, STRESS_RING);
    pthread_barrier_init(&s.start, NULL, 2);
    pthread_create(&consumer, NULL, spsc_stress_consumer, &s);

    pthread_barrier_wait(&s.start);
    for (uintptr_t n = 1; n <= SPSC_ITEMS; n++) {
        unsigned spins = 0;
        while (spscIsFull(&s.q)) backoff(&spins);
        /* Commit at an interval that drifts against the ring size; a full
         * ring publishes the rest (spscIsFull). */
        spscEnqueue(&s.q, item(n), n % 37 == 0);
    }
    spscCommit(&s.q);
    pthread_join(consumer, NULL);

    CHECK(OBS(spscIsEmpty(&s.q)));

    pthread_barrier_destroy(&s.start);
    spscFree(&s.q);
}

/* ---- Preconditions (our build only) ---------------------------------- */

#ifdef IOCORE_RUST

/* Runs `body` in a child process and checks that it dies by SIGABRT with
 * `needle` somewhere in what it wrote to stderr. */
static void expect_abort(int line, const char *what, void (*body)(void), const char *needle) {
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        fail(line, "%s: pipe: %s", what, strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0}; /* an expected abort needs no core file */
        setrlimit(RLIMIT_CORE, &no_core);
        close(pipefd[0]);
        dup2(pipefd[1], STDERR_FILENO);
        body();
        _exit(0);
    }
    close(pipefd[1]);

    char text[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], text + len, sizeof text - 1 - len)) > 0) len += (size_t)n;
    text[len] = '\0';
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);

    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        fail(line, "%s: expected death by SIGABRT, got status 0x%x", what, status);
    } else if (strstr(text, needle) == NULL) {
        fail(line, "%s: stderr lacks \"%s\":\n%s", what, needle, text);
    }
}

#define EXPECT_ABORT(body, needle) expect_abort(__LINE__, #body, body, needle)

static void spmc_init_3(void) {
    spmcQueue q;
    spmcInit(&q, 3);
}
static void spmc_init_0(void) {
    spmcQueue q;
    spmcInit(&q, 0);
}
/* One slot is refused: Vyukov's sequence numbers collide (src/ring/spmc.rs). */
static void spmc_init_1(void) {
    spmcQueue q;
    spmcInit(&q, 1);
}
static void mpsc_init_6(void) {
    mpscQueue q;
    mpscInit(&q, 6);
}
static void spsc_init_12(void) {
    spscQueue q;
    spscInit(&q, 12);
}

static void test_precondition_sizes(void) {
    EXPECT_ABORT(spmc_init_3, "power of two");
    EXPECT_ABORT(spmc_init_0, "power of two");
    EXPECT_ABORT(spmc_init_1, "at least 2");
    EXPECT_ABORT(mpsc_init_6, "power of two");
    EXPECT_ABORT(spsc_init_12, "power of two");
}

/* Zeroed structs, as a static `= {0}` is before *Init and after *Free. */
static spmcQueue zero_spmc;
static mpscQueue zero_mpsc;
static spscQueue zero_spsc;
static void *out_buf[4];

static void zero_spmc_enqueue(void) { spmcEnqueue(&zero_spmc, item(1)); }
static void zero_spmc_dequeue(void) { spmcDequeue(&zero_spmc); }
static void zero_spmc_is_empty(void) { spmcIsEmpty(&zero_spmc); }
static void zero_spmc_size(void) { spmcSize(&zero_spmc); }
static void zero_mpsc_enqueue(void) {
    mpscTicket t = {0};
    mpscEnqueue(&zero_mpsc, item(1), &t);
}
static void zero_mpsc_dequeue(void) { mpscDequeueBatch(&zero_mpsc, out_buf, 4); }
static void zero_spsc_is_full(void) { spscIsFull(&zero_spsc); }
static void zero_spsc_enqueue(void) { spscEnqueue(&zero_spsc, item(1), true); }
static void zero_spsc_commit(void) { spscCommit(&zero_spsc); }
static void zero_spsc_dequeue(void) { spscDequeueBatch(&zero_spsc, out_buf, 4); }
static void zero_spsc_is_empty(void) { spscIsEmpty(&zero_spsc); }
static void freed_spmc_enqueue(void) {
    spmcQueue q;
    spmcInit(&q, 4);
    spmcFree(&q);
    spmcEnqueue(&q, item(1));
}

static void test_precondition_uninitialised(void) {
    EXPECT_ABORT(zero_spmc_enqueue, "not initialised");
    EXPECT_ABORT(zero_spmc_dequeue, "not initialised");
    EXPECT_ABORT(zero_spmc_is_empty, "not initialised");
    EXPECT_ABORT(zero_spmc_size, "not initialised");
    EXPECT_ABORT(zero_mpsc_enqueue, "not initialised");
    EXPECT_ABORT(zero_mpsc_dequeue, "not initialised");
    EXPECT_ABORT(zero_spsc_is_full, "not initialised");
    EXPECT_ABORT(zero_spsc_enqueue, "not initialised");
    EXPECT_ABORT(zero_spsc_commit, "not initialised");
    EXPECT_ABORT(zero_spsc_dequeue, "not initialised");
    EXPECT_ABORT(zero_spsc_is_empty, "not initialised");
    EXPECT_ABORT(freed_spmc_enqueue, "not initialised");
}

static void null_spmc_init(void) { spmcInit(NULL, 4); }
static void null_spmc_dequeue(void) { spmcDequeue(NULL); }
static void null_mpsc_enqueue(void) {
    mpscTicket t = {0};
    mpscEnqueue(NULL, item(1), &t);
}
static void null_spsc_commit(void) { spscCommit(NULL); }
static void mpsc_null_item(void) {
    mpscQueue q;
    mpscTicket t = {0};
    mpscInit(&q, 4);
    mpscEnqueue(&q, NULL, &t);
}
static void mpsc_null_ticket(void) {
    mpscQueue q;
    mpscInit(&q, 4);
    mpscEnqueue(&q, item(1), NULL);
}
static void mpsc_null_output(void) {
    mpscQueue q;
    mpscInit(&q, 4);
    mpscDequeueBatch(&q, NULL, 4);
}
static void spsc_null_output(void) {
    spscQueue q;
    spscInit(&q, 4);
    spscDequeueBatch(&q, NULL, 4);
}

static void test_precondition_null_pointers(void) {
    EXPECT_ABORT(null_spmc_init, "NULL queue");
    EXPECT_ABORT(null_spmc_dequeue, "NULL queue");
    EXPECT_ABORT(null_mpsc_enqueue, "NULL queue");
    EXPECT_ABORT(null_spsc_commit, "NULL queue");
    EXPECT_ABORT(mpsc_null_item, "null item");
    EXPECT_ABORT(mpsc_null_ticket, "NULL ticket");
    EXPECT_ABORT(mpsc_null_output, "NULL output array");
    EXPECT_ABORT(spsc_null_output, "NULL output array");
}

#endif /* IOCORE_RUST */

/* ---- Runner ----------------------------------------------------------- */

/* A test that hangs (a lost item leaves a consumer waiting forever) is
 * failed by an alarm. The handler may only write(), so what it prints is
 * prepared before each test. */
#define TEST_TIMEOUT_S 120
static char timeout_report[256];

static void on_timeout(int sig) {
    (void)sig;
    ssize_t ignored = write(STDOUT_FILENO, timeout_report, strlen(timeout_report));
    (void)ignored;
    _exit(1);
}

struct test {
    const char *name;
    void (*run)(void);
};

#define TEST(name) {#name, test_##name}

static const struct test tests[] = {
    TEST(spmc_empty_full_wraparound),
    TEST(spmc_size),
    TEST(mpsc_empty_full_wraparound),
    TEST(mpsc_ticket_retry),
    TEST(mpsc_reservation_blocks_consumer),
    TEST(spsc_commit_visibility),
    TEST(spsc_full_publishes_pending),
    TEST(spsc_wraparound),
    TEST(is_empty_producer_views),
    TEST(free_twice_and_reinit),
    TEST(stress_spmc_1p3c),
    TEST(stress_mpsc_3p1c),
    TEST(stress_spsc_1p1c),
#ifdef IOCORE_RUST
    TEST(precondition_sizes),
    TEST(precondition_uninitialised),
    TEST(precondition_null_pointers),
#endif
};

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--trace") == 0) {
        trace = fopen(argv[2], "w");
        if (trace == NULL) {
            perror(argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--trace FILE]\n", argv[0]);
        return 2;
    }

#ifdef IOCORE_RUST
    printf("rings against valkey-iocore (Rust)\n");
#else
    printf("rings against Valkey's queues.c\n");
#endif
    signal(SIGALRM, on_timeout);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        current_test = tests[i].name;
        atomic_store(&failures, 0);
        snprintf(timeout_report, sizeof timeout_report,
                 "FAIL %s (no end after %d s)\n%d passed, %d failed\n", current_test,
                 TEST_TIMEOUT_S, passed, failed + 1);
        alarm(TEST_TIMEOUT_S);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].run();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        alarm(0);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        bool ok = atomic_load(&failures) == 0;
        printf("%s %s (%ld ms)\n", ok ? "ok  " : "FAIL", tests[i].name, ms);
        fflush(stdout);
        ok ? passed++ : failed++;
    }
    if (trace) fclose(trace);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
