/* What Valkey's queues.c needs from the rest of the server, so it can be
 * linked on its own into the C tests and the ring benchmarks.
 *
 * zmalloc.h renames zmalloc/zfree/zmalloc_cache_aligned to valkey_* and
 * serverassert.h routes assert() to _serverAssert(); these stand-ins use the
 * C library's allocator and print the failed expression before aborting,
 * which is what a test or a benchmark needs from them. */

#include <stdio.h>
#include <stdlib.h>

#include "config.h" /* CACHE_LINE_SIZE */

static void *or_die(void *p, size_t size) {
    if (p == NULL) {
        fprintf(stderr, "valkey_shim: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

void *valkey_malloc(size_t size) {
    return or_die(malloc(size), size);
}

/* Freed with valkey_free() like any other block, so it must come from an
 * allocator whose free() accepts it: posix_memalign's blocks do. */
void *valkey_malloc_cache_aligned(size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, CACHE_LINE_SIZE, size) != 0) p = NULL;
    return or_die(p, size);
}

void valkey_free(void *ptr) {
    free(ptr);
}

void _serverAssert(const char *estr, const char *file, int line) {
    fprintf(stderr, "=== ASSERTION FAILED ===\n==> %s:%d '%s' is not true\n", file, line, estr);
    abort();
}
