//! Runs through the engine over a real SQLite database with a manual clock: trigger, claim,
//! journal, suspend and resume, datetime waits, retries, cancel, and stopped workers.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, EngineError, Event, ListRuns, Principal};
use waitpoint_types::api::worker::{HeldRun, PollRequest, TaskSlots, WaitFor};
use waitpoint_types::api::{CreateTokenRequest, TriggerOptions};
use waitpoint_types::{
    Environment, IdGenerator, JournalEntry, JournalKind, Output, RunError, RunState, RunStatus, Timestamp, WorkerId,
};

const START: i64 = 1_764_000_000_000;

struct Harness {
    _dir: TempDir,
    clock: ManualClock,
    engine: Engine,
    dev: Environment,
    ids: IdGenerator,
}

impl Harness {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = waitpoint_sqlite::SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), EngineConfig::default());
        Self { _dir: dir, clock, engine, dev, ids: IdGenerator::new() }
    }

    fn worker(&self) -> String {
        self.ids.worker(Timestamp::from_millis(START)).public()
    }

    async fn trigger(&self, task: &str, options: TriggerOptions) -> String {
        self.engine.trigger_run(&self.dev, task, r#"{"n":1}"#.into(), &options).await.unwrap().run.id.public()
    }

    /// Polls without waiting.
    async fn poll(&self, worker: &str, task: &str, slots: u32) -> Vec<waitpoint_storage::Claim> {
        self.engine.poll_runs(&self.dev, worker, &poll(&[(task, slots)], &[], 0)).await.unwrap()
    }

    async fn status(&self, run: &str) -> RunStatus {
        let view = self.engine.get_run(&self.dev, run).await.unwrap();
        view.run.status(self.clock.now_for_tests())
    }
}

trait Now {
    fn now_for_tests(&self) -> Timestamp;
}

impl Now for ManualClock {
    fn now_for_tests(&self) -> Timestamp {
        waitpoint_engine::Clock::now(self)
    }
}

/// The next waitpoint reported finished (other events are skipped).
async fn next_finished(events: &mut tokio::sync::broadcast::Receiver<Event>) -> waitpoint_types::Waitpoint {
    loop {
        if let Event::WaitpointFinished(waitpoint) = events.recv().await.unwrap() {
            return waitpoint;
        }
    }
}

/// A poll of `tasks` (with their free slots) by a worker executing `holding`, held up to
/// `wait_ms`.
fn poll(tasks: &[(&str, u32)], holding: &[String], wait_ms: u64) -> PollRequest {
    PollRequest {
        tasks: tasks.iter().map(|(id, slots)| TaskSlots { id: (*id).to_owned(), slots: *slots }).collect(),
        wait_ms,
        holding: holding.iter().cloned().map(HeldRun::Id).collect(),
        leaving: false,
        session: None,
    }
}

fn step(seq: u32, name: &str, result: &str) -> JournalEntry {
    JournalEntry { seq, kind: JournalKind::Step, name: name.into(), result: Some(result.into()) }
}

