//! Large batches, which the backend regroups into set-based statements: their outcomes and
//! what they write must be those of the same operations applied one at a time, also when
//! batches race each other on the same waitpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use waitpoint_postgres::PostgresStore;
use waitpoint_postgres::testing::{PostgresSchema, admin};
use waitpoint_storage::conformance::{at, completed, environment};
use waitpoint_storage::{
    CreateOutcome, Finish, FinishOutcome, Finishing, ListQuery, StorageError, Store, Takers, Window, WriteOp,
    WriteOutcome,
};
use waitpoint_types::{
    CompletedVia, Environment, EnvironmentId, IdGenerator, Output, Rejection, Timestamp, Waitpoint, WaitpointId,
    WaitpointState,
};

const TAGS: [&str; 4] = ["red", "blue", "", "ünïcødé"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];

/// A small deterministic generator (xorshift64*), so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, chance: usize) -> bool {
        self.below(100) < chance
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn waitpoint(id: WaitpointId, env: &Environment, created_at: Timestamp) -> Waitpoint {
    Waitpoint {
        id,
        kind: waitpoint_types::WaitpointKind::Manual,
        environment_id: env.id.clone(),
        state: WaitpointState::Waiting,
        idempotency_key: None,
        inactive_idempotency_key: None,
        idempotency_key_expires_at: None,
        timeout_at: None,
        heartbeat: None,
        callback_verifier: None,
        tags: Vec::new(),
        created_at,
        approval: None,
        output_schema: None,
    }
}

fn finish(id: &WaitpointId, finishing: Finishing) -> WriteOp {
    WriteOp::Finish(Finish { id: id.clone(), environment_id: None, finishing, hand_to: Takers::default() })
}

fn query(env: &EnvironmentId) -> ListQuery {
    ListQuery {
        environment_id: env.clone(),
        statuses: Vec::new(),
        idempotency_key: None,
        tags: Vec::new(),
        window: Window::newest(100_000),
    }
}

/// Makes batches of every kind of operation, on ids that exist, are created later in the same
/// batch, never exist, or are finished several times.
struct Workload {
    rng: Rng,
    ids: IdGenerator,
    envs: Vec<Environment>,
    /// Milliseconds since the conformance timeline's start: creation times and finish times move forward.
    clock: i64,
    /// Ids created or meant to be created, with their environment.
    known: Vec<(WaitpointId, usize)>,
    /// Every id an operation has named.
    named: BTreeSet<WaitpointId>,
}

impl Workload {
    fn new(seed: u64, envs: Vec<Environment>) -> Self {
        Self { rng: Rng(seed), ids: IdGenerator::new(), envs, clock: 0, known: Vec::new(), named: BTreeSet::new() }
    }

    fn batch(&mut self, size: usize) -> Vec<WriteOp> {
        // Ids whose creation comes later in the batch, some of them finished before it.
        let mut later: Vec<(WaitpointId, usize)> =
            (0..size / 8).map(|_| (self.ids.waitpoint(at(self.clock)), self.rng.below(self.envs.len()))).collect();
        let hot: Vec<(WaitpointId, usize)> = (0..3).filter_map(|_| self.known_id()).collect();
        let mut ops = Vec::with_capacity(size);
        while ops.len() < size {
            self.clock += self.rng.below(400) as i64;
            let op = match self.rng.below(100) {
                0..=24 => self.create(None, &mut later),
                25..=34 => {
                    let key = *self.rng.pick(&KEYS);
                    self.create(Some(key), &mut later)
                }
                35..=49 if !hot.is_empty() => {
                    let (id, env) = self.rng.pick(&hot).clone();
                    self.finish(id, Some(env))
                }
                50..=59 if !later.is_empty() => {
                    let (id, env) = self.rng.pick(&later).clone();
                    self.finish(id, Some(env))
                }
                60..=64 => {
                    let unknown = self.ids.waitpoint(at(self.clock));
                    self.finish(unknown, None)
                }
                _ => match self.known_id() {
                    Some((id, env)) => self.finish(id, Some(env)),
                    None => self.create(None, &mut later),
                },
            };
            ops.push(op);
        }
        ops
    }

    fn known_id(&mut self) -> Option<(WaitpointId, usize)> {
        (!self.known.is_empty()).then(|| self.rng.pick(&self.known).clone())
    }

