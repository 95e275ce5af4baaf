//! The process's budget of open file descriptors. Every connection holds one; so do the
//! database (files or sockets), the listener and the logs. The connection cap is derived from
//! this budget so that, with the cap reached, the rest of the server still finds descriptors.

use std::io;
use std::num::NonZeroUsize;

/// The most connections served at once unless configured otherwise, however high the limit.
pub const MAX_DEFAULT_CONNECTIONS: usize = 10_000;

/// The soft limit on open descriptors: `None` where the platform has none, or it cannot be read.
pub fn limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get().ok().map(|(soft, _hard)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit on open descriptors to the hard limit, as far as the platform allows
/// (macOS caps it at `kern.maxfilesperproc`), and returns the soft limit now in force (as
/// [`limit`]). A process may always raise its soft limit up to its hard limit: no privilege is
/// needed. Errors when the limit cannot be read or set.
pub fn raise_limit() -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(rlimit::INFINITY).map(Some)
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// The connection cap for a descriptor limit: half of it, leaving the other half to everything
/// else, and at most [`MAX_DEFAULT_CONNECTIONS`] (also when the limit is unknown); at least 1.
pub fn default_max_connections(limit: Option<u64>) -> NonZeroUsize {
    let half = limit.map_or(u64::MAX, |limit| limit / 2);
    let cap = usize::try_from(half).unwrap_or(usize::MAX).min(MAX_DEFAULT_CONNECTIONS);
    NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_is_half_the_limit_within_bounds() {
        let cap = |limit| default_max_connections(limit).get();
        assert_eq!(cap(Some(256)), 128);
        assert_eq!(cap(Some(1024)), 512);
        assert_eq!(cap(Some(1_048_576)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(cap(Some(u64::MAX)), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(cap(None), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(cap(Some(1)), 1);
        assert_eq!(cap(Some(0)), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raising_sets_the_soft_limit_to_the_hard_limit() {
        let raised = raise_limit().unwrap();
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!((raised, limit()), (Some(hard), Some(soft)));
        assert_eq!(soft, hard);
    }
}
