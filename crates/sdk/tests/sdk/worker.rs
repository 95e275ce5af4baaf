//! A worker running real tasks: suspend and resume in memory, replay after eviction, retries,
//! panics, timeouts, non-determinism, cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waitpoint_sdk::{
    Context, CreateTokenRequest, RejectTokenRequest, RetryPolicy, RunStatus, Task, TaskError, TriggerOptions,
    WaitResult, Worker, WorkerConfig,
};

use crate::harness::server;

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    status: String,
}

/// The spec's approval flow: a step, a token, a wait; counts how often the step really ran.
fn approval(step_runs: Arc<AtomicUsize>) -> Task {
    Task::new("approval", move |ctx: Context, payload: Value| {
        let step_runs = step_runs.clone();
        async move {
            let ticket = ctx
                .step("open ticket", || async {
                    step_runs.fetch_add(1, Ordering::SeqCst);
                    format!("ticket for {}", payload["user"])
                })
                .await?;
            let token = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
            let decision = match ctx.wait_for_token::<Approval>(&token).await? {
                WaitResult::Completed(approval) => approval.status,
                WaitResult::TimedOut(error) => format!("timed out: {error}"),
                WaitResult::Rejected(error) => format!("rejected: {error}"),
            };
            Ok::<_, TaskError>(json!({ "ticket": ticket, "decision": decision, "token": token.id }))
        }
    })
}

#[tokio::test]
async fn a_waiting_run_resumes_with_the_completion_and_runs_its_step_once() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let _worker = server.start(vec![approval(step_runs.clone())], server.config());

    let run = server.client.trigger("approval", &json!({ "user": "ada" }), None).await.unwrap().id;
    let token = server.waiting_token(&run).await;
    server.client.complete_token(&token, &json!({ "status": "approved" })).await.unwrap();
    let done = server.finished(&run).await;
    assert_eq!(done.status, RunStatus::Completed);
    let output = done.output.unwrap();
    assert_eq!(output["decision"], "approved");
    assert_eq!(output["ticket"], "ticket for \"ada\"");
    assert_eq!(output["token"], token);
    assert_eq!(step_runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn evicted_runs_resume_by_replay_without_repeating_steps_or_tokens() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let config = WorkerConfig { max_suspended: 1, ..server.config() };
    let _worker = server.start(vec![approval(step_runs.clone())], config);

    let mut runs = Vec::new();
    for user in ["a", "b", "c"] {
        let run = server.client.trigger("approval", &json!({ "user": user }), None).await.unwrap().id;
        let token = server.waiting_token(&run).await;
        runs.push((run, token));
    }
    for (run, token) in &runs {
        server.client.complete_token(token, &json!({ "status": format!("ok {run}") })).await.unwrap();
    }
    for (run, token) in &runs {
        let output = server.finished(run).await.output.unwrap();
        assert_eq!(output["decision"], format!("ok {run}"));
        assert_eq!(output["token"], *token, "replay returned the same token, not a new one");
    }
    assert_eq!(step_runs.load(Ordering::SeqCst), 3, "no step ran twice");
}

#[tokio::test]
async fn a_token_timeout_reaches_the_run_as_a_result() {
    let server = server().await;
    let task = Task::new("short", |ctx: Context, _: Value| async move {
        let token = ctx.create_token(CreateTokenRequest::new().timeout("1s")).await?;
        match ctx.wait_for_token::<Value>(token.id).await?.into_result() {
            Ok(output) => Ok::<_, TaskError>(json!({ "output": output })),
            Err(timeout) => Ok(json!({ "timeout": timeout.to_string() })),
        }
    });
    let _worker = server.start(vec![task], server.config());
    let run = server.client.trigger("short", &json!(null), None).await.unwrap().id;
    let output = server.finished(&run).await.output.unwrap();
    assert!(output["timeout"].as_str().unwrap().starts_with("Waitpoint timed out at "), "{output}");
}

