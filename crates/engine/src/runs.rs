//! Task runs: trigger, retrieve, list and cancel them; and the worker protocol's calls about a
//! run a worker holds: record what its code does, create tokens, suspend on waitpoints, end
//! attempts. (How workers take runs is in `workers`.)
//!
//! A run that waits on a pending waitpoint is suspended: it holds no worker slot and nothing
//! in any process needs to stay alive for it. The waitpoint's finish resumes it in the same
//! transaction (see `Store::write_batch`), which also wakes this node's polling workers.

use std::time::Duration;

use waitpoint_storage::{
    Claim, JournalOutcome, LeaseRefusal, RunCreateOutcome, RunCreateToken, RunEndOutcome, RunFinish, RunListQuery,
    RunOutcome, RunRecord, RunWait, StorageError, WriteOp, transitions,
};
use waitpoint_types::api::worker::{MAX_SET_WAITS, WaitFor};
use waitpoint_types::api::{CreateTokenRequest, TriggerOptions};
use waitpoint_types::run::{TokenCreated, wait_set_name};
use waitpoint_types::{
    Environment, JournalEntry, JournalKind, Run, RunError, RunId, RunState, RunStatus, Timestamp, Waitpoint,
    WaitpointId, WaitpointKind, WaitpointState, WorkerId,
};

use crate::error::{EngineError, Result};
use crate::metrics::{self, Transition};
use crate::pages::ListPage;
use crate::tokens::{CreatedToken, parse_deadline};
use crate::{Engine, Event, validate};

/// The most attempts a trigger may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// The longest task id.
const MAX_TASK_ID_LEN: usize = 128;

/// A triggered run.
#[derive(Debug, Clone)]
pub struct TriggeredRun {
    /// The run.
    pub run: Run,
    /// True when an active idempotency key returned an existing run.
    pub is_cached: bool,
    /// What the caller should know, such as that no worker serves the task.
    pub hint: Option<String>,
}

/// A run, the waitpoints it waits on if it waits, the worker that holds it if one does, and
/// what its reader should know.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run.
    pub run: Run,
    /// While it waits: what on, in the wait's order (its state says how many must complete).
    pub waiting_on: Vec<Waitpoint>,
    /// While it executes: the worker, and when that worker last polled.
    pub held_by: Option<(WorkerId, Option<Timestamp>)>,
    /// Such as that no worker serves the task of a queued run.
    pub hint: Option<String>,
}

impl RunView {
    /// A run as it is, without looking anything else up.
    pub fn of(run: Run) -> Self {
        Self { run, waiting_on: Vec::new(), held_by: None, hint: None }
    }
}

/// A list request for runs: filters (combined with AND) and a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRuns {
    /// Any of these statuses.
    pub statuses: Vec<RunStatus>,
    /// Any of these tasks.
    pub task_ids: Vec<String>,
    /// The idempotency key the run was triggered with.
    pub idempotency_key: Option<String>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// Which page, and the creation-time filters.
    pub page: ListPage,
}

/// One page of runs, newest first.
#[derive(Debug, Clone)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Cursor of the next (older) page.
    pub next: Option<String>,
    /// Cursor of the previous (newer) page.
    pub previous: Option<String>,
}

/// The answer to a wait.
#[derive(Debug, Clone)]
pub struct WaitAnswer {
    /// The wait's journal entry (with its result unless suspended).
    pub entry: JournalEntry,
    /// True when the run now waits.
    pub suspended: bool,
}

fn run_not_found() -> EngineError {
    EngineError::NotFound("Run not found".into())
}

/// A journal position no journal reaches: a journal holds fewer than 2^31 entries.
const JOURNAL_POSITIONS: u32 = i32::MAX as u32;

/// Refuses positions past any journal's end before they reach storage, so every backend
/// answers alike (a 409, as for any position past the end).
fn journal_position(run: &RunId, seq: u32) -> Result<()> {
    if seq >= JOURNAL_POSITIONS {
        return Err(EngineError::JournalMismatch(format!(
            "journal position {seq} is past the end of the journal of {run} (a journal holds fewer than \
             {JOURNAL_POSITIONS} entries)"
        )));
    }
    Ok(())
}

