/* Tests of the I/O-threads entry points (Valkey's io_threads.h) on a real
 * server: one set up the way main() sets it up, less the configuration file,
 * the listeners, the Lua engine and persistence; clients accepted on
 * socketpairs through Valkey's own accept path; workers started by
 * initIOThreads and woken the way the event loop wakes them.
 *
 * The same source links against either core: the stock build's libvalkey.a,
 * which holds Valkey's io_threads.o, or the patched build's libvalkey.a with
 * libvalkey_iocore.a in its place. A check that passes on both states
 * Valkey's behaviour, not ours.
 *
 * Each check prints "ok NAME" or "FAIL NAME: why"; the last line is
 * "N passed, N failed", and the exit status is non-zero on any failure. A
 * check that hangs is ended by alarm(), which prints its FAIL line and the
 * summary. A Valkey assertion that fires ends the run with Valkey's own
 * crash report and no summary.
 *
 *   usage: entry_points_test [-v]    (-v: Valkey's log at notice level)
 */

#include "server.h"
#include "connection.h"
#include "io_threads.h"
#include "valkey_server.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long one check may run before alarm() fails it, and how long a wait
 * for the workers may spin before it gives up (well inside the former). */
#define CHECK_SECONDS 60
#define WAIT_MS 10000

/* The large reply of the write check, and the socket buffer that makes a
 * worker write it in many partial writes. */
#define LARGE_REPLY_BYTES (1024 * 1024)
#define SMALL_SOCKET_BUFFER 8192

/* ---------------------------------------------------------------------------
 * Checks and the alarm
 * ------------------------------------------------------------------------- */

static int checks_passed;
static int checks_failed;
static const char *check_name = "setup";
static char check_failure[512];

/* Records the first failure of the running check; the check goes on only if
 * it used EXPECT. */
static void fail_at(int line, const char *what) {
    if (check_failure[0]) return;
    snprintf(check_failure, sizeof(check_failure), "line %d: %s", line, what);
}

#define EXPECT(cond)                                    \
    do {                                                \
        if (!(cond)) fail_at(__LINE__, #cond);          \
    } while (0)

#define REQUIRE(cond)                                   \
    do {                                                \
        if (!(cond)) {                                  \
            fail_at(__LINE__, #cond);                   \
            return;                                     \
        }                                               \
    } while (0)

/* write(2) of a C string, for the signal handler. */
static void put_raw(const char *s) {
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, s, len);
        if (n <= 0) return;
        s += n;
        len -= (size_t)n;
    }
}

/* Decimal digits of a non-negative int, without stdio. */
static void put_int_raw(int v) {
    char digits[16];
    int i = (int)sizeof(digits);
    digits[--i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && i > 0);
    put_raw(digits + i);
}

static void on_alarm(int sig) {
    (void)sig;
    put_raw("FAIL ");
    put_raw(check_name);
    put_raw(": timed out after ");
    put_int_raw(CHECK_SECONDS);
    put_raw(" s\n");
    put_int_raw(checks_passed);
    put_raw(" passed, ");
    put_int_raw(checks_failed + 1);
    put_raw(" failed\n");
    _exit(1);
}

static void run_check(const char *name, void (*check)(void)) {
    check_name = name;
    check_failure[0] = '\0';
    fflush(stdout);

    alarm(CHECK_SECONDS);
    check();
    alarm(0);

    if (check_failure[0]) {
        printf("FAIL %s: %s\n", name, check_failure);
        checks_failed++;
    } else {
        printf("ok %s\n", name);
        checks_passed++;
    }
    fflush(stdout);
}

/* ---------------------------------------------------------------------------
 * Helpers: time, threads, clients, the workers' activity
 * ------------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The process's threads named io_thd_N, as a mask with bit N set for each. */
static unsigned long long io_thread_mask(void) {
    unsigned long long mask = 0;
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return ~0ULL;

    struct dirent *task;
    while ((task = readdir(tasks)) != NULL) {
        if (task->d_name[0] == '.') continue;
        char path[300], comm[64] = {0};
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", task->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread ended while we looked */
        if (fgets(comm, sizeof(comm), f) && strncmp(comm, "io_thd_", 7) == 0) {
            int id = atoi(comm + 7);
            if (id > 0 && id < 64) mask |= 1ULL << id;
        }
        fclose(f);
    }
    closedir(tasks);
    return mask;
}

