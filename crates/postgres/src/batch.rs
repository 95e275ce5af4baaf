//! The write path: a batch of operations as a few set-based statements.
//!
//! [`plan`] orders a batch into [`Step`]s. The creates without idempotency key of a set are one
//! multi-row `INSERT` (waitpoints and tags together); its finishes one multi-row
//! `UPDATE … RETURNING` of the waitpoints they apply to, plus, only when some did not apply,
//! one `SELECT … FOR UPDATE` of those to tell `Unchanged` from `NotFound`. A create with an
//! idempotency key runs on its own, as a single-row insert that re-reads the key's holder when
//! it loses a race. Every statement runs in the batch's `READ COMMITTED` transaction, so later
//! steps see earlier ones.

use std::collections::HashMap;

use deadpool_postgres::{Client, Transaction};
use tokio_postgres::{IsolationLevel, Row};
use waitpoint_storage::{
    CreateOutcome, Finish, FinishOutcome, Finishing, Result, StorageError, WriteOp, WriteOutcome, transitions,
};
use waitpoint_types::{EnvironmentId, Timestamp, Waitpoint, WaitpointId, WaitpointState};

use crate::rows::{StateColumns, column, state_columns, waitpoint_columns, waitpoint_from_row};
use crate::{failure, map_error, run_sets, runs};

/// How many times a create tries again when the holder of its idempotency key keeps changing
/// under it (other transactions deactivating or replacing it).
pub(crate) const CREATE_ATTEMPTS: usize = 8;

const SELECT_ACTIVE_KEY: &str =
    concat!("SELECT ", waitpoint_columns!(), " FROM waitpoints WHERE environment_id = $1 AND idempotency_key = $2");

