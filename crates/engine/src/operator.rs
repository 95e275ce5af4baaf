//! What a person does from the dashboard: complete or time out a token, the same in bulk (by
//! ids, or by a filter up to the newest token the person was shown), skip a run's datetime
//! wait, and what the overview shows. Every change is a finish through the writer, recorded as
//! done from the dashboard ([`CompletedVia::Dashboard`]), like any other completion.

use futures_util::future::join_all;
use waitpoint_storage::{Cursor, Finish, Finishing, ListQuery, RunListQuery, Window};
use waitpoint_types::id::internal_successor;
use waitpoint_types::{
    CompletedVia, Environment, Output, Rejection, Run, RunState, RunStatus, Waitpoint, WaitpointId, WaitpointKind,
    WaitpointStatus,
};

use crate::error::{EngineError, Result};
use crate::tokens::{Finished, ListTokens};
use crate::{Engine, validate};

/// Counts on the overview are exact up to this; beyond it they say "more than". Each count is
/// an index walk of at most this many entries, so the overview costs the same at any size.
pub const COUNT_CAP: u64 = 1_000;
/// A bulk preview counts exactly up to this many tokens.
const BULK_COUNT_CAP: usize = 1_000_000;
/// Tokens a bulk operation finishes at once (they share the writer's batches).
const BULK_CHUNK: usize = 500;
/// Rows on each of the overview's lists.
const OVERVIEW_ROWS: usize = 10;
/// The most ids one bulk operation takes.
pub const MAX_BULK_IDS: usize = 1_000;

/// What to do to a waiting token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Complete it, with this output (or none).
    Complete(Option<Output>),
    /// Time it out now, before its deadline.
    TimeOut,
    /// Reject it, with this error.
    Reject(Rejection),
}

/// Which tokens a bulk operation acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget {
    /// These tokens (public ids), at most [`MAX_BULK_IDS`].
    Ids(Vec<String>),
    /// The waiting tokens the filter matches (its statuses, if any, must include `WAITING`;
    /// its cursors and page size are ignored), created no later than the token `through`: the
    /// newest one matching when the person was shown the count ([`BulkPreview::through`]).
    /// Tokens created after it are left alone.
    Filter {
        /// The filter.
        filter: ListTokens,
        /// The newest token the operation may touch.
        through: String,
    },
}

/// How many waiting tokens a filter matches now, and the newest of them: the bound of a bulk
/// operation by that filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkPreview {
    /// The number of waiting tokens that match (exact up to a million).
    pub count: u64,
    /// The newest of them; `None` when none match.
    pub through: Option<WaitpointId>,
}

/// What a bulk operation did to one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    /// The token, as given or found.
    pub id: String,
    /// What happened to it.
    pub outcome: BulkOutcome,
}

/// What happened to one token of a bulk operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOutcome {
    /// Completed or timed out by this operation.
    Finished(Waitpoint),
    /// It had finished before (the first completion wins): as it is.
    AlreadyFinished(Waitpoint),
    /// No such token in the environment.
    NotFound,
    /// It could not be written (storage failed); nothing changed.
    Failed(String),
}

/// What the overview shows.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Tokens by status, each exact up to [`COUNT_CAP`] (a count above it means "more").
    pub tokens: Vec<(WaitpointStatus, u64)>,
    /// Runs by status, likewise.
    pub runs: Vec<(RunStatus, u64)>,
    /// The runs waiting longest, longest first.
    pub waiting_longest: Vec<Run>,
    /// The waiting tokens that time out soonest, soonest first.
    pub timing_out_soonest: Vec<Waitpoint>,
    /// The storage backend (`sqlite`, `postgres`).
    pub backend: &'static str,
}

fn token_not_found() -> EngineError {
    EngineError::NotFound("Waitpoint not found".into())
}

impl Engine {
    /// Completes or times out the token `id` of `environment` from the dashboard. A token that
    /// finished before is returned as it is.
    pub async fn resolve_token(
        &self,
        environment: &Environment,
        id: &str,
        resolution: &Resolution,
    ) -> Result<Waitpoint> {
        let token = self.get_token(environment, id).await?;
        if token.kind != WaitpointKind::Manual {
            return Err(token_not_found());
        }
        match self.finish_waitpoint(self.dashboard_finish(environment, token.id, resolution)).await? {
            Finished::Now(waitpoint) | Finished::Before(waitpoint) => Ok(waitpoint),
            Finished::NotFound => Err(token_not_found()),
        }
    }

