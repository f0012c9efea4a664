/* Death tests of the Rust core's C boundary: each passes the core something
 * Valkey's callers must never pass (a main-thread entry point called on a
 * worker, a job word that cannot be tagged, a ring of the wrong size, a NULL
 * queue) and checks that the process ends through Valkey's own panic path,
 * with a message that names the mistake.
 *
 * Links against the patched tree only (c-tests/boundary.mk): the stock C
 * core checks few of these, with serverAssert or not at all, so its
 * behaviour is not the contract here.
 *
 * Every case runs in a child of its own. The child sets up a server in
 * process (as main() does, less config file, listeners, Lua and
 * persistence), does the one wrong thing, and is expected to die. Its stdout
 * and stderr, where Valkey logs when no log file is set, go to a pipe; the
 * parent reads them under a deadline and kills a child that outlives it. A
 * case passes when the child
 *
 *   - ended abnormally: killed by a signal (Valkey's panic path ends in
 *     abort()) or exited non-zero,
 *   - logged Valkey's panic marker ("Guru Meditation", or "ASSERTION FAILED"
 *     for serverAssert), and
 *   - logged the message the case expects.
 *
 * A few "harness_" cases come first. Most turn the judge on children it
 * must reject (a clean exit, a wrong message, an abort with no report, a
 * hang, a worker hook that returns), so a judge that accepts anything cannot
 * go unnoticed; one shows that the worker hook the entry-point cases rely on
 * does run on an I/O thread.
 *
 * One case has a worker panic while the main thread waits inside the core:
 * the crash report, written on the worker, must come out once and whole.
 *
 * Each case prints "ok NAME" or "FAIL NAME: why"; the last line is
 * "N passed, N failed", and the exit status is non-zero on any failure.
 *
 *   usage: boundary_test [-v] [-f] [NAME...]
 *          -v: print each child's panic line; -f: its whole output;
 *          NAMEs: run only those cases
 */

#include "server.h"
#include "connection.h"
#include "io_threads.h"
#include "queues.h"
#include "valkey_server.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long a child may take to die (its crash report walks every thread's
 * stack and logs INFO, which takes a moment on a loaded machine), and how
 * long the harness's hang case is given. */
#define DEATH_SECONDS 30
#define HANG_SECONDS 2

/* How long a child waits for a worker to run the offloaded read before it
 * gives up and exits cleanly (which fails the case). */
#define WORKER_WAIT_MS 10000

/* How much of a child's output the parent keeps: the panic line comes early
 * in the report, which runs to some tens of kilobytes. */
#define OUTPUT_KEEP (256 * 1024)

/* Valkey's markers for its two fatal paths (debug.c). */
#define PANIC_MARKER "Guru Meditation"
#define ASSERT_MARKER "ASSERTION FAILED"

static int verbose;     /* -v: each child's panic line */
static int full_output; /* -f: each child's whole output */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------
 * The child's server
 * ------------------------------------------------------------------------- */

/* Sets up the server the entry points expect: config defaults, ACL, modules,
 * connection types, then initServer (event loop, client lists, databases).
 * Valkey logs to stdout, at warning level, so the child's output is its
 * crash report and little else. */
static void start_server(void) {
    start_test_server(LL_WARNING);
}

/* Starts the workers and wakes them the way the event loop does after a
 * poll that returned events, with io-threads-always-active set. */
static void start_workers(void) {
    initIOThreads(1);
    server.io_threads_always_active = 1;
    IOThreadsAfterSleep(1);
}

/* ---------------------------------------------------------------------------
 * Running code on a worker
 *
 * A worker that reads a client calls the connection type's read callback.
 * A client whose connection has a copy of the socket type with its own read
 * callback therefore runs that callback on the worker; offloading the
 * client's read with trySendReadToIOThreads puts it there.
 * ------------------------------------------------------------------------- */

static ConnectionType worker_hook_type;
static void (*on_worker)(void);

static int read_on_worker(connection *conn, void *buf, size_t buf_len) {
    if (!inMainThread() && on_worker) on_worker();
    return connectionByType(CONN_TYPE_SOCKET)->read(conn, buf, buf_len);
}

/* Accepts a client on a socketpair through Valkey's accept path, then
 * points its connection at the hooked type. Returns the client, or NULL;
 * *peer is the test's end. */
