//! Waiting on several waitpoints at once: any, all, or at least some of a set of tokens,
//! durations and points in time. The run is suspended until the set is decided, and resumes
//! with where every waitpoint of the set stood then.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use waitpoint_types::api::worker::{MAX_SET_WAITS, WaitFor};
use waitpoint_types::run::wait_set_name;
use waitpoint_types::wait::{SetResult, WaitpointResult};
use waitpoint_types::{JournalKind, RawJson};

use super::journal::Begin;
use super::waits::{Wait, WaitpointRejectedError, WaitpointTimeoutError};
use crate::error::decode;
use crate::{Context, Error, Result};

/// The result of waiting on a set of waitpoints: whether enough of them completed, and where
/// each stood when the set was decided, in the order they were given.
///
/// The set is decided once enough completed (`ok`), or once so many timed out that enough no
/// longer can (not `ok`); the others may still be pending then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSetResult {
    /// The condition, as the journal names it: `any of 3`, `all of 3`, `2 of 3`.
    condition: String,
    ok: bool,
    waitpoints: Vec<WaitSetMember>,
}

/// One waitpoint of a decided set wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSetMember {
    /// The waitpoint's id (`waitpoint_…`): the token's, or the one the server made for a
    /// duration or a point in time.
    pub id: String,
    /// Where it stood when the set was decided.
    pub state: MemberState,
}

/// Where one waitpoint of a set stood when the set was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    /// Completed with this output (`null` for a duration or a point in time that passed).
    Completed(serde_json::Value),
    /// The token timed out first.
    TimedOut(WaitpointTimeoutError),
    /// The token was rejected, with this error.
    Rejected(WaitpointRejectedError),
    /// Not finished yet: the set was decided without it.
    Pending,
}

impl WaitSetMember {
    /// The output, decoded as `T`, if this waitpoint completed; `None` if it timed out, was
    /// rejected, or is pending. An output that does not decode is an [`Error::OutputType`] naming the token
    /// and `T`; a run that fails with it is not retried.
    pub fn output<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.state {
            MemberState::Completed(output) => {
                decode(output.clone(), || format!("the output of token {}", self.id)).map(Some)
            }
            MemberState::TimedOut(_) | MemberState::Rejected(_) | MemberState::Pending => Ok(None),
        }
    }

    /// Whether this waitpoint completed.
    pub fn is_completed(&self) -> bool {
        matches!(self.state, MemberState::Completed(_))
    }
}

impl WaitSetResult {
    /// Whether enough waitpoints completed (the spec's `ok`).
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// Every waitpoint of the set, in the order they were given.
    pub fn waitpoints(&self) -> &[WaitSetMember] {
        &self.waitpoints
    }

    /// The output of the waitpoint at `index` (in the order given), as
    /// [`WaitSetMember::output`] reads it.
    ///
    /// # Panics
    ///
    /// If `index` is not below the number of waitpoints of the set, as slice indexing does.
    pub fn output<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>> {
        self.waitpoints[index].output()
    }

    /// The waitpoints if enough completed, or a [`WaitpointTimeoutError`] naming the condition
    /// and every waitpoint that timed out or was rejected, for `?`: the spec's `unwrap()`. A task that fails
    /// with it is not retried (every replay would see the same timeouts).
    pub fn into_result(self) -> std::result::Result<Vec<WaitSetMember>, WaitpointTimeoutError> {
        if self.ok {
            return Ok(self.waitpoints);
        }
        let timed_out: Vec<String> = self
            .waitpoints
            .iter()
            .filter_map(|member| match &member.state {
                MemberState::TimedOut(error) => Some(format!("{}: {error}", member.id)),
                MemberState::Rejected(error) => Some(format!("{}: rejected: {error}", member.id)),
                MemberState::Completed(_) | MemberState::Pending => None,
            })
            .collect();
        let rejected = self.waitpoints.iter().any(|member| matches!(member.state, MemberState::Rejected(_)));
        let message = format!(
            "the wait for {} waitpoints cannot be met: {} timed out{} ({})",
            self.condition,
            timed_out.len(),
            if rejected { " or were rejected" } else { "" },
            timed_out.join("; ")
        );
        Err(WaitpointTimeoutError { message })
    }

