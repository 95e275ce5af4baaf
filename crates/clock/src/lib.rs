//! The injected clock. Nothing in waitpoint reads the wall clock except [`SystemClock`]: the
//! engine, the server and the SDK take a [`Clock`], and tests drive time with `ManualClock`
//! (feature `manual`) instead of sleeping.
//!
//! # Layout
//! - [`Clock`]: the trait.
//! - [`SystemClock`]: the operating system's wall clock.
//! - `ManualClock` (feature `manual`): a clock that moves only when told to.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use waitpoint_types::Timestamp;

/// A source of time that can also wait for a moment to come.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Returns once [`now`](Self::now) is at or after `deadline` (at once if it already is).
    async fn sleep_until(&self, deadline: Timestamp);
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_millis(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        loop {
            let remaining = deadline.duration_since(self.now());
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(remaining).await;
        }
    }
}

#[cfg(feature = "manual")]
pub use manual::ManualClock;

#[cfg(feature = "manual")]
mod manual {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::watch;
    use waitpoint_types::Timestamp;

    use crate::Clock;

    /// A clock that moves only when told to. Sleepers wake as soon as it passes their deadline.
    #[derive(Debug, Clone)]
    pub struct ManualClock {
        now: Arc<watch::Sender<Timestamp>>,
    }

    impl ManualClock {
        /// A clock standing at `start`.
        pub fn new(start: Timestamp) -> Self {
            Self { now: Arc::new(watch::Sender::new(start)) }
        }

        /// Moves the clock forward by `by`.
        pub fn advance(&self, by: Duration) {
            self.now.send_modify(|now| *now = now.saturating_add(by));
        }

        /// Sets the clock to `to` (which may be earlier: wall clocks step back too).
        pub fn set(&self, to: Timestamp) {
            self.now.send_replace(to);
        }
    }

    #[async_trait::async_trait]
    impl Clock for ManualClock {
        fn now(&self) -> Timestamp {
            *self.now.borrow()
        }

        async fn sleep_until(&self, deadline: Timestamp) {
            let mut changes = self.now.subscribe();
            while *changes.borrow_and_update() < deadline {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_their_deadline() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(Timestamp::from_millis(5_000)).await }
        });
        clock.advance(Duration::from_millis(3_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(1_000));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), Timestamp::from_millis(5_000));
        clock.sleep_until(Timestamp::from_millis(10)).await;
    }
}
