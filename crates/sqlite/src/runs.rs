//! Run writes and reads: create, claim, journal, wait, finish, cancel, release; lists.
//!
//! Every write loads the run inside the caller's transaction (SQLite has one writer, so the
//! row cannot change underneath), asks [`transitions`] what it becomes, and stores the answer.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use waitpoint_storage::{
    Claim, ClaimOutcome, CreateOutcome, HeldRun, JournalOutcome, LeaseRefusal, Result, RunClaim, RunCreateOutcome,
    RunCreateToken, RunEndOutcome, RunFinish, RunJournal, RunListQuery, RunRecord, RunWait, RunsRelease, StorageError,
    WorkerOutcome, WorkerSeen, transitions,
};
use waitpoint_types::{
    EnvironmentId, JournalEntry, JournalKind, Run, RunId, RunStatus, Timestamp, WaitpointId, WorkerId,
};

use crate::args::Args;
use crate::resume::update;
use crate::rows::{RUN_COLUMNS, journal_entry_from_row, run_from_row, run_state_columns};
use crate::waitpoints;
use crate::{lists, map_error};

pub(crate) fn select(conn: &Connection, id: &str) -> Result<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], run_from_row).optional())
        .map_err(map_error)?
        .transpose()
}

pub(crate) fn create(conn: &Connection, new: Run) -> Result<RunCreateOutcome> {
    transitions::creatable(&new)?;
    if let Some(key) = &new.idempotency_key {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.environment_id = ?1 AND r.task_id = ?2 AND r.idempotency_key = ?3"
        );
        let existing = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params![new.environment_id.internal(), new.task_id, key], run_from_row).optional()
            })
            .map_err(map_error)?
            .transpose()?;
        if let Some(existing) = existing {
            if existing.idempotency_key_expires_at.is_none_or(|expires| new.created_at <= expires) {
                return Ok(RunCreateOutcome::Existing(existing));
            }
            conn.prepare_cached(
                "UPDATE runs SET inactive_idempotency_key = idempotency_key, idempotency_key = NULL WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute([existing.id.internal()]))
            .map_err(map_error)?;
        }
    }
    let columns = run_state_columns(&new.state);
    let tags = serde_json::to_string(&new.tags).map_err(StorageError::database)?;
    conn.prepare_cached(
        "INSERT INTO runs (id, environment_id, task_id, payload, status, available_at, worker_id, attempt,
             max_attempts, epoch, tags, idempotency_key, inactive_idempotency_key, idempotency_key_expires_at,
             created_at, started_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            new.id.internal(),
            new.environment_id.internal(),
            new.task_id,
            new.payload,
            columns.status,
            columns.available_at,
            columns.worker_id,
            new.attempt,
            new.max_attempts,
            i64::try_from(new.epoch).unwrap_or(i64::MAX),
            tags,
            new.idempotency_key,
            new.inactive_idempotency_key,
            new.idempotency_key_expires_at.map(Timestamp::as_millis),
            new.created_at.as_millis(),
            new.started_at.map(Timestamp::as_millis),
            new.updated_at.as_millis(),
        ])
    })
    .map_err(map_error)?;
    let mut insert_tag = conn
        .prepare_cached("INSERT OR IGNORE INTO run_tags (environment_id, tag, run_id) VALUES (?1, ?2, ?3)")
        .map_err(map_error)?;
    for tag in &new.tags {
        insert_tag.execute(params![new.environment_id.internal(), tag, new.id.internal()]).map_err(map_error)?;
    }
    Ok(RunCreateOutcome::Created(new))
}

