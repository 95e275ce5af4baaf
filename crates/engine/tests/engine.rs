//! The engine over a real SQLite database, with a manual clock: timeouts, races, restarts,
//! authentication and pagination, without sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::broadcast;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::{create_environment, rotate_api_key};
use waitpoint_engine::{Clock, Engine, EngineConfig, EngineError, Event, ListPage, ListTokens, Principal};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::api::CreateTokenRequest;
use waitpoint_types::{
    CompletedVia, Environment, Output, Timestamp, Waitpoint, WaitpointId, WaitpointState, WaitpointStatus,
};

const START: i64 = 1_764_000_000_000;

struct Harness {
    dir: TempDir,
    clock: ManualClock,
    engine: Engine,
    dev: Environment,
}

impl Harness {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let engine = start(&dir, &clock).await;
        Self { dir, clock, engine, dev }
    }

    async fn restart(&mut self) {
        self.engine.shutdown().await;
        self.engine = start(&self.dir, &self.clock).await;
    }

    async fn create(&self, request: CreateTokenRequest) -> Waitpoint {
        self.engine.create_token(&self.dev, &request).await.unwrap().waitpoint
    }
}

async fn start(dir: &TempDir, clock: &ManualClock) -> Engine {
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    Engine::start(Arc::new(store), Arc::new(clock.clone()), EngineConfig::default())
}

fn timeout(text: &str) -> CreateTokenRequest {
    CreateTokenRequest { timeout: Some(text.into()), ..Default::default() }
}

fn json(text: &str) -> Option<Output> {
    Some(Output::from_json_text(text))
}

/// Waits (without a timer) until `id` is reported finished, and returns it.
async fn finished(events: &mut broadcast::Receiver<Event>, id: &WaitpointId) -> Waitpoint {
    loop {
        let waitpoint = next_finished(events).await;
        if waitpoint.id == *id {
            return waitpoint;
        }
    }
}

/// The next waitpoint reported finished (other events are skipped).
async fn next_finished(events: &mut broadcast::Receiver<Event>) -> Waitpoint {
    loop {
        if let Event::WaitpointFinished(waitpoint) = events.recv().await.unwrap() {
            return waitpoint;
        }
    }
}

#[tokio::test]
async fn a_token_times_out_once_its_deadline_passes_and_only_once() {
    let h = Harness::new().await;
    let mut events = h.engine.subscribe();
    let token = h.create(timeout("10s")).await;
    assert_eq!(token.timeout_at, Some(Timestamp::from_millis(START + 10_000)));

    h.clock.advance(Duration::from_secs(9));
    h.clock.advance(Duration::from_secs(1));
    let timed_out = finished(&mut events, &token.id).await;
    assert_eq!(timed_out.state, WaitpointState::TimedOut { at: Timestamp::from_millis(START + 10_000), via: None });
    assert_eq!(h.engine.get_token(&h.dev, &token.id.public()).await.unwrap(), timed_out);

    // A completion after the timeout succeeds and changes nothing.
    let principal = Principal::SecretKey(h.dev.clone());
    let after = h.engine.complete_token(&principal, &token.id.public(), json("1")).await.unwrap();
    assert_eq!(after, timed_out);
    h.clock.advance(Duration::from_secs(60));
    let marker = h.create(timeout("1s")).await;
    h.clock.advance(Duration::from_secs(1));
    let next = finished(&mut events, &marker.id).await;
    assert_eq!(next.id, marker.id, "the first token was not reported twice");
}

#[tokio::test]
async fn tokens_get_the_spec_defaults_and_none_turns_them_off() {
    let h = Harness::new().await;
    let token = h.create(CreateTokenRequest { idempotency_key: Some("k".into()), ..Default::default() }).await;
    assert_eq!(token.timeout_at, Some(Timestamp::from_millis(START + 600_000)), "timeout defaults to 10m");
    assert_eq!(token.idempotency_key_expires_at, Some(Timestamp::from_millis(START + 3_600_000)), "TTL defaults to 1h");

    let forever = h
        .create(CreateTokenRequest {
            timeout: Some("none".into()),
            idempotency_key: Some("k2".into()),
            idempotency_key_ttl: Some("none".into()),
            ..Default::default()
        })
        .await;
    assert_eq!((forever.timeout_at, forever.idempotency_key_expires_at), (None, None));
}

