/* The pool microbenchmark's C side: Valkey 9.1.2's I/O-thread loop, built
 * on Valkey's own queues.c, adlist.c and monotonic.c, driven by the same
 * main thread as benches/pool_bench.rs. The two files run the same
 * scenarios with the same steps in the same order; change them together.
 *
 *     pool_bench-c912 c-9.1.2 SCENARIO WORKERS [SCALE]
 *
 * prints one line, `c-9.1.2 SCENARIO WORKERS key=value...`, for
 * benches/run-pool.py (see pool_bench.rs for the scenarios and the keys).
 *
 * Mirrored from src/io_threads.c of 9.1.2, in the same order here:
 *   lines 14-34    ring sizes, thread-local ticket and backlog list, the
 *                  per-thread mutexes, the submitted/finished job counters,
 *                  the active-time counters
 *   lines 39-49    tagJob, untagJob
 *   lines 66-70    commitIOJobs
 *   lines 245-272  flushPendingIOResponses
 *   lines 275-283  cleanupThreadResources (without the query buffer)
 *   lines 783-795  sendToMainThread
 *   lines 285-380  IOThreadMain, whole: cancellation point, active-time
 *                  accounting with getMonotonicUs, private-inbox batches of
 *                  BATCH_SIZE (line 150), then one shared-inbox job,
 *                  io_jobs_finished, and on an empty pass the backlog flush
 *                  or the mutex lock/unlock
 *   lines 386-407  createIOThread: the thread starts with its mutex locked,
 *                  that is, inactive; unlocking it activates it, as
 *                  IOThreadsAfterSleep does (lines 157-160)
 *   lines 410-429  shutdownIOThread: pthread_cancel, then join
 * Left out: the thread title and server-cpulist (the harness pins threads
 * itself), thread_id, the shared query buffer, the server.crashed check in
 * the flush, and the jobs' real work: the only job type is one whose handler
 * sends its own pointer back, and an unknown type aborts where 9.1.2 calls
 * serverPanic. server.active_io_threads_num is a file-level variable. */

#define _GNU_SOURCE

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "adlist.h"
#include "monotonic.h"
#include "queues.h"

#define MAX_WORKERS 8
#define JOB_BATCH_SIZE 16 /* the main thread's outbox batch, io_threads.c:851 */

/* The scenarios' sizes, as in pool_bench.rs. */
#define RTT_WARMUP 2000
#define RTT_TRIPS 20000
#define TPUT_JOBS 400000
#define IN_FLIGHT 256
#define TPUT_LIMIT_NS 500000000u
#define IDLE_WARMUP 20
#define IDLE_TICKS 2000
#define IDLE_TICK_NS 1000000

/* ---- io_threads.c ------------------------------------------------------ */

#define IO_MPSC_QUEUE_SIZE 16384
#define IO_SPMC_QUEUE_SIZE 4096
#define IO_SPSC_QUEUE_SIZE 4096
#define BATCH_SIZE 32

static _Thread_local mpscTicket io_thread_ticket = {0};
static _Thread_local list *pending_io_responses = NULL;
static pthread_t io_threads[MAX_WORKERS + 1];
static pthread_mutex_t io_threads_mutex[MAX_WORKERS + 1];
static spmcQueue io_shared_inbox;
static mpscQueue io_shared_outbox;
static spscQueue io_private_inbox[MAX_WORKERS + 1];
static size_t io_jobs_submitted;
static _Atomic(size_t) io_jobs_finished;
static _Atomic long long used_active_time_io_thread[MAX_WORKERS + 1];
static int active_io_threads_num = 1;

enum { JOB_REQ_ECHO = 0 }; /* stands for JOB_REQ_READ_CLIENT and the rest */

#define JOB_TAG_MASK 0x7
#define JOB_PTR_MASK (~(uintptr_t)JOB_TAG_MASK)

static inline void *tagJob(void *ptr, int type) {
    return (void *)((uintptr_t)ptr | type);
}

static inline void untagJob(void *tagged_ptr, void **ptr, int *type) {
    *type = (int)((uintptr_t)tagged_ptr & JOB_TAG_MASK);
    *ptr = (void *)((uintptr_t)tagged_ptr & JOB_PTR_MASK);
}

static void commitIOJobs(void) {
    for (int i = 1; i < active_io_threads_num; i++) spscCommit(&io_private_inbox[i]);
}

static void flushPendingIOResponses(int blocking) {
    if (!pending_io_responses) return;
    listIter li;
    listNode *ln;
    listRewind(pending_io_responses, &li);

    while ((ln = listNext(&li))) {
        void *job = listNodeValue(ln);
        int pushed = 0;
        do {
            pushed = mpscEnqueue(&io_shared_outbox, job, &io_thread_ticket);
            if (pushed || !blocking) break;
            atomic_thread_fence(memory_order_acquire);
        } while (1);

        if (pushed) {
            listDelNode(pending_io_responses, ln);
        } else {
            return;
        }
    }

    listRelease(pending_io_responses);
    pending_io_responses = NULL;
}