pub(crate) fn claim(conn: &Connection, claim: RunClaim) -> Result<ClaimOutcome> {
    if !take_session(conn, &claim)? {
        return Ok(ClaimOutcome::WorkerReplaced);
    }
    let released = match &claim.holding {
        Some(holding) => give_back(conn, &claim, holding)?,
        None => Vec::new(),
    };
    let sticky_cutoff = claim.now.saturating_sub(claim.sticky_for);
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r
         WHERE r.environment_id = ?1 AND r.task_id = ?2 AND r.status = 'QUEUED' AND r.available_at <= ?3
           AND (r.sticky_worker IS NULL OR r.sticky_worker = ?4 OR r.available_at <= ?5
                OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.environment_id = r.environment_id
                               AND w.id = r.sticky_worker AND w.last_seen_at >= ?6))
         ORDER BY r.available_at, r.id LIMIT ?7"
    );
    let mut claims = Vec::new();
    for (task, limit) in claim.tasks.iter().filter(|(_, limit)| *limit > 0) {
        let queued: Vec<Run> = {
            let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
            let rows = stmt
                .query_map(
                    params![
                        claim.environment_id.internal(),
                        task,
                        claim.now.as_millis(),
                        claim.worker.internal(),
                        sticky_cutoff.as_millis(),
                        claim.alive_since.as_millis(),
                        i64::try_from(*limit).unwrap_or(i64::MAX),
                    ],
                    run_from_row,
                )
                .map_err(map_error)?;
            rows.map(|row| row.map_err(map_error)?).collect::<Result<_>>()?
        };
        for run in queued {
            let claimed = transitions::run_claimed(&run, &claim.worker, claim.now);
            update(conn, &claimed)?;
            let last = last_entry(conn, claimed.id.internal())?;
            let journal_length = last.as_ref().map_or(0, |entry| entry.seq + 1);
            claims.push(Claim { run: claimed, journal_length, resumed: transitions::resumed_from(last) });
        }
    }
    Ok(ClaimOutcome::Claimed { claims, released })
}

/// Queues again, at the claim's time, the runs `EXECUTING` for the claim's worker that
/// `holding` does not hold (see [`RunClaim`]).
fn give_back(conn: &Connection, claim: &RunClaim, holding: &[HeldRun]) -> Result<Vec<RunId>> {
    let held: Vec<(RunId, u64)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, epoch FROM runs WHERE status = 'EXECUTING' AND environment_id = ?1 AND worker_id = ?2",
            )
            .map_err(map_error)?;
        let rows = stmt
            .query_map(params![claim.environment_id.internal(), claim.worker.internal()], |row| {
                Ok((RunId::from_internal(row.get(0)?), row.get::<_, i64>(1)?.try_into().unwrap_or_default()))
            })
            .map_err(map_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(map_error)?
    };
    let mut released = Vec::new();
    for id in transitions::given_back(holding, &held) {
        if let Some(run) = select(conn, id.internal())?
            && transitions::gives_back(&run, claim)
        {
            update(conn, &transitions::run_released(&run, claim.now))?;
            released.push(run.id);
        }
    }
    Ok(released)
}

fn last_entry(conn: &Connection, run: &str) -> Result<Option<JournalEntry>> {
    conn.prepare_cached("SELECT seq, kind, name, result FROM run_journal WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1")
        .and_then(|mut stmt| stmt.query_row([run], journal_entry_from_row).optional())
        .map_err(map_error)?
        .transpose()
}

/// The entry at `seq`, or else the last one before it, whose result is not read. A journal
/// holds its positions from 0 without a gap, so without an entry at `seq` the one before it
/// tells the journal's length: one read for what a journal operation needs to know.
fn entry_at_or_before(conn: &Connection, run: &str, seq: u32) -> Result<Option<JournalEntry>> {
    conn.prepare_cached(
        "SELECT seq, kind, name, CASE WHEN seq = ?2 THEN result END FROM run_journal
         WHERE run_id = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
    )
    .and_then(|mut stmt| stmt.query_row(params![run, seq], journal_entry_from_row).optional())
    .map_err(map_error)?
    .transpose()
}