    fn dashboard_finish(&self, environment: &Environment, id: WaitpointId, resolution: &Resolution) -> Finish {
        let at = self.inner.clock.now();
        let finishing = match resolution {
            Resolution::Complete(output) => {
                Finishing::Complete { at, via: CompletedVia::Dashboard, output: output.clone() }
            }
            Resolution::TimeOut => Finishing::Force { at, via: CompletedVia::Dashboard },
            Resolution::Reject(error) => Finishing::Reject { at, via: CompletedVia::Dashboard, error: error.clone() },
        };
        Finish { id, environment_id: Some(environment.id.clone()), finishing, hand_to: self.inner.hand_to() }
    }

    /// The query of the waiting tokens a bulk filter matches, newest first, in pages of `limit`.
    fn bulk_query(&self, environment: &Environment, filter: &ListTokens, limit: usize) -> Result<Option<ListQuery>> {
        validate::filter_values("filter[tags]", &filter.tags)?;
        if !filter.statuses.is_empty() && !filter.statuses.contains(&WaitpointStatus::Waiting) {
            return Ok(None);
        }
        let mut page = filter.page.clone();
        (page.after, page.before, page.page_size) = (None, None, None);
        let mut window = page.pager(self.inner.clock.now(), |_| None)?.window;
        window.limit = limit;
        Ok(Some(ListQuery {
            environment_id: environment.id.clone(),
            statuses: vec![WaitpointStatus::Waiting],
            idempotency_key: filter.idempotency_key.clone(),
            tags: filter.tags.clone(),
            window,
        }))
    }

    /// How many waiting tokens of `environment` the filter matches, and the newest of them:
    /// what a person confirms before a bulk operation by that filter.
    pub async fn preview_bulk(&self, environment: &Environment, filter: &ListTokens) -> Result<BulkPreview> {
        let Some(mut query) = self.bulk_query(environment, filter, BULK_COUNT_CAP)? else {
            return Ok(BulkPreview { count: 0, through: None });
        };
        let count = self.inner.store.waitpoint_count(&query).await?;
        query.window.limit = 1;
        let through = self.inner.store.waitpoint_list(&query).await?.into_iter().next().map(|w| w.id);
        Ok(BulkPreview { count, through })
    }

    /// Completes or times out many tokens of `environment` from the dashboard, and says what
    /// happened to each. By a filter, the tokens are found and finished in chunks, newest first,
    /// never past the bound the person confirmed.
    pub async fn resolve_tokens(
        &self,
        environment: &Environment,
        target: &BulkTarget,
        resolution: &Resolution,
    ) -> Result<Vec<BulkItem>> {
        match target {
            BulkTarget::Ids(ids) => {
                if ids.len() > MAX_BULK_IDS {
                    return Err(EngineError::Invalid(format!(
                        "a bulk operation takes at most {MAX_BULK_IDS} tokens, not {}",
                        ids.len()
                    )));
                }
                let mut items = Vec::with_capacity(ids.len());
                let mut parsed = Vec::with_capacity(ids.len());
                for id in ids {
                    match WaitpointId::parse(id) {
                        Ok(token) => parsed.push(token),
                        Err(_) => items.push(BulkItem { id: id.clone(), outcome: BulkOutcome::NotFound }),
                    }
                }
                items.extend(self.finish_all(environment, parsed, resolution).await);
                Ok(items)
            }
            BulkTarget::Filter { filter, through } => {
                let through = WaitpointId::parse(through).map_err(|error| EngineError::Invalid(error.to_string()))?;
                let Some(mut query) = self.bulk_query(environment, filter, BULK_CHUNK)? else {
                    return Ok(Vec::new());
                };
                let bound = internal_successor(through.internal());
                query.window.id_below = Some(match query.window.id_below.take() {
                    Some(below) if below < bound => below,
                    _ => bound,
                });
                let mut items = Vec::new();
                loop {
                    let tokens = self.inner.store.waitpoint_list(&query).await?;
                    let Some(last) = tokens.last() else { break };
                    query.window.cursor = Cursor::After(last.id.internal().to_owned());
                    let ids = tokens.into_iter().map(|token| token.id).collect();
                    items.extend(self.finish_all(environment, ids, resolution).await);
                }
                Ok(items)
            }
        }
    }

