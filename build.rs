//! Build script.
//!
//! Always: generates the C header for the library's exports with cbindgen.
//! The header is written to `$OUT_DIR/valkey_iocore.h`; a unit test compares
//! it with the committed `include/valkey_iocore.h`, so a stale copy fails
//! `make test`. `make headers` (part of `make`) sets IOCORE_UPDATE_HEADERS=1
//! to refresh the committed copy.
//!
//! With the `valkey` feature: generates Rust bindings to the Valkey tree's
//! headers with bindgen, using the exact flags Valkey compiles with (struct
//! layouts depend on them), compiles C wrappers for the static inline helpers
//! the core calls, and compiles a file of `_Static_assert`s that checks, with
//! Valkey's own compiler and flags, every size and offset bindgen assumed.
//! Inputs, set by the patched Valkey Makefile:
//!   VALKEY_SRC_DIR  absolute path of the tree's `src/`
//!   VALKEY_CFLAGS   Valkey's `$(FINAL_CFLAGS)`
//!   VALKEY_CC       the C compiler Valkey uses (default: cc)

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    generate_header(&crate_dir, &out_dir);

    #[cfg(feature = "valkey")]
    valkey::generate_bindings(&crate_dir, &out_dir);
}

fn generate_header(crate_dir: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=IOCORE_UPDATE_HEADERS");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is unreadable");
    let header = out_dir.join("valkey_iocore.h");
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write_to_file(&header);
    println!(
        "cargo:rustc-env=IOCORE_GENERATED_HEADER={}",
        header.display()
    );

    if env::var_os("IOCORE_UPDATE_HEADERS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(crate_dir.join("include")).unwrap();
        std::fs::copy(&header, crate_dir.join("include/valkey_iocore.h")).unwrap();
    }
}

#[cfg(feature = "valkey")]
mod valkey {
    use std::env;
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    /// Structs whose layout the Rust side depends on; every size and field
    /// offset bindgen computed for them is re-checked by Valkey's compiler.
    const CHECKED_STRUCTS: &[&str] = &[
        "client",
        "valkeyServer",
        "connection",
        "serverObject",
        "clientReplyBlock",
        "replBufBlock",
        "list",
        "listNode",
        "ClientReplicationData",
    ];

    /// Valkey functions the core calls.
    const FUNCTIONS: &[&str] = &[
        "_serverLog",
        "_serverPanic",
        "_serverAssert",
        "valkey_malloc",
        "valkey_calloc",
        "valkey_realloc",
        "valkey_free",
        "valkey_malloc_cache_aligned",
        "getClientType",
        "clientConnPostponeMaskFromIOState",
        "connSetPostponeUpdateState",
        "connAccept",
        "connGetPrivateData",
        "connUpdateState",
        "canParseCommand",
        "authRequired",
        "isReplicatedClient",
        "clientHasPendingReplies",
        "clusterSlotMigrationShouldInstallWriteHandler",
        "processClientIOReadsDone",
        "processClientsCommandsBatch",
        "lookupClientByID",
        "processPendingCommandAndInputBuffer",
        "beforeNextClient",
        "clientConnPostponeMask",
        "processClientIOWriteDone",
        "listUnlinkNode",
        "initSharedQueryBuf",
        "freeSharedQueryBuf",
        "prefetchCommandsBatchInit",
        "aePoll",
        "aeSetCustomPollProc",
        "aeSetPollProtect",
        "decrRefCount",
        "trackInstantaneousMetric",
        "getInstantaneousMetric",
        "ioThreadReadQueryFromClient",
        "ioThreadWriteToClient",
    ];

    /// Static inline helpers: bindgen writes C wrappers for them, compiled
    /// below with Valkey's flags.
    const STATIC_INLINE: &[&str] = &[
        "getClientType",
        "clientConnPostponeMaskFromIOState",
        "connSetPostponeUpdateState",
        "connAccept",
        "connGetPrivateData",
        "connUpdateState",
    ];

    /// Enums whose constants the core uses.
    const ENUMS: &[&str] = &[
        "JobRequest",
        "JobResult",
        "clientIOState",
        "instantaneous_metric_type",
    ];