fn insert_entry(conn: &Connection, run: &str, entry: &JournalEntry) -> Result<()> {
    conn.prepare_cached("INSERT INTO run_journal (run_id, seq, kind, name, result) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut stmt| stmt.execute(params![run, entry.seq, entry.kind.as_str(), entry.name, entry.result]))
        .map_err(map_error)?;
    Ok(())
}

/// The run, if `epoch` still holds it; otherwise why not.
fn leased(
    conn: &Connection,
    id: &RunId,
    environment_id: &EnvironmentId,
    epoch: u64,
) -> Result<std::result::Result<Run, LeaseRefusal>> {
    let Some(run) = select(conn, id.internal())? else {
        return Ok(Err(LeaseRefusal::NotFound));
    };
    Ok(transitions::lease_refusal(&run, environment_id, epoch).map_or(Ok(run), Err))
}

/// What position `seq` of the run's journal holds for an operation of `kind` named `name`:
/// `Ok(Some(entry))` when it is recorded already, `Ok(None)` when it is the next free one.
fn position(
    conn: &Connection,
    run: &str,
    seq: u32,
    kind: JournalKind,
    name: &str,
) -> Result<std::result::Result<Option<JournalEntry>, JournalOutcome>> {
    let len = match entry_at_or_before(conn, run, seq)? {
        Some(existing) if existing.seq == seq => {
            if transitions::journal_diverges(&existing, kind, name) {
                return Ok(Err(JournalOutcome::Diverged(existing)));
            }
            return Ok(Ok(Some(existing)));
        }
        Some(before) => before.seq + 1,
        None => 0,
    };
    if seq != len {
        return Ok(Err(JournalOutcome::OutOfOrder(len)));
    }
    Ok(Ok(None))
}

pub(crate) fn record(conn: &Connection, record: RunRecord) -> Result<JournalOutcome> {
    let run = match leased(conn, &record.run, &record.environment_id, record.epoch)? {
        Ok(run) => run,
        Err(refusal) => return Ok(JournalOutcome::Refused(refusal)),
    };
    let entry = record.entry;
    match position(conn, run.id.internal(), entry.seq, entry.kind, &entry.name)? {
        Err(outcome) => Ok(outcome),
        Ok(Some(existing)) => Ok(JournalOutcome::Recorded(existing)),
        Ok(None) => {
            insert_entry(conn, run.id.internal(), &entry)?;
            Ok(JournalOutcome::Recorded(entry))
        }
    }
}

pub(crate) fn create_token(conn: &Connection, op: RunCreateToken) -> Result<JournalOutcome> {
    let run = match leased(conn, &op.run, &op.environment_id, op.epoch)? {
        Ok(run) => run,
        Err(refusal) => return Ok(JournalOutcome::Refused(refusal)),
    };
    match position(conn, run.id.internal(), op.seq, JournalKind::CreateToken, "")? {
        Err(outcome) => Ok(outcome),
        Ok(Some(existing)) => Ok(JournalOutcome::Recorded(existing)),
        Ok(None) => {
            let (token, is_cached) = match waitpoints::create(conn, op.waitpoint)? {
                CreateOutcome::Created(token) => (token, false),
                CreateOutcome::Existing(token) => (token, true),
            };
            let entry = transitions::token_created(op.seq, &token.id, is_cached);
            insert_entry(conn, run.id.internal(), &entry)?;
            Ok(JournalOutcome::TokenCreated(entry, Box::new(token)))
        }
    }
}

pub(crate) fn wait(conn: &Connection, op: RunWait) -> Result<JournalOutcome> {
    let run = match leased(conn, &op.run, &op.environment_id, op.epoch)? {
        Ok(run) => run,
        Err(refusal) => return Ok(JournalOutcome::Refused(refusal)),
    };
    let suspend = |conn: &Connection| -> Result<JournalOutcome> {
        let suspended = transitions::run_suspended(&run, op.seq, op.needed, op.at);
        update(conn, &suspended)?;
        Ok(JournalOutcome::Suspended(Box::new(suspended)))
    };
    match position(conn, run.id.internal(), op.seq, op.kind, &op.name)? {
        Err(outcome) => Ok(outcome),
        Ok(Some(existing)) if existing.result.is_some() => Ok(JournalOutcome::Recorded(existing)),
        Ok(Some(_pending)) => suspend(conn),
        Ok(None) => {
            // Every waitpoint is checked before anything is written.
            let mut members = Vec::with_capacity(op.waitpoints.len());
            for id in &op.waitpoints {
                let member = match op.create.iter().find(|new| new.id == *id) {
                    Some(new) => Some(new.clone()),
                    None => waitpoints::select_waitpoint(conn, id.internal())?,
                };
                match member.filter(|w| w.environment_id == run.environment_id) {
                    Some(member) => members.push(member),
                    None => return Ok(JournalOutcome::WaitpointNotFound),
                }
            }
            for new in &op.create {
                waitpoints::create(conn, new.clone())?;
            }
            let result = transitions::wait_decided(op.kind, op.needed, &members).map(|decided| decided.to_json());
            let decided = result.is_some();
            let entry = JournalEntry { seq: op.seq, kind: op.kind, name: op.name.clone(), result };
            insert_entry(conn, run.id.internal(), &entry)?;
            insert_waits(conn, run.id.internal(), op.seq, &op.waitpoints)?;
            if decided { Ok(JournalOutcome::Recorded(entry)) } else { suspend(conn) }
        }
    }
}

/// Records the waitpoints of the run's wait at `seq`, in order.
fn insert_waits(conn: &Connection, run: &str, seq: u32, waitpoints: &[WaitpointId]) -> Result<()> {
    let mut insert = conn
        .prepare_cached("INSERT INTO run_waits (run_id, seq, position, waitpoint_id) VALUES (?1, ?2, ?3, ?4)")
        .map_err(map_error)?;
    for (position, waitpoint) in (0_u32..).zip(waitpoints) {
        insert.execute(params![run, seq, position, waitpoint.internal()]).map_err(map_error)?;
    }
    Ok(())
}

pub(crate) fn finish(conn: &Connection, op: RunFinish) -> Result<RunEndOutcome> {
    let run = match leased(conn, &op.run, &op.environment_id, op.epoch)? {
        Ok(run) => run,
        Err(refusal) => return Ok(RunEndOutcome::Refused(refusal)),
    };
    let finished = transitions::run_finished(&run, &op.outcome, op.at);
    update(conn, &finished)?;
    Ok(RunEndOutcome::Ended(finished))
}

pub(crate) fn cancel(
    conn: &Connection,
    id: &RunId,
    environment_id: &EnvironmentId,
    at: Timestamp,
) -> Result<RunEndOutcome> {
    let Some(run) = select(conn, id.internal())?.filter(|run| run.environment_id == *environment_id) else {
        return Ok(RunEndOutcome::Refused(LeaseRefusal::NotFound));
    };
    match transitions::run_canceled(&run, at) {
        Some(canceled) => {
            update(conn, &canceled)?;
            Ok(RunEndOutcome::Ended(canceled))
        }
        None => Ok(RunEndOutcome::Unchanged(run)),
    }
}

pub(crate) fn release(conn: &Connection, op: RunsRelease) -> Result<Vec<RunId>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r WHERE r.status = 'EXECUTING'
           AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.environment_id = r.environment_id
                                AND w.id = r.worker_id AND w.last_seen_at >= ?1)"
    );
    let orphans: Vec<Run> = {
        let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
        let rows = stmt.query_map([op.alive_since.as_millis()], run_from_row).map_err(map_error)?;
        rows.map(|row| row.map_err(map_error)?).collect::<Result<_>>()?
    };
    let mut released = Vec::with_capacity(orphans.len());
    for run in orphans {
        update(conn, &transitions::run_released(&run, op.now))?;
        released.push(run.id);
    }
    Ok(released)
}

