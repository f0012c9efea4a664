/* Ring throughput and round-trip latency, through the queues.h ABI.
 *
 * Built twice from this one source, like the C tests: against our static
 * library (rings_bench-rust) and against Valkey's own queues.c
 * (rings_bench-valkey). Each run measures one scenario (the best of a few
 * repetitions, see REPEATS) and prints
 *
 *     <scenario> <value>
 *
 * (items per second for tput-*, the median round trip's nanoseconds for
 * rtt-*, nanoseconds per item for call-*);
 * benches/run-rings.sh alternates the two builds over several rounds and
 * turns the numbers into a table. `--list` prints the scenarios, `--cpus`
 * the CPUs of the main thread and of the first two other threads.
 *
 * Ring sizes and batch sizes are the ones io_threads.c uses. Threads are
 * pinned: the ring's single side on one CPU, the other side's threads on a
 * second CPU (they share it when there are two and no third CPU is allowed).
 * A thread with a CPU of its own spins while it waits; threads that share a
 * CPU spin briefly and then yield, so they take turns instead of burning
 * each other's time slices. */

#define _GNU_SOURCE

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "queues.h"
#ifdef IOCORE_RUST
#include "valkey_iocore.h"
#endif

/* As in io_threads.c. */
#define SPMC_RING 4096
#define MPSC_RING 16384
#define SPSC_RING 4096
#define SPSC_BATCH 32 /* BATCH_SIZE, a worker's private-inbox batch */
#define MPSC_BATCH 16 /* JOB_BATCH_SIZE, the main thread's outbox batch */

#define STOP ((void *)UINTPTR_MAX)

/* The first three CPUs this process may use: the ring's single side runs on
 * cpus[0], the other side's threads on the rest, sharing one when only two
 * CPUs are allowed. */
static int cpus[3], ncpus;

static void die(const char *what) {
    fprintf(stderr, "rings_bench: %s\n", what);
    exit(2);
}

static void pick_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) die("sched_getaffinity failed");
    for (int c = 0; c < CPU_SETSIZE && ncpus < 3; c++)
        if (CPU_ISSET(c, &set)) cpus[ncpus++] = c;
}

static int cpu_of_other(int id) {
    return ncpus == 1 ? cpus[0] : cpus[1 + id % (ncpus - 1)];
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) die("cannot pin a thread");
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Whether this thread shares its CPU with another of the benchmark's. */
static _Thread_local bool shares_cpu;

/* Waits for the other side. A thread with a CPU of its own spins; one that
 * shares its CPU spins briefly and then yields it to the thread it shares
 * with, which may be the one it waits for. */
static void backoff(unsigned *spins) {
    if (!shares_cpu || ++*spins < 128) {
        __builtin_ia32_pause();
    } else {
        sched_yield();
    }
}

static void *item(uintptr_t n) {
    return (void *)n;
}

/* What a scenario's threads share. They meet at `start` before the clock
 * starts; each scenario uses only the rings it needs. */
struct bench {
    pthread_barrier_t start;
    uint64_t items; /* items to move, or round trips to make */
    int others;     /* threads on the many side */
    spmcQueue spmc;
    spmcQueue spmc_back[2];
    mpscQueue mpsc;
    mpscQueue mpsc_out[2];
    spscQueue spsc, spsc_back;
};

struct thread_arg {
    struct bench *b;
    int id;
    void *(*fn)(void *);
};

static void *pinned(void *arg) {
    struct thread_arg *a = arg;
    pin(cpu_of_other(a->id));
    shares_cpu = ncpus == 1 || a->b->others > ncpus - 1;
    return a->fn(a);
}

/* Starts the other side's threads, pinned, and pins the calling thread. */
static void run_threads(struct bench *b, void *(*fn)(void *), pthread_t *threads,
                        struct thread_arg *args) {
    pthread_barrier_init(&b->start, NULL, (unsigned)b->others + 1);
    for (int i = 0; i < b->others; i++) {
        args[i] = (struct thread_arg){b, i, fn};
        if (pthread_create(&threads[i], NULL, pinned, &args[i]) != 0) die("pthread_create failed");
    }
    pin(cpus[0]);
    shares_cpu = ncpus == 1;
}