#[tokio::test]
async fn a_run_is_triggered_claimed_journaled_and_completed() {
    let h = Harness::new().await;
    let id = h.trigger("email", TriggerOptions { tags: Some(vec!["user:1".into()]), ..Default::default() }).await;
    assert!(id.starts_with("run_"));
    assert_eq!(h.status(&id).await, RunStatus::Queued);

    let worker = h.worker();
    let claims = h.poll(&worker, "email", 5).await;
    assert_eq!(claims.len(), 1);
    let run = &claims[0].run;
    assert_eq!((run.epoch, run.attempt, run.payload.as_str()), (1, 1, r#"{"n":1}"#));
    assert_eq!(h.status(&id).await, RunStatus::Executing);

    let recorded = h.engine.record(&h.dev, &id, 1, step(0, "send", r#""sent""#)).await.unwrap();
    assert_eq!(recorded, step(0, "send", r#""sent""#));
    let mismatch = h.engine.record(&h.dev, &id, 1, step(0, "other", "1")).await;
    assert!(matches!(mismatch, Err(EngineError::JournalMismatch(_))), "{mismatch:?}");
    let stale = h.engine.record(&h.dev, &id, 0, step(1, "x", "1")).await;
    assert!(matches!(stale, Err(EngineError::RunMovedOn(_))), "{stale:?}");

    let done = h.engine.complete_attempt(&h.dev, &id, 1, r#"{"ok":true}"#.into()).await.unwrap();
    assert_eq!(done.state, RunState::Completed { at: Timestamp::from_millis(START), output: r#"{"ok":true}"#.into() });
    assert!(h.poll(&worker, "email", 5).await.is_empty());
    assert_eq!(h.engine.run_journal(&h.dev, &id).await.unwrap(), [step(0, "send", r#""sent""#)]);

    // Journals read together are each answered as alone; another environment's run is unknown.
    let journals = h.engine.run_journals(&h.dev, &[&id, "run_nosuchrun", "not-a-run", &id]).await.unwrap();
    assert!(
        matches!(&journals[..], [Ok(a), Err(EngineError::NotFound(_)), Err(EngineError::Invalid(_)), Ok(b)]
            if a == b && *a == [step(0, "send", r#""sent""#)]),
        "{journals:?}"
    );
    let prod = create_environment(&**h.engine.store(), &h.clock, "prod").await.unwrap();
    let foreign = h.engine.run_journal(&prod, &id).await;
    assert!(matches!(foreign, Err(EngineError::NotFound(_))), "{foreign:?}");
}

#[tokio::test]
async fn a_wait_suspends_the_run_and_the_token_completion_resumes_it_on_its_worker() {
    let h = Harness::new().await;
    let id = h.trigger("approval", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "approval", 1).await.remove(0).run;

    let request = CreateTokenRequest { timeout: Some("1h".into()), ..Default::default() };
    let (entry, token) = h.engine.create_run_token(&h.dev, &id, held.epoch, 0, &request).await.unwrap();
    assert_eq!(entry.kind, JournalKind::CreateToken);
    let result: serde_json::Value = serde_json::from_str(entry.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["id"], token.waitpoint.id.public());
    assert_eq!(result["url"], token.url);
    let (again, same) = h.engine.create_run_token(&h.dev, &id, held.epoch, 0, &request).await.unwrap();
    assert_eq!(same.waitpoint.id, token.waitpoint.id, "a retried create is the same token");
    assert_eq!(again.seq, 0);

    let wait_for = WaitFor::Token { id: token.waitpoint.id.public() };
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 1, &wait_for).await.unwrap();
    assert!(answer.suspended);
    assert_eq!(h.status(&id).await, RunStatus::Waiting);
    let view = h.engine.get_run(&h.dev, &id).await.unwrap();
    let waiting_on: Vec<_> = view.waiting_on.into_iter().map(|w| w.id).collect();
    assert_eq!(waiting_on, std::slice::from_ref(&token.waitpoint.id));

    // The worker polls; the completion wakes its poll, which hands the run back with the result.
    let poll = {
        let (engine, dev, worker) = (h.engine.clone(), h.dev.clone(), worker.clone());
        tokio::spawn(
            async move { engine.poll_runs(&dev, &worker, &poll(&[("approval", 1)], &[], 30_000)).await.unwrap() },
        )
    };
    tokio::task::yield_now().await;
    let principal = Principal::SecretKey(h.dev.clone());
    let output = Some(Output::from_json_text(r#"{"status":"approved"}"#));
    h.engine.complete_token(&principal, &token.waitpoint.id.public(), output).await.unwrap();
    let claims = poll.await.unwrap();
    assert_eq!(claims.len(), 1);
    let resumed = claims[0].resumed.clone().unwrap();
    assert_eq!(resumed.seq, 1);
    assert_eq!(resumed.result.as_deref(), Some(r#"{"ok":true,"output":{"status":"approved"}}"#));
    assert_eq!(claims[0].run.epoch, held.epoch + 1);
}

#[tokio::test]
async fn a_token_completed_before_the_wait_answers_at_once() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let held = h.poll(&h.worker(), "t", 1).await.remove(0).run;
    let token = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();
    let principal = Principal::SecretKey(h.dev.clone());
    h.engine
        .complete_token(&principal, &token.waitpoint.id.public(), Some(Output::from_text("early".into())))
        .await
        .unwrap();
    let wait_for = WaitFor::Token { id: token.waitpoint.id.public() };
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await.unwrap();
    assert!(!answer.suspended);
    assert_eq!(answer.entry.result.as_deref(), Some(r#"{"ok":true,"output":"early"}"#));
    assert_eq!(h.status(&id).await, RunStatus::Executing);
}

#[tokio::test]
async fn a_datetime_wait_resumes_when_the_clock_reaches_it() {
    let h = Harness::new().await;
    let id = h.trigger("sleepy", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "sleepy", 1).await.remove(0).run;
    let until = Timestamp::from_millis(START + 60_000);
    let wait_for = WaitFor::Datetime { until, name: "for 1m".into() };
    assert!(h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await.unwrap().suspended);
    let mut events = h.engine.subscribe();
    h.clock.advance(Duration::from_secs(60));
    let finished = next_finished(&mut events).await;
    assert_eq!(finished.timeout_at, Some(until));
    assert_eq!(h.status(&id).await, RunStatus::Queued);
    let claim = h.poll(&worker, "sleepy", 1).await.remove(0);
    assert_eq!(claim.resumed.unwrap().result.as_deref(), Some(r#"{"ok":true,"output":null}"#));
}

#[tokio::test]
async fn a_duration_wait_counts_from_the_server_clock_when_it_is_recorded() {
    let h = Harness::new().await;
    let id = h.trigger("sleepy", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "sleepy", 1).await.remove(0).run;
    h.clock.advance(Duration::from_secs(10));
    let wait_for = WaitFor::Duration { ms: 60_000, name: "for 60000ms".into() };
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await.unwrap();
    assert!(answer.suspended);
    assert_eq!(answer.entry.name, "for 60000ms");
    let mut events = h.engine.subscribe();
    h.clock.advance(Duration::from_secs(60));
    let finished = next_finished(&mut events).await;
    assert_eq!(finished.timeout_at, Some(Timestamp::from_millis(START + 70_000)));
    assert_eq!(h.status(&id).await, RunStatus::Queued);
}

#[tokio::test]
async fn a_set_wait_resumes_when_two_of_three_approve_or_a_day_passes() {
    let h = Harness::new().await;
    let principal = Principal::SecretKey(h.dev.clone());
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let request = CreateTokenRequest { timeout: Some("2d".into()), ..Default::default() };
        tokens.push(h.engine.create_token(&h.dev, &request).await.unwrap().waitpoint.id.public());
    }
    let token_waits = || tokens.iter().map(|id| WaitFor::Token { id: id.clone() }).collect::<Vec<_>>();
    let id = h.trigger("approve", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "approve", 1).await.remove(0).run;
    let two_of_three = WaitFor::Set { needed: 2, of: token_waits() };
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &two_of_three).await.unwrap();
    assert!(answer.suspended);
    assert_eq!((answer.entry.kind, answer.entry.name.as_str()), (JournalKind::WaitSet, "2 of 3"));
    let view = h.engine.get_run(&h.dev, &id).await.unwrap();
    assert_eq!(view.waiting_on.len(), 3);
    assert_eq!(view.run.state, RunState::Waiting { seq: 0, needed: 2 });

    let yes = Some(Output::from_json_text(r#"{"approved":true}"#));
    h.engine.complete_token(&principal, &tokens[1], yes.clone()).await.unwrap();
    assert_eq!(h.status(&id).await, RunStatus::Waiting, "one approval is not enough");
    h.engine.complete_token(&principal, &tokens[2], yes).await.unwrap();
    let claim = h.poll(&worker, "approve", 1).await.remove(0);
    let result: serde_json::Value = serde_json::from_str(claim.resumed.unwrap().result.as_deref().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["waitpoints"][0]["pending"], true);
    assert_eq!(result["waitpoints"][2]["output"]["approved"], true);

    // Any of: the remaining token, or a day. The day passes first.
    let race = WaitFor::Set {
        needed: 1,
        of: vec![WaitFor::Token { id: tokens[0].clone() }, WaitFor::Duration { ms: 86_400_000, name: "for 1d".into() }],
    };
    let answer = h.engine.wait(&h.dev, &id, claim.run.epoch, 1, &race).await.unwrap();
    assert!(answer.suspended);
    let mut events = h.engine.subscribe();
    h.clock.advance(Duration::from_secs(86_400));
    next_finished(&mut events).await;
    assert_eq!(h.status(&id).await, RunStatus::Queued);
    let journal = h.engine.run_journal(&h.dev, &id).await.unwrap();
    let result: serde_json::Value = serde_json::from_str(journal[1].result.as_deref().unwrap()).unwrap();
    assert_eq!((result["ok"].clone(), result["waitpoints"][1]["ok"].clone()), (true.into(), true.into()));
}

#[tokio::test]
async fn a_rejected_token_resumes_its_run_with_the_rejection() {
    let h = Harness::new().await;
    let token = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap().waitpoint.id.public();
    let id = h.trigger("approve", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "approve", 1).await.remove(0).run;
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &WaitFor::Token { id: token.clone() }).await.unwrap();
    assert!(answer.suspended);
    let error =
        waitpoint_engine::checked_rejection("declined".into(), Some("NO".into()), Some("[1, 2]".into())).unwrap();
    let principal = Principal::SecretKey(h.dev.clone());
    let rejected = h.engine.reject_token(&principal, &token, error).await.unwrap();
    assert_eq!(rejected.status(), waitpoint_types::WaitpointStatus::Rejected);
    let claim = h.poll(&worker, "approve", 1).await.remove(0);
    assert_eq!(
        claim.resumed.unwrap().result.as_deref(),
        Some(r#"{"ok":false,"error":{"code":"NO","message":"declined","data":[1,2]},"rejected":true}"#)
    );
    let datetime = h.trigger("sleepy", TriggerOptions::default()).await;
    let sleeper = h.poll(&worker, "sleepy", 1).await.remove(0).run;
    let wait_for = WaitFor::Duration { ms: 60_000, name: "for 60000ms".into() };
    h.engine.wait(&h.dev, &datetime, sleeper.epoch, 0, &wait_for).await.unwrap();
    let waits_on = h.engine.get_run(&h.dev, &datetime).await.unwrap().waiting_on[0].id.public();
    let again = waitpoint_engine::checked_rejection("no".into(), None, None).unwrap();
    let refused = h.engine.reject_token(&principal, &waits_on, again).await.unwrap();
    assert_eq!(refused.status(), waitpoint_types::WaitpointStatus::Waiting, "a point in time is not rejected");
}

#[tokio::test]
async fn a_set_wait_that_cannot_be_met_is_refused() {
    let h = Harness::new().await;
    let token = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap().waitpoint.id.public();
    let id = h.trigger("approve", TriggerOptions::default()).await;
    let held = h.poll(&h.worker(), "approve", 1).await.remove(0).run;
    let on = |id: &str| WaitFor::Token { id: id.to_owned() };
    let refused = [
        WaitFor::Set { needed: 1, of: Vec::new() },
        WaitFor::Set { needed: 0, of: vec![on(&token)] },
        WaitFor::Set { needed: 2, of: vec![on(&token)] },
        WaitFor::Set { needed: 1, of: vec![on(&token), on(&token)] },
        WaitFor::Set { needed: 1, of: vec![WaitFor::Set { needed: 1, of: vec![on(&token)] }] },
        WaitFor::Set { needed: 1, of: vec![on("not a token")] },
        WaitFor::Set { needed: 1, of: (0..101).map(|_| on(&token)).collect() },
    ];
    for wait_for in refused {
        let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await;
        assert!(matches!(answer, Err(EngineError::Invalid(_))), "{wait_for:?}: {answer:?}");
    }
    let unknown = WaitFor::Set { needed: 1, of: vec![on(&token), on("waitpoint_c0unknown0000000000000000")] };
    let answer = h.engine.wait(&h.dev, &id, held.epoch, 0, &unknown).await;
    assert!(matches!(answer, Err(EngineError::NotFound(_))), "{answer:?}");
    assert!(h.engine.run_journal(&h.dev, &id).await.unwrap().is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn failed_attempts_retry_after_their_delay_until_attempts_run_out() {
    let h = Harness::new().await;
    let id = h.trigger("flaky", TriggerOptions { max_attempts: Some(2), ..Default::default() }).await;
    let worker = h.worker();
    let first = h.poll(&worker, "flaky", 1).await.remove(0).run;
    let error = RunError::new("TaskError", "boom");
    let retrying =
        h.engine.fail_attempt(&h.dev, &id, first.epoch, error.clone(), Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(retrying.attempt, 2);
    assert_eq!(h.status(&id).await, RunStatus::Delayed);
    assert!(h.poll(&worker, "flaky", 1).await.is_empty());
    h.clock.advance(Duration::from_secs(5));
    let second = h.poll(&worker, "flaky", 1).await.remove(0).run;
    let failed =
        h.engine.fail_attempt(&h.dev, &id, second.epoch, error.clone(), Some(Duration::from_secs(5))).await.unwrap();
    assert!(matches!(failed.state, RunState::Failed { .. }));
    assert_eq!(h.status(&id).await, RunStatus::Failed);
}

/// A run triggered while a worker polls here for its task, with a slot for it, is created
/// `EXECUTING` for that worker and delivered on its next poll without a claim; beyond the slots
/// its poll asked for, and for tasks it does not run, runs are queued. (The clock stands still:
/// the worker's poll has just ended, and it polls again at once.)
#[tokio::test]
async fn a_run_triggered_while_a_worker_polls_for_its_task_goes_straight_to_it() {
    let h = Harness::new().await;
    let worker = h.worker();
    assert!(h.poll(&worker, "t", 1).await.is_empty());
    let id = h.trigger("t", TriggerOptions::default()).await;
    assert_eq!(h.status(&id).await, RunStatus::Executing, "created for the polling worker");
    let beyond = h.trigger("t", TriggerOptions::default()).await;
    assert_eq!(h.status(&beyond).await, RunStatus::Queued, "its one slot is taken");
    let other_task = h.trigger("u", TriggerOptions::default()).await;
    assert_eq!(h.status(&other_task).await, RunStatus::Queued, "a task it does not run");

    let claims = h.poll(&worker, "t", 1).await;
    assert_eq!(claims.iter().map(|c| c.run.id.public()).collect::<Vec<_>>(), std::slice::from_ref(&id));
    assert_eq!((claims[0].run.epoch, claims[0].run.attempt, claims[0].journal_length), (1, 1, 0));
    assert_eq!(claims[0].run.state, RunState::Executing { worker: WorkerId::parse(&worker).unwrap() });
    let holding = poll(&[("t", 1)], std::slice::from_ref(&id), 0);
    let claimed = h.engine.poll_runs(&h.dev, &worker, &holding).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.run.id.public()).collect::<Vec<_>>(), [beyond]);
}

/// A poll that asks for no slot (its worker is busy) is answered no run, even one handed to
/// the worker: its client gives such a poll up as soon as a slot frees, and the answer would be
/// lost. The worker's next poll with a free slot gets the run. (The clock stands still: the
/// worker polls again at once.)
#[tokio::test]
async fn a_poll_without_a_free_slot_leaves_what_is_handed_to_the_next_poll() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let worker = h.worker();
    let held = h.poll(&worker, "t", 1).await.remove(0).run;
    let request = CreateTokenRequest { timeout: Some("1h".into()), ..Default::default() };
    let (_, token) = h.engine.create_run_token(&h.dev, &id, held.epoch, 0, &request).await.unwrap();
    let wait_for = WaitFor::Token { id: token.waitpoint.id.public() };
    assert!(h.engine.wait(&h.dev, &id, held.epoch, 1, &wait_for).await.unwrap().suspended);
    assert!(h.poll(&worker, "t", 1).await.is_empty(), "a slot free, nothing to take");

    let principal = Principal::SecretKey(h.dev.clone());
    h.engine.complete_token(&principal, &token.waitpoint.id.public(), None).await.unwrap();
    assert_eq!(h.status(&id).await, RunStatus::Executing, "handed to its worker");
    assert!(h.poll(&worker, "t", 0).await.is_empty(), "a poll without a slot");
    let claims = h.poll(&worker, "t", 1).await;
    assert_eq!(claims.iter().map(|c| c.run.id.public()).collect::<Vec<_>>(), [id]);
    assert_eq!((claims[0].run.epoch, claims[0].resumed.as_ref().map(|e| e.seq)), (held.epoch + 1, Some(1)));
}

#[tokio::test]
async fn a_delayed_trigger_waits_and_a_poll_sleeps_until_it_is_due() {
    let h = Harness::new().await;
    let id = h.trigger("later", TriggerOptions { delay: Some("10m".into()), ..Default::default() }).await;
    assert_eq!(h.status(&id).await, RunStatus::Delayed);
    let poll = {
        let (engine, dev, worker) = (h.engine.clone(), h.dev.clone(), h.worker());
        tokio::spawn(async move { engine.poll_runs(&dev, &worker, &poll(&[("later", 1)], &[], 30_000)).await })
    };
    tokio::task::yield_now().await;
    h.clock.advance(Duration::from_secs(600));
    let claims = poll.await.unwrap().unwrap();
    assert_eq!(claims[0].run.id.public(), id);
}

#[tokio::test]
async fn idempotent_triggers_and_bad_options_are_answered_clearly() {
    let h = Harness::new().await;
    let options = TriggerOptions { idempotency_key: Some("order-1".into()), ..Default::default() };
    let first = h.engine.trigger_run(&h.dev, "t", "1".into(), &options).await.unwrap();
    let again = h.engine.trigger_run(&h.dev, "t", "2".into(), &options).await.unwrap();
    assert!(!first.is_cached && again.is_cached);
    assert_eq!(again.run.id, first.run.id);
    let cases = [
        ("bad task!", TriggerOptions::default(), "task id"),
        ("t", TriggerOptions { max_attempts: Some(0), ..Default::default() }, "maxAttempts"),
        ("t", TriggerOptions { delay: Some("2020-01-01T00:00:00Z".into()), ..Default::default() }, "delay"),
        ("t", TriggerOptions { delay: Some("soon".into()), ..Default::default() }, "delay"),
        ("t", TriggerOptions { idempotency_key_ttl: Some("1h".into()), ..Default::default() }, "idempotencyKey"),
    ];
    for (task, options, hint) in cases {
        match h.engine.trigger_run(&h.dev, task, "1".into(), &options).await {
            Err(EngineError::Invalid(message)) => assert!(message.contains(hint), "{message}"),
            other => panic!("{options:?}: {other:?}"),
        }
    }
    let listed = h.engine.list_runs(&h.dev, &ListRuns::default()).await.unwrap();
    assert_eq!(listed.runs.len(), 1);
}

#[tokio::test]
async fn cancel_ends_a_waiting_run_and_fences_its_worker() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let held = h.poll(&h.worker(), "t", 1).await.remove(0).run;
    let canceled = h.engine.cancel_run(&h.dev, &id).await.unwrap();
    assert!(matches!(canceled.state, RunState::Canceled { .. }));
    let late = h.engine.complete_attempt(&h.dev, &id, held.epoch, "1".into()).await;
    assert!(matches!(late, Err(EngineError::RunMovedOn(_))));
    assert!(matches!(h.engine.cancel_run(&h.dev, "run_cnothere").await, Err(EngineError::NotFound(_))));
}

#[tokio::test]
async fn the_runs_of_a_worker_that_stops_polling_go_to_another_worker() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let (gone, alive) = (h.worker(), h.worker());
    let held = h.poll(&gone, "t", 1).await.remove(0).run;
    assert_eq!(held.state, RunState::Executing { worker: WorkerId::parse(&gone).unwrap() });
    // The alive worker keeps polling; the other is silent past the worker timeout.
    for _ in 0..20 {
        h.clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        let claims = h.poll(&alive, "t", 1).await;
        if let Some(claim) = claims.into_iter().next() {
            assert_eq!(claim.run.id.public(), id);
            assert_eq!(claim.run.epoch, held.epoch + 1);
            return;
        }
    }
    panic!("the run of the stopped worker was never released");
}

/// A poll that does not list a run the previous answer carried gets it again at once: the
/// worker gave up on that poll as it was answered (as it does when a slot frees) and never read
/// the answer.
#[tokio::test]
async fn a_run_in_an_answer_the_worker_did_not_read_is_handed_out_again_at_its_next_poll() {
    let h = Harness::new().await;
    let worker = h.worker();
    let id = h.trigger("t", TriggerOptions::default()).await;
    let unread = h.poll(&worker, "t", 1).await;
    assert_eq!(unread[0].run.id.public(), id);
    let again = h.poll(&worker, "t", 1).await;
    assert_eq!(again.iter().map(|c| c.run.id.public()).collect::<Vec<_>>(), std::slice::from_ref(&id));
    assert_eq!(again[0].run.epoch, unread[0].run.epoch + 1, "the unread claim is fenced out");
}

/// Regression: worker ids were not scoped to an environment, so polling with another
/// environment's key as a known worker id released that environment's run, received a run
/// handed to that worker, and (leaving) made its runs wait for a worker that had gone.
#[tokio::test]
async fn another_environments_poll_with_the_same_worker_id_sees_and_changes_nothing() {
    let h = Harness::new().await;
    let prod = create_environment(h.engine.store().as_ref(), &h.clock, "prod").await.unwrap();
    let worker = h.worker();
    let executing = h.trigger("t", TriggerOptions::default()).await;
    let parked = h.trigger("t", TriggerOptions::default()).await;
    let held = h.poll(&worker, "t", 2).await;
    assert_eq!(held.len(), 2);
    let token = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();
    let wait_for = WaitFor::Token { id: token.waitpoint.id.public() };
    let parked_epoch = held.iter().find(|c| c.run.id.public() == parked).unwrap().run.epoch;
    assert!(h.engine.wait(&h.dev, &parked, parked_epoch, 0, &wait_for).await.unwrap().suspended);

    let foreign_poll = |leaving: bool| {
        let (engine, prod, worker) = (h.engine.clone(), prod.clone(), worker.clone());
        async move {
            let request = PollRequest { leaving, ..poll(&[], &[], 0) };
            engine.poll_runs(&prod, &worker, &request).await.unwrap()
        }
    };
    assert!(foreign_poll(false).await.is_empty());
    assert_eq!(h.status(&executing).await, RunStatus::Executing, "the other environment's poll released the run");

    // The completion resumes the parked run for its worker, whose poll waits for it; the other
    // environment's polls with the same id get none of it.
    let waiting = {
        let (engine, dev, worker) = (h.engine.clone(), h.dev.clone(), worker.clone());
        let request = poll(&[("t", 1)], std::slice::from_ref(&executing), 30_000);
        tokio::spawn(async move { engine.poll_runs(&dev, &worker, &request).await.unwrap() })
    };
    tokio::task::yield_now().await;
    let principal = Principal::SecretKey(h.dev.clone());
    h.engine
        .complete_token(&principal, &token.waitpoint.id.public(), Some(Output::from_text("secret".into())))
        .await
        .unwrap();
    let claims = waiting.await.unwrap();
    assert_eq!(claims.iter().map(|c| c.run.id.public()).collect::<Vec<_>>(), std::slice::from_ref(&parked));
    assert_eq!(claims[0].resumed.as_ref().and_then(|e| e.result.as_deref()), Some(r#"{"ok":true,"output":"secret"}"#));
    assert!(foreign_poll(false).await.is_empty(), "the other environment received the run");
    assert!(foreign_poll(true).await.is_empty());
    assert_eq!(h.status(&executing).await, RunStatus::Executing);
    assert_eq!(h.status(&parked).await, RunStatus::Executing);
}

/// Regression: a wait of `u64::MAX` ms or a retry after `u64::MAX` ms was clamped to the latest
/// date, which printed as 1970. Both are refused, and the run is unchanged.
#[tokio::test]
async fn waits_and_retries_ending_after_the_latest_date_are_refused() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let held = h.poll(&h.worker(), "t", 1).await.remove(0).run;
    let wait_for = WaitFor::Duration { ms: u64::MAX, name: "forever".into() };
    let refused = h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await.unwrap_err().to_string();
    assert!(refused.contains("ends after 9999-12-30T22:00:00.999Z"), "{refused}");
    let error = RunError::new("Error", "boom");
    let retry = Some(Duration::from_millis(u64::MAX));
    let refused = h.engine.fail_attempt(&h.dev, &id, held.epoch, error, retry).await.unwrap_err().to_string();
    assert!(refused.contains("retryAfterMs"), "{refused}");
    assert_eq!(h.status(&id).await, RunStatus::Executing);
    assert!(h.engine.run_journal(&h.dev, &id).await.unwrap().is_empty());
}

/// A worker restarted under its instance name comes with a newer session: its first poll takes
/// the worker over and gets back at once the run the old process held; the old process's
/// polls are refused from then on.
#[tokio::test]
async fn a_newer_session_takes_the_worker_and_its_runs_over_at_once() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let session = |s: &str| PollRequest { session: Some(s.into()), ..poll(&[("t", 1)], &[], 0) };
    let first = h.engine.poll_runs(&h.dev, "worker_billing-1", &session("c1")).await.unwrap();
    assert_eq!(first[0].run.id.public(), id);
    let view = h.engine.get_run(&h.dev, &id).await.unwrap();
    let (holder, last_seen) = view.held_by.expect("an executing run says who holds it");
    assert_eq!((holder.public(), last_seen), ("worker_billing-1".to_owned(), Some(Timestamp::from_millis(START))));

    let again = h.engine.poll_runs(&h.dev, "worker_billing-1", &session("c2")).await.unwrap();
    let taken: Vec<String> = again.iter().map(|c| c.run.id.public()).collect();
    assert_eq!(taken, std::slice::from_ref(&id));
    assert_eq!(again[0].run.epoch, first[0].run.epoch + 1, "the old process is fenced out");
    let refused = h.engine.poll_runs(&h.dev, "worker_billing-1", &session("c1")).await;
    assert!(matches!(refused, Err(EngineError::WorkerReplaced(_))), "{refused:?}");
    let leaving = PollRequest { leaving: true, ..session("c1") };
    assert!(matches!(
        h.engine.poll_runs(&h.dev, "worker_billing-1", &leaving).await,
        Err(EngineError::WorkerReplaced(_))
    ));
    assert_eq!(h.status(&id).await, RunStatus::Executing);
}

/// A run of a task no worker runs says so, and a worker that polls for the task ends that.
#[tokio::test]
async fn a_run_of_a_task_no_worker_serves_says_so() {
    let h = Harness::new().await;
    let triggered = h.engine.trigger_run(&h.dev, "aprove", "{}".into(), &TriggerOptions::default()).await.unwrap();
    let hint = triggered.hint.expect("a hint at trigger");
    assert!(hint.contains("no worker serves task \"aprove\""), "{hint}");
    let id = triggered.run.id.public();
    assert!(h.engine.get_run(&h.dev, &id).await.unwrap().hint.is_some());
    h.poll(&h.worker(), "other", 0).await;
    assert!(h.engine.get_run(&h.dev, &id).await.unwrap().hint.is_some(), "another task's worker does not serve it");
    h.poll(&h.worker(), "aprove", 0).await;
    assert_eq!(h.engine.get_run(&h.dev, &id).await.unwrap().hint, None);
    h.clock.advance(Duration::from_secs(31));
    assert!(h.engine.get_run(&h.dev, &id).await.unwrap().hint.is_some(), "the worker stopped polling");
}

/// When the server stops, held polls answer at once instead of holding the shutdown up.
#[tokio::test]
async fn released_polls_answer_at_once() {
    let h = Harness::new().await;
    let held = {
        let (engine, dev, worker) = (h.engine.clone(), h.dev.clone(), h.worker());
        tokio::spawn(async move { engine.poll_runs(&dev, &worker, &poll(&[("t", 1)], &[], 30_000)).await })
    };
    tokio::task::yield_now().await;
    h.engine.release_polls();
    let answered = tokio::time::timeout(Duration::from_secs(5), held).await.expect("the held poll was not released");
    assert!(answered.unwrap().unwrap().is_empty());
    let later = h.engine.poll_runs(&h.dev, &h.worker(), &poll(&[("t", 1)], &[], 30_000)).await.unwrap();
    assert!(later.is_empty(), "a later poll is not held either");
}

/// Regression: a worker with a session that left was recorded again by the release its leaving
/// made, so a run resumed afterwards was handed to the gone worker (and stuck until the worker
/// timeout) instead of being queued for another.
#[tokio::test]
async fn a_worker_that_left_with_a_session_gets_nothing_handed_to_it() {
    let h = Harness::new().await;
    let id = h.trigger("t", TriggerOptions::default()).await;
    let session = PollRequest { session: Some("c1".into()), ..poll(&[("t", 1)], &[], 0) };
    let held = h.engine.poll_runs(&h.dev, "worker_gone", &session).await.unwrap().remove(0).run;
    let token = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();
    let wait_for = WaitFor::Token { id: token.waitpoint.id.public() };
    assert!(h.engine.wait(&h.dev, &id, held.epoch, 0, &wait_for).await.unwrap().suspended);
    let leaving = PollRequest { leaving: true, ..session };
    h.engine.poll_runs(&h.dev, "worker_gone", &leaving).await.unwrap();

    let principal = Principal::SecretKey(h.dev.clone());
    h.engine.complete_token(&principal, &token.waitpoint.id.public(), None).await.unwrap();
    assert_eq!(h.status(&id).await, RunStatus::Queued, "queued for any worker, not handed to the one that left");
}