/// Whether `claim`'s session may act for its worker; a newer session than the worker's
/// becomes its session (see [`transitions::session_current`]).
fn take_session(conn: &Connection, claim: &RunClaim) -> Result<bool> {
    let Some(session) = claim.session.as_deref() else { return Ok(true) };
    let stored = session_of(conn, &claim.environment_id, &claim.worker)?;
    if !transitions::session_current(stored.as_deref(), Some(session)) {
        return Ok(false);
    }
    if stored.as_deref() != Some(session) {
        conn.prepare_cached(
            "INSERT INTO workers (environment_id, id, last_seen_at, session) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (environment_id, id) DO UPDATE SET session = excluded.session,
                 last_seen_at = MAX(last_seen_at, excluded.last_seen_at)",
        )
        .and_then(|mut stmt| {
            let key = (claim.environment_id.internal(), claim.worker.internal());
            stmt.execute(params![key.0, key.1, claim.now.as_millis(), session])
        })
        .map_err(map_error)?;
    }
    Ok(true)
}

/// The newest session of `worker` of `environment`, if it has one.
fn session_of(conn: &Connection, environment: &EnvironmentId, worker: &WorkerId) -> Result<Option<String>> {
    conn.prepare_cached("SELECT session FROM workers WHERE environment_id = ?1 AND id = ?2")
        .and_then(|mut stmt| {
            stmt.query_row([environment.internal(), worker.internal()], |row| row.get::<_, Option<String>>(0))
                .optional()
        })
        .map(Option::flatten)
        .map_err(map_error)
}