    /// Finishes these tokens of `environment` (through the writer, which batches them).
    async fn finish_all(
        &self,
        environment: &Environment,
        ids: Vec<WaitpointId>,
        resolution: &Resolution,
    ) -> Vec<BulkItem> {
        let writes = ids.into_iter().map(|id| async move {
            let public = id.public();
            let finish = self.dashboard_finish(environment, id, resolution);
            let outcome = match self.finish_waitpoint(finish).await {
                Ok(Finished::Now(waitpoint)) => BulkOutcome::Finished(waitpoint),
                Ok(Finished::Before(waitpoint)) => BulkOutcome::AlreadyFinished(waitpoint),
                Ok(Finished::NotFound) => BulkOutcome::NotFound,
                Err(error) => BulkOutcome::Failed(error.to_string()),
            };
            BulkItem { id: public, outcome }
        });
        join_all(writes).await
    }

    /// Skips the datetime waits (`wait.for`, `wait.until`) the run `id` of `environment` is
    /// suspended on: each one still waiting completes now, recorded as done from the dashboard,
    /// and the run resumes if that decides its wait. Returns them as they are now. A run that
    /// waits on tokens only, or does not wait, is refused (409).
    pub async fn skip_wait(&self, environment: &Environment, id: &str) -> Result<Vec<Waitpoint>> {
        let view = self.get_run(environment, id).await?;
        let not_skippable = |what: &str| {
            EngineError::Conflict(format!("{} {what}: only a duration or date wait can be skipped", view.run.id))
        };
        if !matches!(view.run.state, RunState::Waiting { .. }) {
            return Err(not_skippable("is not waiting"));
        }
        let datetimes: Vec<WaitpointId> = view
            .waiting_on
            .iter()
            .filter(|w| w.kind == WaitpointKind::Datetime && w.status() == WaitpointStatus::Waiting)
            .map(|w| w.id.clone())
            .collect();
        if datetimes.is_empty() {
            return Err(not_skippable("waits on tokens (complete them, or time them out)"));
        }
        let mut skipped = Vec::with_capacity(datetimes.len());
        for datetime in datetimes {
            match self.finish_waitpoint(self.dashboard_finish(environment, datetime, &Resolution::TimeOut)).await? {
                Finished::Now(waitpoint) | Finished::Before(waitpoint) => skipped.push(waitpoint),
                Finished::NotFound => return Err(not_skippable("waits on nothing known")),
            }
        }
        Ok(skipped)
    }

    /// What the overview of `environment` shows. The counts run at once (each is bounded).
    pub async fn overview(&self, environment: &Environment) -> Result<Overview> {
        let store = &self.inner.store;
        let cap = usize::try_from(COUNT_CAP + 1).unwrap_or(usize::MAX);
        let token_counts = WaitpointStatus::ALL.map(|status| {
            let query = ListQuery {
                environment_id: environment.id.clone(),
                statuses: vec![status],
                idempotency_key: None,
                tags: Vec::new(),
                window: Window::newest(cap),
            };
            async move { store.waitpoint_count(&query).await.map(|n| (status, n)) }
        });
        let now = self.inner.clock.now();
        let run_counts = RunStatus::ALL.map(|status| {
            let query = RunListQuery {
                environment_id: environment.id.clone(),
                statuses: vec![status],
                task_ids: Vec::new(),
                idempotency_key: None,
                tags: Vec::new(),
                window: Window::newest(cap),
                now,
            };
            async move { store.run_count(&query).await.map(|n| (status, n)) }
        });
        let (tokens, runs) = futures_util::future::join(join_all(token_counts), join_all(run_counts)).await;
        Ok(Overview {
            tokens: tokens.into_iter().collect::<Result<_, _>>()?,
            runs: runs.into_iter().collect::<Result<_, _>>()?,
            waiting_longest: store.run_waiting_longest(&environment.id, OVERVIEW_ROWS).await?,
            timing_out_soonest: store.waitpoint_timeouts_soonest(&environment.id, OVERVIEW_ROWS).await?,
            backend: store.backend(),
        })
    }

    /// Up to `limit` tags of `environment`'s tokens that start with `prefix`, in order.
    pub async fn token_tags(&self, environment: &Environment, prefix: &str, limit: usize) -> Result<Vec<String>> {
        Ok(self.inner.store.waitpoint_tags(&environment.id, prefix, limit).await?)
    }

    /// The runs that waited on the token `id` of `environment` (waiting now, or released by it),
    /// newest first, up to `limit`.
    pub async fn token_waiters(&self, environment: &Environment, id: &str, limit: usize) -> Result<Vec<Run>> {
        let token = self.get_token(environment, id).await?;
        let runs = self.inner.store.waitpoint_waiters(&token.id, limit).await?;
        Ok(runs.into_iter().filter(|run| run.environment_id == environment.id).collect())
    }
}