static client *accept_hooked_client(int *peer) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1) return NULL;
    anetNonBlock(NULL, fds[0]);

    connection *conn = connCreateAccepted(connectionByType(CONN_TYPE_SOCKET), fds[0], NULL);
    struct ClientFlags flags = {0};
    flags.unix_socket = 1;
    acceptCommonHandler(conn, flags, NULL);
    client *c = connGetPrivateData(conn);
    if (!c) return NULL;

    worker_hook_type = *connectionByType(CONN_TYPE_SOCKET);
    worker_hook_type.read = read_on_worker;
    conn->type = &worker_hook_type;
    *peer = fds[1];
    return c;
}

/* Runs `fn` on a worker, inside a client read, and waits for the read to
 * come back. A `fn` that kills the process never returns here; one that
 * returns lets the read finish, and the child then exits cleanly, which
 * fails the case. */
static void run_on_worker(void (*fn)(void)) {
    start_server();
    start_workers();

    int peer;
    client *c = accept_hooked_client(&peer);
    if (!c) {
        printf("child: the client was not accepted\n");
        exit(3);
    }
    if (write(peer, "*1\r\n$4\r\nPING\r\n", 14) != 14) exit(3);

    on_worker = fn;
    if (trySendReadToIOThreads(c) != C_OK) {
        printf("child: trySendReadToIOThreads refused the read\n");
        exit(3);
    }

    long long deadline = now_ms() + WORKER_WAIT_MS;
    while (c->io_read_state != CLIENT_IDLE && now_ms() < deadline) processIOThreadsResponses();
    printf("child: the worker returned from the hook\n");
}

/* ---------------------------------------------------------------------------
 * The cases' bodies, each run in its child
 * ------------------------------------------------------------------------- */

/* A pointer the job word can carry: 8-byte aligned, not NULL. */
static _Alignas(8) uint64_t aligned_word;

static void hook_drain(void) {
    drainIOThreadsQueue();
}

static void hook_update(void) {
    const char *err = NULL;
    updateIOThreads(&err);
}

static void hook_before_sleep(void) {
    IOThreadsBeforeSleep(getMonotonicUs());
}

static void hook_after_sleep(void) {
    IOThreadsAfterSleep(1);
}

static void hook_send_misaligned(void) {
    sendToMainThread((void *)0x1001, 0);
}

static void hook_send_null(void) {
    sendToMainThread(NULL, 0);
}

static void hook_send_kind_9(void) {
    sendToMainThread(&aligned_word, 9);
}

static void hook_send_kind_negative(void) {
    sendToMainThread(&aligned_word, -1);
}

/* The report case: the worker panics while the main thread is
 * inside the core, waiting in drainIOThreadsQueue for that very worker. */
static atomic_int main_is_draining;

static void hook_panic_while_main_drains(void) {
    while (!atomic_load(&main_is_draining)) usleep(1000);
    usleep(100 * 1000); /* the main thread is now waiting inside the drain */
    sendToMainThread(&aligned_word, 9);
}

static void worker_panics_while_main_drains(void) {
    start_server();
    start_workers();

    int peer;
    client *c = accept_hooked_client(&peer);
    if (!c || write(peer, "*1\r\n$4\r\nPING\r\n", 14) != 14) exit(3);
    on_worker = hook_panic_while_main_drains;
    if (trySendReadToIOThreads(c) != C_OK) exit(3);

    atomic_store(&main_is_draining, 1);
    drainIOThreadsQueue();
    printf("child: the drain returned\n");
}

static void worker_drain(void) {
    run_on_worker(hook_drain);
}
static void worker_update(void) {
    run_on_worker(hook_update);
}
static void worker_before_sleep(void) {
    run_on_worker(hook_before_sleep);
}
static void worker_after_sleep(void) {
    run_on_worker(hook_after_sleep);
}
static void worker_send_misaligned(void) {
    run_on_worker(hook_send_misaligned);
}
static void worker_send_null(void) {
    run_on_worker(hook_send_null);
}
static void worker_send_kind_9(void) {
    run_on_worker(hook_send_kind_9);
}
static void worker_send_kind_negative(void) {
    run_on_worker(hook_send_kind_negative);
}

/* sendToMainThread is for workers: from the main thread, workers running. */
static void main_sends_to_main(void) {
    start_server();
    start_workers();
    sendToMainThread(&aligned_word, 0);
}

