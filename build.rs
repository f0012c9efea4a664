//! Generates the C header for the library's exports with cbindgen.
//!
//! The header is written to `$OUT_DIR/valkey_iocore.h`; a unit test compares
//! it with the committed `include/valkey_iocore.h`, so a stale copy fails
//! `make test`. `make headers` (part of `make`) sets IOCORE_UPDATE_HEADERS=1
//! to refresh the committed copy.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=IOCORE_UPDATE_HEADERS");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is unreadable");
    let header = out_dir.join("valkey_iocore.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
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