    /// Reads a set wait's result as the server records it ([`SetResult`]).
    fn from_recorded(condition: String, result: RawJson) -> Result<Self> {
        let recorded: SetResult = result.decode().map_err(|error| {
            Error::Decode(format!(
                "the result of {} {condition:?} is not a set wait's result: {error}",
                JournalKind::WaitSet
            ))
        })?;
        let waitpoints = recorded
            .waitpoints
            .into_iter()
            .map(|member| {
                let state = match member.result {
                    Some(WaitpointResult::Completed { output }) => MemberState::Completed(output),
                    Some(WaitpointResult::TimedOut { error }) => {
                        MemberState::TimedOut(WaitpointTimeoutError::from_recorded(&error))
                    }
                    Some(WaitpointResult::Rejected { error }) => {
                        MemberState::Rejected(WaitpointRejectedError::from_recorded(&error))
                    }
                    None => MemberState::Pending,
                };
                WaitSetMember { id: member.id, state }
            })
            .collect();
        Ok(Self { condition, ok: recorded.ok, waitpoints })
    }
}

/// `needed` as the worker protocol takes it, and the journal name of a wait for `needed` of
/// `waits` (`any of 3`, `all of 3`, `2 of 3`); or why the server would refuse that wait: no
/// waits or more than it takes, `needed` out of range, a token given twice.
fn condition(needed: usize, waits: &[Wait]) -> Result<(u32, String)> {
    if waits.is_empty() || waits.len() > MAX_SET_WAITS {
        return Err(Error::Config(format!("a set wait waits on 1 to {MAX_SET_WAITS} waitpoints, not {}", waits.len())));
    }
    let in_range = (1..=waits.len()).contains(&needed);
    let Some(needed_wire) = u32::try_from(needed).ok().filter(|_| in_range) else {
        return Err(Error::Config(format!(
            "needed must be from 1 to the number of waitpoints ({}), not {needed}",
            waits.len()
        )));
    };
    let mut tokens = HashSet::new();
    if let Some(twice) = waits.iter().filter_map(Wait::token_id).find(|id| !tokens.insert(*id)) {
        return Err(Error::Config(format!("token {twice} is in the set twice")));
    }
    Ok((needed_wire, wait_set_name(needed_wire, waits.len())))
}

impl Context {
    /// Waits until any one of `waits` completes (or every one timed out). While it waits the
    /// run is suspended: it holds no slot, and no process needs to stay up for it.
    ///
    /// The same as [`wait_for_at_least(1, waits)`](Self::wait_for_at_least).
    pub async fn wait_for_any(&self, waits: impl IntoIterator<Item = Wait>) -> Result<WaitSetResult> {
        self.wait_for_at_least(1, waits).await
    }

    /// Waits until every one of `waits` completes (or one timed out). While it waits the run is
    /// suspended: it holds no slot, and no process needs to stay up for it.
    ///
    /// The same as [`wait_for_at_least`](Self::wait_for_at_least) with their number.
    pub async fn wait_for_all(&self, waits: impl IntoIterator<Item = Wait>) -> Result<WaitSetResult> {
        let waits: Vec<Wait> = waits.into_iter().collect();
        self.wait_for_at_least(waits.len(), waits).await
    }