static void cleanupThreadResources(void *unused) {
    (void)unused;
    flushPendingIOResponses(1);
}

static void sendToMainThread(void *data, int type) {
    if (__builtin_expect(pending_io_responses != NULL, 0)) flushPendingIOResponses(0);
    void *job = tagJob(data, type);
    if (__builtin_expect(pending_io_responses || !mpscEnqueue(&io_shared_outbox, job, &io_thread_ticket), 0)) {
        if (pending_io_responses == NULL) pending_io_responses = listCreate();
        listAddNodeTail(pending_io_responses, job);
    }
}

/* The benchmark's job: hand the pointer straight back. */
static void ioThreadEcho(void *data) {
    sendToMainThread(data, JOB_REQ_ECHO);
}

static void *IOThreadMain(void *myid) {
    long id = (long)myid;
    pthread_cleanup_push(cleanupThreadResources, NULL);

    void *batch_jobs[BATCH_SIZE];
    int processed = 0;
    monotime work_start_time = 0;
    while (1) {
        pthread_testcancel();
        size_t batch_count = 0;
        monotime prev_work_start_time = work_start_time;
        work_start_time = getMonotonicUs();
        if (processed != 0) {
            atomic_fetch_add_explicit(&used_active_time_io_thread[id], work_start_time - prev_work_start_time,
                                      memory_order_relaxed);
        }
        processed = 0;

        while ((batch_count = spscDequeueBatch(&io_private_inbox[id], batch_jobs, BATCH_SIZE)) > 0) {
            for (size_t i = 0; i < batch_count; i++) {
                void *data;
                int type;
                untagJob(batch_jobs[i], &data, &type);
                if (type != JOB_REQ_ECHO) abort();
                ioThreadEcho(data);
            }
            processed += batch_count;
        }

        void *tagged_job = spmcDequeue(&io_shared_inbox);
        if (tagged_job) {
            void *data;
            int type;
            untagJob(tagged_job, &data, &type);
            if (type != JOB_REQ_ECHO) abort();
            ioThreadEcho(data);
            processed++;
        }

        if (processed) atomic_fetch_add_explicit(&io_jobs_finished, processed, memory_order_release);

        if (processed == 0) {
            if (__builtin_expect(pending_io_responses != NULL, 0)) {
                flushPendingIOResponses(0);
            } else {
                pthread_mutex_lock(&io_threads_mutex[id]);
                pthread_mutex_unlock(&io_threads_mutex[id]);
            }
        }
    }
    pthread_cleanup_pop(0);
    return NULL;
}

/* ---- the harness ------------------------------------------------------- */

static int main_cpu, worker_cpu; /* as pool_bench.rs picks them */

static void die(const char *what) {
    fprintf(stderr, "pool_bench-c912: %s\n", what);
    exit(2);
}

static void pin_self(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) die("cannot pin a thread");
}

/* The main thread on the first CPU this process may use, every worker on
 * the second (or the first, when there is only one). */
static void pick_cpus(void) {
    cpu_set_t set;
    int found = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) die("sched_getaffinity failed");
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        if (found++ == 0) main_cpu = worker_cpu = c;
        else worker_cpu = c;
    }
}

static void *pinned_worker(void *myid) {
    pin_self(worker_cpu);
    return IOThreadMain(myid);
}

/* createIOThread for each worker, then activation: unlock every mutex. */
static void start_workers(int workers) {
    spmcInit(&io_shared_inbox, IO_SPMC_QUEUE_SIZE);
    mpscInit(&io_shared_outbox, IO_MPSC_QUEUE_SIZE);
    for (long id = 1; id <= workers; id++) {
        spscInit(&io_private_inbox[id], IO_SPSC_QUEUE_SIZE);
        pthread_mutex_init(&io_threads_mutex[id], NULL);
        pthread_mutex_lock(&io_threads_mutex[id]);
        if (pthread_create(&io_threads[id], NULL, pinned_worker, (void *)id) != 0) die("pthread_create failed");
    }
    for (int id = 1; id <= workers; id++) pthread_mutex_unlock(&io_threads_mutex[id]);
    active_io_threads_num = workers + 1;
}

static void stop_workers(int workers) {
    for (int id = 1; id <= workers; id++) {
        pthread_cancel(io_threads[id]);
        pthread_join(io_threads[id], NULL);
    }
}

/* The main thread's three steps, as trySendReadToIOThreads, beforeSleep
 * and processIOThreadsResponses take them. */
static int submit(uint64_t n) {
    void *job = tagJob((void *)(uintptr_t)((n % 4096 + 1) * 8), JOB_REQ_ECHO);
    if (!spmcEnqueue(&io_shared_inbox, job)) return 0;
    io_jobs_submitted++;
    return 1;
}

