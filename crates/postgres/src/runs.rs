//! Run writes and reads: create, claim, journal, wait, finish, cancel, release; lists.
//!
//! Each write locks the run's row (`FOR UPDATE`) inside the batch's transaction, asks
//! [`transitions`] what it becomes, and stores the answer. Claims lock with `SKIP LOCKED`, so
//! lanes claiming at once take different runs instead of waiting on each other.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use waitpoint_storage::{
    Claim, ClaimOutcome, CreateOutcome, HeldRun, JournalOutcome, LeaseRefusal, Result, Resumed, RunClaim,
    RunCreateOutcome, RunCreateToken, RunEndOutcome, RunJournal, RunListQuery, RunWait, RunsRelease, StorageError,
    Takers, WorkerOutcome, WorkerSeen, WriteOp, WriteOutcome, transitions,
};
use waitpoint_types::{
    EnvironmentId, JournalEntry, JournalKind, Run, RunError, RunId, RunState, RunStatus, Timestamp, Waitpoint,
    WaitpointId, WorkerId,
};

use crate::rows::{WAITPOINT_COLUMNS, column, waitpoint_columns, waitpoint_from_row};
use crate::{bind, failure, lists, map_error, waitpoints};

/// The columns [`run_from_row`] reads, in order, of the table aliased `r`.
macro_rules! run_columns {
    () => {
        "r.id, r.environment_id, r.task_id, r.payload, r.status, r.available_at, r.worker_id, r.waiting_needed, \
         r.waiting_seq, r.output, r.error, r.finished_at, r.attempt, r.max_attempts, r.epoch, r.sticky_worker, \
         r.tags, r.idempotency_key, r.inactive_idempotency_key, r.idempotency_key_expires_at, r.created_at, \
         r.started_at, r.updated_at"
    };
}
pub(crate) use run_columns;

/// How many columns [`run_columns!`] names; what a query selects after them starts here.
const RUN_COLUMNS: usize = 23;

const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs r WHERE r.id = $1");
const LOCK_RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs r WHERE r.id = $1 FOR UPDATE");
/// The run, locked, unless another transaction has it locked.
const LOCK_RUN_NOWAIT: &str = concat!("SELECT ", run_columns!(), " FROM runs r WHERE r.id = $1 FOR UPDATE SKIP LOCKED");
/// The run, locked, then its journal's length and the entry at position `$2` (if any): what
/// an operation at that position needs, in one round trip.
const LOCK_RUN_AT: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", (SELECT COALESCE(MAX(j.seq) + 1, 0) FROM run_journal j WHERE j.run_id = r.id),
       e.seq, e.kind, e.name, e.result
     FROM runs r LEFT JOIN run_journal e ON e.run_id = r.id AND e.seq = $2
     WHERE r.id = $1 FOR UPDATE OF r"
);
const SELECT_ACTIVE_KEY: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs r WHERE r.environment_id = $1 AND r.task_id = $2 AND r.idempotency_key = $3 FOR UPDATE"
);
const INSERT_RUN: &str = "
    WITH inserted AS (
        INSERT INTO runs (id, environment_id, task_id, payload, status, available_at, worker_id, attempt,
            max_attempts, epoch, tags, idempotency_key, inactive_idempotency_key, idempotency_key_expires_at,
            created_at, started_at, updated_at)
        VALUES ($1, $2, $3, $4, $15, $5, $16, $6, $7, $8, $9, $10, $11, $12, $13, $17, $14)
        ON CONFLICT (environment_id, task_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id, environment_id
    ), tagged AS (
        INSERT INTO run_tags (environment_id, tag, run_id)
        SELECT inserted.environment_id, t.tag, inserted.id FROM inserted, unnest($9::text[]) AS t (tag)
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FROM inserted";
const DEACTIVATE_KEY: &str =
    "UPDATE runs SET inactive_idempotency_key = idempotency_key, idempotency_key = NULL WHERE id = $1";
const UPDATE_RUN: &str = "UPDATE runs SET status = $2, available_at = $3, worker_id = $4, waiting_needed = $5,
     waiting_seq = $6, output = $7, error = $8, finished_at = $9, attempt = $10, epoch = $11, sticky_worker = $12,
     started_at = $13, updated_at = $14
     WHERE id = $1";
/// Stores every column a transition can change, for each listed run. `LIMIT $15` keeps every
/// element and makes the plan a probe of the primary key per element (see
/// `waitpoints::FINISH_WHERE_APPLIES`).
const UPDATE_RUNS: &str = "
    UPDATE runs r
    SET status = u.status, available_at = u.available_at, worker_id = u.worker_id, waiting_needed = u.waiting_needed,
        waiting_seq = u.waiting_seq, output = u.output, error = u.error, finished_at = u.finished_at,
        attempt = u.attempt, epoch = u.epoch, sticky_worker = u.sticky_worker, started_at = u.started_at,
        updated_at = u.updated_at
    FROM (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::int[], $7::text[],
            $8::text[], $9::bigint[], $10::int[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[])
            AS u (id, status, available_at, worker_id, waiting_needed, waiting_seq, output, error, finished_at, attempt,
                epoch, sticky_worker, started_at, updated_at)
        LIMIT $15
    ) AS u
    WHERE r.id = u.id";
const HELD_BY: &str =
    "SELECT id, epoch FROM runs WHERE status = 'EXECUTING' AND environment_id = $1 AND worker_id = $2 ORDER BY id";
/// Runs a worker may take, locked, each with its journal's last entry (if any).
const CLAIMABLE: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", e.seq, e.kind, e.name, e.result
     FROM runs r
     LEFT JOIN LATERAL (SELECT j.seq, j.kind, j.name, j.result FROM run_journal j WHERE j.run_id = r.id
                        ORDER BY j.seq DESC LIMIT 1) e ON true
     WHERE r.environment_id = $1 AND r.task_id = $2 AND r.status = 'QUEUED' AND r.available_at <= $3
       AND (r.sticky_worker IS NULL OR r.sticky_worker = $4 OR r.available_at <= $5
            OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.environment_id = r.environment_id
                           AND w.id = r.sticky_worker AND w.last_seen_at >= $6))
     ORDER BY r.available_at, r.id LIMIT $7 FOR UPDATE OF r SKIP LOCKED"
);
const INSERT_ENTRY: &str = "INSERT INTO run_journal (run_id, seq, kind, name, result) VALUES ($1, $2, $3, $4, $5)";
/// Fills in the result of each listed wait (`LIMIT $4` keeps every element and makes the plan
/// a probe of the primary key per element, see `waitpoints::FINISH_WHERE_APPLIES`).
const SET_RESULTS: &str = "UPDATE run_journal j SET result = s.result
     FROM (SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS s (run_id, seq, result) LIMIT $4) AS s
     WHERE j.run_id = s.run_id AND j.seq = s.seq";
