//! What the loom models share.

use loom::model::Builder;

/// Runs `body` under loom with `preemptions` as the default bound;
/// `LOOM_MAX_PREEMPTIONS` overrides it.
pub fn model(preemptions: usize, body: impl Fn() + Sync + Send + 'static) {
    let mut builder = Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(body);
}
