//! Set waits on a real server: a run waits on any, all, or some of several tokens, durations
//! and points in time, and resumes (in memory, or by replay after its worker was killed) with
//! where each stood.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use waitpoint_sdk::{
    Context, CreateTokenRequest, MemberState, RunStatus, Task, TaskError, Wait, WaitSetResult, WorkerConfig,
};

use crate::harness::{Seen, manual_server, server};

/// A set wait's result as JSON: `ok`, and each waitpoint's state and output.
fn standings(set: &WaitSetResult) -> Value {
    let each: Vec<Value> = set
        .waitpoints()
        .iter()
        .map(|member| match &member.state {
            MemberState::Completed(output) => json!({ "completed": output }),
            MemberState::TimedOut(error) => json!({ "timedOut": error.message }),
            MemberState::Rejected(error) => json!({ "rejected": error.message }),
            MemberState::Pending => json!("pending"),
        })
        .collect();
    json!({ "ok": set.is_ok(), "waitpoints": each })
}

/// Creates `n` tokens timing out after `timeout`, adds their ids to `tokens` (once: a replay
/// gets the same tokens), and returns them as waits.
async fn tokens(ctx: &Context, n: usize, timeout: &str, tokens: &Seen<String>) -> Result<Vec<Wait>, TaskError> {
    let mut waits = Vec::new();
    for _ in 0..n {
        let token = ctx.create_token(CreateTokenRequest::new().timeout(timeout)).await?;
        let mut created = tokens.lock().unwrap();
        if !created.contains(&token.id) {
            created.push(token.id.clone());
        }
        waits.push(Wait::token(&token));
    }
    Ok(waits)
}

/// What the runs of a task did, counted across executions.
#[derive(Default)]
struct Counts {
    /// Executions of the task's code (live, or replaying).
    executions: AtomicUsize,
    /// Runs of the step that asks the approvers.
    asked: AtomicUsize,
}

/// Approved by two of three: each approver's token is completed with their answer.
fn two_of_three(created: Seen<String>, counts: Arc<Counts>) -> Task {
    Task::new("two-of-three", move |ctx: Context, _: Value| {
        let (created, counts) = (created.clone(), counts.clone());
        async move {
            counts.executions.fetch_add(1, Ordering::SeqCst);
            let waits = tokens(&ctx, 3, "1h", &created).await?;
            ctx.step("ask the approvers", || async { counts.asked.fetch_add(1, Ordering::SeqCst) }).await?;
            let set = ctx.wait_for_at_least(2, waits).await?;
            let second: Option<Value> = set.output(1)?;
            Ok::<_, TaskError>(json!({ "standings": standings(&set), "second": second }))
        }
    })
}

