//! Waitpoint writes: creates, with an idempotency key (one row, racing other transactions for
//! the key) or without (many rows in one statement), and the statements that finish
//! waitpoints. Applying a batch's creates and finishes, and creating the waitpoints of runs'
//! tokens and waits, go through here; nothing here reads or writes runs.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use waitpoint_storage::{CreateOutcome, Finish, Finishing, Prolong, ProlongOutcome, Result, StorageError, transitions};
use waitpoint_types::{
    CallbackVerifier, EnvironmentId, Timestamp, Waitpoint, WaitpointId, WaitpointKind, WaitpointState,
};

use crate::rows::{StateColumns, column, state_columns, waitpoint_columns, waitpoint_from_row};
use crate::{failure, map_error};

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
            idempotency_key_expires_at, timeout_at, tags, created_at, kind, approval, output_schema, heartbeat_every,
            heartbeat_deadline, callback_verifier)
        VALUES ($1, $2, 'WAITING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (environment_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING id, environment_id
    ), tagged AS (
        INSERT INTO waitpoint_tags (environment_id, tag, waitpoint_id)
        SELECT inserted.environment_id, t.tag, inserted.id FROM inserted, unnest($7::text[]) AS t (tag)
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FROM inserted";

/// Inserts waitpoints without idempotency key, and their tags. One array element per waitpoint
/// (`$1`–`$6`, `$10`–`$15`), except the tags: all of them in `$7`, each waitpoint's being the slice
/// from its `$8` to its `$9` (1-based, inclusive; empty when `$9 < $8`). A taken id fails the
/// statement.
const INSERT_WAITPOINTS: &str = "
    WITH inserted AS (
        INSERT INTO waitpoints (id, environment_id, status, inactive_idempotency_key, idempotency_key_expires_at,
            timeout_at, tags, created_at, kind, approval, output_schema, heartbeat_every, heartbeat_deadline,
            callback_verifier)
        SELECT n.id, n.environment_id, 'WAITING', n.inactive_idempotency_key, n.idempotency_key_expires_at,
            n.timeout_at, ($7::text[])[n.first_tag:n.last_tag], n.created_at, n.kind, n.approval, n.output_schema,
            n.heartbeat_every, n.heartbeat_deadline, n.callback_verifier
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $8::int[], $9::int[],
            $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::text[])
            AS n (id, environment_id, inactive_idempotency_key, idempotency_key_expires_at, timeout_at, created_at,
                first_tag, last_tag, kind, approval, output_schema, heartbeat_every, heartbeat_deadline,
                callback_verifier)
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
/// path, where [`transitions`](waitpoint_storage::transitions) decides what they become.
/// One array element per finish: id, environment filter (`NULL`: any), then the
/// [`StateColumns`]; `$8` is the number of elements.
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
pub(crate) const LOCK_WAITPOINTS: &str = concat!(
    "SELECT ",
    waitpoint_columns!(w),
    " FROM unnest($1::text[]) AS f (id)
     CROSS JOIN LATERAL (SELECT * FROM waitpoints WHERE id = f.id FOR UPDATE) AS w"
);

const SET_STATE: &str = "UPDATE waitpoints
     SET status = $2, completed_at = $3, completed_via = $4, output = $5, output_type = $6
     WHERE id = $1 AND status = 'WAITING'";

/// Moves the listed waitpoints' deadlines: `$1` ids, `$2` their `timeout_at`, `$3` their
/// heartbeat deadline.
const SET_DEADLINES: &str =
    "UPDATE waitpoints w SET timeout_at = d.timeout_at, heartbeat_deadline = d.heartbeat_deadline
     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS d (id, timeout_at, heartbeat_deadline)
     WHERE w.id = d.id";

/// A waitpoint's heartbeat interval as stored: whole milliseconds.
fn heartbeat_every(waitpoint: &Waitpoint) -> Option<i64> {
    waitpoint.heartbeat.map(|heartbeat| i64::try_from(heartbeat.every.as_millis()).unwrap_or(i64::MAX))
}

/// Applies heartbeats and extends on distinct tokens and returns each one's outcome with its
/// position: the tokens are locked in id order (as [`LOCK_WAITPOINTS`] does for finishes), each
/// is decided by [`transitions::waitpoint_prolonged`], and one statement stores the new
/// deadlines.
pub(crate) async fn prolong_all(
    tx: &Transaction<'_>,
    mut prolongs: Vec<(usize, &Prolong)>,
) -> Result<Vec<(usize, ProlongOutcome)>> {
    prolongs.sort_unstable_by(|(_, a), (_, b)| a.id.internal().cmp(b.id.internal()));
    let ids: Vec<&str> = prolongs.iter().map(|(_, prolong)| prolong.id.internal()).collect();
    let lock = tx.prepare_cached(LOCK_WAITPOINTS).await.map_err(map_error)?;
    let mut current = by_id(&tx.query(&lock, &[&ids]).await.map_err(map_error)?)?;
    let mut outcomes = Vec::with_capacity(prolongs.len());
    let mut moved = Vec::new();
    for (index, prolong) in prolongs {
        let outcome = match current.remove(prolong.id.internal()) {
            Some(token) if token.environment_id == prolong.environment_id && token.kind == WaitpointKind::Manual => {
                match transitions::waitpoint_prolonged(&token, prolong.prolonging, prolong.at) {
                    Ok(next) => {
                        moved.push(next.clone());
                        ProlongOutcome::Prolonged(next)
                    }
                    Err(refusal) => ProlongOutcome::Refused(token, refusal),
                }
            }
            _ => ProlongOutcome::NotFound,
        };
        outcomes.push((index, outcome));
    }
    if !moved.is_empty() {
        let ids: Vec<&str> = moved.iter().map(|token| token.id.internal()).collect();
        let timeouts: Vec<Option<i64>> = moved.iter().map(|token| token.timeout_at.map(Timestamp::as_millis)).collect();
        let heartbeats: Vec<Option<i64>> =
            moved.iter().map(|token| token.heartbeat.map(|heartbeat| heartbeat.deadline.as_millis())).collect();
        let update = tx.prepare_cached(SET_DEADLINES).await.map_err(map_error)?;
        tx.execute(&update, &[&ids, &timeouts, &heartbeats]).await.map_err(map_error)?;
    }
    Ok(outcomes)
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
pub(crate) async fn create(tx: &Transaction<'_>, new: &Waitpoint) -> Result<CreateOutcome> {
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
                    &heartbeat_every(new),
                    &new.heartbeat.map(|heartbeat| heartbeat.deadline.as_millis()),
                    &new.callback_verifier.as_ref().map(CallbackVerifier::to_stored),
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
    let heartbeats: Vec<Option<i64>> = creates.iter().map(|(_, new)| heartbeat_every(new)).collect();
    let heartbeat_deadlines: Vec<Option<i64>> =
        creates.iter().map(|(_, new)| new.heartbeat.map(|heartbeat| heartbeat.deadline.as_millis())).collect();
    let verifiers: Vec<Option<String>> =
        creates.iter().map(|(_, new)| new.callback_verifier.as_ref().map(CallbackVerifier::to_stored)).collect();
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
            &heartbeats,
            &heartbeat_deadlines,
            &verifiers,
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

/// Sets the status beside each tag of the listed waitpoints (by primary key) to theirs.
const RETAG: &str = "UPDATE waitpoint_tags t SET status = f.status
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS f (environment_id, tag, waitpoint_id, status)
     WHERE t.environment_id = f.environment_id AND t.tag = f.tag AND t.waitpoint_id = f.waitpoint_id";

/// Keeps the tag table's statuses in step with `finished` waitpoints' (those with tags).
pub(crate) async fn retag(tx: &Transaction<'_>, finished: impl Iterator<Item = &Waitpoint>) -> Result<()> {
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
pub(crate) async fn update_where_applies(tx: &Transaction<'_>, finishes: &[(usize, &Finish)]) -> Result<Vec<Row>> {
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
pub(crate) fn by_id(rows: &[Row]) -> Result<HashMap<String, Waitpoint>> {
    rows.iter().map(|row| waitpoint_from_row(row).map(|w| (w.id.internal().to_owned(), w))).collect()
}

/// Moves a waiting waitpoint, locked by this transaction, to `state`.
pub(crate) async fn set_state(tx: &Transaction<'_>, id: &WaitpointId, state: &WaitpointState) -> Result<()> {
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
