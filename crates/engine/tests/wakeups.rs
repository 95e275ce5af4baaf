//! Engines on one PostgreSQL schema wake each other: a run triggered through one reaches a poll
//! held by another, and a deadline given through one wakes another's timeout loop, with a manual
//! clock that never moves, so nothing but a wake-up can do it (skipped without PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig};
use waitpoint_postgres::testing::PostgresSchema;
use waitpoint_storage::{Store, WriteOp};
use waitpoint_types::api::TriggerOptions;
use waitpoint_types::api::worker::{PollRequest, TaskSlots};
use waitpoint_types::{Environment, IdGenerator, Timestamp, Waitpoint, WaitpointKind, WaitpointState};

const START: i64 = 1_764_000_000_000;
/// Longer than any wake-up takes; reached only when one never comes.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

struct Nodes {
    schema: PostgresSchema,
    clock: ManualClock,
    first: Engine,
    second: Engine,
    dev: Environment,
    ids: IdGenerator,
}

impl Nodes {
    async fn start() -> Option<Self> {
        let schema = PostgresSchema::fresh().await?;
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = schema.store().await;
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let engine = |store: waitpoint_postgres::PostgresStore| {
            Engine::start(Arc::new(store), Arc::new(clock.clone()), EngineConfig::default())
        };
        let (first, second) = (engine(store), engine(schema.store().await));
        Some(Self { schema, clock, first, second, dev, ids: IdGenerator::new() })
    }

    /// Holds a poll of a new worker for task `t` on the second node (which the clock never
    /// ends), and returns how many runs it was given.
    fn poll_second(&self) -> tokio::task::JoinHandle<usize> {
        let (engine, dev) = (self.second.clone(), self.dev.clone());
        let worker = self.ids.worker(Timestamp::from_millis(START)).public();
        tokio::spawn(async move {
            let poll = PollRequest {
                tasks: vec![TaskSlots { id: "t".into(), slots: 1 }],
                wait_ms: 30_000,
                holding: Vec::new(),
                leaving: false,
                session: None,
            };
            engine.poll_runs(&dev, &worker, &poll).await.unwrap().len()
        })
    }

    async fn stop(self) {
        let both = async {
            self.first.shutdown().await;
            self.second.shutdown().await;
        };
        tokio::time::timeout(ARRIVES_WITHIN, both).await.expect("the engines stop");
    }
}

/// Lets a poll get to waiting: it passes without this too, but then proves less.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_run_triggered_on_one_node_reaches_a_poll_held_by_another() {
    let Some(nodes) = Nodes::start().await else { return };
    for _ in 0..3 {
        let poll = nodes.poll_second();
        settle().await;
        nodes.first.trigger_run(&nodes.dev, "t", "{}".into(), &TriggerOptions::default()).await.unwrap();
        let taken = tokio::time::timeout(ARRIVES_WITHIN, poll).await.expect("the held poll was woken").unwrap();
        assert_eq!(taken, 1);
    }

    // Runs triggered while the listening connections are lost reach the poll once they are back.
    let poll = nodes.poll_second();
    settle().await;
    assert_eq!(nodes.schema.end_listeners().await, 2, "one listening connection per engine");
    nodes.first.trigger_run(&nodes.dev, "t", "{}".into(), &TriggerOptions::default()).await.unwrap();
    let taken = tokio::time::timeout(ARRIVES_WITHIN, poll).await.expect("the held poll was woken").unwrap();
    assert_eq!(taken, 1);
    nodes.stop().await;
}

#[tokio::test]
async fn a_deadline_given_through_another_node_wakes_the_timeout_loop() {
    let Some(nodes) = Nodes::start().await else { return };
    nodes.first.shutdown().await;
    // Another node's write, once the second's timeout loop sleeps until a second from now.
    let other = nodes.schema.store().await;
    settle().await;
    let at = Timestamp::from_millis(START + 500);
    let token = Waitpoint {
        id: nodes.ids.waitpoint(Timestamp::from_millis(START)),
        kind: WaitpointKind::Manual,
        environment_id: nodes.dev.id.clone(),
        state: WaitpointState::Waiting,
        idempotency_key: None,
        inactive_idempotency_key: None,
        idempotency_key_expires_at: None,
        timeout_at: Some(at),
        heartbeat: None,
        callback_verifier: None,
        tags: Vec::new(),
        created_at: Timestamp::from_millis(START),
        approval: None,
        output_schema: None,
    };
    other.write_batch(vec![WriteOp::Create(token.clone())]).await.unwrap();
    nodes.clock.advance(Duration::from_millis(600));

    let timed_out = async {
        while matches!(other.waitpoint_get(&token.id).await.unwrap().state, WaitpointState::Waiting) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(ARRIVES_WITHIN, timed_out).await.expect("the token timed out before the loop's next look");
    nodes.second.shutdown().await;
}
