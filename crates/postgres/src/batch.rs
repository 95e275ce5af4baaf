//! The write path: a batch of operations as a few set-based statements.
//!
//! [`plan`] orders a batch into [`Step`]s. The creates without idempotency key of a set are one
//! multi-row `INSERT` (waitpoints and tags together); its finishes one multi-row
//! `UPDATE … RETURNING` of the waitpoints they apply to, plus, only when some did not apply,
//! one `SELECT … FOR UPDATE` of those to tell `Unchanged` from `NotFound`. A create with an
//! idempotency key runs on its own, as a single-row insert that re-reads the key's holder when
//! it loses a race. Every statement runs in the batch's `READ COMMITTED` transaction, so later
//! steps see earlier ones. The statements on waitpoints are in [`waitpoints`]; run operations
//! are applied by [`runs`], alone, or by [`run_sets`], in a set. The batch's events are appended,
//! and what it wakes on other nodes is notified ([`wakeups`]), in the same transaction.

use std::collections::HashMap;

use deadpool_postgres::{Client, Transaction};
use tokio_postgres::IsolationLevel;
use waitpoint_storage::{
    BatchWake, CreateOutcome, Finish, FinishOutcome, Prolong, Result, Takers, WriteOp, WriteOutcome, transitions,
};
use waitpoint_types::Waitpoint;

use crate::{events, map_error, run_sets, runs, waitpoints, wakeups};

/// How long a statement of a batch with run operations waits for a row lock.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '100ms'";

