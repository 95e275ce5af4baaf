//! Run operations of a batch that commute, applied together: a handful of set-based statements
//! for any number of triggers, journal records, run tokens, waits and attempt ends, instead of
//! a few statements each.
//!
//! The batch's plan puts an operation here only when no other operation of its set touches
//! its run or its waitpoints, and only when it has no idempotency key (those read and may
//! change whichever row holds the key). Each operation gets the outcome it would get
//! applied alone, deciding with the same `transitions` and `runs::position_in`; the
//! statements are:
//! 1. the new runs, one multi-row insert with their tags;
//! 2. the waitpoints waits read, locked shared, in id order (before any run, as a lone wait
//!    does: a finish of the same waitpoint then either committed before, or sees the run wait);
//! 3. the runs, locked in id order, each with its journal's length and its entry at the
//!    operation's position;
//! 4. the waitpoints the operations create, one insert;
//! 5. the new journal entries, one insert, and the waitpoints of the new waits, another;
//! 6. the runs that change, one update.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use waitpoint_storage::{
    JournalOutcome, LeaseRefusal, Result, RunCreateOutcome, RunCreateToken, RunEndOutcome, RunFinish, RunRecord,
    RunWait, StorageError, WriteOp, WriteOutcome, transitions,
};
use waitpoint_types::{JournalEntry, JournalKind, Run, Timestamp, Waitpoint, WaitpointId};

use crate::rows::column;
use crate::runs::{Position, position_in, run_columns, run_from_row};
use crate::{failure, map_error, runs, waitpoints};

/// Inserts runs without idempotency key, and their tags: one array element per run, except
/// the tags, all in `$13`, each run's the slice from its `$11` to its `$12` (1-based,
/// inclusive; empty when `$12 < $11`).
const INSERT_RUNS: &str = "
    WITH inserted AS (
        INSERT INTO runs (id, environment_id, task_id, payload, status, available_at, worker_id, attempt,
            max_attempts, epoch, tags, inactive_idempotency_key, idempotency_key_expires_at, created_at, started_at,
            updated_at)
        SELECT n.id, n.environment_id, n.task_id, n.payload, n.status, n.available_at, n.worker_id, n.attempt,
            n.max_attempts, n.epoch, ($13::text[])[n.first_tag:n.last_tag], n.inactive_key, n.key_expires_at,
            n.created_at, n.started_at, n.updated_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::int[],
            $8::bigint[], $9::text[], $10::bigint[], $11::int[], $12::int[], $14::bigint[], $15::bigint[],
            $16::text[], $17::text[], $18::bigint[])
            AS n (id, environment_id, task_id, payload, available_at, attempt, max_attempts, epoch, inactive_key,
                key_expires_at, first_tag, last_tag, created_at, updated_at, status, worker_id, started_at)
        RETURNING id, environment_id, tags
    )
    INSERT INTO run_tags (environment_id, tag, run_id)
    SELECT inserted.environment_id, t.tag, inserted.id FROM inserted, unnest(inserted.tags) AS t (tag)
    ON CONFLICT DO NOTHING";

/// Locks the listed runs one after the other in the order of the list; each row holds the
/// run, its journal's length and its entry at the listed position (none for `-1`), as
/// `runs::LOCK_RUN_AT` selects them. Every lookup is a lateral probe of a primary key (the
/// `LIMIT` keeps the planner from flattening it into a join, which it may then run as a hash
/// of the whole journal when its statistics lag behind the table).
const LOCK_RUNS_AT: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", (SELECT COALESCE(MAX(j.seq) + 1, 0) FROM run_journal j WHERE j.run_id = r.id),
       e.seq, e.kind, e.name, e.result
     FROM unnest($1::text[], $2::int[]) AS q (id, seq)
     CROSS JOIN LATERAL (SELECT * FROM runs WHERE id = q.id FOR UPDATE) AS r
     LEFT JOIN LATERAL (SELECT j.seq, j.kind, j.name, j.result FROM run_journal j
                        WHERE j.run_id = r.id AND j.seq = q.seq LIMIT 1) AS e ON true"
);

const INSERT_ENTRIES: &str = "INSERT INTO run_journal (run_id, seq, kind, name, result)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])";