#[tokio::test]
async fn deadlines_that_passed_while_the_server_was_down_fire_at_start_up() {
    let mut h = Harness::new().await;
    let tokens = [h.create(timeout("5s")).await, h.create(timeout("1h")).await];
    h.engine.shutdown().await;
    h.clock.advance(Duration::from_secs(3600));
    h.restart().await;
    let mut events = h.engine.subscribe();
    // The loop may already have fired before we subscribed; read the store in that case.
    for token in &tokens {
        let current = h.engine.get_token(&h.dev, &token.id.public()).await.unwrap();
        let current =
            if current.status() == WaitpointStatus::Waiting { finished(&mut events, &token.id).await } else { current };
        assert_eq!(current.status(), WaitpointStatus::TimedOut);
    }
}

#[tokio::test]
async fn completions_racing_timeouts_end_in_exactly_one_outcome_each() {
    let h = Harness::new().await;
    let mut events = h.engine.subscribe();
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(h.create(timeout("1s")).await.id);
    }
    let principal = Principal::SecretKey(h.dev.clone());
    let completions: Vec<_> = ids
        .iter()
        .map(|id| {
            let (engine, principal, id) = (h.engine.clone(), principal.clone(), id.public());
            tokio::spawn(async move { engine.complete_token(&principal, &id, json("\"done\"")).await.unwrap() })
        })
        .collect();
    h.clock.advance(Duration::from_secs(1));
    let mut answers = HashMap::new();
    for completion in completions {
        let answer = completion.await.unwrap();
        answers.insert(answer.id.clone(), answer);
    }
    let mut reported: HashMap<WaitpointId, usize> = HashMap::new();
    while reported.len() < ids.len() {
        *reported.entry(next_finished(&mut events).await.id).or_default() += 1;
    }
    for id in &ids {
        let stored = h.engine.get_token(&h.dev, &id.public()).await.unwrap();
        assert_ne!(stored.status(), WaitpointStatus::Waiting);
        assert_eq!(answers[id], stored, "every completer saw the final state");
    }
    // Nothing is reported twice, even after more time passes.
    h.clock.advance(Duration::from_secs(5));
    let marker = h.create(timeout("1s")).await;
    h.clock.advance(Duration::from_secs(1));
    let event = next_finished(&mut events).await;
    assert_eq!(event.id, marker.id, "{} was reported a second time", event.id);
}

#[tokio::test]
async fn idempotent_creates_return_the_first_token_until_the_key_expires() {
    let h = Harness::new().await;
    let request = CreateTokenRequest {
        idempotency_key: Some("approval-7".into()),
        idempotency_key_ttl: Some("1m".into()),
        ..Default::default()
    };
    let first = h.engine.create_token(&h.dev, &request).await.unwrap();
    let again = h.engine.create_token(&h.dev, &request).await.unwrap();
    assert!(!first.is_cached && again.is_cached);
    assert_eq!(again.waitpoint.id, first.waitpoint.id);
    assert_eq!(again.url, first.url);
    h.clock.advance(Duration::from_secs(61));
    let fresh = h.engine.create_token(&h.dev, &request).await.unwrap();
    assert!(!fresh.is_cached);
    assert_ne!(fresh.waitpoint.id, first.waitpoint.id);
}