/* The mask io_thread_mask() should show for io-threads = threads_num. */
static unsigned long long workers_mask(int threads_num) {
    unsigned long long mask = 0;
    for (int id = 1; id < threads_num; id++) mask |= 1ULL << id;
    return mask;
}

/* Waits until exactly the workers of io-threads = threads_num are running:
 * a joined thread can linger in /proc for a moment, and a new one names
 * itself only once it runs. */
static int await_workers(int threads_num) {
    long long deadline = now_ms() + WAIT_MS;
    while (io_thread_mask() != workers_mask(threads_num)) {
        if (now_ms() > deadline) return 0;
        usleep(1000);
    }
    return 1;
}

/* Wakes every worker, by the route the event loop takes after a poll that
 * returned events, with io-threads-always-active set. */
static void wake_workers(void) {
    server.io_threads_always_active = 1;
    IOThreadsAfterSleep(1);
}

/* Parks every worker again, by the route the event loop takes before it
 * sleeps; it does so only once the workers have no job left. */
static void park_workers(void) {
    long long deadline = now_ms() + WAIT_MS;
    IOThreadsBeforeSleep(getMonotonicUs());
    while (server.active_io_threads_num > 1 && now_ms() < deadline) {
        IOThreadsBeforeSleep(getMonotonicUs());
    }
}

/* A client on one end of a socketpair, accepted by acceptCommonHandler like
 * any other connection; *peer is the test's end. A positive buffer shrinks
 * the server end's send buffer and the peer's receive buffer. */
static client *accept_client(int *peer, int buffer) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1) return NULL;
    if (buffer > 0) {
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    }
    anetNonBlock(NULL, fds[0]); /* as the listener's accept handler does */

    unsigned long clients_before = listLength(server.clients);
    connection *conn = connCreateAccepted(connectionByType(CONN_TYPE_SOCKET), fds[0], NULL);
    struct ClientFlags flags = {0};
    flags.unix_socket = 1;
    acceptCommonHandler(conn, flags, NULL);
    if (listLength(server.clients) != clients_before + 1) {
        close(fds[1]);
        return NULL; /* refused: the connection is already closed */
    }

    *peer = fds[1];
    return connGetPrivateData(conn);
}

static int send_all(int fd, const char *s) {
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0) return 0;
        s += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Reads from fd until `want` bytes came or WAIT_MS passed; returns the count. */
