/* The entry points' prototypes, checked against Valkey's own headers.
 *
 * Compiled with the Valkey tree's own flags. Valkey's server.h (which
 * declares waitForClientIO), io_threads.h and queues.h come first, then our
 * cbindgen header with the Valkey half switched on: any export whose
 * prototype differs from Valkey's declaration is a "conflicting types"
 * error, and the build stops. The file only has to compile.
 *
 * commitIOJobs and getPendingIOResponsesCount have no declaration in
 * Valkey's headers (io_threads.c defines the first without one and the
 * second as static); their prototypes here are ours alone. */

#include "server.h"
#include "io_threads.h"
#include "queues.h"

#define IOCORE_VALKEY 1
#include "valkey_iocore.h"

/* Each function is named once more through a pointer of Valkey's type, so a
 * prototype the compiler would accept but convert still fails. */
#define SAME(fn, type) static __typeof__(type) fn##_as_valkey_declares_it __attribute__((unused)) = fn

SAME(initIOThreads, void (*)(int));
SAME(killIOThreads, void (*)(void));
SAME(inMainThread, int (*)(void));
SAME(trySendReadToIOThreads, int (*)(client *));
SAME(trySendWriteToIOThreads, int (*)(client *));
SAME(tryOffloadFreeObjToIOThreads, int (*)(robj *));
SAME(tryOffloadFreeArgvToIOThreads, int (*)(client *, int, robj **));
SAME(IOThreadsAfterSleep, void (*)(int));
SAME(IOThreadsBeforeSleep, void (*)(long long));
SAME(drainIOThreadsQueue, void (*)(void));
SAME(trySendPollJobToIOThreads, void (*)(void));
SAME(trySendAcceptToIOThreads, int (*)(connection *));
SAME(updateIOThreads, int (*)(const char **));
SAME(getIOThreadActiveTimeMicroseconds, long long (*)(int));
SAME(clientHasPendingIO, int (*)(struct client *));
SAME(processIOThreadsResponses, int (*)(void));
SAME(getCurTid, int (*)(void));
SAME(sendToMainThread, void (*)(void *, int));
SAME(waitForClientIO, void (*)(client *));
SAME(commitIOJobs, void (*)(void));
SAME(getPendingIOResponsesCount, int (*)(void));