/// Whether `op` can be applied in a set (see the module's documentation).
pub(crate) fn in_sets(op: &WriteOp) -> bool {
    match op {
        WriteOp::RunCreate(run) => run.idempotency_key.is_none(),
        WriteOp::RunCreateToken(op) => op.waitpoint.idempotency_key.is_none(),
        WriteOp::RunWait(op) => op.create.iter().all(|create| create.idempotency_key.is_none()),
        WriteOp::RunRecord(_) | WriteOp::RunFinish(_) => true,
        _ => false,
    }
}

/// What the set's statements write, gathered while the outcomes are decided.
#[derive(Default)]
struct Writes<'a> {
    waitpoints: Vec<Waitpoint>,
    entries: Vec<(String, JournalEntry)>,
    waits: Vec<(&'a str, u32, &'a [WaitpointId])>,
    runs: Vec<Run>,
}

/// Applies run operations for which [`in_sets`] holds, no two on one run or one waitpoint,
/// and returns each one's outcome with its position.
pub(crate) async fn apply(tx: &Transaction<'_>, ops: &[(usize, &WriteOp)]) -> Result<Vec<(usize, WriteOutcome)>> {
    let mut outcomes = Vec::with_capacity(ops.len());
    let created: Vec<(usize, &Run)> = ops
        .iter()
        .filter_map(|(index, op)| match op {
            WriteOp::RunCreate(run) => Some((*index, run)),
            _ => None,
        })
        .collect();
    if !created.is_empty() {
        let runs: Vec<&Run> = created.iter().map(|(_, run)| *run).collect();
        insert_runs(tx, &runs).await?;
        outcomes.extend(
            created
                .into_iter()
                .map(|(index, run)| (index, WriteOutcome::RunCreate(RunCreateOutcome::Created(run.clone())))),
        );
    }

    let shared = runs::share_waitpoints(
        tx,
        ops.iter().filter_map(|(_, op)| match op {
            WriteOp::RunWait(wait) => Some(wait),
            _ => None,
        }),
    )
    .await?;

    let mut locked = {
        let mut wanted: Vec<(&str, i32)> = Vec::new();
        for (_, op) in ops {
            let (run, seq) = match op {
                WriteOp::RunRecord(op) => (&op.run, Some(op.entry.seq)),
                WriteOp::RunCreateToken(op) => (&op.run, Some(op.seq)),
                WriteOp::RunWait(op) => (&op.run, Some(op.seq)),
                WriteOp::RunFinish(op) => (&op.run, None),
                _ => continue,
            };
            let seq = match seq {
                Some(seq) => {
                    i32::try_from(seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?
                }
                None => -1,
            };
            wanted.push((run.internal(), seq));
        }
        wanted.sort_unstable();
        let ids: Vec<&str> = wanted.iter().map(|(id, _)| *id).collect();
        let seqs: Vec<i32> = wanted.iter().map(|(_, seq)| *seq).collect();
        let rows = if ids.is_empty() { Vec::new() } else { query(tx, LOCK_RUNS_AT, &[&ids, &seqs]).await? };
        let mut locked = HashMap::with_capacity(rows.len());
        for row in rows {
            locked.insert(column::<String>(&row, 0)?, row);
        }
        locked
    };

    let mut writes = Writes::default();
    for (index, op) in ops {
        let outcome = match op {
            WriteOp::RunRecord(op) => WriteOutcome::Journal(record(locked.remove(op.run.internal()), op, &mut writes)?),
            WriteOp::RunCreateToken(op) => {
                WriteOutcome::Journal(create_token(locked.remove(op.run.internal()), op, &mut writes)?)
            }
            WriteOp::RunWait(op) => {
                WriteOutcome::Journal(wait(locked.remove(op.run.internal()), &shared, op, &mut writes)?)
            }
            WriteOp::RunFinish(op) => WriteOutcome::RunEnd(finish(locked.remove(op.run.internal()), op, &mut writes)?),
            _ => continue,
        };
        outcomes.push((*index, outcome));
    }

    if !writes.waitpoints.is_empty() {
        let creates: Vec<(usize, &Waitpoint)> = writes.waitpoints.iter().enumerate().collect();
        waitpoints::create_all(tx, &creates).await?;
    }
    if !writes.entries.is_empty() {
        insert_entries(tx, &writes.entries).await?;
    }
    if !writes.waits.is_empty() {
        runs::insert_waits(tx, &writes.waits).await?;
    }
    if !writes.runs.is_empty() {
        runs::update_runs(tx, &writes.runs).await?;
    }
    Ok(outcomes)
}

fn record(row: Option<Row>, op: &RunRecord, writes: &mut Writes) -> Result<JournalOutcome> {
    let Some(row) = row else { return Ok(JournalOutcome::Refused(LeaseRefusal::NotFound)) };
    let entry = &op.entry;
    let at = Position { seq: entry.seq, kind: entry.kind };
    Ok(match position_in(&row, &op.environment_id, op.epoch, at, &entry.name)? {
        Err(outcome) => outcome,
        Ok((_, Some(existing))) => JournalOutcome::Recorded(existing),
        Ok((run, None)) => {
            writes.entries.push((run.id.internal().to_owned(), entry.clone()));
            JournalOutcome::Recorded(entry.clone())
        }
    })
}

fn create_token(row: Option<Row>, op: &RunCreateToken, writes: &mut Writes) -> Result<JournalOutcome> {
    let Some(row) = row else { return Ok(JournalOutcome::Refused(LeaseRefusal::NotFound)) };
    let at = Position { seq: op.seq, kind: JournalKind::CreateToken };
    Ok(match position_in(&row, &op.environment_id, op.epoch, at, "")? {
        Err(outcome) => outcome,
        Ok((_, Some(existing))) => JournalOutcome::Recorded(existing),
        Ok((run, None)) => {
            let entry = transitions::token_created(op.seq, &op.waitpoint.id, false);
            writes.waitpoints.push(op.waitpoint.clone());
            writes.entries.push((run.id.internal().to_owned(), entry.clone()));
            JournalOutcome::TokenCreated(entry, Box::new(op.waitpoint.clone()))
        }
    })
}

fn wait<'a>(
    row: Option<Row>,
    shared: &HashMap<String, Waitpoint>,
    op: &'a RunWait,
    writes: &mut Writes<'a>,
) -> Result<JournalOutcome> {
    let Some(row) = row else { return Ok(JournalOutcome::Refused(LeaseRefusal::NotFound)) };
    let at = Position { seq: op.seq, kind: op.kind };
    let (run, existing) = match position_in(&row, &op.environment_id, op.epoch, at, &op.name)? {
        Err(outcome) => return Ok(outcome),
        Ok(found) => found,
    };
    match existing {
        Some(existing) if existing.result.is_some() => return Ok(JournalOutcome::Recorded(existing)),
        Some(_) => {}
        None => {
            let Some(members) = runs::wait_members(op, &run, shared) else {
                return Ok(JournalOutcome::WaitpointNotFound);
            };
            writes.waitpoints.extend(op.create.iter().cloned());
            let result = transitions::wait_decided(op.kind, op.needed, &members).map(|decided| decided.to_json());
            let decided = result.is_some();
            let entry = JournalEntry { seq: op.seq, kind: op.kind, name: op.name.clone(), result };
            writes.entries.push((run.id.internal().to_owned(), entry.clone()));
            writes.waits.push((op.run.internal(), op.seq, &op.waitpoints));
            if decided {
                return Ok(JournalOutcome::Recorded(entry));
            }
        }
    }
    let suspended = transitions::run_suspended(&run, op.seq, op.needed, op.at);
    writes.runs.push(suspended.clone());
    Ok(JournalOutcome::Suspended(Box::new(suspended)))
}

