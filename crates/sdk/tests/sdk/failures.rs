//! Failures a newcomer meets: a wrong key, a process restarted under its instance name, and
//! failures that replay would only repeat (not retried, and named).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use waitpoint_sdk::{Client, Context, CreateTokenRequest, Error, RunStatus, Task, TaskError, Worker, WorkerConfig};

use crate::harness::{Logs, Running, manual_server, server};

#[tokio::test]
async fn a_worker_with_a_wrong_key_stops_at_once_saying_what_to_check() {
    let server = server().await;
    let client = Client::new(&server.origin, "tr_dev_wrongWrongWrong").unwrap();
    let worker =
        Worker::new(client, [Task::new("t", |_: Context, _: Value| async { Ok::<_, TaskError>(()) })], server.config())
            .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), worker.run_until(std::future::pending::<()>()))
        .await
        .expect("the worker stopped instead of polling on");
    match ended {
        Err(error @ Error::KeyRefused { status: 401, .. }) => {
            let message = error.to_string();
            assert!(message.contains(&server.origin) && message.contains("WAITPOINT_SECRET_KEY"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_warning_saying_what_to_check_and_the_worker_keeps_trying() {
    let (logs, _capturing) = Logs::capture();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = Client::new(&api_url, "tr_dev_anyKeyAtAll").unwrap();
    let task = Task::new("t", |_: Context, _: Value| async { Ok::<_, TaskError>(()) });
    let worker = Running::start(Worker::new(client, [task], WorkerConfig::default()).unwrap());
    logs.until("worker started").await;
    logs.until("cannot poll the server").await;
    assert!(logs.count(&format!("WAITPOINT_API_URL (now {api_url})")) > 0, "the warning says what to check");
    worker.stop().await;
}

/// A task that holds its run until the test ends, on the worker `holding`; elsewhere it ends
/// at once.
fn hold(holding: bool) -> Task {
    Task::new("hold", move |_: Context, _: Value| async move {
        if holding {
            std::future::pending::<()>().await;
        }
        Ok::<_, TaskError>(json!("released"))
    })
}

#[tokio::test]
async fn a_restarted_named_worker_takes_its_runs_back_at_once() {
    let server = server().await;
    let named = || WorkerConfig { instance: Some("billing-1".into()), ..server.config() };
    let first = server.start(vec![hold(true)], named());
    let run = server.client.trigger("hold", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Executing).await;
    first.kill();
    // The server presumes a silent worker gone after 30 s; the run comes back well before.
    let _second = server.start(vec![hold(false)], named());
    let done = server.finished(&run).await;
    assert_eq!((done.status, done.output), (RunStatus::Completed, Some(json!("released"))));
}

#[tokio::test]
async fn a_process_replaced_by_a_newer_one_under_its_name_stops_saying_so() {
    let server = server().await;
    let named = || WorkerConfig { instance: Some("billing-1".into()), ..server.config() };
    let older = server.start(vec![hold(true)], named());
    let run = server.client.trigger("hold", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Executing).await;
    let newer = Running::start(Worker::new(server.client.clone(), [hold(false)], named()).unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(20), older.ended()).await.expect("the older process stopped");
    match ended {
        Err(error @ Error::WorkerReplaced { .. }) => {
            assert!(error.to_string().contains("worker_billing-1"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.finished(&run).await.output, Some(json!("released")), "the newer process took the run");
    newer.stop().await;
}

#[derive(Debug, Deserialize)]
struct Approval {
    status: String,
}

#[tokio::test]
async fn a_timed_out_wait_turned_into_an_error_fails_the_run_at_once_as_a_waitpoint_timeout_error() {
    let (server, clock) = manual_server().await;
    let task = Task::new("impatient", |ctx: Context, _: Value| async move {
        let token = ctx.create_token(CreateTokenRequest::new().timeout("1s")).await?;
        let approval = ctx.wait_for_token::<Value>(&token).await?.into_result()?;
        Ok::<_, TaskError>(approval)
    });
    let _worker = server.start(vec![task], server.config());
    let run = server.client.trigger("impatient", &json!(null), None).await.unwrap().id;
    server.until(&run, |d| d.status == RunStatus::Waiting).await;
    clock.advance(Duration::from_secs(1));
    let failed = server.finished(&run).await;
    assert_eq!((failed.status, failed.attempt, failed.max_attempts), (RunStatus::Failed, 1, 3), "not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "WaitpointTimeoutError");
    assert!(error.message.starts_with("Waitpoint timed out at "), "{}", error.message);
}

#[tokio::test]
async fn an_output_of_another_type_fails_the_run_at_once_naming_the_token_and_the_type() {
    let server = server().await;
    let task = Task::new("typed", |ctx: Context, _: Value| async move {
        let token = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
        let approval = ctx.wait_for_token::<Approval>(&token).await?.into_result()?;
        Ok::<_, TaskError>(approval.status)
    });
    let _worker = server.start(vec![task], server.config());
    let run = server.client.trigger("typed", &json!(null), None).await.unwrap().id;
    let token = server.waiting_token(&run).await;
    server.client.complete_token(&token, &json!({ "approved": true })).await.unwrap();
    let failed = server.finished(&run).await;
    assert_eq!((failed.status, failed.attempt), (RunStatus::Failed, 1), "not retried");
    let error = failed.error.unwrap();
    assert_eq!(error.name, "OutputTypeError");
    assert_eq!(
        error.message,
        format!("the output of token {token} does not decode into sdk::failures::Approval: missing field `status`")
    );
}