pub(crate) fn parse_run_id(id: &str) -> Result<RunId> {
    RunId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))
}

/// Task ids: 1 to 128 characters of letters, digits, `-`, `_`, `.`, `:` and `/`.
pub(crate) fn validate_task_id(task_id: &str) -> Result<()> {
    let valid = !task_id.is_empty()
        && task_id.len() <= MAX_TASK_ID_LEN
        && task_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if valid {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid task id {task_id:?}: use 1-{MAX_TASK_ID_LEN} letters, digits, '-', '_', '.', ':' or '/'"
        )))
    }
}

/// How the engine reports a worker's call about a run's journal that did not record or
/// suspend.
fn journal_error(run: &RunId, outcome: JournalOutcome) -> EngineError {
    match outcome {
        JournalOutcome::Refused(refusal) => lease_error(run, refusal),
        JournalOutcome::Diverged(recorded) => EngineError::JournalMismatch(format!(
            "journal position {} of {run} holds {} {:?}",
            recorded.seq, recorded.kind, recorded.name
        )),
        JournalOutcome::OutOfOrder(len) => {
            EngineError::JournalMismatch(format!("the journal of {run} has {len} entries; record position {len} next"))
        }
        JournalOutcome::WaitpointNotFound => EngineError::NotFound("Run or waitpoint not found".into()),
        JournalOutcome::Recorded(_) | JournalOutcome::TokenCreated(..) | JournalOutcome::Suspended(_) => {
            EngineError::Internal(format!("{run}: a journal call answered with an outcome it cannot have"))
        }
    }
}

/// How the engine reports a call for a worker about a run the worker does not hold.
fn lease_error(run: &RunId, refusal: LeaseRefusal) -> EngineError {
    match refusal {
        LeaseRefusal::NotFound => run_not_found(),
        LeaseRefusal::Stale(current) => EngineError::RunMovedOn(format!(
            "{run} is no longer held at this epoch: it is {} at epoch {}",
            state_name(&current.state),
            current.epoch
        )),
    }
}

fn state_name(state: &RunState) -> &'static str {
    match state {
        RunState::Queued { .. } => "QUEUED",
        RunState::Executing { .. } => "EXECUTING",
        RunState::Waiting { .. } => "WAITING",
        RunState::Completed { .. } => "COMPLETED",
        RunState::Failed { .. } => "FAILED",
        RunState::Canceled { .. } => "CANCELED",
    }
}

