//! When to activate and deactivate workers: Valkey 9.1.2's policy.
//!
//! The decision itself is the pure function [`target_active`]. [`Scaler`]
//! adds the clock: it samples the shared inbox's depth every
//! [`SAMPLE_INTERVAL_MS`], averages the last [`SAMPLES`] samples, and asks for
//! a decision every [`SAMPLES`] samples. [`may_deactivate`] holds the two
//! guards that can veto a step down. Time is passed in, so tests drive the
//! policy with a fake clock.

/// Wake the first worker when the main thread is busier than this.
pub const IGNITION_MAIN_THREAD_ACTIVE_PERCENT: f32 = 30.0;
/// How often the shared inbox's depth is sampled.
pub const SAMPLE_INTERVAL_MS: i64 = 10;
/// Samples averaged per decision, and samples between decisions
/// (Valkey's `STATS_METRIC_SAMPLES`).
pub const SAMPLES: usize = 16;
/// No step down until this long after the last change.
pub const COOLDOWN_MS: i64 = 1000;

/// What a decision looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// Percentage of wall time the main thread spent working, recently.
    pub main_thread_active_percent: f32,
    /// Mean depth of the shared inbox over the last samples.
    pub avg_shared_inbox_depth: u64,
    /// Milliseconds since the active count last went up (or ignition).
    pub ms_since_last_change: i64,
    /// Threads configured, the main thread included.
    pub configured: usize,
    /// Threads active now, the main thread included.
    pub active: usize,
}

/// The active thread count the policy wants, one step from `active` at most.
///
/// - With only the main thread active: ignite one worker when the main
///   thread is busier than [`IGNITION_MAIN_THREAD_ACTIVE_PERCENT`].
/// - Otherwise: one more when jobs queue up (mean depth above 1) and a
///   thread is left; one fewer when the inbox stayed empty (mean depth 0)
///   and the last change is older than [`COOLDOWN_MS`].
pub fn target_active(inputs: &Inputs) -> usize {
    let Inputs {
        active, configured, ..
    } = *inputs;
    if active <= 1 {
        let ignite = configured > 1
            && inputs.main_thread_active_percent > IGNITION_MAIN_THREAD_ACTIVE_PERCENT;
        return if ignite { 2 } else { 1 };
    }
    if inputs.avg_shared_inbox_depth > 1 && active < configured {
        active + 1
    } else if inputs.avg_shared_inbox_depth == 0 && inputs.ms_since_last_change > COOLDOWN_MS {
        active - 1
    } else {
        active
    }
}

/// Whether a step down from `active` to `active - 1` may go ahead: never
/// while the worker being deactivated (id `active - 1`) still has jobs in its
/// private inbox, and never down to the main thread alone while the shared
/// inbox holds work.
pub fn may_deactivate(
    active: usize,
    retiring_inbox_is_empty: bool,
    shared_inbox_is_empty: bool,
) -> bool {
    retiring_inbox_is_empty && (active - 1 > 1 || shared_inbox_is_empty)
}

/// A step the policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Stay,
    /// Activate workers up to this active count.
    Up(usize),
    /// Deactivate one worker, to this active count (check [`may_deactivate`]).
    Down(usize),
}

/// The sampling clock around [`target_active`], for the dynamic mode.
#[derive(Debug, Clone)]
pub struct Scaler {
    last_change_ms: i64,
    last_sample_ms: i64,
    sample_count: u64,
    samples: [u64; SAMPLES],
    next_sample: usize,
}

impl Default for Scaler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scaler {
    pub const fn new() -> Self {
        Self {
            last_change_ms: 0,
            last_sample_ms: 0,
            sample_count: 0,
            samples: [0; SAMPLES],
            next_sample: 0,
        }
    }