static void *send_from_thread(void *arg) {
    (void)arg;
    sendToMainThread(&aligned_word, 0);
    return NULL;
}

/* ... and from a thread the pool did not start. */
static void foreign_thread_sends_to_main(void) {
    start_server();
    start_workers();
    pthread_t thread;
    if (pthread_create(&thread, NULL, send_from_thread, NULL) != 0) exit(3);
    pthread_join(thread, NULL);
}

/* Ring sizes that are not powers of two. The rings are static so that a
 * call that wrongly succeeds leaves them for the process's end. */
static spscQueue spsc_ring;
static spmcQueue spmc_ring;
static mpscQueue mpsc_ring;

static void spsc_init_3(void) {
    start_server();
    spscInit(&spsc_ring, 3);
}

static void spmc_init_6(void) {
    start_server();
    spmcInit(&spmc_ring, 6);
}

static void mpsc_init_12(void) {
    start_server();
    mpscInit(&mpsc_ring, 12);
}

static void spsc_init_0(void) {
    start_server();
    spscInit(&spsc_ring, 0);
}

/* NULL queues, and a queue that was never initialised. */
static void spsc_enqueue_null(void) {
    start_server();
    spscEnqueue(NULL, &aligned_word, true);
}

static void spmc_dequeue_null(void) {
    start_server();
    spmcDequeue(NULL);
}

static void mpsc_enqueue_null(void) {
    start_server();
    mpscTicket ticket = {0};
    mpscEnqueue(NULL, &aligned_word, &ticket);
}

static void spmc_init_null(void) {
    start_server();
    spmcInit(NULL, 8);
}

static void spmc_enqueue_uninitialised(void) {
    start_server();
    spmcEnqueue(&spmc_ring, &aligned_word);
}

/* The harness's own cases: children the judge must reject. */
static void returns_cleanly(void) {
    start_server();
}

static void panics_about_something_else(void) {
    start_server();
    serverPanic("a panic that names nothing the case expects");
}

static void aborts_without_report(void) {
    abort();
}

static void hangs(void) {
    for (;;) pause();
}

/* The worker trick's own controls: a hook that returns lets the child exit
 * cleanly; a hook that panics in C shows it ran on a worker. */
static void hook_returns(void) {
}

static void hook_panics_in_c(void) {
    serverPanic("hook ran on a worker, I/O thread id %d", getCurTid());
}

static void worker_hook_returns(void) {
    run_on_worker(hook_returns);
}

static void worker_hook_panics_in_c(void) {
    run_on_worker(hook_panics_in_c);
}

/* ---------------------------------------------------------------------------
 * Running a child and judging how it ended
 * ------------------------------------------------------------------------- */

typedef struct {
    int status;      /* from waitpid */
    int timed_out;   /* killed by the parent at the deadline */
    char *output;    /* NUL-terminated, the first OUTPUT_KEEP bytes (the parent's buffer) */
    size_t length;
} child_end;

static char output_buffer[OUTPUT_KEEP + 1];

/* Forks, runs `body` in the child with stdout and stderr on a pipe, and
 * collects the child's output and status. A body that returns exits 0. */
static int run_child(void (*body)(void), int seconds, child_end *end) {
    int pipefd[2];
    memset(end, 0, sizeof(*end));
    end->output = output_buffer;
    output_buffer[0] = '\0';
    if (pipe(pipefd) == -1) return 0;

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == -1) return 0;
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[1]);
        body();
        fflush(stdout);
        _exit(0);
    }
    close(pipefd[1]);

    long long deadline = now_ms() + (long long)seconds * 1000;
    char scratch[4096];
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            end->timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) continue; /* the deadline check ends it */

        char *into = scratch;
        size_t room = sizeof(scratch);
        if (end->length < OUTPUT_KEEP) {
            into = end->output + end->length;
            room = OUTPUT_KEEP - end->length;
        }
        ssize_t n = read(pipefd[0], into, room);
        if (n <= 0) break; /* EOF: every copy of the write end is closed */
        if (into != scratch) end->length += (size_t)n;
    }
    end->output[end->length] = '\0';
    close(pipefd[0]);

    waitpid(pid, &end->status, 0);
    return 1;
}