    fn create(&mut self, key: Option<&str>, later: &mut Vec<(WaitpointId, usize)>) -> WriteOp {
        let (id, env) = if key.is_none() && !later.is_empty() && self.rng.percent(30) {
            later.swap_remove(self.rng.below(later.len()))
        } else {
            (self.ids.waitpoint(at(self.clock)), self.rng.below(self.envs.len()))
        };
        let mut new = waitpoint(id.clone(), &self.envs[env], at(self.clock));
        new.idempotency_key = key.map(Into::into);
        if key.is_some() && self.rng.percent(70) {
            new.idempotency_key_expires_at = Some(at(self.clock + self.rng.below(3_000) as i64));
        }
        if key.is_none() && self.rng.percent(5) {
            new.inactive_idempotency_key = Some(self.rng.pick(&KEYS).to_string());
        }
        if self.rng.percent(60) {
            new.timeout_at = Some(at(self.clock + self.rng.below(4_000) as i64 - 500));
        }
        new.tags = (0..self.rng.below(4)).map(|_| self.rng.pick(&TAGS).to_string()).collect();
        self.known.push((id.clone(), env));
        self.named.insert(id);
        WriteOp::Create(new)
    }

    fn finish(&mut self, id: WaitpointId, env: Option<usize>) -> WriteOp {
        let environment_id = match (env, self.rng.below(10)) {
            (Some(own), 0..=3) => Some(self.envs[own].id.clone()),
            (Some(own), 4) => Some(self.envs[(own + 1) % self.envs.len()].id.clone()),
            (None, 0..=2) => Some(self.envs[0].id.clone()),
            _ => None,
        };
        let finishing = match self.rng.below(4) {
            0 => Finishing::Deadline { at: at(self.clock) },
            1 => Finishing::Reject {
                at: at(self.clock),
                via: *self.rng.pick(&CompletedVia::ALL),
                error: Rejection {
                    message: format!("no {}", self.clock),
                    code: "NO".into(),
                    data: self.rng.percent(50).then(|| format!("[{}]", self.clock)),
                },
            },
            _ => Finishing::Complete {
                at: at(self.clock),
                via: *self.rng.pick(&CompletedVia::ALL),
                output: self.rng.percent(80).then(|| Output::from_json_text(&format!("{{\"n\":{}}}", self.clock))),
            },
        };
        self.named.insert(id.clone());
        WriteOp::Finish(Finish { id, environment_id, finishing, hand_to: Takers::default() })
    }
}

fn kind(outcome: &WriteOutcome) -> &'static str {
    match outcome {
        WriteOutcome::Create(CreateOutcome::Created(_)) => "created",
        WriteOutcome::Create(CreateOutcome::Existing(_)) => "existing",
        WriteOutcome::Finish(FinishOutcome::Finished(..)) => "finished",
        WriteOutcome::Finish(FinishOutcome::Unchanged(_)) => "unchanged",
        WriteOutcome::Finish(FinishOutcome::NotFound) => "not found",
        other => unreachable!("this test writes no runs: {other:?}"),
    }
}

/// The lists [`contents`] reads: each environment's waitpoints, by tag and by key.
fn lists(envs: &[Environment]) -> Vec<ListQuery> {
    let mut queries = Vec::new();
    for env in envs {
        queries.push(query(&env.id));
        for tag in TAGS {
            queries.push(ListQuery { tags: vec![tag.into()], ..query(&env.id) });
        }
        for key in KEYS {
            queries.push(ListQuery { idempotency_key: Some(key.into()), ..query(&env.id) });
        }
    }
    queries
}

/// What the store holds for these ids, and in its [`lists`].
async fn contents(store: &PostgresStore, envs: &[Environment], named: &BTreeSet<WaitpointId>) -> Vec<String> {
    let mut seen = Vec::new();
    for id in named {
        seen.push(match store.waitpoint_get(id).await {
            Ok(w) => format!("{w:?}"),
            Err(StorageError::NotFound) => format!("{id} not found"),
            Err(error) => panic!("waitpoint_get {id}: {error}"),
        });
    }
    for q in lists(envs) {
        let ids: Vec<_> = store.waitpoint_list(&q).await.expect("list").into_iter().map(|w| w.id).collect();
        seen.push(format!("{:?} {:?} {:?}: {ids:?}", q.environment_id, q.tags, q.idempotency_key));
    }
    seen
}

/// The contract of `write_batch` over a map, applied one operation at a time: what both
/// schemas must agree with, so that a fault the batched and the single-operation paths share
/// (the same statements) does not go unnoticed.
#[derive(Default)]
struct Model {
    waitpoints: BTreeMap<WaitpointId, Waitpoint>,
}