#[tokio::test]
async fn a_token_rejection_reaches_the_run_as_its_own_result_and_fails_it_without_retries() {
    let server = server().await;
    let task = Task::new("reviewed", |ctx: Context, unwrap: Value| async move {
        let token = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
        let result = ctx.wait_for_token::<Value>(token.id).await?;
        if unwrap == json!(true) {
            result.clone().into_result()?;
        }
        match result {
            WaitResult::Rejected(error) => Ok::<_, TaskError>(json!({ "code": error.code, "data": error.data })),
            other => Ok(json!({ "unexpected": format!("{other:?}") })),
        }
    });
    let _worker = server.start(vec![task], server.config());
    let rejection = RejectTokenRequest::new("not this one").code("NOPE").data(json!({ "why": [1] }));
    let run = server.client.trigger("reviewed", &json!(false), None).await.unwrap().id;
    server.client.reject_token(server.waiting_token(&run).await, &rejection).await.unwrap();
    assert_eq!(server.finished(&run).await.output.unwrap(), json!({ "code": "NOPE", "data": { "why": [1] } }));

    let options = TriggerOptions { max_attempts: Some(3), ..Default::default() };
    let unwrapped = server.client.trigger("reviewed", &json!(true), Some(options)).await.unwrap().id;
    server.client.reject_token(server.waiting_token(&unwrapped).await, &rejection).await.unwrap();
    let failed = server.finished(&unwrapped).await;
    let error = failed.error.unwrap();
    assert_eq!((error.name.as_str(), failed.attempt), ("WaitpointRejectedError", 1), "{error:?}");
    assert_eq!(error.message, "rejected: not this one (NOPE)");
}

#[tokio::test]
async fn failures_and_panics_retry_until_an_attempt_succeeds_and_failed_steps_run_again() {
    let server = server().await;
    let (calls, tries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let task = {
        let (calls, tries) = (calls.clone(), tries.clone());
        Task::new("flaky", move |ctx: Context, _: Value| {
            let (calls, tries) = (calls.clone(), tries.clone());
            async move {
                let first = ctx.step("first", || async { calls.fetch_add(1, Ordering::SeqCst) }).await?;
                let second = ctx
                    .try_step("second", || async {
                        let n = tries.fetch_add(1, Ordering::SeqCst);
                        if n % 2 == 0 { Err(std::io::Error::other("the service is down")) } else { Ok(n) }
                    })
                    .await?;
                match ctx.attempt() {
                    2 => Err(TaskError::msg("not yet")),
                    3 => panic!("still not"),
                    _ => Ok(json!({ "first": first, "second": second, "attempt": ctx.attempt() })),
                }
            }
        })
        .retry(RetryPolicy { min: Duration::from_millis(10), max: Duration::from_millis(10), factor: 1.0 })
    };
    let _worker = server.start(vec![task], server.config());
    let options = TriggerOptions { max_attempts: Some(4), ..Default::default() };
    let run = server.client.trigger("flaky", &json!(null), Some(options)).await.unwrap().id;
    let done = server.finished(&run).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.output.unwrap(), json!({ "first": 0, "second": 1, "attempt": 4 }));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the recorded step did not run again in later attempts");
    assert_eq!(tries.load(Ordering::SeqCst), 2, "the failed step ran again, once, then was recorded");

    let options = TriggerOptions { max_attempts: Some(1), ..Default::default() };
    let doomed = server.client.trigger("flaky", &json!(null), Some(options)).await.unwrap().id;
    let failed = server.finished(&doomed).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!((error.name.as_str(), error.message.as_str()), ("TaskError", "the service is down"));
}