/* Whether the child died as a case expects; if not, why not, in `why`. */
static int died_as_expected(const child_end *end, const char *message, char *why, size_t size) {
    if (end->timed_out) {
        snprintf(why, size, "still running after its deadline; killed");
        return 0;
    }
    if (WIFEXITED(end->status) && WEXITSTATUS(end->status) == 0) {
        snprintf(why, size, "exited with status 0: the core accepted the call");
        return 0;
    }
    if (!strstr(end->output, PANIC_MARKER) && !strstr(end->output, ASSERT_MARKER)) {
        if (WIFSIGNALED(end->status))
            snprintf(why, size, "killed by signal %d with no Valkey crash report",
                     WTERMSIG(end->status));
        else
            snprintf(why, size, "exited with status %d with no Valkey crash report",
                     WEXITSTATUS(end->status));
        return 0;
    }
    if (!strstr(end->output, message)) {
        snprintf(why, size, "Valkey's crash report lacks \"%s\"", message);
        return 0;
    }
    return 1;
}

/* Counts the occurrences of `needle` in `text`. */
static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *at = strstr(text, needle); at; at = strstr(at + 1, needle)) n++;
    return n;
}

/* Whether the crash report is a single one: one panic, no second panic or
 * signal report raised while the first was being written. */
static int report_is_single(const child_end *end, char *why, size_t size) {
    int panics = count_of(end->output, PANIC_MARKER);
    if (panics != 1) {
        snprintf(why, size, "the report holds %d panics, not 1", panics);
        return 0;
    }
    if (strstr(end->output, "panicked while processing panic")) {
        snprintf(why, size, "the panic hook panicked while writing the report");
        return 0;
    }
    if (strstr(end->output, "crashed by signal")) {
        snprintf(why, size, "a signal crash report follows the panic's");
        return 0;
    }
    return 1;
}

/* Prints the child's panic line (or the start of its output, if it has
 * none), indented, for -v and for failures. */
static void show_output(const child_end *end) {
    const char *line = strstr(end->output, PANIC_MARKER);
    if (!line) line = strstr(end->output, ASSERT_MARKER);
    if (!line) line = end->output;
    const char *stop = strchr(line, '\n');
    int width = stop ? (int)(stop - line) : (int)strlen(line);
    if (width > 300) width = 300;
    if (width > 0) printf("    | %.*s\n", width, line);
}

/* ---------------------------------------------------------------------------
 * The cases
 * ------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*body)(void);
    const char *message; /* what the crash report must hold */
    int must_reject;     /* a harness case: passes when the judge says no */
    int seconds;         /* 0: DEATH_SECONDS */
    int single_report;   /* the crash report must come out once, whole */
} death_case;

