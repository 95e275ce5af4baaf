//! How a worker is set up, and who it is: its id and its session.

use std::sync::Arc;
use std::time::Duration;

use waitpoint_clock::{Clock, SystemClock};
use waitpoint_types::IdGenerator;

use crate::{Error, Result};

/// The longest instance name (the bare part of a worker id).
const MAX_INSTANCE_LEN: usize = 64;

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Runs whose code executes at once. Suspended runs do not count, nor runs whose code
    /// returned while their outcome is being reported.
    pub concurrency: usize,
    /// Suspended runs kept in memory; beyond this the oldest are dropped and resume by replay.
    pub max_suspended: usize,
    /// On shutdown, how long executing runs get to finish or suspend before they are stopped
    /// (and handed back to the server, to resume elsewhere by replay).
    pub shutdown_grace: Duration,
    /// This process's name among the workers, such as `billing-1`: the worker id is then
    /// `worker_<instance>`, the same across restarts, so a restarted process takes back at
    /// once the runs it held when it died. Without a name each process gets a new id, and the
    /// runs of a killed one move on only once the server presumes it gone (`--worker-timeout`,
    /// 30 s by default).
    ///
    /// Lowercase letters, digits and `-`, at most 64. One name per process: a process that
    /// starts with a name takes the worker over from the one that had it, which stops with
    /// [`Error::WorkerReplaced`]. [`WorkerConfig::from_env`] reads it from
    /// `WAITPOINT_WORKER_INSTANCE`.
    pub instance: Option<String>,
    /// Where the worker and its runs read the time (`ctx.now()`, the session, the pace of its
    /// warnings): the system clock, unless a test passes a manual one.
    pub clock: Arc<dyn Clock>,
}

impl Default for WorkerConfig {
    /// 100 runs at once, 10,000 suspended in memory, 30 s of grace, no instance name, the
    /// system clock.
    fn default() -> Self {
        Self {
            concurrency: 100,
            max_suspended: 10_000,
            shutdown_grace: Duration::from_secs(30),
            instance: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl WorkerConfig {
    /// The defaults, with the instance name from `WAITPOINT_WORKER_INSTANCE` when it is set.
    pub fn from_env() -> Self {
        Self { instance: crate::env::worker_instance(), ..Self::default() }
    }
}

/// Who a worker process is: the worker id it polls as, and its session (made when it starts;
/// later starts make sessions that sort after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) id: String,
    pub(super) session: String,
}

impl Identity {
    /// The identity `config` gives: `worker_<instance>`, or a new random id.
    pub(super) fn new(config: &WorkerConfig) -> Result<Self> {
        let ids = IdGenerator::new();
        let now = config.clock.now();
        let id = match config.instance.as_deref() {
            Some(instance) => {
                let valid = !instance.is_empty()
                    && instance.len() <= MAX_INSTANCE_LEN
                    && instance.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(Error::Config(format!(
                        "invalid worker instance name {instance:?}: use 1 to {MAX_INSTANCE_LEN} lowercase letters, \
                         digits and '-', one name per process (such as \"billing-1\")"
                    )));
                }
                format!("worker_{instance}")
            }
            None => ids.worker(now).public(),
        };
        Ok(Self { id, session: ids.next_internal(now) })
    }
}

#[cfg(test)]
mod tests {
    use waitpoint_clock::ManualClock;
    use waitpoint_types::Timestamp;

    use super::*;

    fn config(instance: Option<&str>, clock: &ManualClock) -> WorkerConfig {
        WorkerConfig {
            instance: instance.map(str::to_owned),
            clock: Arc::new(clock.clone()),
            ..WorkerConfig::default()
        }
    }

    #[test]
    fn a_named_instance_keeps_its_id_and_each_start_makes_a_later_session() {
        let clock = ManualClock::new(Timestamp::from_millis(1_764_000_000_000));
        let first = Identity::new(&config(Some("billing-1"), &clock)).unwrap();
        clock.advance(Duration::from_millis(1));
        let second = Identity::new(&config(Some("billing-1"), &clock)).unwrap();
        assert_eq!((first.id.as_str(), second.id.as_str()), ("worker_billing-1", "worker_billing-1"));
        assert!(second.session > first.session, "{} then {}", first.session, second.session);

        let anonymous = Identity::new(&config(None, &clock)).unwrap();
        assert!(anonymous.id.starts_with("worker_c") && anonymous.id != first.id);
        assert_ne!(Identity::new(&config(None, &clock)).unwrap().id, anonymous.id, "a new id per process");
    }

    #[test]
    fn instance_names_outside_the_id_alphabet_are_refused() {
        let clock = ManualClock::new(Timestamp::from_millis(0));
        for bad in ["", "Billing", "billing_1", "a b", "worker/1", &"a".repeat(65)] {
            match Identity::new(&config(Some(bad), &clock)) {
                Err(Error::Config(message)) => assert!(message.contains("instance name"), "{message}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(Identity::new(&config(Some(&"a".repeat(64)), &clock)).is_ok());
    }
}