static void join_threads(struct bench *b, pthread_t *threads) {
    for (int i = 0; i < b->others; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&b->start);
}

/* ---- Throughput ------------------------------------------------------- */

static void *spmc_consumer(void *arg) {
    struct bench *b = ((struct thread_arg *)arg)->b;
    unsigned spins = 0;
    pthread_barrier_wait(&b->start);
    for (;;) {
        void *v = spmcDequeue(&b->spmc);
        if (v == NULL) {
            backoff(&spins);
        } else if (v == STOP) {
            return NULL;
        } else {
            spins = 0;
        }
    }
}

static double tput_spmc(uint64_t items, int consumers) {
    struct bench b = {.items = items, .others = consumers};
    pthread_t threads[2];
    struct thread_arg args[2];
    spmcInit(&b.spmc, SPMC_RING);
    run_threads(&b, spmc_consumer, threads, args);

    pthread_barrier_wait(&b.start);
    double t0 = now_ns();
    for (uint64_t n = 1; n <= items + (uint64_t)consumers; n++) {
        void *v = n <= items ? item(n) : STOP;
        unsigned spins = 0;
        while (!spmcEnqueue(&b.spmc, v)) backoff(&spins);
    }
    join_threads(&b, threads);
    double t1 = now_ns();

    spmcFree(&b.spmc);
    return (double)items * 1e9 / (t1 - t0);
}

static void *mpsc_producer(void *arg) {
    struct thread_arg *a = arg;
    struct bench *b = a->b;
    mpscTicket ticket = {0};
    uint64_t share = b->items / (uint64_t)b->others;
    pthread_barrier_wait(&b->start);
    for (uint64_t n = 1; n <= share; n++) {
        unsigned spins = 0;
        while (!mpscEnqueue(&b->mpsc, item(n), &ticket)) backoff(&spins);
    }
    return NULL;
}

static double tput_mpsc(uint64_t items, int producers) {
    struct bench b = {.items = items, .others = producers};
    pthread_t threads[2];
    struct thread_arg args[2];
    void *out[MPSC_BATCH];
    uint64_t total = items / (uint64_t)producers * (uint64_t)producers, taken = 0;
    mpscInit(&b.mpsc, MPSC_RING);
    run_threads(&b, mpsc_producer, threads, args);

    pthread_barrier_wait(&b.start);
    double t0 = now_ns();
    unsigned spins = 0;
    while (taken < total) {
        size_t n = mpscDequeueBatch(&b.mpsc, out, MPSC_BATCH);
        if (n == 0) {
            backoff(&spins);
        } else {
            spins = 0;
            taken += n;
        }
    }
    double t1 = now_ns();
    join_threads(&b, threads);

    mpscFree(&b.mpsc);
    return (double)total * 1e9 / (t1 - t0);
}

static void *spsc_consumer(void *arg) {
    struct bench *b = ((struct thread_arg *)arg)->b;
    void *out[SPSC_BATCH];
    uint64_t taken = 0;
    unsigned spins = 0;
    pthread_barrier_wait(&b->start);
    while (taken < b->items) {
        size_t n = spscDequeueBatch(&b->spsc, out, SPSC_BATCH);
        if (n == 0) {
            backoff(&spins);
        } else {
            spins = 0;
            taken += n;
        }
    }
    return NULL;
}

static double tput_spsc(uint64_t items, bool commit_each) {
    struct bench b = {.items = items, .others = 1};
    pthread_t threads[1];
    struct thread_arg args[1];
    spscInit(&b.spsc, SPSC_RING);
    run_threads(&b, spsc_consumer, threads, args);

    pthread_barrier_wait(&b.start);
    double t0 = now_ns();
    for (uint64_t n = 1; n <= items; n++) {
        unsigned spins = 0;
        while (spscIsFull(&b.spsc)) backoff(&spins);
        spscEnqueue(&b.spsc, item(n), commit_each || n % SPSC_BATCH == 0);
    }
    spscCommit(&b.spsc);
    join_threads(&b, threads);
    double t1 = now_ns();

    spscFree(&b.spsc);
    return (double)items * 1e9 / (t1 - t0);
}