/// Runs whose current wait includes any of `$1`, locked in id order, each with the journal
/// entry of its wait and one of `$1` it waits on. Driven by `run_waits` (the few waits on these
/// waitpoints), each run a lateral probe of its primary key that is checked again once locked
/// (a finish that resumed it first leaves it out); the `LIMIT`s keep the planner from
/// flattening the probes into joins, which it may run as a scan of every waiting run when its
/// statistics lag behind a burst.
const WAITING_ON_ANY: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", e.seq, e.kind, e.name, e.result, x.waitpoint_id
     FROM (SELECT DISTINCT ON (x.run_id) x.run_id, x.seq, x.waitpoint_id FROM run_waits x
           WHERE x.waitpoint_id = ANY($1::text[]) ORDER BY x.run_id) AS x
     CROSS JOIN LATERAL (SELECT * FROM runs WHERE id = x.run_id AND status = 'WAITING' AND waiting_seq = x.seq
                         FOR UPDATE) AS r
     LEFT JOIN LATERAL (SELECT j.seq, j.kind, j.name, j.result FROM run_journal j
                        WHERE j.run_id = r.id AND j.seq = r.waiting_seq LIMIT 1) AS e ON true
     ORDER BY x.run_id"
);
/// The waitpoints of each listed wait (run, position), as they are now, each row led by its
/// run's id, in the waits' order.
const WAITS_OF: &str = concat!(
    "SELECT ",
    waitpoint_columns!(w),
    ", x.run_id
     FROM unnest($1::text[], $2::int[]) AS q (run_id, seq)
     JOIN run_waits x ON x.run_id = q.run_id AND x.seq = q.seq
     JOIN waitpoints w ON w.id = x.waitpoint_id
     ORDER BY x.run_id, x.position"
);
/// The waitpoints of a run's wait, in order.
const WAITS: &str = concat!(
    "SELECT ",
    waitpoint_columns!(w),
    " FROM run_waits x JOIN waitpoints w ON w.id = x.waitpoint_id
     WHERE x.run_id = $1 AND x.seq = $2 ORDER BY x.position"
);
const INSERT_WAITS: &str = "INSERT INTO run_waits (run_id, seq, position, waitpoint_id)
     SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[])";
/// Locks the listed waitpoints shared, one after the other in the order of the list.
pub(crate) const SHARE_WAITPOINTS: &str = concat!(
    "SELECT ",
    waitpoint_columns!(w),
    " FROM unnest($1::text[]) AS q (id)
     CROSS JOIN LATERAL (SELECT * FROM waitpoints WHERE id = q.id FOR SHARE) AS w"
);
const ORPHANS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs r WHERE r.status = 'EXECUTING'
       AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.environment_id = r.environment_id
                         AND w.id = r.worker_id AND w.last_seen_at >= $1)
     FOR UPDATE SKIP LOCKED"
);
const WORKER_SEEN: &str = "INSERT INTO workers (id, environment_id, last_seen_at, tasks) VALUES ($1, $2, $3, $4)
     ON CONFLICT (environment_id, id)
     DO UPDATE SET last_seen_at = GREATEST(workers.last_seen_at, excluded.last_seen_at), tasks = excluded.tasks";
const SESSION_OF: &str = "SELECT session FROM workers WHERE environment_id = $1 AND id = $2";
/// Makes `$4` the worker's session unless a newer one is stored, and answers the session it has
/// then (so two claims racing each other agree on the newest).
const TAKE_SESSION: &str = "INSERT INTO workers (environment_id, id, last_seen_at, session) VALUES ($1, $2, $3, $4)
     ON CONFLICT (environment_id, id) DO UPDATE SET
         session = CASE WHEN workers.session IS NULL OR excluded.session >= workers.session
                        THEN excluded.session ELSE workers.session END,
         last_seen_at = GREATEST(workers.last_seen_at, excluded.last_seen_at)
     RETURNING session";
const WORKER_LAST_SEEN: &str = "SELECT last_seen_at FROM workers WHERE environment_id = $1 AND id = $2";
const TASK_SERVED: &str = "SELECT EXISTS (SELECT 1 FROM workers
     WHERE environment_id = $1 AND last_seen_at >= $3 AND $2 = ANY (tasks))";
/// Each listed run's environment (by its 1-based place in the list) with its journal entries
/// in order, one row per entry (one without entry for an empty journal); none for a run that
/// does not exist.
const JOURNALS: &str = "SELECT q.n, r.environment_id, j.seq, j.kind, j.name, j.result
     FROM unnest($1::text[]) WITH ORDINALITY AS q (id, n)
     JOIN runs r ON r.id = q.id
     LEFT JOIN run_journal j ON j.run_id = r.id
     ORDER BY q.n, j.seq";
const NEXT_AVAILABLE: &str = "SELECT MIN(available_at) FROM runs
     WHERE environment_id = $1 AND status = 'QUEUED' AND available_at > $2 AND task_id = ANY($3)";

