/* What the Rust core needs from Valkey: bindgen reads this file with
 * Valkey's own flags (see build.rs). */
#ifndef VALKEY_IOCORE_BINDINGS_H
#define VALKEY_IOCORE_BINDINGS_H

#include "server.h"
#include "io_threads.h"
#include "connection.h"
#include "cluster_migrateslots.h"
#include "memory_prefetch.h"

#endif