#[tokio::test]
async fn bad_create_requests_are_rejected_with_what_to_fix() {
    let h = Harness::new().await;
    let cases: Vec<(CreateTokenRequest, &str)> = vec![
        (timeout("soon"), "\"10m\""),
        (timeout("2020-01-01T00:00:00Z"), "in the past"),
        (
            CreateTokenRequest { idempotency_key_ttl: Some("1h".into()), ..Default::default() },
            "without an idempotencyKey",
        ),
        (
            CreateTokenRequest {
                idempotency_key: Some("k".into()),
                idempotency_key_ttl: Some("1 hour".into()),
                ..Default::default()
            },
            "idempotencyKeyTTL",
        ),
        (CreateTokenRequest { idempotency_key: Some("x".repeat(2049)), ..Default::default() }, "2048"),
        (CreateTokenRequest { idempotency_key: Some(String::new()), ..Default::default() }, "empty"),
        (CreateTokenRequest { tags: Some(vec!["t".repeat(128)]), ..Default::default() }, "less than 128"),
    ];
    for (request, hint) in cases {
        match h.engine.create_token(&h.dev, &request).await {
            Err(EngineError::Invalid(message)) => assert!(message.contains(hint), "{message:?} lacks {hint:?}"),
            other => panic!("{request:?} gave {other:?}"),
        }
    }
    let eleven = CreateTokenRequest { tags: Some((0..11).map(|i| i.to_string()).collect()), ..Default::default() };
    assert!(matches!(h.engine.create_token(&h.dev, &eleven).await, Err(EngineError::Unprocessable(_))));
    let ok = CreateTokenRequest { tags: Some(vec!["t".repeat(127)]), ..Default::default() };
    h.engine.create_token(&h.dev, &ok).await.unwrap();
    let listed = h.engine.list_tokens(&h.dev, &ListTokens::default()).await.unwrap();
    assert_eq!(listed.tokens.len(), 1, "rejected requests wrote nothing");
}

#[tokio::test]
async fn credentials_are_checked_and_public_tokens_complete_only_their_token() {
    let h = Harness::new().await;
    let a = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();
    let b = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();

    let secret = h.engine.authenticate(Some(h.dev.api_key.expose())).await.unwrap();
    assert!(matches!(secret, Principal::SecretKey(ref env) if env.id == h.dev.id));
    assert!(matches!(h.engine.authenticate(None).await, Err(EngineError::Unauthenticated(_))));
    assert!(matches!(h.engine.authenticate(Some("tr_dev_wrong")).await, Err(EngineError::Unauthenticated(_))));
    assert!(matches!(
        h.engine.authenticate_secret_key(Some(&a.public_access_token)).await,
        Err(EngineError::Unauthenticated(_))
    ));

    let public = h.engine.authenticate(Some(&a.public_access_token)).await.unwrap();
    assert!(matches!(
        h.engine.complete_token(&public, &b.waitpoint.id.public(), json("1")).await,
        Err(EngineError::Forbidden(_))
    ));
    let done = h.engine.complete_token(&public, &a.waitpoint.id.public(), json("1")).await.unwrap();
    assert!(matches!(done.state, WaitpointState::Completed { via: CompletedVia::PublicAccessToken, .. }));

    let mut tampered = a.public_access_token.clone();
    tampered.pop();
    assert!(matches!(h.engine.authenticate(Some(&tampered)).await, Err(EngineError::Unauthenticated(_))));

    // Rotating the key retires it (once the node's short cache expires) but not public tokens.
    let rotated = rotate_api_key(&**h.engine.store(), "dev").await.unwrap();
    h.clock.advance(Duration::from_secs(6));
    assert!(matches!(h.engine.authenticate(Some(h.dev.api_key.expose())).await, Err(EngineError::Unauthenticated(_))));
    h.engine.authenticate(Some(rotated.api_key.expose())).await.unwrap();
    h.engine.authenticate(Some(&b.public_access_token)).await.unwrap();
}

