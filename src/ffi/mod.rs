//! The C-facing layer: Valkey's names and prototypes over the safe core.
//!
//! Nothing outside this module uses C names. Each export follows the pointer
//! rules in the crate documentation; its `# Safety` section adds only what is
//! specific to it.

#[cfg(feature = "valkey")]
pub mod io_threads;
pub mod queues;