/// Inserts a waitpoint and its tags unless its idempotency key is active; one row, the number
/// of waitpoints inserted.
const INSERT_WAITPOINT: &str = "
    WITH inserted AS (
        INSERT INTO waitpoints (id, environment_id, status, idempotency_key, inactive_idempotency_key,
            idempotency_key_expires_at, timeout_at, tags, created_at, kind, approval, output_schema)
        VALUES ($1, $2, 'WAITING', $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (environment_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id, environment_id
    ), tagged AS (
        INSERT INTO waitpoint_tags (environment_id, tag, waitpoint_id)
        SELECT inserted.environment_id, t.tag, inserted.id FROM inserted, unnest($7::text[]) AS t (tag)
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FROM inserted";

/// Inserts waitpoints without idempotency key, and their tags. One array element per waitpoint
/// (`$1`–`$6`, `$10`–`$12`), except the tags: all of them in `$7`, each waitpoint's being the slice
/// from its `$8` to its `$9` (1-based, inclusive; empty when `$9 < $8`). A taken id fails the
/// statement.
const INSERT_WAITPOINTS: &str = "
    WITH inserted AS (
        INSERT INTO waitpoints (id, environment_id, status, inactive_idempotency_key, idempotency_key_expires_at,
            timeout_at, tags, created_at, kind, approval, output_schema)
        SELECT n.id, n.environment_id, 'WAITING', n.inactive_idempotency_key, n.idempotency_key_expires_at,
            n.timeout_at, ($7::text[])[n.first_tag:n.last_tag], n.created_at, n.kind, n.approval, n.output_schema
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $8::int[], $9::int[],
            $10::text[], $11::text[], $12::text[])
            AS n (id, environment_id, inactive_idempotency_key, idempotency_key_expires_at, timeout_at, created_at,
                first_tag, last_tag, kind, approval, output_schema)
        RETURNING id, environment_id, tags
    )
    INSERT INTO waitpoint_tags (environment_id, tag, waitpoint_id)
    SELECT inserted.environment_id, t.tag, inserted.id FROM inserted, unnest(inserted.tags) AS t (tag)
    ON CONFLICT DO NOTHING";

const DEACTIVATE_KEY: &str = "UPDATE waitpoints SET inactive_idempotency_key = idempotency_key, idempotency_key = NULL
     WHERE id = $1 AND idempotency_key IS NOT NULL";

/// Completes each listed waitpoint (distinct ids) that is still waiting (and in the
/// environment, if one is given) and has no output schema, and returns the new records.
/// Deadlines, and completions of waitpoints with an output schema, are left to the locked
/// path, where [`transitions`] decides what they become. One array
/// element per finish: id, environment filter (`NULL`: any), then the [`StateColumns`]; `$8` is
/// the number of elements.
///
/// `LIMIT $8` keeps every element and is there for the planner. PostgreSQL soon reuses one
/// generic plan for every call of a prepared statement, made without the parameters' values.
/// It guesses ten elements in an array it cannot see, and at that size a scan of a table that
/// is small, or has no statistics yet (`autovacuum` off), looks cheaper than ten index probes;
/// the plan, once cached, would scan the table at every call as it grows. A limit it cannot
/// see counts as a tenth of the rows: about one element, for which a probe of the primary key
/// is the cheapest plan at any table size, as for a single-row update. The plan is then one
/// probe per element, in the arrays' order.
const FINISH_WHERE_APPLIES: &str = concat!(
    "UPDATE waitpoints w
     SET status = f.status, completed_at = f.completed_at, completed_via = f.completed_via, output = f.output,
         output_type = f.output_type
     FROM (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
             AS f (id, environment_id, status, completed_at, completed_via, output, output_type)
         LIMIT $8
     ) AS f
     WHERE w.id = f.id AND w.status = 'WAITING' AND (f.environment_id IS NULL OR w.environment_id = f.environment_id)
       AND w.output_schema IS NULL
     RETURNING ",
    waitpoint_columns!(w)
);

/// Locks and reads the latest version of the listed waitpoints, one after the other in the
/// order of the list, each with a lateral subquery of its own: a single-row lookup by id.
const LOCK_WAITPOINTS: &str = concat!(
    "SELECT ",
    waitpoint_columns!(w),
    " FROM unnest($1::text[]) AS f (id)
     CROSS JOIN LATERAL (SELECT * FROM waitpoints WHERE id = f.id FOR UPDATE) AS w"
);

const SET_STATE: &str = "UPDATE waitpoints
     SET status = $2, completed_at = $3, completed_via = $4, output = $5, output_type = $6
     WHERE id = $1 AND status = 'WAITING'";

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
            _ => set.runs.push((index, op)),
        }
        for key in keys {
            seen.insert(key, at + 1);
        }
    }
    steps.extend(sets.into_iter().map(Step::Set));
    steps
}