static size_t pop_results(void) {
    void *jobs[JOB_BATCH_SIZE];
    return mpscDequeueBatch(&io_shared_outbox, jobs, JOB_BATCH_SIZE);
}

static void wait_for_one(void) {
    while (pop_results() == 0) __builtin_ia32_pause();
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts `trips` and prints its median and 99th percentile. */
static void print_percentiles(uint64_t *trips, size_t n) {
    qsort(trips, n, sizeof *trips, by_value);
    printf(" p50_ns=%llu p99_ns=%llu", (unsigned long long)trips[n / 2],
           (unsigned long long)trips[n * 99 / 100]);
}

/* ---- the scenarios (as in pool_bench.rs) ------------------------------- */

static void rtt(double scale) {
    size_t warmup = (size_t)(RTT_WARMUP * scale), trips = (size_t)(RTT_TRIPS * scale);
    uint64_t *took = malloc(trips * sizeof *took);
    if (took == NULL) die("out of memory");

    for (size_t i = 0; i < warmup + trips; i++) {
        uint64_t t0 = now_ns();
        while (!submit(i)) __builtin_ia32_pause();
        commitIOJobs();
        wait_for_one();
        if (i >= warmup) took[i - warmup] = now_ns() - t0;
    }

    print_percentiles(took, trips);
    free(took);
}

static void tput(double scale) {
    uint64_t total = (uint64_t)(TPUT_JOBS * scale), sent = 0, got = 0;
    unsigned passes = 0;

    double cpu0 = cpu_seconds();
    uint64_t t0 = now_ns();
    while (got < total) {
        while (sent < total && sent - got < IN_FLIGHT && submit(sent)) sent++;
        commitIOJobs();
        size_t n = pop_results();
        got += n;
        if (n == 0) __builtin_ia32_pause();

        if (++passes % 1024 == 0 && sent < total && now_ns() - t0 >= TPUT_LIMIT_NS) total = sent;
    }
    uint64_t t1 = now_ns();
    double cpu = cpu_seconds() - cpu0;

    printf(" jobs_per_s=%.0f cpu_s_per_mjob=%.4f jobs=%llu", (double)total * 1e9 / (double)(t1 - t0),
           cpu / (double)total * 1e6, (unsigned long long)total);
}

static uint64_t pop_all(void) {
    uint64_t got = 0;
    size_t n;
    while ((n = pop_results()) > 0) got += n;
    return got;
}

/* Advances `next` by one tick and sleeps until then. */
static void sleep_until(struct timespec *next) {
    next->tv_nsec += IDLE_TICK_NS;
    if (next->tv_nsec >= 1000000000) {
        next->tv_nsec -= 1000000000;
        next->tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) != 0);
}

static void idle(double scale) {
    size_t warmup = IDLE_WARMUP, ticks = (size_t)(IDLE_TICKS * scale);
    uint64_t sent = 0, got = 0, late = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    double cpu0 = 0;
    uint64_t t0 = 0;

    for (size_t i = 0; i < warmup + ticks; i++) {
        sleep_until(&next);
        if (i == warmup) {
            cpu0 = cpu_seconds();
            t0 = now_ns();
            late = 0;
        }

        got += pop_all();
        if (got < sent) late++;
        while (!submit(sent)) __builtin_ia32_pause();
        sent++;
        commitIOJobs();
    }
    sleep_until(&next);
    while (got < sent) {
        got += pop_all();
        __builtin_ia32_pause();
    }
    uint64_t t1 = now_ns();
    double cpu = cpu_seconds() - cpu0;

    printf(" cpu_s_per_mjob=%.4f cpu_per_wall_s=%.4f late=%llu", cpu / (double)ticks * 1e6,
           cpu * 1e9 / (double)(t1 - t0), (unsigned long long)late);
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[1], "c-9.1.2") != 0) {
        fprintf(stderr, "usage: %s c-9.1.2 rtt|tput|idle WORKERS [SCALE]\n", argv[0]);
        return 2;
    }
    const char *scenario = argv[2];
    int workers = atoi(argv[3]);
    double scale = argc > 4 ? atof(argv[4]) : 1.0;
    if (workers < 1 || workers > MAX_WORKERS || scale <= 0) die("bad WORKERS or SCALE");

    monotonicInit();
    pick_cpus();
    pin_self(main_cpu);
    start_workers(workers);

    printf("c-9.1.2 %s %d", scenario, workers);
    if (strcmp(scenario, "rtt") == 0) rtt(scale);
    else if (strcmp(scenario, "tput") == 0) tput(scale);
    else if (strcmp(scenario, "idle") == 0) idle(scale);
    else die("unknown scenario");
    printf(" cpus=%d/%d\n", main_cpu, worker_cpu);

    stop_workers(workers);
    return 0;
}
