//! What people do, through the engine over a real SQLite database with a manual clock:
//! dashboard sessions, tokens completed or timed out from the dashboard (one, or in bulk),
//! skipped waits, the overview, approval pages, and the events live pages listen to.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::{create_environment, rotate_api_key};
use waitpoint_engine::{
    BulkOutcome, BulkTarget, Engine, EngineConfig, EngineError, Event, ListPage, ListTokens, Principal, Resolution,
    SESSION_LIFETIME, SIGN_IN_LINK_LIFETIME,
};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::api::worker::{PollRequest, TaskSlots, WaitFor};
use waitpoint_types::api::{CreateTokenRequest, TriggerOptions};
use waitpoint_types::{
    ApprovalAnswer, CompletedVia, Environment, IdGenerator, Output, RunStatus, Timestamp, Waitpoint, WaitpointState,
    WaitpointStatus,
};

const START: i64 = 1_764_000_000_000;

struct Harness {
    _dir: TempDir,
    store: SqliteStore,
    clock: ManualClock,
    engine: Engine,
    dev: Environment,
    prod: Environment,
}

impl Harness {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let prod = create_environment(&store, &clock, "prod").await.unwrap();
        let config = EngineConfig { public_url: "http://wp.test".into(), ..EngineConfig::default() };
        let engine = Engine::start(Arc::new(store.clone()), Arc::new(clock.clone()), config);
        Self { _dir: dir, store, clock, engine, dev, prod }
    }

    async fn token(&self, environment: &Environment, tags: &[&str]) -> Waitpoint {
        let request = CreateTokenRequest {
            tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
            timeout: Some("1h".into()),
            ..Default::default()
        };
        self.engine.create_token(environment, &request).await.unwrap().waitpoint
    }

    async fn get(&self, token: &Waitpoint) -> Waitpoint {
        self.engine.get_token(&self.dev, &token.id.public()).await.unwrap()
    }

    /// A run of `task` that a worker took and that now waits on `wait_for`.
    async fn waiting_run(&self, task: &str, wait_for: WaitFor) -> String {
        let run = self.engine.trigger_run(&self.dev, task, "{}".into(), &TriggerOptions::default()).await.unwrap();
        let worker = IdGenerator::new().worker(Timestamp::from_millis(START)).public();
        let poll = PollRequest {
            tasks: vec![TaskSlots { id: task.into(), slots: 1 }],
            wait_ms: 0,
            holding: Vec::new(),
            leaving: false,
            session: None,
        };
        let held = self.engine.poll_runs(&self.dev, &worker, &poll).await.unwrap().remove(0).run;
        let id = run.run.id.public();
        assert!(self.engine.wait(&self.dev, &id, held.epoch, 0, &wait_for).await.unwrap().suspended);
        id
    }

    async fn run_status(&self, id: &str) -> RunStatus {
        self.engine.get_run(&self.dev, id).await.unwrap().run.status(waitpoint_engine::Clock::now(&self.clock))
    }
}

fn tagged(tag: &str) -> ListTokens {
    ListTokens { tags: vec![tag.into()], ..Default::default() }
}

#[tokio::test]
async fn a_token_is_completed_or_timed_out_from_the_dashboard_once() {
    let h = Harness::new().await;
    let token = h.token(&h.dev, &[]).await;
    let done = h.engine.resolve_token(&h.dev, &token.id.public(), &Resolution::TimeOut).await.unwrap();
    let now = Timestamp::from_millis(START);
    assert_eq!(done.state, WaitpointState::TimedOut { at: now, via: Some(CompletedVia::Dashboard) });
    assert!(done.timeout_at > Some(now), "forced before its deadline");
    let again = Resolution::Complete(Some(Output::from_json_text("1")));
    assert_eq!(h.engine.resolve_token(&h.dev, &token.id.public(), &again).await.unwrap(), done, "first wins");

    let other = h.token(&h.dev, &[]).await;
    let completed = h.engine.resolve_token(&h.dev, &other.id.public(), &again).await.unwrap();
    assert_eq!(completed.completed_via(), Some(CompletedVia::Dashboard));
    assert_eq!(completed.output(), Some(Output::from_json_text("1")));

    let foreign = h.token(&h.prod, &[]).await;
    let refused = h.engine.resolve_token(&h.dev, &foreign.id.public(), &Resolution::TimeOut).await;
    assert!(matches!(refused, Err(EngineError::NotFound(_))), "{refused:?}");
    assert_eq!(h.engine.get_token(&h.prod, &foreign.id.public()).await.unwrap().status(), WaitpointStatus::Waiting);
}