/// Runs the whole batch in one transaction, step by step.
pub(crate) async fn apply_batch(client: &mut Client, ops: &[WriteOp]) -> Result<Vec<WriteOutcome>> {
    let tx =
        client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await.map_err(map_error)?;
    if ops.iter().any(|op| !matches!(op, WriteOp::Create(_) | WriteOp::Finish(_))) {
        // Run operations lock runs and waitpoints in orders no plan can make global, so two
        // lanes can deadlock. PostgreSQL would notice only after `deadlock_timeout` (1 s); a
        // short lock wait fails the batch sooner, and the store runs it again.
        tx.batch_execute(LOCK_TIMEOUT).await.map_err(map_error)?;
    }
    let mut outcomes = vec![None; ops.len()];
    for step in plan(ops) {
        match step {
            Step::Keyed(index, new) => outcomes[index] = Some(WriteOutcome::Create(create(&tx, new).await?)),
            Step::Alone(index, op) => outcomes[index] = Some(runs::apply(&tx, op).await?),
            Step::Set(set) => {
                if !set.creates.is_empty() {
                    create_all(&tx, &set.creates).await?;
                    for (index, new) in set.creates {
                        outcomes[index] = Some(WriteOutcome::Create(CreateOutcome::Created(new.clone())));
                    }
                }
                if !set.finishes.is_empty() {
                    for (index, outcome) in finish_all(&tx, set.finishes).await? {
                        outcomes[index] = Some(WriteOutcome::Finish(outcome));
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
    tx.commit().await.map_err(map_error)?;
    Ok(outcomes.into_iter().map(|outcome| outcome.expect("the plan puts every operation in one step")).collect())
}

/// Creates one waitpoint (for a run's token or datetime wait), honouring its idempotency key.
pub(crate) async fn create_one(tx: &Transaction<'_>, new: &Waitpoint) -> Result<CreateOutcome> {
    if new.idempotency_key.is_some() {
        return create(tx, new).await;
    }
    create_all(tx, &[(0, new)]).await?;
    Ok(CreateOutcome::Created(new.clone()))
}

/// Creates a waitpoint with an idempotency key, or answers with the key's holder.
async fn create(tx: &Transaction<'_>, new: &Waitpoint) -> Result<CreateOutcome> {
    let insert = tx.prepare_cached(INSERT_WAITPOINT).await.map_err(map_error)?;
    let environment_id = new.environment_id.internal();
    let approval = approval_text(new)?;
    for _ in 0..CREATE_ATTEMPTS {
        let row = tx
            .query_one(
                &insert,
                &[
                    &new.id.internal(),
                    &environment_id,
                    &new.idempotency_key,
                    &new.inactive_idempotency_key,
                    &new.idempotency_key_expires_at.map(Timestamp::as_millis),
                    &new.timeout_at.map(Timestamp::as_millis),
                    &new.tags,
                    &new.created_at.as_millis(),
                    &new.kind.as_str(),
                    &approval,
                    &new.output_schema,
                ],
            )
            .await
            .map_err(map_error)?;
        if column::<i64>(&row, 0)? > 0 {
            return Ok(CreateOutcome::Created(new.clone()));
        }
        // The key is active on a committed (or this batch's) waitpoint. Read it in a new
        // snapshot; if it is gone, another transaction deactivated it since: insert again.
        let select = tx.prepare_cached(SELECT_ACTIVE_KEY).await.map_err(map_error)?;
        let Some(row) = tx.query_opt(&select, &[&environment_id, &new.idempotency_key]).await.map_err(map_error)?
        else {
            continue;
        };
        let existing = waitpoint_from_row(&row)?;
        if existing.idempotency_key_expires_at.is_none_or(|expires| new.created_at <= expires) {
            return Ok(CreateOutcome::Existing(existing));
        }
        let deactivate = tx.prepare_cached(DEACTIVATE_KEY).await.map_err(map_error)?;
        tx.execute(&deactivate, &[&existing.id.internal()]).await.map_err(map_error)?;
    }
    Err(StorageError::Conflict(format!("the idempotency key of waitpoint {} kept changing hands", new.id)))
}

/// Creates waitpoints without idempotency key (distinct ids) in one statement. Any of them
/// failing (a taken id, an unknown environment) fails the statement, as it would fail the batch
/// one by one.
pub(crate) async fn create_all(tx: &Transaction<'_>, creates: &[(usize, &Waitpoint)]) -> Result<()> {
    let mut tags: Vec<&str> = Vec::new();
    let (mut first_tags, mut last_tags) = (Vec::with_capacity(creates.len()), Vec::with_capacity(creates.len()));
    for (_, new) in creates {
        first_tags.push(i32::try_from(tags.len() + 1).map_err(|error| failure(&error))?);
        tags.extend(new.tags.iter().map(String::as_str));
        last_tags.push(i32::try_from(tags.len()).map_err(|error| failure(&error))?);
    }
    let ids: Vec<&str> = creates.iter().map(|(_, new)| new.id.internal()).collect();
    let environment_ids: Vec<&str> = creates.iter().map(|(_, new)| new.environment_id.internal()).collect();
    let inactive_keys: Vec<Option<&str>> =
        creates.iter().map(|(_, new)| new.inactive_idempotency_key.as_deref()).collect();
    let expiries: Vec<Option<i64>> =
        creates.iter().map(|(_, new)| new.idempotency_key_expires_at.map(Timestamp::as_millis)).collect();
    let deadlines: Vec<Option<i64>> = creates.iter().map(|(_, new)| new.timeout_at.map(Timestamp::as_millis)).collect();
    let created_at: Vec<i64> = creates.iter().map(|(_, new)| new.created_at.as_millis()).collect();
    let kinds: Vec<&str> = creates.iter().map(|(_, new)| new.kind.as_str()).collect();
    let approvals: Vec<Option<String>> = creates.iter().map(|(_, new)| approval_text(new)).collect::<Result<_>>()?;
    let schemas: Vec<Option<&str>> = creates.iter().map(|(_, new)| new.output_schema.as_deref()).collect();
    let insert = tx.prepare_cached(INSERT_WAITPOINTS).await.map_err(map_error)?;
    tx.execute(
        &insert,
        &[
            &ids,
            &environment_ids,
            &inactive_keys,
            &expiries,
            &deadlines,
            &created_at,
            &tags,
            &first_tags,
            &last_tags,
            &kinds,
            &approvals,
            &schemas,
        ],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

/// A waitpoint's approval page as stored: JSON text.
fn approval_text(waitpoint: &Waitpoint) -> Result<Option<String>> {
    waitpoint.approval.as_ref().map(serde_json::to_string).transpose().map_err(StorageError::database)
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
    let mut finished = by_id(&update_where_applies(tx, &finishes).await?)?;

    let mut done: Vec<(usize, Waitpoint, Option<Timestamp>)> = Vec::with_capacity(finishes.len());
    let mut outcomes = Vec::with_capacity(finishes.len());
    let mut rest = Vec::new();
    for (index, finish) in finishes {
        match finished.remove(finish.id.internal()) {
            Some(waitpoint) => done.push((index, waitpoint, finish.workers_alive_since)),
            None => rest.push((index, finish)),
        }
    }
    if !rest.is_empty() {
        let ids: Vec<&str> = rest.iter().map(|(_, finish)| finish.id.internal()).collect();
        let lock = tx.prepare_cached(LOCK_WAITPOINTS).await.map_err(map_error)?;
        let mut current = by_id(&tx.query(&lock, &[&ids]).await.map_err(map_error)?)?;
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
                            set_state(tx, &finish.id, &state).await?;
                            waitpoint.state = state;
                            done.push((index, waitpoint, finish.workers_alive_since));
                        }
                    }
                }
            }
        }
    }
    if !done.is_empty() {
        retag(tx, done.iter().map(|(_, waitpoint, _)| waitpoint)).await?;
        let finished: Vec<(&Waitpoint, Option<Timestamp>)> = done.iter().map(|(_, w, since)| (w, *since)).collect();
        let mut resumed = runs::resume_waiting(tx, &finished).await?;
        for (index, waitpoint, _) in done {
            let runs = resumed.remove(waitpoint.id.internal()).unwrap_or_default();
            outcomes.push((index, FinishOutcome::Finished(waitpoint, runs)));
        }
    }
    Ok(outcomes)
}

/// Sets the status beside each tag of the listed waitpoints (by primary key) to theirs.
const RETAG: &str = "UPDATE waitpoint_tags t SET status = f.status
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS f (environment_id, tag, waitpoint_id, status)
     WHERE t.environment_id = f.environment_id AND t.tag = f.tag AND t.waitpoint_id = f.waitpoint_id";

/// Keeps the tag table's statuses in step with `finished` waitpoints' (those with tags).
async fn retag(tx: &Transaction<'_>, finished: impl Iterator<Item = &Waitpoint>) -> Result<()> {
    let (mut environments, mut tags, mut ids, mut statuses) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for waitpoint in finished {
        let mut distinct: Vec<&str> = waitpoint.tags.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        for tag in distinct {
            environments.push(waitpoint.environment_id.internal());
            tags.push(tag);
            ids.push(waitpoint.id.internal());
            statuses.push(waitpoint.status().as_str());
        }
    }
    if tags.is_empty() {
        return Ok(());
    }
    let retag = tx.prepare_cached(RETAG).await.map_err(map_error)?;
    tx.execute(&retag, &[&environments, &tags, &ids, &statuses]).await.map_err(map_error)?;
    Ok(())
}

/// Runs [`FINISH_WHERE_APPLIES`] for the completions among `finishes` (deadlines and forced ends
/// depend on each waitpoint, so they are decided one by one) and returns the rows of the
/// waitpoints it finished.
async fn update_where_applies(tx: &Transaction<'_>, finishes: &[(usize, &Finish)]) -> Result<Vec<Row>> {
    let completions: Vec<(&Finish, WaitpointState)> = finishes
        .iter()
        .filter_map(|(_, finish)| match &finish.finishing {
            Finishing::Complete { at, via, output } => {
                Some((*finish, WaitpointState::Completed { at: *at, via: *via, output: output.clone() }))
            }
            Finishing::Deadline { .. } | Finishing::Force { .. } | Finishing::Reject { .. } => None,
        })
        .collect();
    if completions.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<StateColumns<'_>> = completions.iter().map(|(_, state)| state_columns(state)).collect();
    let ids: Vec<&str> = completions.iter().map(|(finish, _)| finish.id.internal()).collect();
    let environment_ids: Vec<Option<&str>> =
        completions.iter().map(|(finish, _)| finish.environment_id.as_ref().map(EnvironmentId::internal)).collect();
    let statuses: Vec<&str> = columns.iter().map(|c| c.status).collect();
    let completed_at: Vec<Option<i64>> = columns.iter().map(|c| c.completed_at).collect();
    let completed_via: Vec<Option<&str>> = columns.iter().map(|c| c.completed_via).collect();
    let outputs: Vec<Option<&str>> = columns.iter().map(|c| c.output.as_deref()).collect();
    let output_types: Vec<Option<&str>> = columns.iter().map(|c| c.output_type).collect();
    let count = i64::try_from(completions.len()).map_err(|error| failure(&error))?;
    let update = tx.prepare_cached(FINISH_WHERE_APPLIES).await.map_err(map_error)?;
    tx.query(
        &update,
        &[&ids, &environment_ids, &statuses, &completed_at, &completed_via, &outputs, &output_types, &count],
    )
    .await
    .map_err(map_error)
}

/// Reads rows of [`waitpoint_columns!`] into waitpoints by id.
fn by_id(rows: &[Row]) -> Result<HashMap<String, Waitpoint>> {
    rows.iter().map(|row| waitpoint_from_row(row).map(|w| (w.id.internal().to_owned(), w))).collect()
}

/// Moves a waiting waitpoint, locked by this transaction, to `state`.
async fn set_state(tx: &Transaction<'_>, id: &WaitpointId, state: &WaitpointState) -> Result<()> {
    let columns = state_columns(state);
    let set_state = tx.prepare_cached(SET_STATE).await.map_err(map_error)?;
    tx.execute(
        &set_state,
        &[
            &id.internal(),
            &columns.status,
            &columns.completed_at,
            &columns.completed_via,
            &columns.output.as_deref(),
            &columns.output_type,
        ],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
            workers_alive_since: None,
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
                Step::Set(Set { creates: vec![(0, a), (3, c)], finishes: finishes(&[1]), runs: Vec::new() }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[2]), runs: Vec::new() }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[4]), runs: Vec::new() }),
                Step::Keyed(5, k),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[6, 7]), runs: Vec::new() }),
                Step::Set(Set { creates: Vec::new(), finishes: finishes(&[8]), runs: Vec::new() }),
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
                Step::Set(Set { creates: Vec::new(), finishes: Vec::new(), runs: runs(&[0, 1, 4]) }),
                Step::Set(Set { creates: Vec::new(), finishes: vec![(2, finished)], runs: runs(&[3]) }),
                Step::Alone(5, &ops[5]),
                Step::Set(Set { creates: Vec::new(), finishes: Vec::new(), runs: runs(&[6]) }),
            ]
        );
    }
}
