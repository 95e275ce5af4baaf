//! The sign-in rate limit: each client address may try to sign in (with a key or a link) a few
//! times a minute. Keys are long random strings, so guessing is hopeless anyway; the limit
//! keeps it from costing anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use waitpoint_types::Timestamp;

/// Attempts allowed per address per [`WINDOW`].
pub(crate) const ATTEMPTS: u32 = 10;
/// The window attempts are counted over.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond, the oldest windows are forgotten first.
const ADDRESSES: usize = 10_000;

/// Attempts per client address in the current window.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    windows: Mutex<HashMap<Option<IpAddr>, (Timestamp, u32)>>,
}

impl Throttle {
    /// Counts an attempt from `client` at `now`; `false` when it is one too many.
    pub(crate) fn allow(&self, client: Option<IpAddr>, now: Timestamp) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= ADDRESSES {
            windows.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
        }
        let (started, attempts) = windows.entry(client).or_insert((now, 0));
        if now.duration_since(*started) >= WINDOW || *started > now {
            (*started, *attempts) = (now, 0);
        }
        *attempts += 1;
        *attempts <= ATTEMPTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_attempts_per_window() {
        let throttle = Throttle::default();
        let now = Timestamp::from_millis(1_000_000);
        let (a, b) = (Some("127.0.0.1".parse().unwrap()), Some("127.0.0.2".parse().unwrap()));
        for _ in 0..ATTEMPTS {
            assert!(throttle.allow(a, now));
        }
        assert!(!throttle.allow(a, now));
        assert!(throttle.allow(b, now), "another address has its own");
        assert!(throttle.allow(a, now.saturating_add(WINDOW)), "a new window");
    }
}
