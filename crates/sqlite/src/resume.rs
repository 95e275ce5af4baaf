//! Resuming runs: when a waitpoint finishes, each run whose wait it decides gets its wait's
//! result and goes to its sticky worker, if that worker is alive, or back to the queue.
//!
//! What resuming needs is here too: [`update`], which stores a run's state after a transition
//! (every run operation stores its own with it), and [`waits`], the waitpoints of a wait.

use rusqlite::{Connection, params};
use waitpoint_storage::{Claim, Result, Resumed, Takers, transitions};
use waitpoint_types::{JournalEntry, JournalKind, Run, Timestamp, Waitpoint};

use crate::map_error;
use crate::rows::{
    RUN_COLUMNS, WAITPOINT_COLUMNS, journal_entry_at, run_from_row, run_state_columns, waitpoint_from_row,
};

/// Stores every column a transition can change.
pub(crate) fn update(conn: &Connection, run: &Run) -> Result<()> {
    let columns = run_state_columns(&run.state);
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, available_at = ?3, worker_id = ?4, waiting_needed = ?5, waiting_seq = ?6,
             output = ?7, error = ?8, finished_at = ?9, attempt = ?10, epoch = ?11, sticky_worker = ?12,
             started_at = ?13, updated_at = ?14
         WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            run.id.internal(),
            columns.status,
            columns.available_at,
            columns.worker_id,
            columns.waiting_needed,
            columns.waiting_seq,
            columns.output,
            columns.error,
            columns.finished_at,
            run.attempt,
            i64::try_from(run.epoch).unwrap_or(i64::MAX),
            run.sticky_worker.as_ref().map(|w| w.internal()),
            run.started_at.map(Timestamp::as_millis),
            run.updated_at.as_millis(),
        ])
    })
    .map_err(map_error)?;
    Ok(())
}

/// The waitpoints of the run's wait at `seq`, in the wait's order.
pub(crate) fn waits(conn: &Connection, run: &str, seq: u32) -> Result<Vec<Waitpoint>> {
    let sql = format!(
        "SELECT {WAITPOINT_COLUMNS} FROM run_waits x JOIN waitpoints w ON w.id = x.waitpoint_id
         WHERE x.run_id = ?1 AND x.seq = ?2 ORDER BY x.position"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt.query_map(params![run, seq], waitpoint_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}

/// Resumes every run whose wait `waitpoint`, which just finished, decides: fills in the result
/// of each one's wait, then hands it to its sticky worker if `hand_to` takes it, or queues it
/// ([`transitions::hand_off`]). A run waiting on a set whose wait is not decided yet stays
/// waiting.
pub(crate) fn resume_waiting(conn: &Connection, waitpoint: &Waitpoint, hand_to: &Takers) -> Result<Resumed> {
    let Some(at) = waitpoint.completed_at() else {
        return Ok(Resumed::default());
    };
    let sql = format!(
        "SELECT {RUN_COLUMNS}, e.seq, e.kind, e.name, e.result FROM run_waits w
         JOIN runs r ON r.id = w.run_id AND r.status = 'WAITING' AND r.waiting_seq = w.seq
         JOIN run_journal e ON e.run_id = r.id AND e.seq = r.waiting_seq
         WHERE w.waitpoint_id = ?1"
    );
    let waiting: Vec<(Run, JournalEntry)> = {
        let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
        let rows = stmt
            .query_map([waitpoint.id.internal()], |row| Ok((run_from_row(row)?, journal_entry_at(row, 23)?)))
            .map_err(map_error)?;
        rows.map(|row| {
            let (run, wait) = row.map_err(map_error)?;
            Ok((run?, wait?))
        })
        .collect::<Result<_>>()?
    };
    let mut resumed = Resumed::default();
    for (run, wait) in waiting {
        let waitpoint_types::RunState::Waiting { seq, needed } = run.state else { continue };
        let members = match wait.kind {
            JournalKind::WaitSet => waits(conn, run.id.internal(), seq)?,
            _ => vec![waitpoint.clone()],
        };
        let Some(result) = transitions::wait_decided(wait.kind, needed, &members).map(|decided| decided.to_json())
        else {
            continue;
        };
        conn.prepare_cached("UPDATE run_journal SET result = ?3 WHERE run_id = ?1 AND seq = ?2")
            .and_then(|mut stmt| stmt.execute(params![run.id.internal(), seq, result]))
            .map_err(map_error)?;
        match transitions::hand_off(&run, hand_to) {
            Some(worker) => {
                let claimed = transitions::run_claimed(&run, &worker, at);
                update(conn, &claimed)?;
                // The wait is the journal's last entry: a waiting run performs nothing after it.
                let entry = JournalEntry { result: Some(result), ..wait };
                resumed.handed.push(Claim { run: claimed, journal_length: seq + 1, resumed: Some(entry) });
            }
            None => {
                update(conn, &transitions::run_resumed(&run, at))?;
                resumed.queued.push(run.id);
            }
        }
    }
    Ok(resumed)
}
