/* The server the entry points expect, for C tests that link a Valkey tree's
 * libvalkey.a (entry_points_test.c, boundary_test.c): config defaults, ACL,
 * modules, connection types, then initServer (event loop, client lists,
 * databases, shared objects). No listeners, no Lua engine, no data, no bio
 * threads. io-threads is 3, so there are two workers to start. */
#ifndef IOCORE_C_TESTS_VALKEY_SERVER_H
#define IOCORE_C_TESTS_VALKEY_SERVER_H

#include "server.h"

#include <time.h>
#include <unistd.h>

/* Start-up functions server.c and module.c define but no header declares. */
void initServerConfig(void);
void initServer(void);
void moduleInitModulesSystem(void);

static void start_test_server(int verbosity) {
    uint8_t seed[16];

    tzset();
    getRandomBytes(seed, sizeof(seed));
    dictSetHashFunctionSeed(seed);
    hashtableSetHashFunctionSeed(seed);

    initServerConfig();
    server.pid = getpid();
    ACLInit();
    moduleInitModulesSystem();
    connTypeInitialize();

    server.verbosity = verbosity;
    server.protected_mode = 0;
    server.io_threads_num = 3;
    initServer();
}

#endif