    /// Runs after each event-loop sleep. `depth` samples the shared inbox
    /// and is called only when a sample is due.
    pub fn after_sleep(
        &mut self,
        now_ms: i64,
        configured: usize,
        active: usize,
        main_thread_active_percent: f32,
        depth: impl FnOnce() -> usize,
    ) -> Step {
        let mut inputs = Inputs {
            main_thread_active_percent,
            avg_shared_inbox_depth: 0,
            ms_since_last_change: now_ms - self.last_change_ms,
            configured,
            active,
        };

        if active <= 1 {
            let target = target_active(&inputs);
            if target > active {
                self.last_change_ms = now_ms;
                return Step::Up(target);
            }
            return Step::Stay;
        }

        if now_ms - self.last_sample_ms < SAMPLE_INTERVAL_MS {
            return Step::Stay;
        }
        self.last_sample_ms = now_ms;
        self.samples[self.next_sample] = depth() as u64;
        self.next_sample = (self.next_sample + 1) % SAMPLES;
        self.sample_count += 1;
        if self.sample_count % SAMPLES as u64 != 0 {
            return Step::Stay;
        }

        inputs.avg_shared_inbox_depth = self.samples.iter().sum::<u64>() / SAMPLES as u64;
        let target = target_active(&inputs);
        if target > active {
            self.last_change_ms = now_ms;
            Step::Up(target)
        } else if target < active {
            Step::Down(target)
        } else {
            Step::Stay
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(active: usize, depth: u64, since: i64) -> Inputs {
        Inputs {
            main_thread_active_percent: 0.0,
            avg_shared_inbox_depth: depth,
            ms_since_last_change: since,
            configured: 4,
            active,
        }
    }

    #[test]
    fn ignites_only_above_thirty_percent() {
        let mut i = inputs(1, 100, 0);
        i.main_thread_active_percent = 30.0;
        assert_eq!(target_active(&i), 1);
        i.main_thread_active_percent = 30.5;
        assert_eq!(target_active(&i), 2);
        i.configured = 1;
        assert_eq!(
            target_active(&i),
            1,
            "nothing to ignite with one thread configured"
        );
    }

    #[test]
    fn steps_up_when_jobs_queue_and_a_thread_is_left() {
        assert_eq!(target_active(&inputs(2, 2, 0)), 3);
        assert_eq!(
            target_active(&inputs(2, 1, 0)),
            2,
            "a mean depth of 1 is not a queue"
        );
        assert_eq!(
            target_active(&inputs(4, 50, 0)),
            4,
            "all configured threads are active"
        );
    }

    #[test]
    fn steps_down_only_when_idle_after_the_cooldown() {
        assert_eq!(target_active(&inputs(3, 0, COOLDOWN_MS)), 3);
        assert_eq!(target_active(&inputs(3, 0, COOLDOWN_MS + 1)), 2);
        assert_eq!(target_active(&inputs(3, 1, COOLDOWN_MS + 1)), 3);
    }

    #[test]
    fn guards_veto_a_step_down() {
        assert!(may_deactivate(3, true, false));
        assert!(
            !may_deactivate(3, false, true),
            "the retiring worker still has jobs"
        );
        assert!(!may_deactivate(2, true, false), "shared jobs need a worker");
        assert!(may_deactivate(2, true, true));
    }

    #[test]
    fn scaler_samples_every_interval_and_decides_every_sixteen_samples() {
        let mut scaler = Scaler::new();
        let mut now = 5_000;
        assert_eq!(
            scaler.after_sleep(now, 4, 1, 50.0, || unreachable!()),
            Step::Up(2)
        );

        let mut sampled = 0;
        let mut steps = Vec::new();
        for _ in 0..(SAMPLES * 2) {
            now += SAMPLE_INTERVAL_MS;
            steps.push(scaler.after_sleep(now, 4, 2, 0.0, || {
                sampled += 1;
                8
            }));
            // A call within the same interval takes no sample.
            let step =
                scaler.after_sleep(now + SAMPLE_INTERVAL_MS - 1, 4, 2, 0.0, || unreachable!());
            assert_eq!(step, Step::Stay);
        }
        assert_eq!(sampled, SAMPLES * 2);
        let ups: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != Step::Stay)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ups, vec![SAMPLES - 1, 2 * SAMPLES - 1]);
        assert_eq!(steps[SAMPLES - 1], Step::Up(3));
    }

    #[test]
    fn scaler_steps_down_after_cooldown_with_an_empty_inbox() {
        let mut scaler = Scaler::new();
        let mut now = 10_000;
        assert_eq!(scaler.after_sleep(now, 4, 1, 99.0, || 0), Step::Up(2));
        let mut first_down = None;
        for _ in 0..(SAMPLES * 20) {
            now += SAMPLE_INTERVAL_MS;
            if let Step::Down(to) = scaler.after_sleep(now, 4, 2, 0.0, || 0) {
                first_down = Some((now, to));
                break;
            }
        }
        let (when, to) = first_down.expect("an idle pool must step down");
        assert_eq!(to, 1);
        assert!(
            when - 10_000 > COOLDOWN_MS,
            "stepped down {} ms after ignition",
            when - 10_000
        );
    }
}