/// Reads a run from the columns of [`run_columns!`].
pub(crate) fn run_from_row(row: &Row) -> Result<Run> {
    let id: String = column(row, 0)?;
    let corrupt = |what: &str| StorageError::Corrupt(format!("run {id}: {what}"));
    let millis = |index: usize| column::<Option<i64>>(row, index).map(|v| v.map(Timestamp::from_millis));
    let status: String = column(row, 4)?;
    let worker: Option<String> = column(row, 6)?;
    let waiting_needed: Option<i32> = column(row, 7)?;
    let waiting_seq: Option<i32> = column(row, 8)?;
    let output: Option<String> = column(row, 9)?;
    let error: Option<String> = column(row, 10)?;
    let (available_at, finished_at) = (millis(5)?, millis(11)?);
    let state = match (status.as_str(), available_at, worker, waiting_needed, waiting_seq, finished_at) {
        ("QUEUED", Some(available_at), ..) => RunState::Queued { available_at },
        ("EXECUTING", _, Some(worker), ..) => RunState::Executing { worker: WorkerId::from_internal(worker) },
        ("WAITING", _, _, Some(needed), Some(seq), _) => RunState::Waiting {
            seq: u32::try_from(seq).map_err(|_| corrupt("negative waiting_seq"))?,
            needed: u32::try_from(needed).map_err(|_| corrupt("negative waiting_needed"))?,
        },
        ("COMPLETED", .., Some(at)) => {
            RunState::Completed { at, output: output.ok_or_else(|| corrupt("completed without output"))? }
        }
        ("FAILED", .., Some(at)) => {
            let error = error.ok_or_else(|| corrupt("failed without error"))?;
            let error: RunError = serde_json::from_str(&error).map_err(|_| corrupt("unreadable error"))?;
            RunState::Failed { at, error }
        }
        ("CANCELED", .., Some(at)) => RunState::Canceled { at },
        _ => return Err(corrupt("inconsistent status")),
    };
    let sticky_worker: Option<String> = column(row, 15)?;
    Ok(Run {
        id: RunId::from_internal(id.clone()),
        environment_id: EnvironmentId::from_internal(column(row, 1)?),
        task_id: column(row, 2)?,
        payload: column(row, 3)?,
        state,
        attempt: u32::try_from(column::<i32>(row, 12)?).map_err(|_| corrupt("negative attempt"))?,
        max_attempts: u32::try_from(column::<i32>(row, 13)?).map_err(|_| corrupt("negative max_attempts"))?,
        epoch: u64::try_from(column::<i64>(row, 14)?).map_err(|_| corrupt("negative epoch"))?,
        sticky_worker: sticky_worker.map(WorkerId::from_internal),
        tags: column(row, 16)?,
        idempotency_key: column(row, 17)?,
        inactive_idempotency_key: column(row, 18)?,
        idempotency_key_expires_at: millis(19)?,
        created_at: Timestamp::from_millis(column(row, 20)?),
        started_at: millis(21)?,
        updated_at: Timestamp::from_millis(column(row, 22)?),
    })
}

/// Reads the journal entry whose `seq, kind, name, result` columns start at `base`; `None` when
/// they are NULL (an outer join found none).
pub(crate) fn entry_from_row(row: &Row, base: usize) -> Result<Option<JournalEntry>> {
    let Some(seq) = column::<Option<i32>>(row, base)? else {
        return Ok(None);
    };
    let kind: String = column(row, base + 1)?;
    let seq = u32::try_from(seq).map_err(|_| StorageError::Corrupt(format!("journal entry {seq}: negative")))?;
    let kind =
        JournalKind::parse(&kind).ok_or_else(|| StorageError::Corrupt(format!("journal entry {seq}: kind {kind}")))?;
    Ok(Some(JournalEntry { seq, kind, name: column(row, base + 2)?, result: column(row, base + 3)? }))
}

fn rows_to_runs(rows: &[Row]) -> Result<Vec<Run>> {
    rows.iter().map(run_from_row).collect()
}

async fn query(tx: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(map_error)?;
    tx.query(&statement, params).await.map_err(map_error)
}

async fn query_opt(tx: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(map_error)?;
    tx.query_opt(&statement, params).await.map_err(map_error)
}

async fn execute(tx: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let statement = tx.prepare_cached(sql).await.map_err(map_error)?;
    tx.execute(&statement, params).await.map_err(map_error)
}

/// Applies one run operation that the batch cannot apply in a set, or a worker's record, in
/// the batch's transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, op: &WriteOp) -> Result<WriteOutcome> {
    match op {
        WriteOp::RunCreate(new) => create(tx, new).await.map(WriteOutcome::RunCreate),
        WriteOp::RunClaim(claim) => self::claim(tx, claim).await.map(WriteOutcome::Claim),
        WriteOp::RunCreateToken(op) => create_token(tx, op).await.map(WriteOutcome::Journal),
        WriteOp::RunWait(op) => wait(tx, op).await.map(WriteOutcome::Journal),
        WriteOp::RunCancel { run, environment_id, at } => {
            cancel(tx, run, environment_id, *at).await.map(WriteOutcome::RunEnd)
        }
        WriteOp::RunsRelease(op) => release(tx, op).await.map(WriteOutcome::Released),
        WriteOp::WorkerSeen(op) => worker_seen(tx, op).await.map(WriteOutcome::Worker),
        WriteOp::WorkerLeft { environment_id, worker, session } => {
            worker_left(tx, environment_id, worker, session.as_deref()).await.map(WriteOutcome::Worker)
        }
        WriteOp::Create(_) | WriteOp::Finish(_) | WriteOp::Prolong(_) => {
            Err(StorageError::Corrupt("a waitpoint operation reached the run operations".into()))
        }
        WriteOp::RunRecord(_) | WriteOp::RunFinish(_) => {
            Err(StorageError::Corrupt("a record or an attempt's end reached the lone run operations".into()))
        }
    }
}

/// Stores every column a transition can change.
async fn update(tx: &Transaction<'_>, run: &Run) -> Result<()> {
    let (status, available_at, worker, waiting_needed, waiting_seq, output, error, finished_at) =
        state_columns(&run.state)?;
    let epoch = i64::try_from(run.epoch).unwrap_or(i64::MAX);
    let attempt = i32::try_from(run.attempt).unwrap_or(i32::MAX);
    execute(
        tx,
        UPDATE_RUN,
        &[
            &run.id.internal(),
            &status,
            &available_at,
            &worker,
            &waiting_needed,
            &waiting_seq,
            &output,
            &error,
            &finished_at,
            &attempt,
            &epoch,
            &run.sticky_worker.as_ref().map(|w| w.internal()),
            &run.started_at.map(Timestamp::as_millis),
            &run.updated_at.as_millis(),
        ],
    )
    .await
    .map(drop)
}