impl Model {
    fn apply(&mut self, op: &WriteOp) -> WriteOutcome {
        match op {
            WriteOp::Create(new) => {
                let holder = self.waitpoints.values_mut().find(|w| {
                    new.idempotency_key.is_some()
                        && w.environment_id == new.environment_id
                        && w.idempotency_key == new.idempotency_key
                });
                if let Some(holder) = holder {
                    if holder.idempotency_key_expires_at.is_none_or(|expires| new.created_at <= expires) {
                        return WriteOutcome::Create(CreateOutcome::Existing(holder.clone()));
                    }
                    holder.inactive_idempotency_key = holder.idempotency_key.take();
                }
                self.waitpoints.insert(new.id.clone(), new.clone());
                WriteOutcome::Create(CreateOutcome::Created(new.clone()))
            }
            WriteOp::Finish(finish) => WriteOutcome::Finish(match self.waitpoints.get_mut(&finish.id) {
                Some(w) if finish.environment_id.as_ref().is_none_or(|env| *env == w.environment_id) => {
                    // Manual tokens only: a deadline times them out, once it is due.
                    let state = match &finish.finishing {
                        Finishing::Deadline { at } => w
                            .timeout_at
                            .is_some_and(|deadline| deadline <= *at)
                            .then_some(WaitpointState::TimedOut { at: *at, via: None }),
                        Finishing::Complete { at, via, output } => {
                            Some(WaitpointState::Completed { at: *at, via: *via, output: output.clone() })
                        }
                        Finishing::Force { at, via } => Some(WaitpointState::TimedOut { at: *at, via: Some(*via) }),
                        Finishing::Reject { at, via, error } => {
                            Some(WaitpointState::Rejected { at: *at, via: *via, error: error.clone() })
                        }
                    };
                    match state {
                        Some(state) if w.state == WaitpointState::Waiting => {
                            w.state = state;
                            FinishOutcome::Finished(w.clone(), waitpoint_storage::Resumed::default())
                        }
                        _ => FinishOutcome::Unchanged(w.clone()),
                    }
                }
                _ => FinishOutcome::NotFound,
            }),
            other => unreachable!("this test writes no runs: {other:?}"),
        }
    }

    /// What [`contents`] should read.
    fn contents(&self, envs: &[Environment], named: &BTreeSet<WaitpointId>) -> Vec<String> {
        let mut seen: Vec<String> = named
            .iter()
            .map(|id| match self.waitpoints.get(id) {
                Some(w) => format!("{w:?}"),
                None => format!("{id} not found"),
            })
            .collect();
        for q in lists(envs) {
            let ids: Vec<_> = self
                .waitpoints
                .values()
                .rev()
                .filter(|w| w.environment_id == q.environment_id)
                .filter(|w| q.tags.iter().all(|tag| w.tags.contains(tag)))
                .filter(|w| {
                    q.idempotency_key.is_none()
                        || [&w.idempotency_key, &w.inactive_idempotency_key].contains(&&q.idempotency_key)
                })
                .map(|w| w.id.clone())
                .collect();
            seen.push(format!("{:?} {:?} {:?}: {ids:?}", q.environment_id, q.tags, q.idempotency_key));
        }
        seen
    }
}

#[tokio::test]
async fn large_mixed_batches_do_what_their_operations_do_one_at_a_time() {
    let (Some(batched_db), Some(single_db)) = (PostgresSchema::fresh().await, PostgresSchema::fresh().await) else {
        return;
    };
    let (batched, single) = (batched_db.store().await, single_db.store().await);
    let ids = IdGenerator::new();
    let envs = vec![environment(&ids, "dev"), environment(&ids, "prod")];
    for env in &envs {
        batched.environment_create(env).await.unwrap();
        single.environment_create(env).await.unwrap();
    }
    let mut model = Model::default();
    let mut kinds = BTreeSet::new();
    for seed in [0x5eed_0001, 0x5eed_0002] {
        let mut workload = Workload::new(seed, envs.clone());
        for size in [512, 200, 512, 64] {
            let ops = workload.batch(size);
            let outcomes = batched.write_batch(ops.clone()).await.expect("the batch");
            assert_eq!(outcomes.len(), ops.len());
            for (i, (op, outcome)) in ops.into_iter().zip(outcomes).enumerate() {
                let single_outcome = single.write_batch(vec![op.clone()]).await.expect("one operation").remove(0);
                assert_eq!(outcome, single_outcome, "seed {seed:#x}, batch of {size}, operation {i}: {op:?}");
                assert_eq!(outcome, model.apply(&op), "the contract: seed {seed:#x}, operation {i}: {op:?}");
                kinds.insert(kind(&outcome));
            }
            let expected = model.contents(&envs, &workload.named);
            assert_eq!(contents(&batched, &envs, &workload.named).await, expected, "seed {seed:#x}, batched");
            assert_eq!(contents(&single, &envs, &workload.named).await, expected, "seed {seed:#x}, one by one");
        }
    }
    assert_eq!(kinds.len(), 5, "every kind of outcome occurs: {kinds:?}");
}