#[tokio::test]
async fn callback_urls_complete_with_the_right_hash_only() {
    let h = Harness::new().await;
    let created = h.engine.create_token(&h.dev, &CreateTokenRequest::default()).await.unwrap();
    let (path, hash) = created.url.rsplit_once('/').unwrap();
    assert!(path.ends_with(&format!("/api/v1/waitpoints/tokens/{}/callback", created.waitpoint.id)));
    let id = created.waitpoint.id.public();

    let wrong = h.engine.verify_callback(&id, &"0".repeat(64)).await;
    assert!(matches!(wrong, Err(EngineError::Unauthenticated(_))));
    let unknown = h.engine.verify_callback("waitpoint_cnothere", hash).await;
    assert!(matches!(unknown, Err(EngineError::NotFound(_))));

    let callback = h.engine.verify_callback(&id, hash).await.unwrap();
    let done = h.engine.complete_via_callback(callback.clone(), Output::from_json_text(r#"{"a":1}"#)).await.unwrap();
    assert!(matches!(done.state, WaitpointState::Completed { via: CompletedVia::CallbackUrl, .. }));
    let again = h.engine.complete_via_callback(callback, Output::from_json_text(r#"{"a":2}"#)).await.unwrap();
    assert_eq!(again, done, "the first completion wins, also for a callback verified before it");
    let verified_after = h.engine.verify_callback(&id, hash).await.unwrap();
    let after = h.engine.complete_via_callback(verified_after, Output::from_json_text("3")).await.unwrap();
    assert_eq!(after, done);
}

#[tokio::test]
async fn tokens_of_another_environment_are_invisible() {
    let h = Harness::new().await;
    let prod = create_environment(&**h.engine.store(), &h.clock, "prod").await.unwrap();
    let token = h.create(CreateTokenRequest::default()).await;
    assert!(matches!(h.engine.get_token(&prod, &token.id.public()).await, Err(EngineError::NotFound(_))));
    let principal = Principal::SecretKey(prod.clone());
    assert!(matches!(
        h.engine.complete_token(&principal, &token.id.public(), None).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(h.engine.list_tokens(&prod, &ListTokens::default()).await.unwrap().tokens.is_empty());
    assert!(matches!(h.engine.get_token(&h.dev, "waitpoint_a_b").await, Err(EngineError::Invalid(_))));
}

#[tokio::test]
async fn pages_follow_next_to_the_end_and_previous_back_to_the_start() {
    let h = Harness::new().await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(h.create(CreateTokenRequest::default()).await.id);
        h.clock.advance(Duration::from_millis(1));
    }
    ids.reverse();
    let page = |after: Option<String>, before: Option<String>| ListTokens {
        page: ListPage { page_size: Some(3), after, before, ..Default::default() },
        ..Default::default()
    };
    let ids_of = |p: &waitpoint_engine::TokenPage| p.tokens.iter().map(|t| t.id.clone()).collect::<Vec<_>>();

    let first = h.engine.list_tokens(&h.dev, &page(None, None)).await.unwrap();
    assert_eq!(ids_of(&first), ids[0..3]);
    assert_eq!(first.previous, None);
    let second = h.engine.list_tokens(&h.dev, &page(first.next.clone(), None)).await.unwrap();
    assert_eq!(ids_of(&second), ids[3..6]);
    let third = h.engine.list_tokens(&h.dev, &page(second.next.clone(), None)).await.unwrap();
    assert_eq!(ids_of(&third), ids[6..7]);
    assert_eq!(third.next, None);

    let back = h.engine.list_tokens(&h.dev, &page(None, third.previous.clone())).await.unwrap();
    assert_eq!(ids_of(&back), ids[3..6]);
    let front = h.engine.list_tokens(&h.dev, &page(None, back.previous.clone())).await.unwrap();
    assert_eq!(ids_of(&front), ids[0..3]);
    assert_eq!(front.previous, None);
    assert_eq!(front.next, first.next);

    let bad = ListTokens { page: ListPage { page_size: Some(101), ..Default::default() }, ..Default::default() };
    assert!(matches!(h.engine.list_tokens(&h.dev, &bad).await, Err(EngineError::Invalid(_))));
    let period = ListTokens {
        page: ListPage { period: Some(Duration::from_millis(3)), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(h.engine.list_tokens(&h.dev, &period).await.unwrap().tokens.len(), 3);
    assert_eq!(h.clock.now(), Timestamp::from_millis(START + 7));
}