/// Stores every column a transition can change, for each of `runs` (distinct), in one statement.
pub(crate) async fn update_runs(tx: &Transaction<'_>, runs: &[Run]) -> Result<()> {
    let columns = runs.iter().map(|run| state_columns(&run.state)).collect::<Result<Vec<_>>>()?;
    let ids: Vec<&str> = runs.iter().map(|run| run.id.internal()).collect();
    let statuses: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let available_at: Vec<Option<i64>> = columns.iter().map(|c| c.1).collect();
    let workers: Vec<Option<&str>> = columns.iter().map(|c| c.2).collect();
    let waiting_needed: Vec<Option<i32>> = columns.iter().map(|c| c.3).collect();
    let waiting_seq: Vec<Option<i32>> = columns.iter().map(|c| c.4).collect();
    let outputs: Vec<Option<&str>> = columns.iter().map(|c| c.5).collect();
    let errors: Vec<Option<&str>> = columns.iter().map(|c| c.6.as_deref()).collect();
    let finished_at: Vec<Option<i64>> = columns.iter().map(|c| c.7).collect();
    let attempts: Vec<i32> = runs.iter().map(|run| i32::try_from(run.attempt).unwrap_or(i32::MAX)).collect();
    let epochs: Vec<i64> = runs.iter().map(|run| i64::try_from(run.epoch).unwrap_or(i64::MAX)).collect();
    let sticky: Vec<Option<&str>> = runs.iter().map(|run| run.sticky_worker.as_ref().map(|w| w.internal())).collect();
    let started_at: Vec<Option<i64>> = runs.iter().map(|run| run.started_at.map(Timestamp::as_millis)).collect();
    let updated_at: Vec<i64> = runs.iter().map(|run| run.updated_at.as_millis()).collect();
    let count = i64::try_from(runs.len()).map_err(|error| failure(&error))?;
    let update = tx.prepare_cached(UPDATE_RUNS).await.map_err(map_error)?;
    tx.execute(
        &update,
        &[
            &ids,
            &statuses,
            &available_at,
            &workers,
            &waiting_needed,
            &waiting_seq,
            &outputs,
            &errors,
            &finished_at,
            &attempts,
            &epochs,
            &sticky,
            &started_at,
            &updated_at,
            &count,
        ],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

pub(crate) type StateColumns<'a> = (
    &'static str,
    Option<i64>,
    Option<&'a str>,
    Option<i32>,
    Option<i32>,
    Option<&'a str>,
    Option<String>,
    Option<i64>,
);

pub(crate) fn state_columns(state: &RunState) -> Result<StateColumns<'_>> {
    Ok(match state {
        RunState::Queued { available_at } => {
            ("QUEUED", Some(available_at.as_millis()), None, None, None, None, None, None)
        }
        RunState::Executing { worker } => ("EXECUTING", None, Some(worker.internal()), None, None, None, None, None),
        RunState::Waiting { seq, needed } => {
            let seq = i32::try_from(*seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
            let needed = i32::try_from(*needed).map_err(|_| StorageError::Corrupt("too many waits needed".into()))?;
            ("WAITING", None, None, Some(needed), Some(seq), None, None, None)
        }
        RunState::Completed { at, output } => {
            ("COMPLETED", None, None, None, None, Some(output.as_str()), None, Some(at.as_millis()))
        }
        RunState::Failed { at, error } => {
            let error = serde_json::to_string(error).map_err(StorageError::database)?;
            ("FAILED", None, None, None, None, None, Some(error), Some(at.as_millis()))
        }
        RunState::Canceled { at } => ("CANCELED", None, None, None, None, None, None, Some(at.as_millis())),
    })
}

async fn create(tx: &Transaction<'_>, new: &Run) -> Result<RunCreateOutcome> {
    transitions::creatable(new)?;
    let (status, available_at, worker, ..) = state_columns(&new.state)?;
    let (attempt, max_attempts) =
        (i32::try_from(new.attempt).unwrap_or(0), i32::try_from(new.max_attempts).unwrap_or(1));
    let epoch = i64::try_from(new.epoch).unwrap_or(0);
    for _ in 0..waitpoints::CREATE_ATTEMPTS {
        let row = query_opt(
            tx,
            INSERT_RUN,
            &[
                &new.id.internal(),
                &new.environment_id.internal(),
                &new.task_id,
                &new.payload,
                &available_at,
                &attempt,
                &max_attempts,
                &epoch,
                &new.tags,
                &new.idempotency_key,
                &new.inactive_idempotency_key,
                &new.idempotency_key_expires_at.map(Timestamp::as_millis),
                &new.created_at.as_millis(),
                &new.updated_at.as_millis(),
                &status,
                &worker,
                &new.started_at.map(Timestamp::as_millis),
            ],
        )
        .await?;
        if row.as_ref().map(|row| column::<i64>(row, 0)).transpose()?.unwrap_or(0) > 0 {
            return Ok(RunCreateOutcome::Created(new.clone()));
        }
        let holder =
            query_opt(tx, SELECT_ACTIVE_KEY, &[&new.environment_id.internal(), &new.task_id, &new.idempotency_key])
                .await?;
        let Some(holder) = holder else { continue };
        let existing = run_from_row(&holder)?;
        if existing.idempotency_key_expires_at.is_none_or(|expires| new.created_at <= expires) {
            return Ok(RunCreateOutcome::Existing(existing));
        }
        execute(tx, DEACTIVATE_KEY, &[&existing.id.internal()]).await?;
    }
    Err(StorageError::Conflict(format!("the idempotency key of run {} kept changing hands", new.id)))
}

/// The newest session of `worker` of `environment`, if it has one.
async fn session_of(tx: &Transaction<'_>, environment: &EnvironmentId, worker: &WorkerId) -> Result<Option<String>> {
    let row = query_opt(tx, SESSION_OF, &[&environment.internal(), &worker.internal()]).await?;
    Ok(row.map(|row| column::<Option<String>>(&row, 0)).transpose()?.flatten())
}

/// Whether `claim`'s session may act for its worker; a newer session than the worker's
/// becomes its session (see [`transitions::session_current`]). Reads only, unless it changes.
async fn take_session(tx: &Transaction<'_>, claim: &RunClaim) -> Result<bool> {
    let Some(session) = claim.session.as_deref() else { return Ok(true) };
    let stored = session_of(tx, &claim.environment_id, &claim.worker).await?;
    if stored.as_deref() == Some(session) {
        return Ok(true);
    }
    if !transitions::session_current(stored.as_deref(), Some(session)) {
        return Ok(false);
    }
    let params: [&(dyn ToSql + Sync); 4] =
        [&claim.environment_id.internal(), &claim.worker.internal(), &claim.now.as_millis(), &session];
    let row = query_opt(tx, TAKE_SESSION, &params).await?;
    let now_stored = row.map(|row| column::<Option<String>>(&row, 0)).transpose()?.flatten();
    Ok(now_stored.as_deref() == Some(session))
}

/// Queues again, at the claim's time, the runs `EXECUTING` for the claim's worker that
/// `holding` does not hold (see [`RunClaim`]).
async fn give_back(tx: &Transaction<'_>, claim: &RunClaim, holding: &[HeldRun]) -> Result<Vec<RunId>> {
    let held: Vec<(RunId, u64)> = query(tx, HELD_BY, &[&claim.environment_id.internal(), &claim.worker.internal()])
        .await?
        .iter()
        .map(|row| {
            let id = RunId::from_internal(column(row, 0)?);
            let epoch = u64::try_from(column::<i64>(row, 1)?)
                .map_err(|_| StorageError::Corrupt(format!("run {id}: negative epoch")))?;
            Ok((id, epoch))
        })
        .collect::<Result<_>>()?;
    let mut released = Vec::new();
    for id in transitions::given_back(holding, &held) {
        // Locked and read again: it may have moved on since. One that another transaction
        // holds is moving on (an operation of its own, a resume): it is left to that one.
        if let Some(row) = query_opt(tx, LOCK_RUN_NOWAIT, &[&id.internal()]).await? {
            let run = run_from_row(&row)?;
            let held = matches!(&run.state, RunState::Executing { worker } if *worker == claim.worker);
            if held && run.environment_id == claim.environment_id && transitions::gives_back(&run, claim) {
                update(tx, &transitions::run_released(&run, claim.now)).await?;
                released.push(run.id);
            }
        }
    }
    Ok(released)
}

async fn claim(tx: &Transaction<'_>, claim: &RunClaim) -> Result<ClaimOutcome> {
    if !take_session(tx, claim).await? {
        return Ok(ClaimOutcome::WorkerReplaced);
    }
    let released = match &claim.holding {
        Some(holding) => give_back(tx, claim, holding).await?,
        None => Vec::new(),
    };
    let now = claim.now.as_millis();
    let sticky_cutoff = claim.now.saturating_sub(claim.sticky_for).as_millis();
    let alive_since = claim.alive_since.as_millis();
    let mut claims: Vec<Claim> = Vec::new();
    for (task, limit) in claim.tasks.iter().filter(|(_, limit)| *limit > 0) {
        let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
        let rows = query(
            tx,
            CLAIMABLE,
            &[
                &claim.environment_id.internal(),
                task,
                &now,
                &claim.worker.internal(),
                &sticky_cutoff,
                &alive_since,
                &limit,
            ],
        )
        .await?;
        for row in &rows {
            let run = run_from_row(row)?;
            let claimed = transitions::run_claimed(&run, &claim.worker, claim.now);
            let last = entry_from_row(row, RUN_COLUMNS)?;
            let journal_length = last.as_ref().map_or(0, |entry| entry.seq + 1);
            claims.push(Claim { run: claimed, journal_length, resumed: transitions::resumed_from(last) });
        }
    }
    // The queries above lock each task's runs; one statement then moves them all.
    if !claims.is_empty() {
        let claimed: Vec<Run> = claims.iter().map(|claim| claim.run.clone()).collect();
        update_runs(tx, &claimed).await?;
    }
    Ok(ClaimOutcome::Claimed { claims, released })
}

async fn insert_entry(tx: &Transaction<'_>, run: &str, entry: &JournalEntry) -> Result<()> {
    let seq = i32::try_from(entry.seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
    execute(tx, INSERT_ENTRY, &[&run, &seq, &entry.kind.as_str(), &entry.name, &entry.result]).await.map(drop)
}

/// Where an operation of `kind` named `name` at journal position `seq` stands.
pub(crate) struct Position {
    pub(crate) seq: u32,
    pub(crate) kind: JournalKind,
}

/// The run, locked, if `epoch` still holds it, and what its journal holds at the position of
/// the operation (`None`: the operation is next and new); otherwise the outcome to answer with
/// (not found, stale, diverged, out of order).
async fn leased_at(
    tx: &Transaction<'_>,
    id: &RunId,
    environment_id: &EnvironmentId,
    epoch: u64,
    at: Position,
    name: &str,
) -> Result<std::result::Result<(Run, Option<JournalEntry>), JournalOutcome>> {
    let seq = i32::try_from(at.seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
    let Some(row) = query_opt(tx, LOCK_RUN_AT, &[&id.internal(), &seq]).await? else {
        return Ok(Err(JournalOutcome::Refused(LeaseRefusal::NotFound)));
    };
    position_in(&row, environment_id, epoch, at, name)
}

/// What [`leased_at`] answers, from a row of the run's columns followed by its journal's
/// length and the entry at the position (as [`LOCK_RUN_AT`] selects them).
pub(crate) fn position_in(
    row: &Row,
    environment_id: &EnvironmentId,
    epoch: u64,
    at: Position,
    name: &str,
) -> Result<std::result::Result<(Run, Option<JournalEntry>), JournalOutcome>> {
    let run = run_from_row(row)?;
    if let Some(refused) = transitions::lease_refusal(&run, environment_id, epoch) {
        return Ok(Err(JournalOutcome::Refused(refused)));
    }
    if let Some(existing) = entry_from_row(row, RUN_COLUMNS + 1)? {
        if transitions::journal_diverges(&existing, at.kind, name) {
            return Ok(Err(JournalOutcome::Diverged(existing)));
        }
        return Ok(Ok((run, Some(existing))));
    }
    let len = u32::try_from(column::<i32>(row, RUN_COLUMNS)?)
        .map_err(|_| StorageError::Corrupt(format!("run {}: negative journal length", run.id)))?;
    if at.seq != len {
        return Ok(Err(JournalOutcome::OutOfOrder(len)));
    }
    Ok(Ok((run, None)))
}

async fn create_token(tx: &Transaction<'_>, op: &RunCreateToken) -> Result<JournalOutcome> {
    let at = Position { seq: op.seq, kind: JournalKind::CreateToken };
    match leased_at(tx, &op.run, &op.environment_id, op.epoch, at, "").await? {
        Err(outcome) => Ok(outcome),
        Ok((_, Some(existing))) => Ok(JournalOutcome::Recorded(existing)),
        Ok((run, None)) => {
            let (token, is_cached) = match waitpoints::create_one(tx, &op.waitpoint).await? {
                CreateOutcome::Created(token) => (token, false),
                CreateOutcome::Existing(token) => (token, true),
            };
            let entry = transitions::token_created(op.seq, &token.id, is_cached);
            insert_entry(tx, run.id.internal(), &entry).await?;
            Ok(JournalOutcome::TokenCreated(entry, Box::new(token)))
        }
    }
}

async fn wait(tx: &Transaction<'_>, op: &RunWait) -> Result<JournalOutcome> {
    // The waitpoints are locked first, shared, in id order: a finish of one of them (which locks
    // it to update it, then the runs waiting on it) either committed before, and this wait
    // sees its result, or waits for this transaction, and then sees this run waiting. Without
    // the lock, each could miss the other and the run would wait forever.
    let shared = share_waitpoints(tx, [op]).await?;
    let at = Position { seq: op.seq, kind: op.kind };
    let (run, existing) = match leased_at(tx, &op.run, &op.environment_id, op.epoch, at, &op.name).await? {
        Err(outcome) => return Ok(outcome),
        Ok(found) => found,
    };
    if let Some(existing) = existing {
        if existing.result.is_some() {
            return Ok(JournalOutcome::Recorded(existing));
        }
    } else {
        let Some(members) = wait_members(op, &run, &shared) else {
            return Ok(JournalOutcome::WaitpointNotFound);
        };
        for new in &op.create {
            waitpoints::create_one(tx, new).await?;
        }
        let result = transitions::wait_decided(op.kind, op.needed, &members).map(|decided| decided.to_json());
        let decided = result.is_some();
        let entry = JournalEntry { seq: op.seq, kind: op.kind, name: op.name.clone(), result };
        insert_entry(tx, run.id.internal(), &entry).await?;
        insert_waits(tx, &[(run.id.internal(), op.seq, &op.waitpoints)]).await?;
        if decided {
            return Ok(JournalOutcome::Recorded(entry));
        }
    }
    let suspended = transitions::run_suspended(&run, op.seq, op.needed, op.at);
    update(tx, &suspended).await?;
    Ok(JournalOutcome::Suspended(Box::new(suspended)))
}

/// Locks, shared and in id order, the existing waitpoints `waits` wait on (not those they
/// create), and reads them by internal id.
pub(crate) async fn share_waitpoints<'a>(
    tx: &Transaction<'_>,
    waits: impl IntoIterator<Item = &'a RunWait>,
) -> Result<HashMap<String, Waitpoint>> {
    let mut ids: Vec<&str> = waits
        .into_iter()
        .flat_map(|op| op.waitpoints.iter().filter(|id| !op.create.iter().any(|new| new.id == **id)))
        .map(WaitpointId::internal)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    query(tx, SHARE_WAITPOINTS, &[&ids])
        .await?
        .iter()
        .map(|row| waitpoint_from_row(row).map(|w| (w.id.internal().to_owned(), w)))
        .collect()
}

/// The waitpoints `op` waits on, in order: those it creates and those in `shared`; `None` when
/// one is missing or belongs to another environment than `run`'s.
pub(crate) fn wait_members(op: &RunWait, run: &Run, shared: &HashMap<String, Waitpoint>) -> Option<Vec<Waitpoint>> {
    op.waitpoints
        .iter()
        .map(|id| {
            op.create
                .iter()
                .find(|new| new.id == *id)
                .or_else(|| shared.get(id.internal()))
                .filter(|w| w.environment_id == run.environment_id)
                .cloned()
        })
        .collect()
}

/// Records the waitpoints of each listed wait (run, journal position, waitpoints in order).
pub(crate) async fn insert_waits(tx: &Transaction<'_>, waits: &[(&str, u32, &[WaitpointId])]) -> Result<()> {
    let (mut runs, mut seqs, mut positions, mut waitpoints) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (run, seq, members) in waits {
        let seq = i32::try_from(*seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
        for (position, waitpoint) in (0_i32..).zip(members.iter()) {
            runs.push(*run);
            seqs.push(seq);
            positions.push(position);
            waitpoints.push(waitpoint.internal());
        }
    }
    execute(tx, INSERT_WAITS, &[&runs, &seqs, &positions, &waitpoints]).await.map(drop)
}

/// Resumes every run whose wait one of `finished`, the waitpoints that just finished in this
/// transaction in the batch's order (each with its finish's `hand_to`), decides (a set as the
/// finishes would one at a time, [`transitions::wait_decided_in_order`]): fills in the result of
/// each one's wait, then hands it to its sticky worker if the finish's `hand_to` takes it, or
/// queues it ([`transitions::hand_off`]). A run waiting on a set that is not decided yet stays
/// waiting; one whose set several of them finish resumes once. Returns what was resumed, by the
/// internal id of the waitpoint that resumed it. One query finds them all, one more reads the
/// sets; only runs that resume cost writes.
pub(crate) async fn resume_waiting(
    tx: &Transaction<'_>,
    finished: &[(&Waitpoint, &Takers)],
) -> Result<HashMap<String, Resumed>> {
    let ids: Vec<&str> = finished.iter().map(|(waitpoint, _)| waitpoint.id.internal()).collect();
    let waiting = query(tx, WAITING_ON_ANY, &[&ids]).await?;
    let mut sets: HashMap<String, Vec<Waitpoint>> = {
        let (mut runs, mut seqs) = (Vec::new(), Vec::new());
        for row in &waiting {
            if entry_from_row(row, RUN_COLUMNS)?.is_some_and(|wait| wait.kind == JournalKind::WaitSet) {
                runs.push(column::<String>(row, 0)?);
                seqs.push(column::<i32>(row, 8)?);
            }
        }
        let mut sets: HashMap<String, Vec<Waitpoint>> = HashMap::new();
        if !runs.is_empty() {
            for row in query(tx, WAITS_OF, &[&runs, &seqs]).await? {
                let run: String = column(&row, WAITPOINT_COLUMNS)?;
                sets.entry(run).or_default().push(waitpoint_from_row(&row)?);
            }
        }
        sets
    };
    let mut resumed: HashMap<String, Resumed> = HashMap::new();
    let mut results: Vec<(String, i32, String)> = Vec::with_capacity(waiting.len());
    let mut changed: Vec<Run> = Vec::with_capacity(waiting.len());
    for row in &waiting {
        let run = run_from_row(row)?;
        let RunState::Waiting { seq, needed } = run.state else { continue };
        let Some(wait) = entry_from_row(row, RUN_COLUMNS)? else { continue };
        let decided = match wait.kind {
            JournalKind::WaitSet => {
                let members = sets.remove(run.id.internal()).unwrap_or_default();
                let order: Vec<&WaitpointId> = finished.iter().map(|(waitpoint, _)| &waitpoint.id).collect();
                transitions::wait_decided_in_order(wait.kind, needed, &members, &order)
                    .map(|(result, position)| (result.to_json(), finished[position]))
            }
            _ => {
                let by: String = column(row, RUN_COLUMNS + 4)?;
                let Some(decider) = finished.iter().find(|(w, _)| w.id.internal() == by) else { continue };
                transitions::wait_decided(wait.kind, needed, std::slice::from_ref(decider.0))
                    .map(|result| (result.to_json(), *decider))
            }
        };
        let Some((result, (waitpoint, hand_to))) = decided else { continue };
        let Some(at) = waitpoint.completed_at() else { continue };
        let by = waitpoint.id.internal().to_owned();
        let position = i32::try_from(seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
        results.push((run.id.internal().to_owned(), position, result.clone()));
        let entry = resumed.entry(by).or_default();
        match transitions::hand_off(&run, hand_to) {
            Some(worker) => {
                let claimed = transitions::run_claimed(&run, &worker, at);
                // The wait is the journal's last entry: a waiting run performs nothing after it.
                let wait = JournalEntry { result: Some(result), ..wait };
                entry.handed.push(Claim { run: claimed.clone(), journal_length: seq + 1, resumed: Some(wait) });
                changed.push(claimed);
            }
            None => {
                changed.push(transitions::run_resumed(&run, at));
                entry.queued.push(run.id.clone());
            }
        }
    }
    if !results.is_empty() {
        let runs: Vec<&str> = results.iter().map(|(run, _, _)| run.as_str()).collect();
        let positions: Vec<i32> = results.iter().map(|(_, position, _)| *position).collect();
        let values: Vec<&str> = results.iter().map(|(_, _, result)| result.as_str()).collect();
        let count = i64::try_from(results.len()).unwrap_or(i64::MAX);
        execute(tx, SET_RESULTS, &[&runs, &positions, &values, &count]).await?;
        update_runs(tx, &changed).await?;
    }
    Ok(resumed)
}

async fn cancel(
    tx: &Transaction<'_>,
    id: &RunId,
    environment_id: &EnvironmentId,
    at: Timestamp,
) -> Result<RunEndOutcome> {
    let Some(row) = query_opt(tx, LOCK_RUN, &[&id.internal()]).await? else {
        return Ok(RunEndOutcome::Refused(LeaseRefusal::NotFound));
    };
    let run = run_from_row(&row)?;
    if run.environment_id != *environment_id {
        return Ok(RunEndOutcome::Refused(LeaseRefusal::NotFound));
    }
    match transitions::run_canceled(&run, at) {
        Some(canceled) => {
            update(tx, &canceled).await?;
            Ok(RunEndOutcome::Ended(canceled))
        }
        None => Ok(RunEndOutcome::Unchanged(run)),
    }
}

async fn release(tx: &Transaction<'_>, op: &RunsRelease) -> Result<Vec<RunId>> {
    let orphans = rows_to_runs(&query(tx, ORPHANS, &[&op.alive_since.as_millis()]).await?)?;
    let mut released = Vec::with_capacity(orphans.len());
    for run in orphans {
        update(tx, &transitions::run_released(&run, op.now)).await?;
        released.push(run.id);
    }
    Ok(released)
}

async fn worker_seen(tx: &Transaction<'_>, op: &WorkerSeen) -> Result<WorkerOutcome> {
    let params: [&(dyn ToSql + Sync); 4] =
        [&op.worker.internal(), &op.environment_id.internal(), &op.at.as_millis(), &op.tasks];
    execute(tx, WORKER_SEEN, &params).await?;
    Ok(WorkerOutcome::Done)
}

/// Forgets a worker that stopped, unless a newer session took it over.
async fn worker_left(
    tx: &Transaction<'_>,
    environment_id: &EnvironmentId,
    worker: &WorkerId,
    session: Option<&str>,
) -> Result<WorkerOutcome> {
    let stored = session_of(tx, environment_id, worker).await?;
    if !transitions::session_current(stored.as_deref(), session) {
        return Ok(WorkerOutcome::Replaced);
    }
    let forget = "DELETE FROM workers WHERE environment_id = $1 AND id = $2";
    execute(tx, forget, &[&environment_id.internal(), &worker.internal()]).await?;
    Ok(WorkerOutcome::Done)
}

/// When `worker` of `environment` last polled, if it is known.
pub(crate) async fn worker_last_seen(
    client: &impl GenericClient,
    environment: &EnvironmentId,
    worker: &WorkerId,
) -> Result<Option<Timestamp>> {
    let row = query_opt(client, WORKER_LAST_SEEN, &[&environment.internal(), &worker.internal()]).await?;
    Ok(row.map(|row| column::<i64>(&row, 0)).transpose()?.map(Timestamp::from_millis))
}

/// Whether a worker of `environment` seen at or after `alive_since` runs `task_id`.
pub(crate) async fn task_served(
    client: &impl GenericClient,
    environment: &EnvironmentId,
    task_id: &str,
    alive_since: Timestamp,
) -> Result<bool> {
    let row = query_opt(client, TASK_SERVED, &[&environment.internal(), &task_id, &alive_since.as_millis()]).await?;
    row.map_or(Ok(false), |row| column(&row, 0))
}

/// Reads a run on a pooled connection.
pub(crate) async fn get(client: &impl GenericClient, id: &RunId) -> Result<Run> {
    let row = query_opt(client, SELECT_RUN, &[&id.internal()]).await?.ok_or(StorageError::NotFound)?;
    run_from_row(&row)
}

/// The journals of the runs `ids`, in one statement (see [`Store::run_journals`]).
///
/// [`Store::run_journals`]: waitpoint_storage::Store::run_journals
pub(crate) async fn journals(client: &impl GenericClient, ids: &[RunId]) -> Result<Vec<Option<RunJournal>>> {
    let internal: Vec<&str> = ids.iter().map(RunId::internal).collect();
    let mut journals: Vec<Option<RunJournal>> = vec![None; ids.len()];
    for row in query(client, JOURNALS, &[&internal]).await? {
        let place = usize::try_from(column::<i64>(&row, 0)? - 1)
            .ok()
            .filter(|place| *place < ids.len())
            .ok_or_else(|| StorageError::Corrupt("a journal of a run not asked for".into()))?;
        let environment_id = EnvironmentId::from_internal(column(&row, 1)?);
        let journal = journals[place].get_or_insert_with(|| RunJournal { environment_id, entries: Vec::new() });
        journal.entries.extend(entry_from_row(&row, 2)?);
    }
    Ok(journals)
}

/// The earliest future `available_at` among queued runs of these tasks.
pub(crate) async fn next_available(
    client: &impl GenericClient,
    environment_id: &EnvironmentId,
    task_ids: &[String],
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let row = query_opt(client, NEXT_AVAILABLE, &[&environment_id.internal(), &now.as_millis(), &task_ids]).await?;
    Ok(row.map(|row| column::<Option<i64>>(&row, 0)).transpose()?.flatten().map(Timestamp::from_millis))
}

/// The condition (on `r`) for one status; QUEUED and DELAYED are told apart at `now`.
fn status_condition(status: RunStatus, now: &str) -> String {
    match status {
        RunStatus::Queued => format!("(r.status = 'QUEUED' AND r.available_at <= {now})"),
        RunStatus::Delayed => format!("(r.status = 'QUEUED' AND r.available_at > {now})"),
        other => format!("r.status = '{}'", other.as_str()),
    }
}

/// Lists runs like the token list: one walk in id order per tag (a lateral join), else per
/// status (statuses are a fixed set, written as literals so the planner sees rare ones), else
/// per task, else over the environment; each walk limited to a page, then merged.
pub(crate) async fn list(client: &impl GenericClient, query_: &RunListQuery) -> Result<Vec<Run>> {
    rows_to_runs(&select(client, query_, Selection::Runs).await?)
}

/// Counts what [`list`] would return, walking the same indexes for the ids alone.
pub(crate) async fn count(client: &impl GenericClient, query_: &RunListQuery) -> Result<u64> {
    let rows = select(client, query_, Selection::Count).await?;
    let count: i64 = match rows.first() {
        Some(row) => column(row, 0)?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or_default())
}

/// What a list statement selects: the rows, or their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    Runs,
    Count,
}

/// Runs the statement of [`list`] (or of [`count`]).
async fn select(client: &impl GenericClient, query_: &RunListQuery, selection: Selection) -> Result<Vec<Row>> {
    let environment_id = query_.environment_id.internal();
    let now_millis = query_.now.as_millis();
    let limit = i64::try_from(query_.window.limit).unwrap_or(i64::MAX);
    let id_column = if query_.tags.is_empty() { "r.id" } else { "t.run_id" };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&environment_id];
    // Bound only when used: PostgreSQL cannot type a parameter no expression mentions.
    let needs_now = query_.statuses.iter().any(|s| matches!(s, RunStatus::Queued | RunStatus::Delayed));
    let now = if needs_now { bind(&mut params, &now_millis) } else { String::new() };
    let mut filters = String::new();
    if let Some(key) = &query_.idempotency_key {
        filters += &lists::idempotency_key_filter(&mut params, "runs", "r", key);
    }
    let (window, order, limit) = lists::window_filters(&mut params, &query_.window, &limit, id_column);
    filters += &window;
    let statuses: Vec<String> = query_.statuses.iter().map(|s| status_condition(*s, &now)).collect();
    let tasks = (!query_.task_ids.is_empty()).then(|| bind(&mut params, &query_.task_ids));
    let columns = match selection {
        Selection::Runs => run_columns!(),
        Selection::Count => "r.id",
    };
    let sql = if !query_.tags.is_empty() {
        if !statuses.is_empty() {
            filters += &format!(" AND ({})", statuses.join(" OR "));
        }
        if let Some(tasks) = &tasks {
            filters += &format!(" AND r.task_id = ANY({tasks})");
        }
        let tags = bind(&mut params, &query_.tags);
        format!(
            "SELECT {columns} FROM runs r WHERE r.id IN (SELECT walk.id FROM unnest({tags}::text[]) AS wanted(tag) \
             CROSS JOIN LATERAL (SELECT r.id FROM run_tags t JOIN runs r ON r.id = t.run_id \
             WHERE t.environment_id = $1 AND t.tag = wanted.tag{filters} ORDER BY t.run_id {order} LIMIT {limit}) walk) \
             ORDER BY r.id {order} LIMIT {limit}"
        )
    } else {
        let walks: Vec<String> = if !statuses.is_empty() {
            if let Some(tasks) = &tasks {
                filters += &format!(" AND r.task_id = ANY({tasks})");
            }
            statuses.iter().map(|status| format!("r.environment_id = $1 AND {status}")).collect()
        } else if let Some(tasks) = &tasks {
            vec![format!("r.environment_id = $1 AND r.task_id = ANY({tasks})")]
        } else {
            vec!["r.environment_id = $1".to_owned()]
        };
        let walks: Vec<String> = walks
            .iter()
            .map(|condition| {
                format!("(SELECT r.id FROM runs r WHERE {condition}{filters} ORDER BY r.id {order} LIMIT {limit})")
            })
            .collect();
        format!(
            "SELECT {columns} FROM runs r WHERE r.id IN ({}) ORDER BY r.id {order} LIMIT {limit}",
            walks.join(" UNION ALL ")
        )
    };
    let sql = match selection {
        Selection::Runs => sql,
        Selection::Count => format!("SELECT count(*) FROM ({sql}) AS counted"),
    };
    query(client, &sql, &params).await
}

/// Runs of an environment that wait, the longest waiting first.
pub(crate) async fn waiting_longest(
    client: &impl GenericClient,
    environment_id: &EnvironmentId,
    limit: usize,
) -> Result<Vec<Run>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r WHERE r.environment_id = $1 AND r.status = 'WAITING' ORDER BY r.updated_at, r.id LIMIT $2"
    );
    rows_to_runs(&query(client, sql, &[&environment_id.internal(), &limit]).await?)
}

/// Runs that waited on the waitpoint `id` (alone or in a set), newest first.
pub(crate) async fn waiters(client: &impl GenericClient, id: &WaitpointId, limit: usize) -> Result<Vec<Run>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r WHERE r.id IN (SELECT w.run_id FROM run_waits w WHERE w.waitpoint_id = $1) \
         ORDER BY r.id DESC LIMIT $2"
    );
    rows_to_runs(&query(client, sql, &[&id.internal(), &limit]).await?)
}

/// The waitpoints of the run's wait at `seq`, in order.
pub(crate) async fn waits(client: &impl GenericClient, id: &RunId, seq: u32) -> Result<Vec<Waitpoint>> {
    let seq = i32::try_from(seq).map_err(|_| StorageError::Corrupt("journal position too large".into()))?;
    query(client, WAITS, &[&id.internal(), &seq]).await?.iter().map(waitpoint_from_row).collect()
}