#[tokio::test]
async fn a_taken_id_among_many_creates_fails_the_whole_batch() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let store = db.store().await;
    let ids = IdGenerator::new();
    let env = environment(&ids, "dev");
    store.environment_create(&env).await.unwrap();
    let taken = waitpoint(ids.waitpoint(at(0)), &env, at(0));
    store.write_batch(vec![WriteOp::Create(taken.clone())]).await.unwrap();

    let mut fresh: Vec<Waitpoint> = (0..5).map(|i| waitpoint(ids.waitpoint(at(i)), &env, at(i))).collect();
    fresh[1].tags = vec!["t".into()];
    let mut ops: Vec<WriteOp> = fresh.iter().cloned().map(WriteOp::Create).collect();
    ops.insert(3, WriteOp::Create(taken.clone()));
    ops.push(finish(&taken.id, completed(10, "1")));
    let result = store.write_batch(ops).await;
    assert!(matches!(result, Err(StorageError::Conflict(_))), "{result:?}");
    for w in &fresh {
        assert!(matches!(store.waitpoint_get(&w.id).await, Err(StorageError::NotFound)));
    }
    assert_eq!(store.waitpoint_get(&taken.id).await.unwrap(), taken, "the finish was rolled back too");
    let tagged = ListQuery { tags: vec!["t".into()], ..query(&env.id) };
    assert!(store.waitpoint_list(&tagged).await.unwrap().is_empty(), "no tag rows are left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_batches_finish_each_waitpoint_once() {
    const WAITPOINTS: usize = 300;
    const BATCHES: usize = 6;
    let Some(db) = PostgresSchema::fresh().await else { return };
    let store = Arc::new(db.store().await);
    let ids = IdGenerator::new();
    let env = environment(&ids, "dev");
    store.environment_create(&env).await.unwrap();
    let waitpoints: Vec<Waitpoint> = (0..WAITPOINTS)
        .map(|i| {
            let mut w = waitpoint(ids.waitpoint(at(0)), &env, at(0));
            w.timeout_at = Some(at(i as i64 % 3 * 1_000));
            w
        })
        .collect();
    store.write_batch(waitpoints.iter().cloned().map(WriteOp::Create).collect()).await.unwrap();

    // Each batch finishes every waitpoint, in an order of its own: a third of them with a timeout
    // (due for two thirds of the waitpoints), the others with completions.
    let timeout = Finishing::Deadline { at: at(1_500) };
    let racers: Vec<_> = (0..BATCHES)
        .map(|racer| {
            let mut rng = Rng(0xace0 + racer as u64);
            let mut order: Vec<&Waitpoint> = waitpoints.iter().collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let finishing = if racer % 3 == 0 { timeout.clone() } else { completed(racer as i64, &racer.to_string()) };
            let ops: Vec<WriteOp> = order.into_iter().map(|w| finish(&w.id, finishing.clone())).collect();
            let store = store.clone();
            tokio::spawn(async move {
                let result = store.write_batch(ops.clone()).await;
                (ops, result)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for racer in racers {
        let (ops, result) = racer.await.expect("task panicked");
        outcomes.extend(ops.into_iter().zip(result.expect("every batch commits")));
    }

    for w in &waitpoints {
        let current = store.waitpoint_get(&w.id).await.unwrap();
        assert_ne!(current.state, WaitpointState::Waiting);
        let mine: Vec<_> = outcomes.iter().filter(|(op, _)| matches!(op, WriteOp::Finish(f) if f.id == w.id)).collect();
        assert_eq!(mine.len(), BATCHES);
        let finished_now =
            WriteOutcome::Finish(FinishOutcome::Finished(current.clone(), waitpoint_storage::Resumed::default()));
        let finished = mine.iter().filter(|(_, o)| *o == finished_now).count();
        assert_eq!(finished, 1, "{current:?}: {mine:?}");
        for (op, outcome) in mine {
            let not_due_yet =
                matches!(op, WriteOp::Finish(f) if f.finishing == timeout) && w.timeout_at > Some(at(1_500));
            let unchanged = |w: &Waitpoint| WriteOutcome::Finish(FinishOutcome::Unchanged(w.clone()));
            assert!(
                *outcome == finished_now
                    || *outcome == unchanged(&current)
                    || (not_due_yet && *outcome == unchanged(w)),
                "{current:?}: {op:?} gave {outcome:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finishes_racing_the_creates_of_their_waitpoints_agree_with_what_is_stored() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let store = Arc::new(db.store().await);
    let ids = IdGenerator::new();
    let env = environment(&ids, "dev");
    store.environment_create(&env).await.unwrap();
    for round in 0..20 {
        let created: Vec<Waitpoint> = (0..100).map(|i| waitpoint(ids.waitpoint(at(i)), &env, at(i))).collect();
        let finishes: Vec<WriteOp> = created.iter().rev().map(|w| finish(&w.id, completed(round, "1"))).collect();
        let creates = created.iter().cloned().map(WriteOp::Create).collect();
        let (creating, finishing) = tokio::join!(
            tokio::spawn({
                let store = store.clone();
                async move { store.write_batch(creates).await }
            }),
            tokio::spawn({
                let store = store.clone();
                async move { store.write_batch(finishes).await }
            }),
        );
        assert!(
            creating.unwrap().unwrap().iter().all(|o| matches!(o, WriteOutcome::Create(CreateOutcome::Created(_))))
        );
        for (w, outcome) in created.iter().rev().zip(finishing.unwrap().unwrap()) {
            let current = store.waitpoint_get(&w.id).await.unwrap();
            match outcome {
                WriteOutcome::Finish(FinishOutcome::Finished(done, _)) => assert_eq!(done, current, "round {round}"),
                WriteOutcome::Finish(FinishOutcome::NotFound) => {
                    assert_eq!(&current, w, "round {round}: not found, so still waiting")
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    }
}

/// The multi-row update does not see a waitpoint committed after it began; the finish then
/// locks the latest version and applies to it, as a finish of its own would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_applies_to_a_waitpoint_committed_while_its_update_waited() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let store = Arc::new(db.store().await);
    let ids = IdGenerator::new();
    let env = environment(&ids, "dev");
    store.environment_create(&env).await.unwrap();
    let held = waitpoint(ids.waitpoint(at(0)), &env, at(0));
    store.write_batch(vec![WriteOp::Create(held.clone())]).await.unwrap();
    let late = waitpoint(ids.waitpoint(at(1)), &env, at(1));

    // Another transaction holds `held` and creates `late`; the batch's update waits for it.
    let other = admin(&db.url()).await.expect("connect");
    other.batch_execute("BEGIN").await.unwrap();
    other.execute("SELECT 1 FROM waitpoints WHERE id = $1 FOR UPDATE", &[&held.id.internal()]).await.unwrap();
    other
        .execute(
            "INSERT INTO waitpoints (id, environment_id, status, tags, created_at) VALUES ($1, $2, 'WAITING', '{}', $3)",
            &[&late.id.internal(), &env.id.internal(), &late.created_at.as_millis()],
        )
        .await
        .unwrap();
    let batch = {
        let store = store.clone();
        let ops = vec![finish(&held.id, completed(2, "1")), finish(&late.id, completed(3, "2"))];
        tokio::spawn(async move { store.write_batch(ops).await })
    };
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))";
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(Instant::now() < deadline, "the batch never waited for the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    other.batch_execute("COMMIT").await.unwrap();

    let outcomes = batch.await.unwrap().unwrap();
    let (held_now, late_now) =
        (store.waitpoint_get(&held.id).await.unwrap(), store.waitpoint_get(&late.id).await.unwrap());
    assert_eq!(
        late_now.state,
        WaitpointState::Completed {
            at: at(3),
            via: CompletedVia::SecretKey,
            output: Some(Output::from_json_text("2"))
        }
    );
    let finished = |w| WriteOutcome::Finish(FinishOutcome::Finished(w, waitpoint_storage::Resumed::default()));
    assert_eq!(outcomes, [finished(held_now), finished(late_now)]);
}