/// Part of a batch, applied as a unit; [`plan`] puts them in order.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    /// A create with an idempotency key, on its own: it may answer with, or deactivate the key
    /// of, whichever waitpoint holds the key, so no operation moves across it.
    Keyed(usize, &'a Waitpoint),
    /// A run operation that may read or change any run (a claim, a release, a cancel, one with
    /// an idempotency key) or a worker's record, on its own: no operation moves across it
    /// either.
    Alone(usize, &'a WriteOp),
    /// Operations without idempotency key on distinct ids.
    Set(Set<'a>),
}

/// Operations by position in the batch, no two on the same waitpoint or run: they commute,
/// so one statement applies the creates, another the finishes, and [`run_sets`] the run
/// operations.
#[derive(Debug, Default, PartialEq)]
struct Set<'a> {
    creates: Vec<(usize, &'a Waitpoint)>,
    finishes: Vec<(usize, &'a Finish)>,
    prolongs: Vec<(usize, &'a Prolong)>,
    runs: Vec<(usize, &'a WriteOp)>,
}

/// What an operation of a set touches: sets hold one operation per key.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key<'a> {
    Waitpoint(&'a str),
    Run(&'a str),
}

/// The keys of an operation that goes in a set; `None` for one that must be a step of its own.
fn keys(op: &WriteOp) -> Option<Vec<Key<'_>>> {
    Some(match op {
        WriteOp::Create(new) if new.idempotency_key.is_none() => vec![Key::Waitpoint(new.id.internal())],
        WriteOp::Finish(finish) => vec![Key::Waitpoint(finish.id.internal())],
        WriteOp::Prolong(prolong) => vec![Key::Waitpoint(prolong.id.internal())],
        op if !run_sets::in_sets(op) => return None,
        WriteOp::RunCreate(run) => vec![Key::Run(run.id.internal())],
        WriteOp::RunRecord(record) => vec![Key::Run(record.run.internal())],
        WriteOp::RunCreateToken(create) => {
            vec![Key::Run(create.run.internal()), Key::Waitpoint(create.waitpoint.id.internal())]
        }
        WriteOp::RunWait(wait) => std::iter::once(Key::Run(wait.run.internal()))
            .chain(wait.waitpoints.iter().map(|waitpoint| Key::Waitpoint(waitpoint.internal())))
            .collect(),
        WriteOp::RunFinish(finish) => vec![Key::Run(finish.run.internal())],
        _ => return None,
    })
}

/// Orders a batch into steps that give every operation the outcome it has when the batch is
/// applied one operation at a time, in order.
///
/// Operations on different keys commute: a create without idempotency key touches only its
/// own row and tags, a finish its waitpoint's row and the runs waiting on it (which no other
/// operation of a set can change: they wait), a run operation of [`run_sets`] its run and the
/// waitpoint it creates or waits on. The others (creates with an idempotency key, which read
/// and may change the waitpoint holding the key, whatever its id; claims, which take any
/// queued run; releases and cancels) are steps of their own and barriers. Between barriers,
/// an operation goes to the set after the last one holding any of its keys: each set holds
/// distinct keys, and every earlier operation on one of its keys is in an earlier step.
fn plan(ops: &[WriteOp]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut sets: Vec<Set<'_>> = Vec::new();
    let mut seen: HashMap<Key<'_>, usize> = HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        let Some(keys) = keys(op) else {
            steps.extend(sets.drain(..).map(Step::Set));
            seen.clear();
            steps.push(match op {
                WriteOp::Create(new) => Step::Keyed(index, new),
                _ => Step::Alone(index, op),
            });
            continue;
        };
        let at = keys.iter().map(|key| seen.get(key).copied().unwrap_or(0)).max().unwrap_or(0);
        if at == sets.len() {
            sets.push(Set::default());
        }
        let set = &mut sets[at];
        match op {
            WriteOp::Create(new) => set.creates.push((index, new)),
            WriteOp::Finish(finish) => set.finishes.push((index, finish)),
            WriteOp::Prolong(prolong) => set.prolongs.push((index, prolong)),
            _ => set.runs.push((index, op)),
        }
        for key in keys {
            seen.insert(key, at + 1);
        }
    }
    steps.extend(sets.into_iter().map(Step::Set));
    steps
}

/// Runs the whole batch in one transaction, step by step; with a `channel`, ends it with the
/// batch's wake-ups on that channel, if any.
pub(crate) async fn apply_batch(
    client: &mut Client,
    ops: &[WriteOp],
    channel: Option<&str>,
) -> Result<Vec<WriteOutcome>> {
    let tx =
        client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await.map_err(map_error)?;
    if ops.iter().any(|op| !matches!(op, WriteOp::Create(_) | WriteOp::Finish(_) | WriteOp::Prolong(_))) {
        // Run operations lock runs and waitpoints in orders no plan can make global, so two
        // lanes can deadlock. PostgreSQL would notice only after `deadlock_timeout` (1 s); a
        // short lock wait fails the batch sooner, and the store runs it again.
        tx.batch_execute(LOCK_TIMEOUT).await.map_err(map_error)?;
    }
    let mut outcomes = vec![None; ops.len()];
    for step in plan(ops) {
        match step {
            Step::Keyed(index, new) => {
                outcomes[index] = Some(WriteOutcome::Create(waitpoints::create(&tx, new).await?))
            }
            Step::Alone(index, op) => outcomes[index] = Some(runs::apply(&tx, op).await?),
            Step::Set(set) => {
                if !set.creates.is_empty() {
                    waitpoints::create_all(&tx, &set.creates).await?;
                    for (index, new) in set.creates {
                        outcomes[index] = Some(WriteOutcome::Create(CreateOutcome::Created(new.clone())));
                    }
                }
                if !set.finishes.is_empty() {
                    for (index, outcome) in finish_all(&tx, set.finishes).await? {
                        outcomes[index] = Some(WriteOutcome::Finish(outcome));
                    }
                }
                if !set.prolongs.is_empty() {
                    for (index, outcome) in waitpoints::prolong_all(&tx, set.prolongs).await? {
                        outcomes[index] = Some(WriteOutcome::Prolong(outcome));
                    }
                }
                if !set.runs.is_empty() {
                    for (index, outcome) in run_sets::apply(&tx, &set.runs).await? {
                        outcomes[index] = Some(outcome);
                    }
                }
            }
        }
    }
    let outcomes: Vec<WriteOutcome> =
        outcomes.into_iter().map(|outcome| outcome.expect("the plan puts every operation in one step")).collect();
    let appended: Vec<_> = outcomes.iter().filter_map(waitpoint_storage::events::of_outcome).collect();
    let append = events::append(&tx, &appended);
    match channel {
        // Sent together: the connection pipelines them, one round trip for both.
        Some(channel) => {
            let wake = BatchWake::of_batch(ops, &outcomes);
            futures_util::future::try_join(append, wakeups::notify(&tx, channel, &wake)).await?;
        }
        None => append.await?,
    }
    tx.commit().await.map_err(map_error)?;
    Ok(outcomes)
}

/// Applies finishes on distinct ids and returns each one's outcome with its position.
///
/// One update moves every waitpoint the finish applies to. The others are unknown, another
/// environment's, already finished, not due, or created by a transaction that committed after
/// the update's snapshot: their latest versions are locked and each is decided on its own, as
/// a lone finish would be. Finishes are taken in id order, in which the update (a probe per
/// element) and the lock take row locks, so that batches finishing common waitpoints lock them
/// in the same order instead of waiting on each other in a cycle.
async fn finish_all(tx: &Transaction<'_>, mut finishes: Vec<(usize, &Finish)>) -> Result<Vec<(usize, FinishOutcome)>> {
    finishes.sort_unstable_by(|(_, a), (_, b)| a.id.internal().cmp(b.id.internal()));
    let mut finished = waitpoints::by_id(&waitpoints::update_where_applies(tx, &finishes).await?)?;

    let mut done: Vec<(usize, Waitpoint, &Takers)> = Vec::with_capacity(finishes.len());
    let mut outcomes = Vec::with_capacity(finishes.len());
    let mut rest = Vec::new();
    for (index, finish) in finishes {
        match finished.remove(finish.id.internal()) {
            Some(waitpoint) => done.push((index, waitpoint, &finish.hand_to)),
            None => rest.push((index, finish)),
        }
    }
    if !rest.is_empty() {
        let ids: Vec<&str> = rest.iter().map(|(_, finish)| finish.id.internal()).collect();
        let lock = tx.prepare_cached(waitpoints::LOCK_WAITPOINTS).await.map_err(map_error)?;
        let mut current = waitpoints::by_id(&tx.query(&lock, &[&ids]).await.map_err(map_error)?)?;
        for (index, finish) in rest {
            match current.remove(finish.id.internal()) {
                None => outcomes.push((index, FinishOutcome::NotFound)),
                Some(waitpoint)
                    if finish.environment_id.as_ref().is_some_and(|env| *env != waitpoint.environment_id) =>
                {
                    outcomes.push((index, FinishOutcome::NotFound));
                }
                Some(mut waitpoint) => {
                    if let Some(reason) = transitions::completion_refused(&waitpoint, &finish.finishing) {
                        outcomes.push((index, FinishOutcome::Refused(waitpoint, reason)));
                        continue;
                    }
                    match transitions::waitpoint_finished(&waitpoint, &finish.finishing) {
                        None => outcomes.push((index, FinishOutcome::Unchanged(waitpoint))),
                        Some(state) => {
                            waitpoints::set_state(tx, &finish.id, &state).await?;
                            waitpoint.state = state;
                            done.push((index, waitpoint, &finish.hand_to));
                        }
                    }
                }
            }
        }
    }
    if !done.is_empty() {
        waitpoints::retag(tx, done.iter().map(|(_, waitpoint, _)| waitpoint)).await?;
        // In the batch's order, so that a set several of them finish is decided as one finish
        // at a time would decide it.
        let mut finished: Vec<(usize, &Waitpoint, &Takers)> =
            done.iter().map(|(index, w, hand_to)| (*index, w, *hand_to)).collect();
        finished.sort_unstable_by_key(|(index, _, _)| *index);
        let finished: Vec<(&Waitpoint, &Takers)> = finished.into_iter().map(|(_, w, hand_to)| (w, hand_to)).collect();
        let mut resumed = runs::resume_waiting(tx, &finished).await?;
        for (index, waitpoint, _) in done {
            let runs = resumed.remove(waitpoint.id.internal()).unwrap_or_default();
            outcomes.push((index, FinishOutcome::Finished(waitpoint, runs)));
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use waitpoint_storage::Finishing;
    use waitpoint_types::{EnvironmentId, Timestamp, WaitpointId, WaitpointState};

    use super::*;

    fn waitpoint(id: &str, key: Option<&str>) -> Waitpoint {
        Waitpoint {
            id: WaitpointId::from_internal(id.into()),
            kind: waitpoint_types::WaitpointKind::Manual,
            environment_id: EnvironmentId::from_internal("env".into()),
            state: WaitpointState::Waiting,
            idempotency_key: key.map(Into::into),
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            timeout_at: None,
            heartbeat: None,
            callback_verifier: None,
            tags: Vec::new(),
            created_at: Timestamp::from_millis(0),
            approval: None,
            output_schema: None,
        }
    }

    fn finish(id: &str) -> Finish {
        Finish {
            id: WaitpointId::from_internal(id.into()),
            environment_id: None,
            finishing: Finishing::Deadline { at: Timestamp::from_millis(0) },
            hand_to: Takers::default(),
        }
    }

    #[test]
    fn operations_on_one_id_go_to_successive_sets_and_keyed_creates_are_barriers() {
        let ops = [
            WriteOp::Create(waitpoint("a", None)),
            WriteOp::Finish(finish("b")),
            WriteOp::Finish(finish("a")),
            WriteOp::Create(waitpoint("c", None)),
            WriteOp::Finish(finish("a")),
            WriteOp::Create(waitpoint("k", Some("key"))),
            WriteOp::Finish(finish("a")),
            WriteOp::Finish(finish("k")),
            WriteOp::Finish(finish("a")),
        ];
        let (WriteOp::Create(a), WriteOp::Create(c), WriteOp::Create(k)) = (&ops[0], &ops[3], &ops[5]) else {
            unreachable!("the batch above")
        };
        let finishes = |positions: &[usize]| -> Vec<(usize, &Finish)> {
            positions
                .iter()
                .map(|&i| match &ops[i] {
                    WriteOp::Finish(finish) => (i, finish),
                    _ => unreachable!("not a finish at {i}"),
                })
                .collect()
        };
        assert_eq!(
            plan(&ops),
            [
                Step::Set(Set {
                    creates: vec![(0, a), (3, c)],
                    finishes: finishes(&[1]),
                    runs: Vec::new(),
                    ..Set::default()
                }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[2]), runs: Vec::new(), ..Set::default() }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[4]), runs: Vec::new(), ..Set::default() }),
                Step::Keyed(5, k),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[6, 7]), runs: Vec::new(), ..Set::default() }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[8]), runs: Vec::new(), ..Set::default() }),
            ]
        );
        assert!(plan(&[]).is_empty());
    }

    fn record(run: &str, seq: u32) -> WriteOp {
        WriteOp::RunRecord(waitpoint_storage::RunRecord {
            run: waitpoint_types::RunId::from_internal(run.into()),
            environment_id: EnvironmentId::from_internal("env".into()),
            epoch: 1,
            entry: waitpoint_types::JournalEntry {
                seq,
                kind: waitpoint_types::JournalKind::Step,
                name: "step".into(),
                result: None,
            },
        })
    }

    fn wait(run: &str, on: &str) -> WriteOp {
        WriteOp::RunWait(waitpoint_storage::RunWait {
            run: waitpoint_types::RunId::from_internal(run.into()),
            environment_id: EnvironmentId::from_internal("env".into()),
            epoch: 1,
            seq: 0,
            kind: waitpoint_types::JournalKind::WaitToken,
            name: on.into(),
            waitpoints: vec![WaitpointId::from_internal(on.into())],
            needed: 1,
            create: Vec::new(),
            at: Timestamp::from_millis(0),
        })
    }

    #[test]
    fn run_operations_share_sets_unless_they_share_a_run_or_a_waitpoint_and_cancels_are_barriers() {
        let ops = [
            record("r1", 0),
            wait("r2", "w1"),
            WriteOp::Finish(finish("w1")),
            record("r1", 1),
            record("r3", 0),
            WriteOp::RunCancel {
                run: waitpoint_types::RunId::from_internal("r4".into()),
                environment_id: EnvironmentId::from_internal("env".into()),
                at: Timestamp::from_millis(0),
            },
            record("r1", 2),
        ];
        let WriteOp::Finish(finished) = &ops[2] else { unreachable!("the batch above") };
        let runs =
            |positions: &[usize]| -> Vec<(usize, &WriteOp)> { positions.iter().map(|&i| (i, &ops[i])).collect() };
        assert_eq!(
            plan(&ops),
            [
                Step::Set(Set { creates: Vec::new(), finishes: Vec::new(), runs: runs(&[0, 1, 4]), ..Set::default() }),
                Step::Set(Set {
                    creates: Vec::new(),
                    finishes: vec![(2, finished)],
                    runs: runs(&[3]),
                    ..Set::default()
                }),
                Step::Alone(5, &ops[5]),
                Step::Set(Set { creates: Vec::new(), finishes: Vec::new(), runs: runs(&[6]), ..Set::default() }),
            ]
        );
    }
}