pub(crate) fn worker_seen(conn: &Connection, op: WorkerSeen) -> Result<WorkerOutcome> {
    let tasks = serde_json::to_string(&op.tasks).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO workers (environment_id, id, last_seen_at, tasks) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (environment_id, id) DO UPDATE SET last_seen_at = MAX(last_seen_at, excluded.last_seen_at),
             tasks = excluded.tasks",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![op.environment_id.internal(), op.worker.internal(), op.at.as_millis(), tasks])
    })
    .map_err(map_error)?;
    Ok(WorkerOutcome::Done)
}

pub(crate) fn worker_left(
    conn: &Connection,
    environment: &EnvironmentId,
    worker: &WorkerId,
    session: Option<&str>,
) -> Result<WorkerOutcome> {
    if !transitions::session_current(session_of(conn, environment, worker)?.as_deref(), session) {
        return Ok(WorkerOutcome::Replaced);
    }
    conn.prepare_cached("DELETE FROM workers WHERE environment_id = ?1 AND id = ?2")
        .and_then(|mut stmt| stmt.execute([environment.internal(), worker.internal()]))
        .map_err(map_error)?;
    Ok(WorkerOutcome::Done)
}

pub(crate) fn worker_last_seen(
    conn: &Connection,
    environment: &EnvironmentId,
    worker: &WorkerId,
) -> Result<Option<Timestamp>> {
    conn.prepare_cached("SELECT last_seen_at FROM workers WHERE environment_id = ?1 AND id = ?2")
        .and_then(|mut stmt| {
            stmt.query_row([environment.internal(), worker.internal()], |row| row.get::<_, i64>(0)).optional()
        })
        .map(|seen| seen.map(Timestamp::from_millis))
        .map_err(map_error)
}

pub(crate) fn task_served(
    conn: &Connection,
    environment: &EnvironmentId,
    task_id: &str,
    alive_since: Timestamp,
) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM workers w, json_each(w.tasks) t
                        WHERE w.environment_id = ?1 AND w.last_seen_at >= ?3 AND t.value = ?2)",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![environment.internal(), task_id, alive_since.as_millis()], |row| row.get(0))
    })
    .map_err(map_error)
}

/// The journals of the runs `ids` (see [`Store::run_journals`]), on one read connection: a run
/// and its entries, then the next run.
///
/// [`Store::run_journals`]: waitpoint_storage::Store::run_journals
pub(crate) fn journals(conn: &Connection, ids: &[String]) -> Result<Vec<Option<RunJournal>>> {
    let mut environment_of = conn.prepare_cached("SELECT environment_id FROM runs WHERE id = ?1").map_err(map_error)?;
    let mut entries_of = conn
        .prepare_cached("SELECT seq, kind, name, result FROM run_journal WHERE run_id = ?1 ORDER BY seq")
        .map_err(map_error)?;
    let mut journals = Vec::with_capacity(ids.len());
    for id in ids {
        let environment: Option<String> =
            environment_of.query_row([id], |row| row.get(0)).optional().map_err(map_error)?;
        let Some(environment) = environment else {
            journals.push(None);
            continue;
        };
        let rows = entries_of.query_map([id], journal_entry_from_row).map_err(map_error)?;
        let entries = rows.map(|row| row.map_err(map_error)?).collect::<Result<Vec<_>>>()?;
        journals.push(Some(RunJournal { environment_id: EnvironmentId::from_internal(environment), entries }));
    }
    Ok(journals)
}

pub(crate) fn next_available(
    conn: &Connection,
    environment_id: &EnvironmentId,
    task_ids: &[String],
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let mut args = Args(vec![environment_id.internal().to_owned().into(), now.as_millis().into()]);
    let tasks: Vec<String> = task_ids.iter().map(|task| args.push(task.clone())).collect();
    if tasks.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT MIN(available_at) FROM runs WHERE environment_id = ?1 AND status = 'QUEUED' AND available_at > ?2
           AND task_id IN ({})",
        tasks.join(", ")
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row(params_from_iter(args.0), |row| row.get::<_, Option<i64>>(0)))
        .map(|millis| millis.map(Timestamp::from_millis))
        .map_err(map_error)
}