#[tokio::test]
async fn a_bulk_action_by_filter_leaves_tokens_created_after_the_count_alone() {
    let h = Harness::new().await;
    let shown: Vec<Waitpoint> = [h.token(&h.dev, &["x"]).await, h.token(&h.dev, &["x", "y"]).await].into();
    let finished_before = h.token(&h.dev, &["x"]).await;
    h.engine.resolve_token(&h.dev, &finished_before.id.public(), &Resolution::TimeOut).await.unwrap();
    let untagged = h.token(&h.dev, &["y"]).await;
    let foreign = h.token(&h.prod, &["x"]).await;

    let preview = h.engine.preview_bulk(&h.dev, &tagged("x")).await.unwrap();
    assert_eq!(preview.count, 2, "the waiting tokens that match");
    let through = preview.through.unwrap();
    assert_eq!(through, shown[1].id, "the newest of them");

    h.clock.advance(Duration::from_millis(1));
    let later = h.token(&h.dev, &["x"]).await;
    let same_instant = h.token(&h.dev, &["x"]).await;

    let target = BulkTarget::Filter { filter: tagged("x"), through: through.public() };
    let output = Resolution::Complete(Some(Output::from_json_text(r#"{"bulk":true}"#)));
    let items = h.engine.resolve_tokens(&h.dev, &target, &output).await.unwrap();
    let ids: Vec<&str> = items.iter().map(|item| item.id.as_str()).collect();
    assert_eq!(ids, [shown[1].id.public(), shown[0].id.public()]);
    assert!(items.iter().all(|item| matches!(&item.outcome, BulkOutcome::Finished(w)
        if w.completed_via() == Some(CompletedVia::Dashboard))));
    for token in &shown {
        assert_eq!(h.get(token).await.status(), WaitpointStatus::Completed);
    }
    for token in [&later, &same_instant, &untagged] {
        assert_eq!(h.get(token).await.status(), WaitpointStatus::Waiting, "created after the count, or not matching");
    }
    assert_eq!(h.engine.get_token(&h.prod, &foreign.id.public()).await.unwrap().status(), WaitpointStatus::Waiting);

    let completed_only = ListTokens { statuses: vec![WaitpointStatus::Completed], ..tagged("x") };
    assert_eq!(h.engine.preview_bulk(&h.dev, &completed_only).await.unwrap().count, 0);
    let period =
        ListTokens { page: ListPage { period: Some(Duration::from_secs(60)), ..Default::default() }, ..tagged("x") };
    assert_eq!(h.engine.preview_bulk(&h.dev, &period).await.unwrap().count, 2, "the two created later");
}

#[tokio::test]
async fn a_bulk_action_by_ids_reports_each_token() {
    let h = Harness::new().await;
    let waiting = h.token(&h.dev, &[]).await;
    let done = h.token(&h.dev, &[]).await;
    h.engine.resolve_token(&h.dev, &done.id.public(), &Resolution::TimeOut).await.unwrap();
    let foreign = h.token(&h.prod, &[]).await;
    let ids = vec![waiting.id.public(), done.id.public(), foreign.id.public(), "not an id".to_owned()];
    let items = h.engine.resolve_tokens(&h.dev, &BulkTarget::Ids(ids), &Resolution::TimeOut).await.unwrap();
    let by_id = |id: &str| items.iter().find(|item| item.id == id).map(|item| &item.outcome).unwrap();
    assert!(matches!(by_id(&waiting.id.public()), BulkOutcome::Finished(_)));
    assert!(matches!(by_id(&done.id.public()), BulkOutcome::AlreadyFinished(_)));
    assert_eq!(by_id(&foreign.id.public()), &BulkOutcome::NotFound);
    assert_eq!(by_id("not an id"), &BulkOutcome::NotFound);
    assert_eq!(h.engine.get_token(&h.prod, &foreign.id.public()).await.unwrap().status(), WaitpointStatus::Waiting);
}

#[tokio::test]
async fn a_skipped_datetime_wait_resumes_its_run_at_once() {
    let h = Harness::new().await;
    let until = Timestamp::from_millis(START + 3_600_000);
    let sleeping = h.waiting_run("sleepy", WaitFor::Datetime { until, name: "for 1h".into() }).await;
    let [skipped] = h.engine.skip_wait(&h.dev, &sleeping).await.unwrap().try_into().expect("one skipped wait");
    let now = Timestamp::from_millis(START);
    assert_eq!(skipped.state, WaitpointState::Completed { at: now, via: CompletedVia::Dashboard, output: None });
    assert!(matches!(h.run_status(&sleeping).await, RunStatus::Queued | RunStatus::Executing), "resumed");
    let journal = h.engine.run_journal(&h.dev, &sleeping).await.unwrap();
    assert_eq!(journal[0].result.as_deref(), Some(r#"{"ok":true,"output":null}"#));
    let again = h.engine.skip_wait(&h.dev, &sleeping).await;
    assert!(matches!(again, Err(EngineError::Conflict(_))), "no longer waiting: {again:?}");

    let token = h.token(&h.dev, &[]).await;
    let on_token = h.waiting_run("approve", WaitFor::Token { id: token.id.public() }).await;
    let refused = h.engine.skip_wait(&h.dev, &on_token).await;
    assert!(matches!(refused, Err(EngineError::Conflict(ref m)) if m.contains("token")), "{refused:?}");
    assert_eq!(h.run_status(&on_token).await, RunStatus::Waiting);

    let released = h.engine.resolve_token(&h.dev, &token.id.public(), &Resolution::TimeOut).await.unwrap();
    let resumed = h.run_status(&on_token).await;
    assert!(matches!(resumed, RunStatus::Queued | RunStatus::Executing), "a forced timeout resumes: {resumed:?}");
    let waiters = h.engine.token_waiters(&h.dev, &released.id.public(), 10).await.unwrap();
    assert_eq!(waiters.iter().map(|r| r.id.public()).collect::<Vec<_>>(), [on_token]);
}

#[tokio::test]
async fn the_overview_counts_and_lists_what_waits() {
    let h = Harness::new().await;
    let minute = CreateTokenRequest { timeout: Some("1m".into()), ..Default::default() };
    let soon = h.engine.create_token(&h.dev, &minute).await.unwrap().waitpoint;
    let later = h.token(&h.dev, &["t"]).await;
    h.engine.resolve_token(&h.dev, &later.id.public(), &Resolution::Complete(None)).await.unwrap();
    h.token(&h.dev, &[]).await;
    h.token(&h.prod, &[]).await;
    let run = h.waiting_run("approve", WaitFor::Token { id: soon.id.public() }).await;

    let overview = h.engine.overview(&h.dev).await.unwrap();
    assert_eq!(
        overview.tokens,
        [
            (WaitpointStatus::Waiting, 2),
            (WaitpointStatus::Completed, 1),
            (WaitpointStatus::TimedOut, 0),
            (WaitpointStatus::Rejected, 0)
        ]
    );
    assert!(overview.runs.contains(&(RunStatus::Waiting, 1)));
    assert_eq!(overview.waiting_longest.iter().map(|r| r.id.public()).collect::<Vec<_>>(), [run]);
    assert_eq!(overview.timing_out_soonest[0].id, soon.id);
    assert_eq!(overview.backend, "sqlite");
    assert_eq!(h.engine.token_tags(&h.dev, "", 10).await.unwrap(), ["t"]);
}

#[tokio::test]
async fn sessions_open_with_a_key_or_a_link_and_end_with_the_key() {
    let h = Harness::new().await;
    let signed_in = h.engine.sign_in(h.dev.api_key.expose()).await.unwrap();
    let session = h.engine.session(&signed_in.cookie).await.unwrap();
    assert_eq!(session.environment.id, h.dev.id);
    assert!(session.csrf_matches(&session.csrf_token) && !session.csrf_matches("nope"));
    assert!(!signed_in.cookie.contains(h.dev.api_key.expose()), "the key never leaves in the cookie");

    for wrong in ["", "tr_dev_wrong", &signed_in.cookie] {
        assert!(matches!(h.engine.sign_in(wrong).await, Err(EngineError::Unauthenticated(_))), "{wrong}");
    }
    let public = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap().public_access_token;
    assert!(h.engine.sign_in(&public).await.is_err(), "a public access token is no secret key");
    assert!(h.engine.session("garbage").await.is_err());
    let tampered = signed_in.cookie.replace(h.dev.id.internal(), h.prod.id.internal());
    assert!(h.engine.session(&tampered).await.is_err(), "a session cannot move to another environment");

    let link = h.engine.sign_in_link(&h.dev);
    assert_eq!(h.engine.redeem_sign_in_link(&link).await.unwrap().environment.id, h.dev.id);
    assert!(h.engine.redeem_sign_in_link(&link).await.is_err(), "single use");
    let stale = h.engine.sign_in_link(&h.dev);
    h.clock.advance(SIGN_IN_LINK_LIFETIME);
    assert!(h.engine.redeem_sign_in_link(&stale).await.is_err(), "expired");

    assert!(h.engine.session(&signed_in.cookie).await.is_ok());
    h.clock.advance(SESSION_LIFETIME);
    assert!(h.engine.session(&signed_in.cookie).await.is_err(), "expired");

    let fresh = h.engine.sign_in(h.dev.api_key.expose()).await.unwrap();
    rotate_api_key(&h.store, "dev").await.unwrap();
    h.clock.advance(Duration::from_secs(6));
    assert!(h.engine.session(&fresh.cookie).await.is_err(), "a rotated key ends its sessions");
}

#[tokio::test]
async fn an_approval_page_is_answered_once_and_only_through_its_own_url() {
    let h = Harness::new().await;
    let approval = serde_json::from_value(serde_json::json!({
        "title": "Ship?", "fields": [{"name": "amount", "type": "number", "required": true}]
    }))
    .unwrap();
    let request = CreateTokenRequest { approval: Some(approval), ..Default::default() };
    let created = h.engine.create_token(&h.dev, &request).await.unwrap();
    let (id, signature) = {
        let path = created.approval_url.strip_prefix("http://wp.test/approve/").unwrap();
        let (id, signature) = path.split_once('/').unwrap();
        (id.to_owned(), signature.to_owned())
    };
    assert_eq!(id, created.waitpoint.id.public());
    assert!(!created.url.contains(&signature), "not the callback hash");
    let other = h.token(&h.dev, &[]).await;
    for (id, signature) in [(other.id.public(), signature.clone()), (id.clone(), "00".repeat(32))] {
        let refused = h.engine.verify_approval(&id, &signature).await;
        assert!(matches!(refused, Err(EngineError::NotFound(_))), "{refused:?}");
    }
    let callback_hash = created.url.rsplit('/').next().unwrap();
    assert!(h.engine.verify_approval(&id, callback_hash).await.is_err(), "the callback hash opens no page");

    let page = h.engine.verify_approval(&id, &signature).await.unwrap();
    let incomplete = ApprovalAnswer { approved: true, ..Default::default() };
    assert!(matches!(h.engine.answer_approval(&page, &incomplete).await, Err(EngineError::Invalid(_))));
    assert_eq!(h.get(&created.waitpoint).await.status(), WaitpointStatus::Waiting, "a refused answer changes nothing");

    let answer =
        ApprovalAnswer { approved: true, comment: "<b>ok</b>".into(), values: vec![("amount".into(), "12".into())] };
    let done = h.engine.answer_approval(&page, &answer).await.unwrap();
    assert_eq!(done.completed_via(), Some(CompletedVia::ApprovalPage));
    let output = done.output().unwrap().decode();
    assert_eq!(output, serde_json::json!({"status": "approved", "comment": "<b>ok</b>", "amount": 12}));
    let late = ApprovalAnswer { approved: false, ..Default::default() };
    assert_eq!(h.engine.answer_approval(&page, &late).await.unwrap(), done, "the first answer wins");
}

#[tokio::test]
async fn listeners_hear_tokens_and_runs_change() {
    let h = Harness::new().await;
    let mut events = h.engine.subscribe();
    let token = h.token(&h.dev, &[]).await;
    assert_eq!(events.recv().await.unwrap(), Event::TokenCreated(token.clone()));
    let principal = Principal::SecretKey(h.dev.clone());
    let done = h.engine.complete_token(&principal, &token.id.public(), None).await.unwrap();
    assert_eq!(events.recv().await.unwrap(), Event::WaitpointFinished(done));

    let run = h.engine.trigger_run(&h.dev, "t", "{}".into(), &TriggerOptions::default()).await.unwrap().run;
    let changed = Event::RunChanged { environment_id: h.dev.id.clone(), run: run.id.clone() };
    assert_eq!(events.recv().await.unwrap(), changed);
    h.engine.cancel_run(&h.dev, &run.id.public()).await.unwrap();
    assert_eq!(events.recv().await.unwrap(), changed);
    assert_eq!(changed.environment_id(), &h.dev.id);
}