    const CONSTANTS: &[&str] = &[
        "IO_THREADS_MAX_NUM",
        "CLIENT_IDLE",
        "CLIENT_PENDING_IO",
        "CLIENT_COMPLETED_IO",
        "CLIENT_TYPE_REPLICA",
        "REPLICA_STATE_ONLINE",
        "READ_FLAGS_.*",
        "WRITE_FLAGS_IS_REPLICA",
        "OBJ_ENCODING_RAW",
        "OBJ_STRING",
        "AE_IO_STATE_.*",
        "CONN_FLAG_ALLOW_ACCEPT_OFFLOAD",
        "STATS_METRIC_.*",
        "LL_.*",
        "C_OK",
        "C_ERR",
        "JOB_REQ_.*",
        "JOB_RES_.*",
    ];

    pub fn generate_bindings(crate_dir: &Path, out_dir: &Path) {
        for var in ["VALKEY_SRC_DIR", "VALKEY_CFLAGS", "VALKEY_CC"] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let src_dir = PathBuf::from(env::var("VALKEY_SRC_DIR").expect(
            "the `valkey` feature needs VALKEY_SRC_DIR (the Valkey tree's src/) and VALKEY_CFLAGS \
             (its FINAL_CFLAGS); the patched Valkey Makefile passes both",
        ));
        let cflags = env::var("VALKEY_CFLAGS").expect("the `valkey` feature needs VALKEY_CFLAGS");
        let cc = env::var("VALKEY_CC").unwrap_or_else(|_| "cc".to_owned());

        let wrapper = crate_dir.join("src/valkey/bindings.h");
        println!("cargo:rerun-if-changed={}", wrapper.display());
        for header in [
            "server.h",
            "io_threads.h",
            "connection.h",
            "ae.h",
            "adlist.h",
        ] {
            println!("cargo:rerun-if-changed={}", src_dir.join(header).display());
        }

        let clang_args = clang_args(&src_dir, &cflags);
        let static_fns = out_dir.join("valkey_static_fns");
        let mut builder = bindgen::Builder::default()
            .header(wrapper.display().to_string())
            .clang_args(&clang_args)
            .use_core()
            .layout_tests(true)
            .derive_default(false)
            .derive_debug(false)
            .generate_comments(false)
            .prepend_enum_name(false)
            .wrap_static_fns(true)
            .wrap_static_fns_path(&static_fns)
            .allowlist_var("server")
            .opaque_type("aeEventLoop")
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
        for f in FUNCTIONS {
            builder = builder.allowlist_function(f);
        }
        for c in CONSTANTS {
            builder = builder.allowlist_item(c);
        }
        for t in CHECKED_STRUCTS.iter().chain(ENUMS) {
            builder = builder.allowlist_type(t);
        }
        let bindings = builder
            .generate()
            .expect("bindgen could not read Valkey's headers (is libclang installed?)");
        let bindings_rs = out_dir.join("valkey_bindings.rs");
        bindings
            .write_to_file(&bindings_rs)
            .expect("cannot write the bindings");

        let text = std::fs::read_to_string(&bindings_rs).unwrap();
        for f in STATIC_INLINE {
            assert!(
                text.contains(&format!("{f}__extern")),
                "bindgen produced no wrapper for the static inline {f}"
            );
        }
        let asserts = out_dir.join("valkey_layout_asserts.c");
        std::fs::write(&asserts, layout_asserts(&wrapper, &text)).unwrap();

        let mut build = cc::Build::new();
        build
            .compiler(&cc)
            .file(static_fns.with_extension("c"))
            .file(&asserts);
        build.include(&src_dir);
        for arg in compiler_args(&src_dir, &cflags) {
            build.flag(&arg);
        }
        build.warnings(false).compile("valkey_iocore_wrappers");
    }

    /// The flags that matter to layout and to finding headers, for clang.
    /// Relative include paths are made absolute (Valkey compiles from src/).
    fn clang_args(src_dir: &Path, cflags: &str) -> Vec<String> {
        let mut args = vec![format!("-I{}", src_dir.display())];
        let mut words = cflags.split_whitespace();
        while let Some(word) = words.next() {
            if let Some(path) = word.strip_prefix("-I") {
                let path = if path.is_empty() {
                    words.next().unwrap_or_default()
                } else {
                    path
                };
                args.push(format!("-I{}", absolute(src_dir, path).display()));
            } else if word.starts_with("-D")
                || word.starts_with("-U")
                || word.starts_with("-std=")
                || word == "-m32"
                || word == "-funsigned-char"
            {
                args.push(word.to_owned());
            }
        }
        args
    }