/// The condition (on `r`) for one status; QUEUED and DELAYED are told apart at `now` (`?now`).
fn status_condition(status: RunStatus, now: &str) -> String {
    match status {
        RunStatus::Queued => format!("(r.status = 'QUEUED' AND r.available_at <= {now})"),
        RunStatus::Delayed => format!("(r.status = 'QUEUED' AND r.available_at > {now})"),
        other => format!("r.status = '{}'", other.as_str()),
    }
}

/// Lists runs like [`waitpoints::list`] lists tokens: one walk in id order per tag, else per
/// status, else per task, else over the environment, each limited to a page, merged.
pub(crate) fn list(conn: &Connection, query: &RunListQuery) -> Result<Vec<Run>> {
    let (sql, args) = list_sql(query, RUN_COLUMNS);
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt.query_map(params_from_iter(args.0), run_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}

/// Counts what [`list`] would return, walking the same indexes for the ids alone.
pub(crate) fn count(conn: &Connection, query: &RunListQuery) -> Result<u64> {
    let (sql, args) = list_sql(query, "r.id");
    conn.prepare_cached(&format!("SELECT COUNT(*) FROM ({sql})"))
        .and_then(|mut stmt| stmt.query_row(params_from_iter(args.0), |row| row.get::<_, i64>(0)))
        .map(|count| u64::try_from(count).unwrap_or_default())
        .map_err(map_error)
}

/// The statement of [`list`], selecting `columns` (of `r`), and its arguments.
fn list_sql(query: &RunListQuery, columns: &str) -> (String, Args) {
    let mut args = Args(vec![query.environment_id.internal().to_owned().into()]);
    let now = args.push(query.now.as_millis());
    let id_column = if query.tags.is_empty() { "r.id" } else { "t.run_id" };
    let mut filters = String::new();
    if let Some(key) = &query.idempotency_key {
        filters += &lists::idempotency_key_filter(&mut args, "runs", "r", key);
    }
    let (window, order, limit) = lists::window_filters(&mut args, &query.window, id_column);
    filters += &window;
    let tasks: Vec<String> = query.task_ids.iter().map(|task| args.push(task.clone())).collect();
    let statuses: Vec<String> = query.statuses.iter().map(|s| status_condition(*s, &now)).collect();
    let walk = |from: &str, condition: &str, filters: &str, order_by: &str| {
        format!("SELECT {columns} FROM {from} WHERE {condition}{filters} ORDER BY {order_by} {order} LIMIT {limit}")
    };
    let walks: Vec<String> = if !query.tags.is_empty() {
        if !statuses.is_empty() {
            filters += &format!(" AND ({})", statuses.join(" OR "));
        }
        if !tasks.is_empty() {
            filters += &format!(" AND r.task_id IN ({})", tasks.join(", "));
        }
        let from = "run_tags t JOIN runs r ON r.id = t.run_id";
        query
            .tags
            .iter()
            .map(|tag| {
                let condition = format!("t.environment_id = ?1 AND t.tag = {}", args.push(tag.clone()));
                walk(from, &condition, &filters, "t.run_id")
            })
            .collect()
    } else if !statuses.is_empty() {
        if !tasks.is_empty() {
            filters += &format!(" AND r.task_id IN ({})", tasks.join(", "));
        }
        statuses
            .iter()
            .map(|status| walk("runs r", &format!("r.environment_id = ?1 AND {status}"), &filters, "r.id"))
            .collect()
    } else if !tasks.is_empty() {
        tasks
            .iter()
            .map(|task| walk("runs r", &format!("r.environment_id = ?1 AND r.task_id = {task}"), &filters, "r.id"))
            .collect()
    } else {
        vec![walk("runs r", "r.environment_id = ?1", &filters, "r.id")]
    };
    (lists::merge(&walks, order, &limit), args)
}

/// Runs of an environment that wait, the longest waiting first.
pub(crate) fn waiting_longest(conn: &Connection, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r WHERE r.environment_id = ?1 AND r.status = 'WAITING'
         ORDER BY r.updated_at, r.id LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![environment_id.internal(), limit], run_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}

/// Runs that waited on the waitpoint `id` (alone or in a set), newest first.
pub(crate) fn waiters(conn: &Connection, id: &WaitpointId, limit: usize) -> Result<Vec<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs r WHERE r.id IN (SELECT w.run_id FROM run_waits w WHERE w.waitpoint_id = ?1)
         ORDER BY r.id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![id.internal(), limit], run_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}
