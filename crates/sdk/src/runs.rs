//! The run API of the client: trigger, retrieve, list and cancel runs.

use futures_util::Stream;
use reqwest::Method;
use serde::Serialize;
use waitpoint_types::api::{Page, RunDetail, TriggerOptions, TriggerRequest, TriggerResponse};
use waitpoint_types::{RunStatus, Timestamp};

use crate::client::{ListQuery, segment};
use crate::{Client, Error, Result};

/// Filters of a run list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Any of these statuses.
    pub statuses: Vec<RunStatus>,
    /// Any of these tasks.
    pub task_ids: Vec<String>,
    /// Triggered with this idempotency key.
    pub idempotency_key: Option<String>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// Created within this period before now (`"1h"`, `"7d"`).
    pub period: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created at or before.
    pub to: Option<Timestamp>,
    /// Runs per page (1 to 100).
    pub page_size: Option<u32>,
}

impl Client {
    /// Triggers a run of `task_id` with `payload`; with an active idempotency key, returns the
    /// run it names (`is_cached`).
    pub async fn trigger<P: Serialize + ?Sized>(
        &self,
        task_id: &str,
        payload: &P,
        options: Option<TriggerOptions>,
    ) -> Result<TriggerResponse> {
        let payload = serde_json::to_value(payload).map_err(|e| Error::Decode(format!("payload: {e}")))?;
        let body = TriggerRequest { payload, options };
        let path = format!("api/v1/tasks/{}/trigger", task_segment(task_id)?);
        self.send(self.request(Method::POST, &path)?.json(&body)).await
    }

    /// The run `id`, with its payload, output or error, and what it waits on.
    pub async fn retrieve_run(&self, id: &str) -> Result<RunDetail> {
        self.send(self.request(Method::GET, &format!("api/v1/runs/{}", segment(id)?))?).await
    }

    /// Cancels the run `id` (a waiting one too); canceling a finished run changes nothing.
    pub async fn cancel_run(&self, id: &str) -> Result<RunDetail> {
        self.send(self.request(Method::POST, &format!("api/v1/runs/{}/cancel", segment(id)?))?).await
    }

    /// One page of runs: the newest when `after` is `None`, else those older than the cursor.
    pub(crate) async fn list_runs_page(&self, filter: &RunFilter, after: Option<&str>) -> Result<Page<RunDetail>> {
        let mut url = self.url("api/v1/runs")?;
        let query = ListQuery {
            page_size: filter.page_size,
            after,
            statuses: filter.statuses.iter().map(|s| s.as_str()).collect(),
            idempotency_key: filter.idempotency_key.as_deref(),
            tags: &filter.tags,
            period: filter.period.as_deref(),
            from: filter.from,
            to: filter.to,
        };
        query.append_to(&mut url);
        if !filter.task_ids.is_empty() {
            url.query_pairs_mut().append_pair("filter[taskIdentifier]", &filter.task_ids.join(","));
        }
        self.send(self.authorized(self.http.get(url))).await
    }

    /// Every run matching `filter`, newest first, fetching pages as the stream is read.
    pub fn list_runs(&self, filter: RunFilter) -> impl Stream<Item = Result<RunDetail>> + '_ {
        crate::client::paginate(move |after| {
            let filter = filter.clone();
            async move { self.list_runs_page(&filter, after.as_deref()).await }
        })
    }
}

/// A task id as a path segment (task ids may hold `/`, which is escaped).
fn task_segment(task_id: &str) -> Result<String> {
    if task_id.is_empty() || !task_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b)) {
        return Err(Error::Config(format!("invalid task id {task_id:?}")));
    }
    Ok(task_id.replace('/', "%2F"))
}
