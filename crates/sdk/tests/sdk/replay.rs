//! What a run reads through its context is the same when it replays: the time, random
//! values, token lists, its datetime waits; and its logger stays quiet while it replays.
//!
//! Each test suspends a run on a worker, stops that worker, and lets another resume the run:
//! the second worker has nothing in memory, so it replays the journal. The server and the
//! workers share a manual clock, which drives the datetime waits.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use waitpoint_clock::Clock;
use waitpoint_sdk::{Context, CreateTokenRequest, ListFilter, RunDetail, RunStatus, Task, TaskError, Timestamp};

use crate::harness::{Logs, Seen, Server, manual_server};

/// Triggers `task`'s run on a first worker until it waits, stops that worker, advances the
/// clock by 10 s (the waits below end then) with a second worker started: the run resumes
/// there, by replay.
async fn resumed_by_replay(server: &Server, clock: &waitpoint_clock::ManualClock, task: Task) -> RunDetail {
    let first = server.start(vec![task.clone()], server.config());
    let run = server.client.trigger(task.id(), &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    first.stop().await;
    let _second = server.start(vec![task], server.config());
    clock.advance(Duration::from_secs(10));
    server.finished(&run).await
}

#[tokio::test]
async fn the_time_and_random_values_are_the_same_on_replay() {
    let (server, clock) = manual_server().await;
    let start = clock.now();
    let seen: Seen<(Timestamp, String, u64)> = Arc::default();
    let task = Task::new("values", {
        let seen = seen.clone();
        move |ctx: Context, _: Value| {
            let seen = seen.clone();
            async move {
                let now = ctx.now().await?;
                let uuid = ctx.uuid().await?;
                let random = ctx.random_u64().await?;
                seen.lock().unwrap().push((now, uuid.clone(), random));
                ctx.wait_until(now + Duration::from_secs(10)).await?;
                Ok::<_, TaskError>(json!({ "now": now, "uuid": uuid, "random": random.to_string() }))
            }
        }
    });
    let done = resumed_by_replay(&server, &clock, task).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "executed, then replayed");
    assert_eq!(seen[0], seen[1], "the replay read the recorded values");
    let (now, uuid, random) = &seen[0];
    assert_eq!(*now, start, "the worker's clock, read before it moved");
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4", "a version 4 UUID: {uuid}");
    assert_eq!(done.output.unwrap(), json!({ "now": start, "uuid": uuid, "random": random.to_string() }));
}

/// Regression: a deadline computed from the clock outside the context (the natural port of
/// `wait.until({ date: new Date(Date.now() + 10_000) })`) differed on replay, and the run
/// failed with non-determinism.
#[tokio::test]
async fn a_datetime_wait_resumes_on_replay_though_the_code_computes_another_deadline() {
    let (server, clock) = manual_server().await;
    let deadlines: Seen<Timestamp> = Arc::default();
    let task = Task::new("sleepy", {
        let (deadlines, clock) = (deadlines.clone(), clock.clone());
        move |ctx: Context, _: Value| {
            let until = clock.now() + Duration::from_secs(10);
            deadlines.lock().unwrap().push(until);
            async move {
                ctx.wait_until(until).await?;
                Ok::<_, TaskError>(json!("awake"))
            }
        }
    });
    let done = resumed_by_replay(&server, &clock, task).await;
    assert_eq!((done.status, done.output), (RunStatus::Completed, Some(json!("awake"))));
    let deadlines = deadlines.lock().unwrap().clone();
    assert_eq!(deadlines.len(), 2);
    assert_ne!(deadlines[0], deadlines[1], "the replay asked for another deadline, and got the recorded one");
}

#[tokio::test]
async fn the_context_lists_tokens_as_a_stream_and_a_replay_reads_the_pages_it_read() {
    let (server, clock) = manual_server().await;
    let listed: Seen<Vec<String>> = Arc::default();
    let task = Task::new("lister", {
        let listed = listed.clone();
        move |ctx: Context, _: Value| {
            let listed = listed.clone();
            async move {
                for _ in 0..3 {
                    ctx.create_token(CreateTokenRequest::new().tags(["listed"])).await?;
                }
                let filter = ListFilter { tags: vec!["listed".into()], page_size: Some(2), ..Default::default() };
                let ids = |ctx: &Context| {
                    let filter = filter.clone();
                    let ctx = ctx.clone();
                    async move { ctx.list_tokens(filter).map_ok(|token| token.id).try_collect::<Vec<_>>().await }
                };
                let before = ids(&ctx).await?;
                listed.lock().unwrap().push(before.clone());
                ctx.wait_for(Duration::from_secs(10)).await?;
                let after = ids(&ctx).await?;
                Ok::<_, TaskError>(json!({ "before": before, "after": after }))
            }
        }
    });
    let first = server.start(vec![task.clone()], server.config());
    let run = server.client.trigger("lister", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    first.stop().await;
    for _ in 0..2 {
        server.client.create_token(CreateTokenRequest::new().tags(["listed"])).await.unwrap();
    }
    let _second = server.start(vec![task], server.config());
    clock.advance(Duration::from_secs(10));
    let output = server.finished(&run).await.output.unwrap();

    let listed = listed.lock().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].len(), 3, "three tokens, on two pages");
    assert_eq!(listed[1], listed[0], "the replay read the recorded pages, not the five tokens there are now");
    assert_eq!(output["before"], json!(listed[0]));
    assert_eq!(output["after"].as_array().unwrap().len(), 5, "a list after the wait is live");
}

#[tokio::test]
async fn the_runs_logger_is_quiet_while_the_run_replays() {
    let (logs, _capturing) = Logs::capture();

    let (server, clock) = manual_server().await;
    let replaying: Seen<bool> = Arc::default();
    let task = Task::new("chatty", {
        let replaying = replaying.clone();
        move |ctx: Context, _: Value| {
            let replaying = replaying.clone();
            async move {
                replaying.lock().unwrap().push(ctx.is_replaying());
                ctx.info("before the wait");
                ctx.wait_for(Duration::from_secs(10)).await?;
                replaying.lock().unwrap().push(ctx.is_replaying());
                ctx.info("after the wait");
                Ok::<_, TaskError>(json!(null))
            }
        }
    });
    let done = resumed_by_replay(&server, &clock, task).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(*replaying.lock().unwrap(), [false, true, false], "live, replaying, live again");
    assert_eq!(logs.count("before the wait"), 1, "said once, not again on replay");
    assert_eq!(logs.count("after the wait"), 1);
    assert_eq!(logs.count("waitpoint_sdk::run: "), 2, "two lines from the run's logger");
    assert_eq!(logs.count(&format!("run={} task=chatty", done.id)), 2, "each names its run");
}