#[tokio::test]
async fn code_that_no_longer_matches_the_journal_fails_the_run_naming_both() {
    let server = server().await;
    let changing = |version: u32| {
        Task::new("changing", move |ctx: Context, _: Value| async move {
            ctx.step(&format!("step v{version}"), || async { 1 }).await?;
            ctx.wait_for(Duration::from_millis(200)).await?;
            Ok::<_, TaskError>(json!("done"))
        })
    };
    let worker = server.start(vec![changing(0)], server.config());
    let run = server.client.trigger("changing", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    // A new deployment with different code takes over while the run sleeps.
    worker.stop().await;
    let _worker = server.start(vec![changing(1)], server.config());
    let failed = server.finished(&run).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.attempt, 1, "non-determinism is not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "NonDeterminism");
    assert!(error.message.contains("\"step v0\"") && error.message.contains("\"step v1\""), "{}", error.message);
}

#[tokio::test]
async fn a_waiting_run_can_be_canceled() {
    let server = server().await;
    let _worker = server.start(vec![approval(Arc::new(AtomicUsize::new(0)))], server.config());
    let run = server.client.trigger("approval", &json!({ "user": "x" }), None).await.unwrap().id;
    let token = server.waiting_token(&run).await;
    assert_eq!(server.client.cancel_run(&run).await.unwrap().status, RunStatus::Canceled);
    server.client.complete_token(&token, &json!({ "status": "late" })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.client.retrieve_run(&run).await.unwrap().status, RunStatus::Canceled);
}

#[tokio::test]
async fn a_run_resumed_while_every_slot_is_taken_continues_in_memory_once_one_frees() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let blocker = Task::new("blocker", {
        let gate = gate.clone();
        move |_ctx: Context, _payload: Value| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, TaskError>(json!("unblocked"))
            }
        }
    });
    let config = WorkerConfig { concurrency: 1, ..server.config() };
    let _worker = server.start(vec![approval(step_runs.clone()), blocker], config);

    let waiting = server.client.trigger("approval", &json!({ "user": "ada" }), None).await.unwrap().id;
    let token = server.waiting_token(&waiting).await;
    let busy = server.client.trigger("blocker", &json!({}), None).await.unwrap().id;
    server.until(&busy, |d| d.status == RunStatus::Executing).await;
    server.client.complete_token(&token, &json!({ "status": "approved" })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = server.client.retrieve_run(&waiting).await.unwrap();
    assert_eq!(held.status, RunStatus::Queued, "queued for its worker, which has no free slot yet");

    gate.notify_one();
    assert_eq!(server.finished(&busy).await.status, RunStatus::Completed);
    let done = server.finished(&waiting).await;
    assert_eq!(done.output.unwrap()["decision"], "approved");
    assert_eq!(step_runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_worker_stopped_as_a_run_returns_reports_its_outcome_before_it_leaves() {
    let server = server().await;
    let stopping = Arc::new(tokio::sync::Notify::new());
    let last = Task::new("last", {
        let stopping = stopping.clone();
        move |_ctx: Context, _payload: Value| {
            let stopping = stopping.clone();
            async move {
                // The worker is told to stop as the code returns an output that takes a while to
                // report: its slot is free at once, its report still in flight.
                stopping.notify_one();
                Ok::<_, TaskError>(json!("x".repeat(2 << 20)))
            }
        }
    });
    let worker = Worker::new(server.client.clone(), vec![last], server.config()).unwrap();
    let stopped = tokio::spawn(worker.run_until(async move { stopping.notified().await }));

    let run = server.client.trigger("last", &json!({}), None).await.unwrap().id;
    tokio::time::timeout(Duration::from_secs(10), stopped).await.unwrap().unwrap().unwrap();
    let done = server.client.retrieve_run(&run).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "reported before the worker left, not handed back");
    assert_eq!(done.output.unwrap().as_str().map(str::len), Some(2 << 20));
}

#[tokio::test]
async fn rejects_heartbeats_and_extends_in_a_run_are_recorded_and_not_sent_again_on_replay() {
    let server = server().await;
    let task = Task::new("keeper", |ctx: Context, _: Value| async move {
        let kept = ctx.create_token(CreateTokenRequest::new().timeout("1h").heartbeat_timeout("10m")).await?;
        let other = ctx.create_token(CreateTokenRequest::new()).await?;
        let beat = ctx.heartbeat_token(&kept.id).await?;
        let extended = ctx.extend_token(&kept.id, "2h").await?;
        ctx.reject_token(&other.id, &RejectTokenRequest::new("not needed")).await?;
        let refused = match ctx.heartbeat_token(&other.id).await {
            Err(waitpoint_sdk::Error::Api { status, .. }) => status,
            other => return Ok::<_, TaskError>(json!({ "unexpected": format!("{other:?}") })),
        };
        let wait = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
        ctx.wait_for_token::<Value>(wait.id).await?;
        Ok(json!({
            "kept": kept.id,
            "deadline": beat.heartbeat_deadline,
            "timeoutAt": extended.timeout_at,
            "refused": refused,
        }))
    });
    let config = WorkerConfig { max_suspended: 1, ..server.config() };
    let _worker = server.start(vec![task], config);
    let runs: Vec<_> = [1, 2].iter().map(|_| server.client.trigger("keeper", &json!(null), None)).collect();
    let mut ids = Vec::new();
    for run in runs {
        ids.push(run.await.unwrap().id);
    }
    for id in &ids {
        let token = server.waiting_token(id).await;
        server.client.complete_token(token, &json!("go")).await.unwrap();
    }
    for id in &ids {
        let output = server.finished(id).await.output.unwrap();
        assert_eq!(output["refused"], 409, "{output}");
        let kept = server.client.retrieve_token(output["kept"].as_str().unwrap()).await.unwrap().detail;
        let deadline = kept.heartbeat_deadline.map(|at| at.to_string());
        assert_eq!(output["deadline"].as_str(), deadline.as_deref(), "the heartbeat was sent once, not on replay");
        assert_eq!(output["timeoutAt"].as_str(), kept.timeout_at.map(|at| at.to_string()).as_deref());
    }
}