/* Round-trip times, one per trip, in TSC ticks. The median is reported:
 * trips that another process delayed (the machines this runs on are small
 * and shared) move a mean a lot and a median hardly at all. */
struct trip_times {
    uint32_t *ticks;
    uint64_t count;
    uint64_t tsc_start, last;
    double ns_start;
};

static void trips_start(struct trip_times *t, uint64_t trips) {
    t->ticks = malloc(trips * sizeof *t->ticks);
    if (t->ticks == NULL) die("out of memory");
    t->count = 0;
    t->ns_start = now_ns();
    t->tsc_start = t->last = __rdtsc();
}

static void trips_mark(struct trip_times *t) {
    uint64_t now = __rdtsc(), ticks = now - t->last;
    t->ticks[t->count++] = ticks > UINT32_MAX ? UINT32_MAX : (uint32_t)ticks;
    t->last = now;
}

static int compare_ticks(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The median trip in nanoseconds, the TSC calibrated against the clock over
 * the whole run. */
static double trips_median_ns(struct trip_times *t) {
    double ns_per_tick = (now_ns() - t->ns_start) / (double)(__rdtsc() - t->tsc_start);
    qsort(t->ticks, t->count, sizeof *t->ticks, compare_ticks);
    double median = t->ticks[t->count / 2];
    free(t->ticks);
    return median * ns_per_tick;
}

/* ---- Round trips -------------------------------------------------------
 *
 * One item in flight: the main thread sends it through the ring under test
 * and waits for it to come back through a ring of the same kind. */

/* SPMC: one shared ring out, each worker's own SPMC ring back. */
static void *spmc_echo(void *arg) {
    struct thread_arg *a = arg;
    struct bench *b = a->b;
    unsigned spins = 0;
    pthread_barrier_wait(&b->start);
    for (;;) {
        void *v = spmcDequeue(&b->spmc);
        if (v == NULL) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        if (v == STOP) return NULL;
        while (!spmcEnqueue(&b->spmc_back[a->id], v)) backoff(&spins);
    }
}

static double rtt_spmc(uint64_t trips, int workers) {
    struct bench b = {.items = trips, .others = workers};
    pthread_t threads[2];
    struct thread_arg args[2];
    spmcInit(&b.spmc, SPMC_RING);
    for (int i = 0; i < workers; i++) spmcInit(&b.spmc_back[i], SPMC_RING);
    run_threads(&b, spmc_echo, threads, args);

    struct trip_times times;
    pthread_barrier_wait(&b.start);
    trips_start(&times, trips);
    for (uint64_t n = 1; n <= trips; n++) {
        spmcEnqueue(&b.spmc, item(n));
        unsigned spins = 0;
        for (int w = 0;; w = (w + 1) % workers) {
            if (spmcDequeue(&b.spmc_back[w]) != NULL) break;
            if (workers > 1) backoff(&spins);
        }
        trips_mark(&times);
    }
    double median = trips_median_ns(&times);
    for (int i = 0; i < workers; i++) spmcEnqueue(&b.spmc, STOP);
    join_threads(&b, threads);

    spmcFree(&b.spmc);
    for (int i = 0; i < workers; i++) spmcFree(&b.spmc_back[i]);
    return median;
}

/* MPSC: each worker's own MPSC ring out (the main thread its producer),
 * one shared MPSC ring back. Trips alternate between the workers. */
static void *mpsc_echo(void *arg) {
    struct thread_arg *a = arg;
    struct bench *b = a->b;
    mpscTicket ticket = {0};
    void *v;
    unsigned spins = 0;
    pthread_barrier_wait(&b->start);
    for (;;) {
        if (mpscDequeueBatch(&b->mpsc_out[a->id], &v, 1) == 0) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        if (v == STOP) return NULL;
        while (!mpscEnqueue(&b->mpsc, v, &ticket)) backoff(&spins);
    }
}

static double rtt_mpsc(uint64_t trips, int workers) {
    struct bench b = {.items = trips, .others = workers};
    pthread_t threads[2];
    struct thread_arg args[2];
    mpscTicket ticket = {0};
    void *v;
    mpscInit(&b.mpsc, MPSC_RING);
    for (int i = 0; i < workers; i++) mpscInit(&b.mpsc_out[i], MPSC_RING);
    run_threads(&b, mpsc_echo, threads, args);

    struct trip_times times;
    pthread_barrier_wait(&b.start);
    trips_start(&times, trips);
    for (uint64_t n = 1; n <= trips; n++) {
        mpscEnqueue(&b.mpsc_out[n % (uint64_t)workers], item(n), &ticket);
        unsigned spins = 0;
        while (mpscDequeueBatch(&b.mpsc, &v, 1) == 0)
            if (workers > 1) backoff(&spins);
        trips_mark(&times);
    }
    double median = trips_median_ns(&times);
    for (int i = 0; i < workers; i++) mpscEnqueue(&b.mpsc_out[i], STOP, &ticket);
    join_threads(&b, threads);

    mpscFree(&b.mpsc);
    for (int i = 0; i < workers; i++) mpscFree(&b.mpsc_out[i]);
    return median;
}

/* SPSC, committing every item: one ring out, one back. */
static void *spsc_echo(void *arg) {
    struct bench *b = ((struct thread_arg *)arg)->b;
    void *v;
    unsigned spins = 0;
    pthread_barrier_wait(&b->start);
    for (;;) {
        if (spscDequeueBatch(&b->spsc, &v, 1) == 0) {
            backoff(&spins);
            continue;
        }
        spins = 0;
        if (v == STOP) return NULL;
        while (spscIsFull(&b->spsc_back)) backoff(&spins);
        spscEnqueue(&b->spsc_back, v, true);
    }
}

static double rtt_spsc(uint64_t trips) {
    struct bench b = {.items = trips, .others = 1};
    pthread_t threads[1];
    struct thread_arg args[1];
    void *v;
    spscInit(&b.spsc, SPSC_RING);
    spscInit(&b.spsc_back, SPSC_RING);
    run_threads(&b, spsc_echo, threads, args);

    struct trip_times times;
    pthread_barrier_wait(&b.start);
    trips_start(&times, trips);
    for (uint64_t n = 1; n <= trips; n++) {
        spscEnqueue(&b.spsc, item(n), true); /* never full: one in flight */
        while (spscDequeueBatch(&b.spsc_back, &v, 1) == 0) {}
        trips_mark(&times);
    }
    double median = trips_median_ns(&times);
    spscEnqueue(&b.spsc, STOP, true);
    join_threads(&b, threads);

    spscFree(&b.spsc);
    spscFree(&b.spsc_back);
    return median;
}

/* ---- Calls on one thread ---------------------------------------------
 *
 * Bursts of pushes and then pops on one thread: the cost of the calls
 * themselves, without cache lines moving between CPUs. Nanoseconds per item
 * (one push and one pop). */

static double call_spmc(uint64_t items, int arg) {
    spmcQueue q;
    (void)arg;
    spmcInit(&q, SPMC_RING);
    double t0 = now_ns();
    for (uint64_t n = 0; n < items; n += SPSC_BATCH) {
        for (uintptr_t k = 1; k <= SPSC_BATCH; k++) spmcEnqueue(&q, item(k));
        for (int k = 0; k < SPSC_BATCH; k++) spmcDequeue(&q);
    }
    double t1 = now_ns();
    spmcFree(&q);
    return (t1 - t0) / (double)items;
}

static double call_mpsc(uint64_t items, int arg) {
    mpscQueue q;
    mpscTicket ticket = {0};
    void *out[MPSC_BATCH];
    (void)arg;
    mpscInit(&q, MPSC_RING);
    double t0 = now_ns();
    for (uint64_t n = 0; n < items; n += MPSC_BATCH) {
        for (uintptr_t k = 1; k <= MPSC_BATCH; k++) mpscEnqueue(&q, item(k), &ticket);
        mpscDequeueBatch(&q, out, MPSC_BATCH);
    }
    double t1 = now_ns();
    mpscFree(&q);
    return (t1 - t0) / (double)items;
}

/* As a main thread feeds a worker: check for room, push, commit the last. */
static double call_spsc(uint64_t items, int arg) {
    spscQueue q;
    void *out[SPSC_BATCH];
    (void)arg;
    spscInit(&q, SPSC_RING);
    double t0 = now_ns();
    for (uint64_t n = 0; n < items; n += SPSC_BATCH) {
        for (uintptr_t k = 1; k <= SPSC_BATCH; k++)
            if (!spscIsFull(&q)) spscEnqueue(&q, item(k), k == SPSC_BATCH);
        spscDequeueBatch(&q, out, SPSC_BATCH);
    }
    double t1 = now_ns();
    spscFree(&q);
    return (t1 - t0) / (double)items;
}

/* ---- Scenarios -------------------------------------------------------- */

/* A run repeats the measurement, each time with a tenth of the scenario's
 * items, and reports the best: other processes on the machine only ever
 * slow a repetition down, so the best is the least disturbed one. Sizes put
 * a run near half a second on a 2-CPU EPYC VM. */
#define REPEATS 10
#define MILLION 1000000ull

struct scenario {
    const char *name;
    double (*run)(uint64_t n, int arg);
    uint64_t n;
    int arg;
};

static double tput_spsc_batched(uint64_t n, int arg) {
    (void)arg;
    return tput_spsc(n, false);
}
static double tput_spsc_each(uint64_t n, int arg) {
    (void)arg;
    return tput_spsc(n, true);
}
static double rtt_spsc_each(uint64_t n, int arg) {
    (void)arg;
    return rtt_spsc(n);
}

static const struct scenario scenarios[] = {
    {"tput-spmc-1p1c", tput_spmc, 4 * MILLION, 1},
    {"tput-spmc-1p2c", tput_spmc, 4 * MILLION, 2},
    {"tput-mpsc-1p1c", tput_mpsc, 4 * MILLION, 1},
    {"tput-mpsc-2p1c", tput_mpsc, 8 * MILLION, 2},
    {"tput-spsc-batch32", tput_spsc_batched, 16 * MILLION, 0},
    {"tput-spsc-commit1", tput_spsc_each, 8 * MILLION, 0},
    {"rtt-spmc-1p1c", rtt_spmc, 300000, 1},
    {"rtt-spmc-1p2c", rtt_spmc, 200000, 2},
    {"rtt-mpsc-1p1c", rtt_mpsc, 300000, 1},
    {"rtt-mpsc-2p1c", rtt_mpsc, 10000, 2},
    {"rtt-spsc-commit1", rtt_spsc_each, 300000, 0},
    {"call-spmc", call_spmc, 20 * MILLION, 0},
    {"call-mpsc", call_mpsc, 20 * MILLION, 0},
    {"call-spsc", call_spsc, 40 * MILLION, 0},
};

int main(int argc, char **argv) {
    size_t count = sizeof scenarios / sizeof scenarios[0];
    pick_cpus();

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++) printf("%s\n", scenarios[i].name);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--cpus") == 0) {
        printf("%d %d %d\n", cpus[0], cpu_of_other(0), cpu_of_other(1));
        return 0;
    }
    for (size_t i = 0; (argc == 2 || argc == 3) && i < count; i++) {
        const struct scenario *s = &scenarios[i];
        if (strcmp(argv[1], s->name) != 0) continue;
        /* A smaller count, for profiling under valgrind or perf. */
        uint64_t n = argc == 3 ? strtoull(argv[2], NULL, 10) : s->n;
        if (n < 10 * REPEATS * SPSC_BATCH) die("too few items");
        bool rtt = strncmp(s->name, "tput-", 5) != 0; /* lower is better */
        s->run(n / 10, s->arg); /* warm-up: caches, page faults, clocks */
        double best = 0;
        for (int rep = 0; rep < REPEATS; rep++) {
            double v = s->run(n / REPEATS, s->arg);
            if (rep == 0 || (rtt ? v < best : v > best)) best = v;
        }
        printf("%s %.6g\n", s->name, best);
        return 0;
    }
    fprintf(stderr, "usage: %s --list | --cpus | SCENARIO [ITEMS]\n", argv[0]);
    return 2;
}