impl Engine {
    /// Triggers a run of `task_id` with `payload` (JSON text), or returns the one an active
    /// idempotency key names.
    pub async fn trigger_run(
        &self,
        environment: &Environment,
        task_id: &str,
        payload: String,
        options: &TriggerOptions,
    ) -> Result<TriggeredRun> {
        let inner = &self.inner;
        let now = inner.clock.now();
        validate_task_id(task_id)?;
        let tags = options.tags.clone().unwrap_or_default();
        validate::tags(&tags, "Runs")?;
        let (idempotency_key, idempotency_key_expires_at) = validate::idempotency(
            options.idempotency_key.as_deref(),
            options.idempotency_key_ttl.as_deref(),
            inner.config.default_idempotency_key_ttl,
            now,
        )?;
        let max_attempts = options.max_attempts.unwrap_or(inner.config.default_max_attempts);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(EngineError::Invalid(format!(
                "maxAttempts must be from 1 to {MAX_ATTEMPTS}, got {max_attempts}"
            )));
        }
        let available_at = match &options.delay {
            None => now,
            Some(delay) => parse_deadline("delay", delay, now, "")?,
        };
        let id = inner.ids.run(now);
        let created_at = id.created_at().unwrap_or(now);
        let queued = Run {
            id,
            environment_id: environment.id.clone(),
            task_id: task_id.to_owned(),
            payload,
            state: RunState::Queued { available_at },
            attempt: 0,
            max_attempts,
            epoch: 0,
            sticky_worker: None,
            tags,
            idempotency_key,
            inactive_idempotency_key: None,
            idempotency_key_expires_at,
            created_at,
            started_at: None,
            updated_at: created_at,
        };
        // A run due now goes straight to a worker waiting here with a slot for its task, as a
        // claim would give it, saving that claim: a waiting poll found nothing queued for it.
        let promise = if available_at <= now { inner.workers.promise(&environment.id, task_id, now) } else { None };
        let run = match &promise {
            Some(promise) => transitions::run_claimed(&queued, promise.worker(), now),
            None => queued,
        };
        match inner.writer.write(WriteOp::RunCreate(run)).await? {
            RunCreateOutcome::Created(run) => {
                metrics::runs(Transition::Triggered, 1);
                inner.runs_changed(&environment.id, [&run.id]);
                if let Some(promise) = promise {
                    metrics::runs(Transition::Claimed, 1);
                    promise.hand(Claim { run: run.clone(), journal_length: 0, resumed: None });
                    return Ok(TriggeredRun { run, is_cached: false, hint: None });
                }
                inner.runs_ready.notify_waiters();
                let hint = self.unserved_hint(environment, task_id).await?;
                Ok(TriggeredRun { run, is_cached: false, hint })
            }
            RunCreateOutcome::Existing(run) => Ok(TriggeredRun { run, is_cached: true, hint: None }),
        }
    }

    /// The run `id` of `environment`, with the waitpoints it waits on.
    pub async fn get_run(&self, environment: &Environment, id: &str) -> Result<RunView> {
        let run = self.owned_run(environment, &parse_run_id(id)?).await?;
        let waiting_on = match &run.state {
            RunState::Waiting { seq, .. } => self.inner.store.run_waits(&run.id, *seq).await?,
            _ => Vec::new(),
        };
        let held_by = match &run.state {
            RunState::Executing { worker } => {
                let last_seen = self.inner.store.worker_last_seen(&environment.id, worker).await?;
                Some((worker.clone(), last_seen))
            }
            _ => None,
        };
        let hint = match run.status(self.inner.clock.now()) {
            RunStatus::Queued => self.unserved_hint(environment, &run.task_id).await?,
            _ => None,
        };
        Ok(RunView { run, waiting_on, held_by, hint })
    }

    async fn owned_run(&self, environment: &Environment, id: &RunId) -> Result<Run> {
        match self.inner.store.run_get(id).await {
            Ok(run) if run.environment_id == environment.id => Ok(run),
            Ok(_) | Err(StorageError::NotFound) => Err(run_not_found()),
            Err(error) => Err(error.into()),
        }
    }

    /// A page of `environment`'s runs, newest first.
    pub async fn list_runs(&self, environment: &Environment, request: &ListRuns) -> Result<RunPage> {
        validate::filter_values("filter[taskIdentifier]", &request.task_ids)?;
        validate::filter_values("filter[tags]", &request.tags)?;
        for task in &request.task_ids {
            validate_task_id(task)?;
        }
        let now = self.inner.clock.now();
        let pager = request.page.pager(now, |cursor| RunId::parse(cursor).ok().map(|id| id.internal().to_owned()))?;
        let query = RunListQuery {
            environment_id: environment.id.clone(),
            statuses: request.statuses.clone(),
            task_ids: request.task_ids.clone(),
            idempotency_key: request.idempotency_key.clone(),
            tags: request.tags.clone(),
            window: pager.window.clone(),
            now,
        };
        let rows = self.inner.store.run_list(&query).await?;
        let page = pager.page(rows, |run: &Run| run.id.internal().to_owned());
        Ok(RunPage { runs: page.items, next: page.next, previous: page.previous })
    }

    /// Cancels the run `id`; canceling a finished run changes nothing.
    pub async fn cancel_run(&self, environment: &Environment, id: &str) -> Result<Run> {
        let run = parse_run_id(id)?;
        let op =
            WriteOp::RunCancel { run: run.clone(), environment_id: environment.id.clone(), at: self.inner.clock.now() };
        match self.inner.writer.write(op).await? {
            RunEndOutcome::Ended(run) => {
                metrics::runs(Transition::Canceled, 1);
                self.inner.runs_changed(&environment.id, [&run.id]);
                Ok(run)
            }
            RunEndOutcome::Unchanged(run) => Ok(run),
            RunEndOutcome::Refused(refusal) => Err(lease_error(&run, refusal)),
        }
    }

    /// The journal of a run of `environment`, with the URL of every token it created.
    pub async fn run_journal(&self, environment: &Environment, id: &str) -> Result<Vec<JournalEntry>> {
        self.run_journals(environment, &[id]).await?.pop().unwrap_or_else(|| Err(run_not_found()))
    }

    /// The journals of the runs `ids` of `environment`, in one read of the store: each answered
    /// as [`run_journal`](Self::run_journal) answers it alone. Fails whole only when the store
    /// does.
    pub async fn run_journals(
        &self,
        environment: &Environment,
        ids: &[&str],
    ) -> Result<Vec<Result<Vec<JournalEntry>>>> {
        let parsed: Vec<Result<RunId>> = ids.iter().map(|id| parse_run_id(id)).collect();
        let valid: Vec<RunId> = parsed.iter().filter_map(|id| id.as_ref().ok().cloned()).collect();
        let mut read = self.inner.store.run_journals(&valid).await?.into_iter();
        Ok(parsed
            .into_iter()
            .map(|id| {
                id?;
                match read.next().flatten() {
                    Some(journal) if journal.environment_id == environment.id => {
                        Ok(journal.entries.into_iter().map(|entry| self.enriched(environment, entry)).collect())
                    }
                    _ => Err(run_not_found()),
                }
            })
            .collect())
    }

    /// Adds the URL and a public access token to a `CREATE_TOKEN` entry's result, which stores
    /// only the token's id (the URL can be derived, the access token is minted per call).
    fn enriched(&self, environment: &Environment, mut entry: JournalEntry) -> JournalEntry {
        if entry.kind != JournalKind::CreateToken {
            return entry;
        }
        let parsed = entry.result.as_deref().and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok());
        if let Some(mut result) = parsed
            && let Some(id) = result["id"].as_str().and_then(|id| WaitpointId::parse(id).ok())
        {
            result["url"] = self.callback_url(environment, &id).into();
            result["publicAccessToken"] =
                crate::auth::sign_public_token(environment, &id, self.inner.clock.now()).into();
            entry.result = Some(result.to_string());
        }
        entry
    }

    /// Records the result of an operation the run performed live (a step, a token completed,
    /// retrieved or listed). Recording a position again returns what is recorded there.
    pub async fn record(
        &self,
        environment: &Environment,
        id: &str,
        epoch: u64,
        entry: JournalEntry,
    ) -> Result<JournalEntry> {
        let run = parse_run_id(id)?;
        journal_position(&run, entry.seq)?;
        if entry.result.is_none() {
            return Err(EngineError::Invalid("a recorded entry needs a result".into()));
        }
        if matches!(entry.kind, JournalKind::CreateToken | JournalKind::WaitToken | JournalKind::WaitDatetime) {
            return Err(EngineError::Invalid(format!(
                "{} entries are recorded by their own calls (tokens, wait), not by record",
                entry.kind
            )));
        }
        let op = RunRecord { run: run.clone(), environment_id: environment.id.clone(), epoch, entry };
        match self.inner.writer.write(WriteOp::RunRecord(op)).await? {
            JournalOutcome::Recorded(entry) => {
                self.inner.runs_changed(&environment.id, [&run]);
                Ok(entry)
            }
            other => Err(journal_error(&run, other)),
        }
    }

    /// Creates a token for a run at journal position `seq`; on a retry or on replay, returns
    /// the token recorded there.
    pub async fn create_run_token(
        &self,
        environment: &Environment,
        id: &str,
        epoch: u64,
        seq: u32,
        request: &CreateTokenRequest,
    ) -> Result<(JournalEntry, CreatedToken)> {
        let run = parse_run_id(id)?;
        journal_position(&run, seq)?;
        let now = self.inner.clock.now();
        let waitpoint = self.prepare_token(environment, request, now)?;
        let op = RunCreateToken { run: run.clone(), environment_id: environment.id.clone(), epoch, seq, waitpoint };
        let (entry, created) = match self.inner.writer.write(WriteOp::RunCreateToken(op)).await? {
            JournalOutcome::TokenCreated(entry, token) => (entry, Some(*token)),
            JournalOutcome::Recorded(entry) => (entry, None),
            other => return Err(journal_error(&run, other)),
        };
        let (token_id, is_cached) = entry
            .result
            .as_deref()
            .and_then(TokenCreated::from_json)
            .and_then(|recorded| Some((recorded.token()?, recorded.is_cached)))
            .ok_or_else(|| EngineError::Internal(format!("unreadable CREATE_TOKEN entry of {run}")))?;
        let token = match created {
            Some(token) => {
                if let Some(deadline) = token.due_at() {
                    self.inner.deadline_added(deadline);
                }
                if !is_cached {
                    self.inner.emit(|| Event::TokenCreated(token.clone()));
                }
                token
            }
            // Recorded before (a retried call, a replay): read as it is now.
            None => self.inner.store.waitpoint_get(&token_id).await?,
        };
        self.inner.runs_changed(&environment.id, [&run]);
        let created = self.created_token(environment, token, is_cached);
        Ok((self.enriched(environment, entry), created))
    }

    /// A new datetime waitpoint of `environment` that completes at `until`, for a wait asked
    /// for as `name`.
    fn datetime_waitpoint(
        &self,
        environment: &Environment,
        until: Timestamp,
        name: &str,
        now: Timestamp,
    ) -> Result<Waitpoint> {
        if name.is_empty() || name.contains('\0') {
            return Err(EngineError::Invalid("a datetime wait needs a name without NUL characters".into()));
        }
        let id = self.inner.ids.waitpoint(now);
        Ok(Waitpoint {
            created_at: id.created_at().unwrap_or(now),
            id,
            kind: WaitpointKind::Datetime,
            environment_id: environment.id.clone(),
            state: WaitpointState::Waiting,
            idempotency_key: None,
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            timeout_at: Some(until),
            heartbeat: None,
            callback_verifier: None,
            tags: Vec::new(),
            approval: None,
            output_schema: None,
        })
    }

    /// What one waitpoint of a wait is: a token's id, or a new datetime waitpoint, with the
    /// journal kind and name a wait on it alone has.
    fn wait_member(
        &self,
        environment: &Environment,
        wait_for: &WaitFor,
        now: Timestamp,
    ) -> Result<(JournalKind, String, WaitpointId, Option<Waitpoint>)> {
        Ok(match wait_for {
            WaitFor::Token { id } => {
                let token = WaitpointId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))?;
                (JournalKind::WaitToken, token.public(), token, None)
            }
            WaitFor::Datetime { until, name } => {
                let datetime = self.datetime_waitpoint(environment, *until, name, now)?;
                (JournalKind::WaitDatetime, name.clone(), datetime.id.clone(), Some(datetime))
            }
            WaitFor::Duration { ms, name } => {
                let until = validate::end_of(Duration::from_millis(*ms), now, "ms", &format!("{ms}"))?;
                let datetime = self.datetime_waitpoint(environment, until, name, now)?;
                (JournalKind::WaitDatetime, name.clone(), datetime.id.clone(), Some(datetime))
            }
            WaitFor::Set { .. } => return Err(EngineError::Invalid("a set wait cannot hold another set".into())),
        })
    }

    /// Makes the run wait at journal position `seq`: on a token, until a time, or for any, all
    /// or some of several. Answers at once when the wait is decided already; otherwise the run
    /// is suspended.
    pub async fn wait(
        &self,
        environment: &Environment,
        id: &str,
        epoch: u64,
        seq: u32,
        wait_for: &WaitFor,
    ) -> Result<WaitAnswer> {
        let run = parse_run_id(id)?;
        journal_position(&run, seq)?;
        let now = self.inner.clock.now();
        let (kind, name, waitpoints, needed, create) = match wait_for {
            WaitFor::Set { needed, of } => {
                if of.is_empty() || of.len() > MAX_SET_WAITS {
                    return Err(EngineError::Invalid(format!(
                        "a set wait waits for 1 to {MAX_SET_WAITS} waitpoints, not {}",
                        of.len()
                    )));
                }
                if *needed == 0 || usize::try_from(*needed).map_or(true, |needed| needed > of.len()) {
                    return Err(EngineError::Invalid(format!(
                        "needed must be from 1 to the number of waitpoints ({}), not {needed}",
                        of.len()
                    )));
                }
                let (mut waitpoints, mut create) = (Vec::with_capacity(of.len()), Vec::new());
                for member in of {
                    let (_, _, waitpoint, datetime) = self.wait_member(environment, member, now)?;
                    if waitpoints.contains(&waitpoint) {
                        return Err(EngineError::Invalid(format!("{waitpoint} is in the set twice")));
                    }
                    waitpoints.push(waitpoint);
                    create.extend(datetime);
                }
                (JournalKind::WaitSet, wait_set_name(*needed, of.len()), waitpoints, *needed, create)
            }
            single => {
                let (kind, name, waitpoint, datetime) = self.wait_member(environment, single, now)?;
                (kind, name, vec![waitpoint], 1, datetime.into_iter().collect())
            }
        };
        let deadline = create.iter().filter_map(Waitpoint::due_at).min();
        let op = RunWait {
            run: run.clone(),
            environment_id: environment.id.clone(),
            epoch,
            seq,
            kind,
            name: name.clone(),
            waitpoints,
            needed,
            create,
            at: now,
        };
        match self.inner.writer.write(WriteOp::RunWait(op)).await? {
            JournalOutcome::Recorded(entry) => {
                self.inner.runs_changed(&environment.id, [&run]);
                Ok(WaitAnswer { entry, suspended: false })
            }
            JournalOutcome::Suspended(_) => {
                metrics::runs(Transition::Suspended, 1);
                self.inner.runs_changed(&environment.id, [&run]);
                if let Some(deadline) = deadline {
                    self.inner.deadline_added(deadline);
                }
                Ok(WaitAnswer { entry: JournalEntry { seq, kind, name, result: None }, suspended: true })
            }
            other => Err(journal_error(&run, other)),
        }
    }

    /// Ends the run's attempt with `output` (JSON text): the run completes.
    pub async fn complete_attempt(
        &self,
        environment: &Environment,
        id: &str,
        epoch: u64,
        output: String,
    ) -> Result<Run> {
        self.end_attempt(environment, id, epoch, RunOutcome::Completed { output }).await
    }

    /// Ends the run's attempt with `error`. With `retry_after`, and attempts left, the run is
    /// queued again after that long; otherwise it fails.
    pub async fn fail_attempt(
        &self,
        environment: &Environment,
        id: &str,
        epoch: u64,
        error: RunError,
        retry_after: Option<Duration>,
    ) -> Result<Run> {
        let now = self.inner.clock.now();
        let retry_at = retry_after
            .map(|after| validate::end_of(after, now, "retryAfterMs", &after.as_millis().to_string()))
            .transpose()?;
        self.end_attempt(environment, id, epoch, RunOutcome::Failed { error, retry_at }).await
    }

    async fn end_attempt(&self, environment: &Environment, id: &str, epoch: u64, outcome: RunOutcome) -> Result<Run> {
        let run = parse_run_id(id)?;
        let op = RunFinish {
            run: run.clone(),
            environment_id: environment.id.clone(),
            epoch,
            outcome,
            at: self.inner.clock.now(),
        };
        match self.inner.writer.write(WriteOp::RunFinish(op)).await? {
            RunEndOutcome::Ended(run) => {
                let transition = match run.state {
                    RunState::Queued { .. } => Transition::Retried,
                    RunState::Completed { .. } => Transition::Completed,
                    _ => Transition::Failed,
                };
                metrics::runs(transition, 1);
                if transition == Transition::Retried {
                    self.inner.runs_ready.notify_waiters();
                }
                self.inner.runs_changed(&environment.id, [&run.id]);
                Ok(run)
            }
            RunEndOutcome::Unchanged(current) => Err(lease_error(&run, LeaseRefusal::Stale(Box::new(current)))),
            RunEndOutcome::Refused(refusal) => Err(lease_error(&run, refusal)),
        }
    }
}