static const death_case cases[] = {
    {"harness_rejects_clean_exit", returns_cleanly, "", 1, 0},
    {"harness_rejects_wrong_message", panics_about_something_else, "called from I/O thread", 1, 0},
    {"harness_rejects_abort_without_report", aborts_without_report, "", 1, 0},
    {"harness_rejects_hang", hangs, "", 1, HANG_SECONDS},
    {"harness_rejects_worker_hook_that_returns", worker_hook_returns, "", 1, 0},
    {"harness_hook_runs_on_worker", worker_hook_panics_in_c, "hook ran on a worker, I/O thread id",
     0, 0},

    /* 1. Main-thread entry points called on a worker. */
    {"worker_calls_drainIOThreadsQueue", worker_drain,
     "drainIOThreadsQueue called from I/O thread", 0, 0},
    {"worker_calls_updateIOThreads", worker_update, "updateIOThreads called from I/O thread", 0,
     0},
    {"worker_calls_IOThreadsBeforeSleep", worker_before_sleep,
     "IOThreadsBeforeSleep called from I/O thread", 0, 0},
    {"worker_calls_IOThreadsAfterSleep", worker_after_sleep,
     "IOThreadsAfterSleep called from I/O thread", 0, 0},

    /* 2. Job pointers the tag would corrupt. */
    {"worker_sends_misaligned_job", worker_send_misaligned,
     "job pointer 0x1001 is null or not 8-byte aligned", 0, 0},
    {"worker_sends_null_job", worker_send_null, "is null or not 8-byte aligned", 0, 0},

    /* 3. Job kinds outside 0..8. */
    {"worker_sends_kind_9", worker_send_kind_9, "job kind 9 does not fit in 3 bits", 0, 0},
    {"worker_sends_kind_negative", worker_send_kind_negative, "job kind -1 does not fit in 3 bits", 0, 0},

    /* 4. Ring sizes that are not powers of two. */
    {"spscInit_3", spsc_init_3, "SPSC ring capacity must be a non-zero power of two, got 3", 0,
     0},
    {"spmcInit_6", spmc_init_6, "SPMC ring capacity must be a non-zero power of two, got 6", 0,
     0},
    {"mpscInit_12", mpsc_init_12, "MPSC ring capacity must be a non-zero power of two, got 12",
     0, 0},
    {"spscInit_0", spsc_init_0, "SPSC ring capacity must be a non-zero power of two, got 0", 0,
     0},

    /* 5. sendToMainThread off the pool. */
    {"main_sends_to_main", main_sends_to_main, "sendToMainThread called from a thread that is not an I/O worker", 0, 0},
    {"foreign_thread_sends_to_main", foreign_thread_sends_to_main, "sendToMainThread called from a thread that is not an I/O worker", 0, 0},

    /* 6. NULL and uninitialised queues. */
    {"spscEnqueue_null", spsc_enqueue_null, "spscEnqueue called with a NULL queue", 0, 0},
    {"spmcDequeue_null", spmc_dequeue_null, "spmcDequeue called with a NULL queue", 0, 0},
    {"mpscEnqueue_null", mpsc_enqueue_null, "mpscEnqueue called with a NULL queue", 0, 0},
    {"spmcInit_null", spmc_init_null, "spmcInit called with a NULL queue", 0, 0},
    {"spmcEnqueue_uninitialised", spmc_enqueue_uninitialised,
     "spmcEnqueue called on a queue that is not initialised", 0, 0},

    /* The crash report of a worker's panic is written on the worker, and its
     * INFO section calls getIOThreadActiveTimeMicroseconds there, while the
     * main thread is inside the core (here: waiting in drainIOThreadsQueue).
     * The report must come out whole, once: the active time is read without
     * the main thread's state. The flag also requires a single report. */
    {"worker_panics_while_main_drains", worker_panics_while_main_drains,
     "job kind 9 does not fit in 3 bits", 0, 0, 1},
};

/* Whether to run a case: named on the command line, or, with no names,
 * every case. */
static int selected(const death_case *t, int argc, char **argv, int first) {
    if (first >= argc) return 1;
    for (int i = first; i < argc; i++)
        if (strcmp(argv[i], t->name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[first], "-f") == 0) {
            full_output = 1;
        } else {
            fprintf(stderr, "usage: %s [-v] [-f] [NAME...]\n", argv[0]);
            return 2;
        }
    }

    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const death_case *t = &cases[i];
        if (!selected(t, argc, argv, first)) continue;

        child_end end;
        char why[512] = "";
        long long started = now_ms();
        int ran = run_child(t->body, t->seconds ? t->seconds : DEATH_SECONDS, &end);
        long long took = now_ms() - started;

        int ok;
        if (!ran) {
            ok = 0;
            snprintf(why, sizeof(why), "could not fork the child: %s", strerror(errno));
        } else if (t->must_reject) {
            ok = !died_as_expected(&end, t->message, why, sizeof(why));
            if (!ok) snprintf(why, sizeof(why), "the judge accepted a child it must reject");
        } else {
            ok = died_as_expected(&end, t->message, why, sizeof(why));
            if (ok && t->single_report) ok = report_is_single(&end, why, sizeof(why));
        }

        if (ok && t->must_reject) {
            printf("ok %s (%lld ms; rejected: %s)\n", t->name, took, why);
            passed++;
        } else if (ok) {
            char how[32];
            if (WIFSIGNALED(end.status))
                snprintf(how, sizeof(how), "signal %d", WTERMSIG(end.status));
            else
                snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(end.status));
            printf("ok %s (%lld ms, %s)\n", t->name, took, how);
            passed++;
        } else {
            printf("FAIL %s: %s\n", t->name, why);
            failed++;
        }
        if (ran && full_output) {
            printf("%s", end.output);
        } else if (ran && (verbose || !ok)) {
            show_output(&end);
        }
        fflush(stdout);
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