fn finish(row: Option<Row>, op: &RunFinish, writes: &mut Writes) -> Result<RunEndOutcome> {
    let Some(row) = row else { return Ok(RunEndOutcome::Refused(LeaseRefusal::NotFound)) };
    let run = run_from_row(&row)?;
    if let Some(refused) = transitions::lease_refusal(&run, &op.environment_id, op.epoch) {
        return Ok(RunEndOutcome::Refused(refused));
    }
    let finished = transitions::run_finished(&run, &op.outcome, op.at);
    writes.runs.push(finished.clone());
    Ok(RunEndOutcome::Ended(finished))
}

async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(map_error)?;
    tx.query(&statement, params).await.map_err(map_error)
}

async fn insert_runs(tx: &Transaction<'_>, runs: &[&Run]) -> Result<()> {
    let mut tags: Vec<&str> = Vec::new();
    let (mut first_tags, mut last_tags) = (Vec::with_capacity(runs.len()), Vec::with_capacity(runs.len()));
    for run in runs {
        first_tags.push(i32::try_from(tags.len() + 1).map_err(|error| failure(&error))?);
        tags.extend(run.tags.iter().map(String::as_str));
        last_tags.push(i32::try_from(tags.len()).map_err(|error| failure(&error))?);
    }
    let (mut statuses, mut available_at, mut workers) =
        (Vec::with_capacity(runs.len()), Vec::with_capacity(runs.len()), Vec::with_capacity(runs.len()));
    for run in runs {
        transitions::creatable(run)?;
        let (status, at, worker, ..) = runs::state_columns(&run.state)?;
        statuses.push(status);
        available_at.push(at);
        workers.push(worker);
    }
    let started_at: Vec<Option<i64>> = runs.iter().map(|run| run.started_at.map(Timestamp::as_millis)).collect();
    let ids: Vec<&str> = runs.iter().map(|run| run.id.internal()).collect();
    let environment_ids: Vec<&str> = runs.iter().map(|run| run.environment_id.internal()).collect();
    let task_ids: Vec<&str> = runs.iter().map(|run| run.task_id.as_str()).collect();
    let payloads: Vec<&str> = runs.iter().map(|run| run.payload.as_str()).collect();
    let attempts: Vec<i32> = runs.iter().map(|run| i32::try_from(run.attempt).unwrap_or(0)).collect();
    let max_attempts: Vec<i32> = runs.iter().map(|run| i32::try_from(run.max_attempts).unwrap_or(1)).collect();
    let epochs: Vec<i64> = runs.iter().map(|run| i64::try_from(run.epoch).unwrap_or(0)).collect();
    let inactive_keys: Vec<Option<&str>> = runs.iter().map(|run| run.inactive_idempotency_key.as_deref()).collect();
    let key_expiries: Vec<Option<i64>> =
        runs.iter().map(|run| run.idempotency_key_expires_at.map(Timestamp::as_millis)).collect();
    let created_at: Vec<i64> = runs.iter().map(|run| run.created_at.as_millis()).collect();
    let updated_at: Vec<i64> = runs.iter().map(|run| run.updated_at.as_millis()).collect();
    let insert = tx.prepare_cached(INSERT_RUNS).await.map_err(map_error)?;
    tx.execute(
        &insert,
        &[
            &ids,
            &environment_ids,
            &task_ids,
            &payloads,
            &available_at,
            &attempts,
            &max_attempts,
            &epochs,
            &inactive_keys,
            &key_expiries,
            &first_tags,
            &last_tags,
            &tags,
            &created_at,
            &updated_at,
            &statuses,
            &workers,
            &started_at,
        ],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

async fn insert_entries(tx: &Transaction<'_>, entries: &[(String, JournalEntry)]) -> Result<()> {
    let runs: Vec<&str> = entries.iter().map(|(run, _)| run.as_str()).collect();
    let seqs = entries
        .iter()
        .map(|(_, entry)| i32::try_from(entry.seq))
        .collect::<std::result::Result<Vec<i32>, _>>()
        .map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
    let kinds: Vec<&str> = entries.iter().map(|(_, entry)| entry.kind.as_str()).collect();
    let names: Vec<&str> = entries.iter().map(|(_, entry)| entry.name.as_str()).collect();
    let results: Vec<Option<&str>> = entries.iter().map(|(_, entry)| entry.result.as_deref()).collect();
    let insert = tx.prepare_cached(INSERT_ENTRIES).await.map_err(map_error)?;
    tx.execute(&insert, &[&runs, &seqs, &kinds, &names, &results]).await.map_err(map_error)?;
    Ok(())
}
