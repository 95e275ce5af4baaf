//! Steps, and the values a run reads once: the time and random values. Each is recorded, so
//! replay returns what the first execution got.

use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use waitpoint_types::{JournalKind, Timestamp};

use crate::{Context, Error, OutputTypeError, Result};

impl Context {
    /// Runs `f` once and records its value: on replay the recorded value is returned and `f`
    /// is not called. For side effects that cannot fail, or that handle their failures
    /// themselves; [`try_step`](Self::try_step) is for those that return a `Result`.
    ///
    /// A step interrupted mid-flight (the worker crashed after `f` ran, before its value was
    /// recorded) runs again: steps are at-least-once, so make their side effects idempotent.
    ///
    /// ```no_run
    /// # async fn task(ctx: waitpoint_sdk::Context) -> waitpoint_sdk::Result<()> {
    /// let answer = ctx.step("think", || async { 42 }).await?;
    /// # assert_eq!(answer, 42); Ok(()) }
    /// ```
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.recorded(JournalKind::Step, name, || async { Ok(f().await) }).await
    }

    /// Runs `f` once and records its `Ok` value, as [`step`](Self::step) does. An `Err` is not
    /// recorded: it comes back as [`StepError::Failed`], the attempt fails with it (through
    /// `?`) and a retry runs `f` again.
    ///
    /// ```no_run
    /// # async fn send() -> std::io::Result<u32> { Ok(1) }
    /// # async fn task(ctx: waitpoint_sdk::Context) -> Result<(), waitpoint_sdk::TaskError> {
    /// let receipt = ctx.try_step("send the invoice", || async { send().await }).await?;
    /// # let _ = receipt; Ok(()) }
    /// ```
    pub async fn try_step<T, E, F, Fut>(&self, name: &str, f: F) -> Result<T, StepError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.recorded(JournalKind::Step, name, || async { f().await.map_err(StepError::Failed) }).await
    }

    /// The time now, by the worker's clock ([`WorkerConfig::clock`](crate::WorkerConfig::clock)):
    /// read once and recorded, so a replay gets the same instant. Compute deadlines from it
    /// (`ctx.wait_until(ctx.now().await? + …)`), never from the system clock.
    ///
    /// The server fires a datetime wait by its own clock, so a worker clock that differs from
    /// the server's moves `wait_until(ctx.now() + d)` by the difference; `wait_for(d)` is
    /// counted from when the server records the wait and is not moved.
    pub async fn now(&self) -> Result<Timestamp> {
        let clock = self.run.clock.clone();
        self.recorded(JournalKind::Now, "now", || async move { Ok(clock.now()) }).await
    }

    /// A random `u64`, drawn once and recorded, so a replay gets the same value.
    pub async fn random_u64(&self) -> Result<u64> {
        let text: String = self
            .recorded(JournalKind::Random, "u64", || async {
                Ok::<_, Error>(u64::from_le_bytes(random_bytes()).to_string())
            })
            .await?;
        text.parse().map_err(|error: std::num::ParseIntError| {
            Error::OutputType(OutputTypeError {
                what: "the recorded result of RANDOM \"u64\"".into(),
                type_name: "u64",
                message: error.to_string(),
            })
        })
    }

    /// A random (version 4) UUID such as `"0f8fad5b-d9cb-469f-a165-70867728950e"`, drawn once
    /// and recorded, so a replay gets the same one.
    pub async fn uuid(&self) -> Result<String> {
        self.recorded(JournalKind::Random, "uuid", || async { Ok(uuid_v4(random_bytes())) }).await
    }
}

/// `N` bytes from the operating system's generator.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's generator failing is not something a run can recover from.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// The version 4 UUID made of `bytes` (RFC 9562: the version and variant bits set).
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// A failed [`Context::try_step`]: the step's own error, or the run's (lost, diverged,
/// unreachable server).
#[derive(Debug)]
pub enum StepError<E> {
    /// The step's function failed; nothing was recorded.
    Failed(E),
    /// Recording or replaying the step failed.
    Run(Error),
}

impl<E> From<Error> for StepError<E> {
    fn from(error: Error) -> Self {
        Self::Run(error)
    }
}

impl<E: fmt::Display> fmt::Display for StepError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "{error}"),
            Self::Run(error) => write!(f, "{error}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StepError<E> {
    /// The run's error (so a [`TaskError`](crate::TaskError) made from this one is named after
    /// it); none for the step's own.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(_) => None,
            Self::Run(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_version_4_shape() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_ne!(uuid_v4(random_bytes()), uuid_v4(random_bytes()));
    }
}