    /// Waits until `needed` of `waits` complete, or until so many timed out that `needed` no
    /// longer can: the result says which, and where each waitpoint stood then. While it waits
    /// the run is suspended: it holds no slot, and no process needs to stay up for it.
    ///
    /// `waits` are 1 to 100 waitpoints, no token twice, and `needed` is from 1 to their number;
    /// otherwise the call fails with [`Error::Config`] before anything is sent (a run that
    /// fails with it is not retried).
    ///
    /// The journal names the wait by its condition alone (`any of 3`, `all of 3`, `2 of 3`): on
    /// replay, a set wait with the same condition at the same position matches whatever
    /// waitpoints the code gives now (durations computed anew, say), and resumes as recorded.
    ///
    /// Approved by two of three people (each approves by completing their token), or not
    /// within two days:
    ///
    /// ```no_run
    /// use waitpoint_sdk::{Context, CreateTokenRequest, TaskError, Wait};
    ///
    /// async fn publish(ctx: Context, approvers: Vec<String>) -> Result<String, TaskError> {
    ///     let mut waits = Vec::new();
    ///     for approver in &approvers {
    ///         let token = ctx.create_token(CreateTokenRequest::new().timeout("2d")).await?;
    ///         ctx.info(format!("{approver} approves at {}", token.url));
    ///         waits.push(Wait::token(&token));
    ///     }
    ///     let set = ctx.wait_for_at_least(2, waits).await?; // the run suspends here
    ///     if !set.is_ok() {
    ///         return Ok("not approved within two days".into());
    ///     }
    ///     let approved: Vec<&str> = approvers
    ///         .iter()
    ///         .zip(set.waitpoints())
    ///         .filter(|(_, waitpoint)| waitpoint.is_completed())
    ///         .map(|(approver, _)| approver.as_str())
    ///         .collect();
    ///     Ok(format!("published, approved by {}", approved.join(" and ")))
    /// }
    /// ```
    pub async fn wait_for_at_least(
        &self,
        needed: usize,
        waits: impl IntoIterator<Item = Wait>,
    ) -> Result<WaitSetResult> {
        let waits: Vec<Wait> = waits.into_iter().collect();
        let (needed, condition) = condition(needed, &waits)?;
        let result = match self.begin(JournalKind::WaitSet, &condition).await? {
            Begin::Replayed(result) => result,
            Begin::Live { cursor, seq } => {
                let of = waits.into_iter().map(Wait::into_wire).collect();
                self.wait_live(cursor, seq, WaitFor::Set { needed, of }).await?
            }
        };
        WaitSetResult::from_recorded(condition, result)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn tokens(n: usize) -> Vec<Wait> {
        (0..n).map(|i| Wait::token(format!("waitpoint_c{i}"))).collect()
    }

    #[test]
    fn a_set_is_named_by_its_condition() {
        assert_eq!(condition(1, &tokens(3)).unwrap(), (1, "any of 3".into()));
        assert_eq!(condition(3, &tokens(3)).unwrap(), (3, "all of 3".into()));
        assert_eq!(condition(2, &tokens(3)).unwrap(), (2, "2 of 3".into()));
        assert_eq!(condition(1, &tokens(1)).unwrap(), (1, "all of 1".into()));
        let mixed = [Wait::token("c1"), Wait::duration(Duration::from_secs(1)), Wait::duration(Duration::from_secs(1))];
        assert_eq!(condition(1, &mixed).unwrap().1, "any of 3", "two durations are two waitpoints");
    }

    #[test]
    fn a_set_the_server_would_refuse_is_refused_before_anything_is_sent() {
        let refused = |needed: usize, waits: Vec<Wait>| match condition(needed, &waits) {
            Err(Error::Config(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(1, Vec::new()), "a set wait waits on 1 to 100 waitpoints, not 0");
        assert_eq!(refused(1, tokens(101)), "a set wait waits on 1 to 100 waitpoints, not 101");
        assert_eq!(refused(0, tokens(3)), "needed must be from 1 to the number of waitpoints (3), not 0");
        assert_eq!(refused(4, tokens(3)), "needed must be from 1 to the number of waitpoints (3), not 4");
        let twice = vec![Wait::token("c1"), Wait::token("waitpoint_c1")];
        assert_eq!(refused(1, twice), "token waitpoint_c1 is in the set twice");
        assert!(condition(100, &tokens(100)).is_ok());
    }

    #[test]
    fn a_recorded_result_reads_as_each_waitpoints_standing() {
        let result = json!({ "ok": false, "waitpoints": [
            { "id": "waitpoint_a", "ok": false, "error": { "code": "TRIGGER_WAITPOINT_TIMEOUT", "message": "Waitpoint timed out at 2030-01-01T00:00:00.000Z" } },
            { "id": "waitpoint_b", "ok": true, "output": { "approved": true } },
            { "id": "waitpoint_c", "ok": false, "error": { "code": "TRIGGER_WAITPOINT_TIMEOUT", "message": "Waitpoint timed out at 2030-01-02T00:00:00.000Z" } },
            { "id": "waitpoint_d", "pending": true },
        ]});
        let set = WaitSetResult::from_recorded("3 of 4".into(), result.into()).unwrap();
        assert!(!set.is_ok());
        assert_eq!(set.output::<serde_json::Value>(1).unwrap(), Some(json!({ "approved": true })));
        assert_eq!(set.output::<serde_json::Value>(0).unwrap(), None);
        assert_eq!(set.waitpoints()[3].state, MemberState::Pending);
        match set.output::<u8>(1) {
            Err(Error::OutputType(error)) => assert_eq!(error.what, "the output of token waitpoint_b"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            set.into_result().unwrap_err().message,
            "the wait for 3 of 4 waitpoints cannot be met: 2 timed out (waitpoint_a: Waitpoint timed out at \
             2030-01-01T00:00:00.000Z; waitpoint_c: Waitpoint timed out at 2030-01-02T00:00:00.000Z)"
        );
        let garbled = WaitSetResult::from_recorded("any of 2".into(), json!({ "ok": true }).into());
        assert!(matches!(garbled, Err(Error::Decode(message)) if message.contains("WAIT_SET \"any of 2\"")));
    }
}