#[tokio::test]
async fn a_run_waiting_for_two_of_three_approvals_resumes_at_the_second_with_each_ones_standing() {
    let server = server().await;
    let created: Seen<String> = Arc::default();
    let counts = Arc::new(Counts::default());
    let _worker = server.start(vec![two_of_three(created.clone(), counts.clone())], server.config());
    let run = server.client.trigger("two-of-three", &json!(null), None).await.unwrap().id;
    let waiting = server.until(&run, |d| d.status == RunStatus::Waiting).await;
    assert_eq!(waiting.waiting_on.len(), 3, "the run waits on the three tokens");
    let tokens = created.lock().unwrap().clone();

    server.client.complete_token(&tokens[2], &json!({ "approved": true })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let one = server.client.retrieve_run(&run).await.unwrap();
    assert_eq!(one.status, RunStatus::Waiting, "one approval is not enough");
    server.client.complete_token(&tokens[1], &json!({ "approved": false })).await.unwrap();

    let done = server.finished(&run).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let expected = json!({
        "ok": true,
        "waitpoints": ["pending", { "completed": { "approved": false } }, { "completed": { "approved": true } }],
    });
    assert_eq!(done.output.unwrap(), json!({ "standings": expected, "second": { "approved": false } }));
    assert_eq!(counts.executions.load(Ordering::SeqCst), 1, "resumed in memory, without replay");
    assert_eq!(counts.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_run_waiting_for_a_token_or_a_day_resumes_with_whichever_came_first() {
    let (server, clock) = manual_server().await;
    let created: Seen<String> = Arc::default();
    let task = Task::new("token-or-a-day", {
        let created = created.clone();
        move |ctx: Context, _: Value| {
            let created = created.clone();
            async move {
                let mut waits = tokens(&ctx, 1, "none", &created).await?;
                waits.push(Wait::duration(Duration::from_secs(86_400)));
                let set = ctx.wait_for_any(waits).await?;
                Ok::<_, TaskError>(standings(&set))
            }
        }
    });
    let _worker = server.start(vec![task], server.config());

    let answered = server.client.trigger("token-or-a-day", &json!(null), None).await.unwrap().id;
    server.until(&answered, |d| d.status == RunStatus::Waiting).await;
    let token = created.lock().unwrap()[0].clone();
    server.client.complete_token(&token, &json!("yes")).await.unwrap();
    let output = server.finished(&answered).await.output.unwrap();
    assert_eq!(output, json!({ "ok": true, "waitpoints": [{ "completed": "yes" }, "pending"] }));

    let unanswered = server.client.trigger("token-or-a-day", &json!(null), None).await.unwrap().id;
    let waiting = server.until(&unanswered, |d| d.status == RunStatus::Waiting).await;
    assert_eq!(waiting.waiting_on.len(), 2, "a token and a datetime waitpoint");
    clock.advance(Duration::from_secs(86_400));
    let output = server.finished(&unanswered).await.output.unwrap();
    assert_eq!(output, json!({ "ok": true, "waitpoints": ["pending", { "completed": null }] }));
}

#[tokio::test]
async fn a_wait_for_all_that_a_timeout_decides_fails_the_run_at_once_naming_the_timeout() {
    let (server, clock) = manual_server().await;
    let created: Seen<String> = Arc::default();
    let task = Task::new("all-or-nothing", {
        let created = created.clone();
        move |ctx: Context, _: Value| {
            let created = created.clone();
            async move {
                let mut waits = tokens(&ctx, 2, "1h", &created).await?;
                waits.push(Wait::until(ctx.now().await? + Duration::from_secs(86_400)));
                let answers = ctx.wait_for_all(waits).await?.into_result()?;
                Ok::<_, TaskError>(answers.len())
            }
        }
    });
    let _worker = server.start(vec![task], server.config());
    let run = server.client.trigger("all-or-nothing", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    let tokens = created.lock().unwrap().clone();
    server.client.complete_token(&tokens[1], &json!("yes")).await.unwrap();
    clock.advance(Duration::from_secs(3_600));

    let failed = server.finished(&run).await;
    assert_eq!((failed.status, failed.attempt), (RunStatus::Failed, 1), "not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "WaitpointTimeoutError");
    assert_eq!(
        error.message,
        format!(
            "the wait for all of 3 waitpoints cannot be met: 1 timed out ({}: Waitpoint timed out at \
             2025-04-01T11:00:00.000Z)",
            tokens[0]
        )
    );
}

#[tokio::test]
async fn a_worker_killed_while_its_run_waits_on_a_set_replays_the_run_when_restarted() {
    let server = server().await;
    let created: Seen<String> = Arc::default();
    let counts = Arc::new(Counts::default());
    let named = || WorkerConfig { instance: Some("approvers-1".into()), ..server.config() };
    let first = server.start(vec![two_of_three(created.clone(), counts.clone())], named());
    let run = server.client.trigger("two-of-three", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    first.kill();

    let _second = server.start(vec![two_of_three(created.clone(), counts.clone())], named());
    let tokens = created.lock().unwrap().clone();
    assert_eq!(tokens.len(), 3, "the tokens were created once");
    server.client.complete_token(&tokens[0], &json!({ "approved": true })).await.unwrap();
    server.client.complete_token(&tokens[1], &json!({ "approved": true })).await.unwrap();

    let done = server.finished(&run).await;
    assert_eq!((done.status, done.attempt), (RunStatus::Completed, 1), "{done:?}");
    let expected = json!({
        "ok": true,
        "waitpoints": [{ "completed": { "approved": true } }, { "completed": { "approved": true } }, "pending"],
    });
    assert_eq!(done.output.unwrap(), json!({ "standings": expected, "second": { "approved": true } }));
    assert_eq!(counts.executions.load(Ordering::SeqCst), 2, "the restarted worker replayed the run");
    assert_eq!(counts.asked.load(Ordering::SeqCst), 1, "the replay did not ask the approvers again");
}

#[tokio::test]
async fn a_set_wait_whose_condition_changed_between_deploys_fails_the_run_naming_both() {
    let server = server().await;
    let created: Seen<String> = Arc::default();
    let waiting = |all: bool| {
        let created = created.clone();
        Task::new("approvers", move |ctx: Context, _: Value| {
            let created = created.clone();
            async move {
                let waits = tokens(&ctx, 3, "1h", &created).await?;
                let set = if all { ctx.wait_for_all(waits).await? } else { ctx.wait_for_at_least(2, waits).await? };
                Ok::<_, TaskError>(set.is_ok())
            }
        })
    };
    let worker = server.start(vec![waiting(false)], server.config());
    let run = server.client.trigger("approvers", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    // A new deployment waits for all three approvals, where the run waits for two.
    worker.stop().await;
    let _worker = server.start(vec![waiting(true)], server.config());
    let tokens = created.lock().unwrap().clone();
    for token in &tokens {
        server.client.complete_token(token, &json!("yes")).await.unwrap();
    }
    let failed = server.finished(&run).await;
    assert_eq!((failed.status, failed.attempt), (RunStatus::Failed, 1), "not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "NonDeterminism");
    let message = error.message;
    assert!(
        message.contains(
            "position 3: the journal recorded WAIT_SET \"2 of 3\", the code now performs WAIT_SET \"all of 3\""
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_set_the_server_would_refuse_fails_the_run_at_once_before_anything_is_sent() {
    let server = server().await;
    let task = Task::new("refused", |ctx: Context, _: Value| async move {
        let token = ctx.create_token(CreateTokenRequest::new()).await?;
        let set = ctx.wait_for_at_least(2, [Wait::token(&token), Wait::token(&token.id)]).await?;
        Ok::<_, TaskError>(set.is_ok())
    });
    let _worker = server.start(vec![task], server.config());
    let run = server.client.trigger("refused", &json!(null), None).await.unwrap().id;
    let failed = server.finished(&run).await;
    assert_eq!((failed.status, failed.attempt), (RunStatus::Failed, 1), "not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "ConfigError");
    assert!(error.message.ends_with("is in the set twice"), "{}", error.message);
    assert!(failed.waiting_on.is_empty());
}