static size_t recv_exactly(int fd, char *buf, size_t want) {
    size_t got = 0;
    long long deadline = now_ms() + WAIT_MS;
    while (got < want) {
        long long left = deadline - now_ms();
        if (left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0) break;
        ssize_t n = read(fd, buf + got, want - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    return got;
}

/* Reads from a peer that should have nothing more to read. */
static int peer_is_quiet(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 50) == 0;
}

/* Processes the workers' responses until the client's read is done (and
 * the command it brought has run); returns the responses processed, or -1 on
 * timeout. */
static int finish_read(client *c) {
    int responses = 0;
    long long deadline = now_ms() + WAIT_MS;
    while (c->io_read_state != CLIENT_IDLE) {
        if (now_ms() > deadline) return -1;
        responses += processIOThreadsResponses();
    }
    return responses;
}

/* Processes the workers' responses until the client's whole reply is
 * written. Valkey hands a reply to a worker as soon as its command has run
 * (beforeNextClient), so the write may be out already, or even done; when
 * the client has replies but no write out (Valkey queued it for the next
 * event loop instead), the test offers it, as handleClientsWithPendingWrites
 * would. Returns the write jobs that ran meanwhile, or -1 on timeout or if
 * trySendWriteToIOThreads refused the write. */
static int finish_write(client *c) {
    long long writes_before = server.stat_io_writes_processed;
    long long deadline = now_ms() + WAIT_MS;
    while (c->io_write_state != CLIENT_IDLE || clientHasPendingReplies(c)) {
        if (now_ms() > deadline) return -1;
        processIOThreadsResponses();
        if (c->io_write_state == CLIENT_IDLE && clientHasPendingReplies(c) &&
            trySendWriteToIOThreads(c) != C_OK)
            return -1;
    }
    return (int)(server.stat_io_writes_processed - writes_before);
}

/* The value of a string key in the client's database, or NULL. */
static const char *string_value(client *c, const char *key) {
    robj *name = createStringObject(key, strlen(key));
    robj *value = lookupKeyRead(c->db, name);
    decrRefCount(name);
    if (!value || value->type != OBJ_STRING) return NULL;
    if (value->encoding == OBJ_ENCODING_INT) return "(int)";
    return objectGetVal(value);
}

/* A RESP SET command. */
static sds set_command(const char *key, const char *value) {
    return sdscatprintf(sdsempty(), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(key),
                        key, strlen(value), value);
}

/* A string object with a private sds (RAW encoding: too long to embed). */
static robj *raw_string(char fill) {
    char text[100];
    memset(text, fill, sizeof(text));
    return createRawStringObject(text, sizeof(text));
}

/* ---------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------- */

/* main()'s start-up, less what a test has no use for: no config file, no
 * listeners (initListeners is not called), no Lua engine, no data loaded, no
 * bio threads. initServer creates the event loop, the client lists, the
 * databases and the shared objects. */
static void start_server(int verbose) {
    start_test_server(verbose ? LL_NOTICE : LL_WARNING);
}

/* ---------------------------------------------------------------------------
 * 1. Start-up
 * ------------------------------------------------------------------------- */

static void check_init_starts_parked_workers(void) {
    REQUIRE(io_thread_mask() == 0);

    initIOThreads(1);

    EXPECT(await_workers(3)); /* io_thd_1 and io_thd_2 */
    EXPECT(server.active_io_threads_num == 1);
    EXPECT(server.io_poll_state == AE_IO_STATE_NONE);
    EXPECT(inMainThread());
    EXPECT(getCurTid() == 0);
    EXPECT(processIOThreadsResponses() == 0);
}

/* While the workers are parked, every offer of work is refused and the
 * caller does the work itself. */
static void check_parked_workers_take_no_jobs(void) {
    int peer;
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    REQUIRE(server.active_io_threads_num == 1);
    REQUIRE(send_all(peer, "*1\r\n$4\r\nPING\r\n"));

    EXPECT(trySendReadToIOThreads(c) == C_ERR);
    EXPECT(c->io_read_state == CLIENT_IDLE);
    EXPECT(!clientHasPendingIO(c));

    addReplyBulkCString(c, "queued by the test");
    EXPECT(trySendWriteToIOThreads(c) == C_ERR);
    EXPECT(c->io_write_state == CLIENT_IDLE);

    robj *o = raw_string('p');
    EXPECT(tryOffloadFreeObjToIOThreads(o) == C_ERR);
    decrRefCount(o);

    robj **argv = zmalloc(sizeof(robj *));
    argv[0] = raw_string('q');
    EXPECT(tryOffloadFreeArgvToIOThreads(c, 1, argv) == C_ERR);
    decrRefCount(argv[0]);
    zfree(argv);

    trySendPollJobToIOThreads();
    EXPECT(server.io_poll_state == AE_IO_STATE_NONE);

    freeClient(c);
    close(peer);
}

/* The event loop's hooks wake the workers after a poll with events and park
 * them before it sleeps. */
static void check_sleep_hooks_wake_and_park(void) {
    server.io_threads_always_active = 1;

    IOThreadsAfterSleep(0); /* no events: nothing to wake for */
    EXPECT(server.active_io_threads_num == 1);

    IOThreadsAfterSleep(1);
    EXPECT(server.active_io_threads_num == 3);

    IOThreadsBeforeSleep(getMonotonicUs());
    EXPECT(server.active_io_threads_num == 1);
}

/* ---------------------------------------------------------------------------
 * 2. Read offload
 * ------------------------------------------------------------------------- */

/* A worker reads and parses PING; the main thread runs it on the response;
 * a second job writes the reply. */
static void check_read_offload_runs_ping(void) {
    int peer;
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    REQUIRE(send_all(peer, "*1\r\n$4\r\nPING\r\n"));
    long long reads_before = server.stat_io_reads_processed;
    long long writes_before = server.stat_io_writes_processed;
    long long commands_before = server.stat_numcommands;

    wake_workers();
    REQUIRE(trySendReadToIOThreads(c) == C_OK);
    EXPECT(clientHasPendingIO(c));
    EXPECT(c->io_read_state != CLIENT_IDLE);
    EXPECT(server.stat_io_reads_pending == 1);
    /* Offered again while the first is out: never queued twice. Taken as done
     * while the worker has it, refused once the worker has finished (only
     * the main thread may finish a completed read). */
    int again = trySendReadToIOThreads(c);
    EXPECT(again == C_OK || c->io_read_state == CLIENT_COMPLETED_IO);
    EXPECT(server.stat_io_reads_pending == 1);

    int responses = finish_read(c);
    EXPECT(responses >= 1);
    EXPECT(c->io_read_state == CLIENT_IDLE);
    EXPECT(server.stat_io_reads_processed == reads_before + 1);
    EXPECT(server.stat_io_reads_pending == 0);
    EXPECT(server.stat_numcommands == commands_before + 1);
    /* The reply went to a worker as soon as PING had run. */
    EXPECT(c->io_write_state != CLIENT_IDLE || server.stat_io_writes_processed > writes_before);

    EXPECT(finish_write(c) >= 0);
    EXPECT(server.stat_io_writes_processed == writes_before + 1);
    EXPECT(!clientHasPendingIO(c));
    park_workers();

    char reply[8] = {0};
    EXPECT(recv_exactly(peer, reply, 7) == 7);
    EXPECT(memcmp(reply, "+PONG\r\n", 7) == 0);
    EXPECT(peer_is_quiet(peer));

    freeClient(c);
    close(peer);
}

/* The command a worker read changes the database. */
static void check_read_offload_sets_key(void) {
    int peer;
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    sds cmd = set_command("entry:read", "from-a-worker");
    REQUIRE(send_all(peer, cmd));
    sdsfree(cmd);

    wake_workers();
    REQUIRE(trySendReadToIOThreads(c) == C_OK);
    EXPECT(finish_read(c) >= 1);
    const char *value = string_value(c, "entry:read");
    EXPECT(value && strcmp(value, "from-a-worker") == 0);

    EXPECT(finish_write(c) >= 0);
    park_workers();

    char reply[6] = {0};
    EXPECT(recv_exactly(peer, reply, 5) == 5);
    EXPECT(memcmp(reply, "+OK\r\n", 5) == 0);

    freeClient(c);
    close(peer);
}

/* Two commands in one read: the worker parses the first, the main thread
 * the rest, and both replies go out in order. */
static void check_read_offload_pipeline(void) {
    int peer;
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    sds cmds = set_command("entry:pipe", "1");
    cmds = sdscat(cmds, "*2\r\n$4\r\nINCR\r\n$10\r\nentry:pipe\r\n");
    REQUIRE(send_all(peer, cmds));
    sdsfree(cmds);

    wake_workers();
    REQUIRE(trySendReadToIOThreads(c) == C_OK);
    EXPECT(finish_read(c) >= 1);
    EXPECT(finish_write(c) >= 0);
    park_workers();

    char reply[10] = {0};
    EXPECT(recv_exactly(peer, reply, 9) == 9);
    EXPECT(memcmp(reply, "+OK\r\n:2\r\n", 9) == 0);

    freeClient(c);
    close(peer);
}

/* ---------------------------------------------------------------------------
 * 3. Write offload of a reply larger than the socket buffer
 * ------------------------------------------------------------------------- */

typedef struct {
    int fd;
    char *buf;
    size_t want;
    size_t got;
} peer_reader;

static void *read_peer(void *arg) {
    peer_reader *r = arg;
    r->got = recv_exactly(r->fd, r->buf, r->want);
    return NULL;
}

static char pattern_byte(size_t i) {
    return (char)('a' + (i * 7 + i / 251) % 26);
}

static void check_write_offload_large_reply(void) {
    int peer;
    client *c = accept_client(&peer, SMALL_SOCKET_BUFFER);
    REQUIRE(c != NULL);

    char *payload = zmalloc(LARGE_REPLY_BYTES);
    for (size_t i = 0; i < LARGE_REPLY_BYTES; i++) payload[i] = pattern_byte(i);
    addReplyBulkCBuffer(c, payload, LARGE_REPLY_BYTES);
    zfree(payload);

    char header[32];
    int header_len = snprintf(header, sizeof(header), "$%d\r\n", LARGE_REPLY_BYTES);
    size_t total = (size_t)header_len + LARGE_REPLY_BYTES + 2;
    peer_reader reader = {.fd = peer, .buf = zmalloc(total + 1), .want = total};
    pthread_t reader_thread;
    REQUIRE(pthread_create(&reader_thread, NULL, read_peer, &reader) == 0);

    long long active_before = 0;
    for (int id = 1; id < server.io_threads_num; id++)
        active_before += getIOThreadActiveTimeMicroseconds(id);

    wake_workers();
    EXPECT(trySendWriteToIOThreads(c) == C_OK);
    EXPECT(c->io_write_state != CLIENT_IDLE);
    EXPECT(clientHasPendingIO(c));
    /* Offered again while the first is out: taken as done, not queued. */
    EXPECT(trySendWriteToIOThreads(c) == C_OK);
    EXPECT(server.stat_io_writes_pending == 1);
    int writes = finish_write(c);
    EXPECT(writes >= 1);
    park_workers();

    pthread_join(reader_thread, NULL);
    EXPECT(reader.got == total);
    EXPECT(memcmp(reader.buf, header, (size_t)header_len) == 0);
    int body_ok = 1;
    for (size_t i = 0; i < LARGE_REPLY_BYTES && body_ok; i++)
        body_ok = reader.buf[header_len + i] == pattern_byte(i);
    EXPECT(body_ok);
    EXPECT(memcmp(reader.buf + total - 2, "\r\n", 2) == 0);
    EXPECT(!clientHasPendingReplies(c));
    EXPECT(peer_is_quiet(peer));

    long long active_after = 0;
    for (int id = 1; id < server.io_threads_num; id++)
        active_after += getIOThreadActiveTimeMicroseconds(id);
    EXPECT(active_after > active_before);

    if (check_failure[0] == '\0')
        printf("    (%zu bytes in %d write jobs through a %d-byte socket buffer)\n", total,
               writes, SMALL_SOCKET_BUFFER);
    zfree(reader.buf);
    freeClient(c);
    close(peer);
}

/* ---------------------------------------------------------------------------
 * 4. Freeing objects and argv in the workers
 * ------------------------------------------------------------------------- */

static void check_free_obj_offload(void) {
    robj *shared_obj = raw_string('s');
    incrRefCount(shared_obj);
    robj *embedded = createStringObject("short", 5);
    long long freed_before = server.stat_io_freed_objects;

    wake_workers();
    EXPECT(tryOffloadFreeObjToIOThreads(shared_obj) == C_ERR); /* refcount 2 */
    EXPECT(shared_obj->refcount == 2);
    EXPECT(tryOffloadFreeObjToIOThreads(embedded) == C_ERR); /* not RAW */

    size_t before = zmalloc_used_memory();
    robj *objs[8];
    for (int i = 0; i < 8; i++) objs[i] = raw_string((char)('a' + i));
    for (int i = 0; i < 8; i++) EXPECT(tryOffloadFreeObjToIOThreads(objs[i]) == C_OK);
    drainIOThreadsQueue();
    EXPECT(zmalloc_used_memory() == before);
    EXPECT(server.stat_io_freed_objects == freed_before + 8);
    park_workers();

    decrRefCount(shared_obj);
    decrRefCount(shared_obj);
    decrRefCount(embedded);
}

static void check_free_argv_offload(void) {
    int peer;
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    robj *kept = raw_string('k');
    incrRefCount(kept); /* the test's own reference */

    wake_workers();

    /* A shared argument loses one reference at once, on the main thread;
     * the others, and the array, are freed by a worker. */
    size_t before = zmalloc_used_memory();
    robj **argv = zmalloc(sizeof(robj *) * 4);
    argv[0] = raw_string('a');
    argv[1] = kept;
    argv[2] = createStringObject("embedded", 8);
    argv[3] = raw_string('b');
    EXPECT(tryOffloadFreeArgvToIOThreads(c, 4, argv) == C_OK);
    EXPECT(kept->refcount == 1);
    drainIOThreadsQueue();
    EXPECT(zmalloc_used_memory() == before);

    /* The last argument is shared: a worker stops at the one before. */
    before = zmalloc_used_memory();
    argv = zmalloc(sizeof(robj *) * 3);
    argv[0] = raw_string('c');
    argv[1] = raw_string('d');
    argv[2] = kept;
    incrRefCount(kept);
    EXPECT(tryOffloadFreeArgvToIOThreads(c, 3, argv) == C_OK);
    drainIOThreadsQueue();
    EXPECT(kept->refcount == 1);
    EXPECT(zmalloc_used_memory() == before);

    /* Every argument shared: nothing for a worker, the array goes at once. */
    incrRefCount(kept);
    incrRefCount(kept);
    before = zmalloc_used_memory();
    argv = zmalloc(sizeof(robj *) * 2);
    argv[0] = kept;
    argv[1] = kept;
    size_t with_array = zmalloc_used_memory();
    EXPECT(with_array > before);
    EXPECT(tryOffloadFreeArgvToIOThreads(c, 2, argv) == C_OK);
    EXPECT(kept->refcount == 1);
    EXPECT(zmalloc_used_memory() == before);

    /* An empty argv is not taken. */
    robj **empty = zmalloc(sizeof(robj *));
    EXPECT(tryOffloadFreeArgvToIOThreads(c, 0, empty) == C_ERR);
    zfree(empty);

    /* Many arrays at once, all to the private inbox of the worker the
     * client's id picks, published together by the drain. */
    before = zmalloc_used_memory();
    for (int n = 0; n < 200; n++) {
        robj **many = zmalloc(sizeof(robj *) * 2);
        many[0] = raw_string('m');
        many[1] = raw_string('n');
        EXPECT(tryOffloadFreeArgvToIOThreads(c, 2, many) == C_OK);
    }
    drainIOThreadsQueue();
    EXPECT(zmalloc_used_memory() == before);

    park_workers();
    decrRefCount(kept);
    freeClient(c);
    close(peer);
}

/* ---------------------------------------------------------------------------
 * 5. Changing the number of threads
 * ------------------------------------------------------------------------- */

/* Runs one SET through a worker, start to end. */
static int set_through_workers(const char *key, const char *value) {
    int peer, ok = 1;
    client *c = accept_client(&peer, 0);
    if (!c) return 0;
    sds cmd = set_command(key, value);
    ok = send_all(peer, cmd);
    sdsfree(cmd);

    wake_workers();
    ok = ok && trySendReadToIOThreads(c) == C_OK && finish_read(c) >= 1;
    ok = ok && finish_write(c) >= 0;
    park_workers();

    char reply[6] = {0};
    ok = ok && recv_exactly(peer, reply, 5) == 5 && memcmp(reply, "+OK\r\n", 5) == 0;
    const char *stored = string_value(c, key);
    ok = ok && stored && strcmp(stored, value) == 0;
    freeClient(c);
    close(peer);
    return ok;
}

static void check_update_threads_idle(void) {
    const char *err = NULL;
    REQUIRE(await_workers(3));

    /* The same number: nothing to do. */
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(await_workers(3));

    server.io_threads_num = 2;
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(await_workers(2));
    EXPECT(server.active_io_threads_num == 1);
    EXPECT(set_through_workers("entry:two", "two"));

    server.io_threads_num = 4;
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(await_workers(4));
    EXPECT(server.active_io_threads_num == 1);
    wake_workers();
    EXPECT(server.active_io_threads_num == 4);
    park_workers();
    EXPECT(set_through_workers("entry:four", "four"));

    server.io_threads_num = 3;
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(await_workers(3));
    EXPECT(server.active_io_threads_num == 1);
    EXPECT(set_through_workers("entry:three", "three"));
    EXPECT(err == NULL);
}

/* Reads out on the workers when the number changes are finished first; their
 * responses are processed afterwards, with the workers parked. */
#define PENDING_CLIENTS 6

static void check_update_threads_with_reads_pending(void) {
    const char *err = NULL;
    int peers[PENDING_CLIENTS];
    client *clients[PENDING_CLIENTS];
    char key[32];

    for (int i = 0; i < PENDING_CLIENTS; i++) {
        clients[i] = accept_client(&peers[i], 0);
        REQUIRE(clients[i] != NULL);
        snprintf(key, sizeof(key), "entry:pending:%d", i);
        sds cmd = set_command(key, "queued");
        REQUIRE(send_all(peers[i], cmd));
        sdsfree(cmd);
    }

    /* Shrink with reads out. */
    wake_workers();
    for (int i = 0; i < PENDING_CLIENTS / 2; i++)
        EXPECT(trySendReadToIOThreads(clients[i]) == C_OK);
    server.io_threads_num = 2;
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(server.active_io_threads_num == 1);
    EXPECT(await_workers(2));
    for (int i = 0; i < PENDING_CLIENTS / 2; i++) {
        EXPECT(finish_read(clients[i]) >= 0);
        snprintf(key, sizeof(key), "entry:pending:%d", i);
        const char *value = string_value(clients[i], key);
        EXPECT(value && strcmp(value, "queued") == 0);
    }

    /* Grow with reads out. */
    wake_workers();
    for (int i = PENDING_CLIENTS / 2; i < PENDING_CLIENTS; i++)
        EXPECT(trySendReadToIOThreads(clients[i]) == C_OK);
    server.io_threads_num = 3;
    EXPECT(updateIOThreads(&err) == 1);
    EXPECT(server.active_io_threads_num == 1);
    EXPECT(await_workers(3));
    for (int i = PENDING_CLIENTS / 2; i < PENDING_CLIENTS; i++) {
        EXPECT(finish_read(clients[i]) >= 0);
        snprintf(key, sizeof(key), "entry:pending:%d", i);
        const char *value = string_value(clients[i], key);
        EXPECT(value && strcmp(value, "queued") == 0);
    }
    EXPECT(err == NULL);

    /* The replies, written by the new workers. */
    wake_workers();
    for (int i = 0; i < PENDING_CLIENTS; i++) {
        EXPECT(finish_write(clients[i]) >= 0);
    }
    park_workers();
    for (int i = 0; i < PENDING_CLIENTS; i++) {
        char reply[6] = {0};
        EXPECT(recv_exactly(peers[i], reply, 5) == 5 && memcmp(reply, "+OK\r\n", 5) == 0);
        freeClient(clients[i]);
        close(peers[i]);
    }
}

/* ---------------------------------------------------------------------------
 * 6. Poll offload
 * ------------------------------------------------------------------------- */

static int pipe_events;

static void on_pipe_readable(aeEventLoop *el, int fd, void *data, int mask) {
    (void)el;
    (void)data;
    (void)mask;
    char byte;
    if (read(fd, &byte, 1) == 1) pipe_events++;
}

static void check_poll_offload(void) {
    int pipefd[2], peer;
    REQUIRE(pipe(pipefd) == 0);
    REQUIRE(aeCreateFileEvent(server.el, pipefd[0], AE_READABLE, on_pipe_readable, NULL) == AE_OK);
    client *c = accept_client(&peer, 0);
    REQUIRE(c != NULL);
    REQUIRE(send_all(peer, "*1\r\n$4\r\nPING\r\n"));
    REQUIRE(write(pipefd[1], "x", 1) == 1);
    long long polls_before = server.stat_poll_processed_by_io_threads;
    pipe_events = 0;

    wake_workers();

    /* No response to wait for: the main thread polls for itself. */
    trySendPollJobToIOThreads();
    EXPECT(server.io_poll_state == AE_IO_STATE_NONE);

    REQUIRE(trySendReadToIOThreads(c) == C_OK);
    trySendPollJobToIOThreads();
    EXPECT(atomic_load(&server.io_poll_state) != AE_IO_STATE_NONE);
    trySendPollJobToIOThreads(); /* one poll at a time: no second job */

    long long deadline = now_ms() + WAIT_MS;
    while (atomic_load_explicit(&server.io_poll_state, memory_order_acquire) != AE_IO_STATE_DONE &&
           now_ms() < deadline)
        ;
    EXPECT(server.io_poll_state == AE_IO_STATE_DONE);

    /* The event loop takes the worker's results instead of polling. */
    aeProcessEvents(server.el, AE_FILE_EVENTS | AE_DONT_WAIT);
    EXPECT(pipe_events == 1);
    EXPECT(server.io_poll_state == AE_IO_STATE_NONE);
    EXPECT(server.stat_poll_processed_by_io_threads == polls_before + 1);

    /* And polls by itself again on the next round. */
    REQUIRE(write(pipefd[1], "y", 1) == 1);
    aeProcessEvents(server.el, AE_FILE_EVENTS | AE_DONT_WAIT);
    EXPECT(pipe_events == 2);
    EXPECT(server.stat_poll_processed_by_io_threads == polls_before + 1);

    EXPECT(finish_read(c) >= 0);
    EXPECT(finish_write(c) >= 0);
    park_workers();
    char reply[8] = {0};
    EXPECT(recv_exactly(peer, reply, 7) == 7 && memcmp(reply, "+PONG\r\n", 7) == 0);

    aeDeleteFileEvent(server.el, pipefd[0], AE_READABLE);
    close(pipefd[0]);
    close(pipefd[1]);
    freeClient(c);
    close(peer);
}

/* ---------------------------------------------------------------------------
 * 7. Accept offload
 * ------------------------------------------------------------------------- */

/* Valkey hands a worker the accept of a TLS connection, whose handshake is
 * slow; here the connection is a plain socket one, created as the listener
 * creates it and given a client, but not yet accepted. */
static void check_accept_offload(void) {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    anetNonBlock(NULL, fds[0]);
    connection *conn = connCreateAccepted(connectionByType(CONN_TYPE_SOCKET), fds[0], NULL);

    /* No client yet, so not marked as one whose accept may be offloaded. */
    EXPECT(trySendAcceptToIOThreads(conn) == C_ERR);

    client *c = createClient(conn);
    REQUIRE(c != NULL);
    REQUIRE(connGetState(conn) == CONN_STATE_ACCEPTING);
    EXPECT(trySendAcceptToIOThreads(conn) == C_ERR); /* workers parked */
    EXPECT(c->io_read_state == CLIENT_IDLE);

    long long offloaded_before = server.stat_io_accept_offloaded;
    wake_workers();
    REQUIRE(trySendAcceptToIOThreads(conn) == C_OK);
    EXPECT(clientHasPendingIO(c));
    EXPECT(trySendAcceptToIOThreads(conn) == C_OK); /* already out: not queued again */
    EXPECT(server.stat_io_accept_offloaded == offloaded_before + 1);
    EXPECT(server.stat_io_reads_pending == 1);

    EXPECT(finish_read(c) >= 1);
    EXPECT(connGetState(conn) == CONN_STATE_CONNECTED);
    EXPECT(server.stat_io_reads_pending == 0);
    park_workers();

    freeClient(c);
    close(fds[1]);
}

/* ---------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------- */

static void check_kill_threads(void) {
    killIOThreads();
    EXPECT(await_workers(1));
}

int main(int argc, char **argv) {
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;

    start_server(verbose);
    signal(SIGALRM, on_alarm); /* after initServer, which installs its own handlers */

    run_check("init_starts_parked_workers", check_init_starts_parked_workers);
    run_check("parked_workers_take_no_jobs", check_parked_workers_take_no_jobs);
    run_check("sleep_hooks_wake_and_park", check_sleep_hooks_wake_and_park);
    run_check("read_offload_runs_ping", check_read_offload_runs_ping);
    run_check("read_offload_sets_key", check_read_offload_sets_key);
    run_check("read_offload_pipeline", check_read_offload_pipeline);
    run_check("write_offload_large_reply", check_write_offload_large_reply);
    run_check("free_obj_offload", check_free_obj_offload);
    run_check("free_argv_offload", check_free_argv_offload);
    run_check("update_threads_idle", check_update_threads_idle);
    run_check("update_threads_with_reads_pending", check_update_threads_with_reads_pending);
    run_check("poll_offload", check_poll_offload);
    run_check("accept_offload", check_accept_offload);
    run_check("kill_threads", check_kill_threads);

    printf("%d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}