    /// Valkey's own flags for the wrapper and assert files, with include
    /// paths made absolute and link-time optimisation left to the final link.
    fn compiler_args(src_dir: &Path, cflags: &str) -> Vec<String> {
        let mut args = Vec::new();
        let mut words = cflags.split_whitespace();
        while let Some(word) = words.next() {
            if let Some(path) = word.strip_prefix("-I") {
                let path = if path.is_empty() {
                    words.next().unwrap_or_default()
                } else {
                    path
                };
                args.push(format!("-I{}", absolute(src_dir, path).display()));
            } else if !word.starts_with("-flto")
                && !word.starts_with("-Werror")
                && word != "-pedantic"
            {
                args.push(word.to_owned());
            }
        }
        args
    }

    fn absolute(src_dir: &Path, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_owned()
        } else {
            src_dir.join(path)
        }
    }

    /// Turns bindgen's layout checks for the structs in CHECKED_STRUCTS into
    /// C `_Static_assert`s.
    fn layout_asserts(wrapper: &Path, bindings: &str) -> String {
        let mut c = format!(
            "/* Generated by build.rs: the layouts bindgen (clang) computed, checked by\n \
             * Valkey's own compiler with Valkey's own flags. */\n#include <stddef.h>\n\
             #include \"{}\"\n",
            wrapper.display()
        );
        // rustfmt may split a check over two lines: rejoin them.
        let joined = bindings.replace("\"]\n", "\"]");
        let mut checked = 0;
        for line in joined.lines().map(str::trim) {
            // ["Size of client"][::core::mem::size_of::<client>() - 1234usize];
            // ["Offset of field: client::conn"][::core::mem::offset_of!(client, conn) - 16usize];
            let Some(rest) = line.strip_prefix("[\"") else {
                continue;
            };
            let Some((label, expr)) = rest.split_once("\"]") else {
                continue;
            };
            let expr = expr.trim_start();
            let Some(value) = expr
                .rsplit_once(" - ")
                .and_then(|(_, v)| v.strip_suffix("usize];"))
            else {
                continue;
            };
            if let Some(ty) = label.strip_prefix("Size of ") {
                if CHECKED_STRUCTS.contains(&ty) {
                    let _ = writeln!(
                        c,
                        "_Static_assert(sizeof({}) == {value}, \"{label}\");",
                        c_type(ty)
                    );
                    checked += 1;
                }
            } else if let Some(field) = label.strip_prefix("Offset of field: ") {
                let Some((ty, member)) = field.split_once("::") else {
                    continue;
                };
                let member = c_member(member);
                if CHECKED_STRUCTS.contains(&ty) {
                    let _ = writeln!(
                        c,
                        "_Static_assert(offsetof({}, {member}) == {value}, \"{label}\");",
                        c_type(ty)
                    );
                    checked += 1;
                }
            } else if let Some(ty) = label.strip_prefix("Alignment of ") {
                if CHECKED_STRUCTS.contains(&ty) {
                    let _ = writeln!(
                        c,
                        "_Static_assert(_Alignof({}) == {value}, \"{label}\");",
                        c_type(ty)
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 50,
            "found only {checked} layout checks in bindgen's output"
        );
        c
    }

    /// The C name of a field bindgen renamed because it is a Rust keyword.
    fn c_member(member: &str) -> &str {
        const KEYWORDS: &[&str] = &[
            "type", "match", "ref", "fn", "loop", "move", "mod", "impl", "use",
        ];
        match member.strip_suffix('_') {
            Some(name) if KEYWORDS.contains(&name) => name,
            _ => member,
        }
    }

    /// The C spelling of a type bindgen named.
    fn c_type(ty: &str) -> String {
        match ty {
            "valkeyServer" | "serverObject" | "connection" | "ClientReplicationData" => {
                format!("struct {ty}")
            }
            _ => ty.to_owned(),
        }
    }
}
