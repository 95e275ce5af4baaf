//! The conformance suite: the [`Store`] contract as executable checks.
//!
//! Every backend runs every check here against a fresh, real database with
//! [`conformance_tests!`](crate::conformance_tests). A behaviour that differs between backends
//! is a bug in one of them, not a reason to fork a test.

use std::sync::Arc;
use std::time::Duration;

use waitpoint_types::id::internal_floor;
use waitpoint_types::{
    CallbackVerifier, CompletedVia, Environment, EnvironmentId, IdGenerator, JournalEntry, Output, Rejection, RunId,
    Secret, Timestamp, VerifierScheme, Waitpoint, WaitpointId, WaitpointKind, WaitpointState, WaitpointStatus,
};

use crate::{
    CreateOutcome, Cursor, Finish, FinishOutcome, Finishing, ListQuery, Resumed, StorageError, Store, Takers, Window,
    WriteOp, WriteOutcome,
};

mod dashboard;
mod events;
mod heartbeats;
mod retention;
mod runs;
mod wait_sets;
mod webhooks;

pub use dashboard::*;
pub use events::*;
pub use heartbeats::*;
pub use retention::*;
pub use runs::*;
pub use wait_sets::*;
pub use webhooks::*;

/// A database for one test.
#[async_trait::async_trait]
pub trait TestDatabase: Send + Sync {
    /// Opens a store on this test's database. Opening again gives a new store on the same
    /// data, as a restarted server would see it.
    async fn open(&self) -> Arc<dyn Store>;
}

/// Generates one `#[tokio::test]` per conformance check. `$setup` is an expression that
/// evaluates to a future of `Option` of a fresh, empty [`TestDatabase`]; `None` skips the
/// check, and the setup says why.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@each $setup;
            environments_are_created_found_and_rekeyed,
            environment_names_and_keys_are_unique,
            created_waitpoints_read_back_unchanged,
            unknown_waitpoints_are_not_found,
            active_idempotency_key_returns_the_existing_waitpoint,
            expired_idempotency_key_is_deactivated_and_replaced,
            idempotency_keys_are_scoped_to_an_environment,
            first_completion_wins,
            a_rejection_applies_once_and_reads_back_with_its_error,
            a_completion_must_fit_the_output_schema,
            callback_verifiers_are_stored_with_their_token,
            a_heartbeat_moves_only_the_heartbeat_deadline,
            a_missed_heartbeat_times_the_token_out,
            timeouts_are_found_by_the_earlier_of_timeout_and_heartbeat,
            an_extend_moves_the_timeout_only_later,
            heartbeats_in_one_batch_apply_in_order,
            changes_append_their_events_in_order,
            a_failed_batch_appends_no_event,
            old_events_are_purged_from_the_head_of_the_log,
            webhooks_are_stored_listed_advanced_and_deleted,
            timeout_applies_only_when_due_and_only_once,
            completion_from_another_environment_is_not_found,
            a_batch_sees_its_own_writes,
            list_orders_newest_first_and_pages_both_ways,
            list_filters_by_status,
            list_filters_by_idempotency_key_tags_and_dates,
            list_is_scoped_to_an_environment,
            tag_pages_hold_the_newest_matches_of_all_tags,
            timeouts_are_found_in_deadline_order,
            writes_survive_reopening,
            runs_are_created_read_back_and_honour_idempotency_keys,
            claims_take_available_runs_of_the_workers_tasks_in_order,
            a_run_created_for_a_worker_is_its_as_if_claimed,
            the_journal_records_in_order_and_only_once,
            journals_are_read_together_in_the_order_asked,
            a_wait_on_a_pending_waitpoint_suspends_until_it_finishes,
            a_wait_on_a_finished_waitpoint_records_its_result_at_once,
            one_waitpoint_resumes_every_run_waiting_on_it_once,
            resumed_runs_stay_with_their_live_worker_for_a_while,
            a_resumed_run_goes_straight_to_its_worker_when_that_one_takes_runs,
            a_worker_is_handed_no_more_resumed_runs_than_it_has_slots,
            datetime_waits_complete_at_their_deadline,
            a_token_created_by_a_run_is_created_once,
            failed_attempts_retry_until_attempts_run_out,
            cancel_stops_a_run_that_has_not_finished,
            runs_of_stopped_workers_are_released,
            claims_give_back_runs_the_worker_does_not_know_it_holds,
            claims_take_again_a_run_listed_under_an_older_epoch,
            a_claim_without_a_holding_list_gives_nothing_back,
            a_worker_is_known_by_its_environment_and_id,
            a_newer_session_takes_the_worker_over,
            workers_say_which_tasks_they_serve,
            run_lists_filter_and_page,
            next_available_is_the_earliest_future_run,
            a_batch_of_run_operations_does_what_they_do_one_at_a_time,
            forced_timeouts_apply_at_once_and_say_how,
            approval_pages_are_stored_with_their_token,
            counts_are_what_lists_would_return,
            tags_are_listed_once_each_by_prefix,
            what_times_out_soonest_and_what_waits_longest,
            a_token_finds_the_runs_that_waited_on_it,
            a_set_wait_resumes_once_when_enough_complete,
            a_set_wait_fails_once_it_no_longer_can_succeed,
            a_set_wait_decided_when_made_records_its_result,
            waitpoints_finishing_together_resume_their_run_once,
            finishes_in_one_batch_decide_a_set_in_the_batchs_order,
            a_set_wait_on_a_token_or_a_deadline_resumes_at_the_deadline,
            retention_deletes_old_finished_tokens_and_keeps_the_rest,
            retention_keeps_tokens_that_live_runs_refer_to,
            retention_deletes_old_finished_runs_with_their_journals_and_tags,
            retention_purges_at_most_limit_the_earliest_finished_first,
        );
    };
    (@each $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(database) = $setup.await else { return };
                $crate::conformance::$check(&database).await;
            }
        )*
    };
}

const T0: i64 = 1_764_000_000_000;

/// `T0` plus `offset_ms`: the suite's (and backends' own tests') fixed timeline.
pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

/// An environment named `name`, created at `at(0)`.
pub fn environment(ids: &IdGenerator, name: &str) -> Environment {
    Environment {
        id: ids.environment(at(0)),
        name: name.to_owned(),
        api_key: Secret::new(format!("tr_dev_{name}_{}", ids.next_internal(at(0)))),
        signing_secret: Secret::new(format!("signing-{name}")),
        created_at: at(0),
    }
}

/// A waiting manual token of `env`, without key, deadline or tags.
pub fn waitpoint(ids: &IdGenerator, env: &Environment, created_at: Timestamp) -> Waitpoint {
    Waitpoint {
        id: ids.waitpoint(created_at),
        kind: WaitpointKind::Manual,
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

/// A completion at `at(at_ms)` with `output` (JSON text), by secret key.
pub fn completed(at_ms: i64, output: &str) -> Finishing {
    Finishing::Complete { at: at(at_ms), via: CompletedVia::SecretKey, output: Some(Output::from_json_text(output)) }
}

/// Applies `op` alone and returns its outcome, of the family `T` the operation belongs to.
pub(crate) async fn write_one<T: TryFrom<WriteOutcome, Error = WriteOutcome>>(store: &dyn Store, op: WriteOp) -> T {
    let mut outcomes = store.write_batch(vec![op]).await.expect("write_batch failed");
    assert_eq!(outcomes.len(), 1, "one outcome per operation");
    T::try_from(outcomes.remove(0)).unwrap_or_else(|other| panic!("an outcome of another operation: {other:?}"))
}

/// The journal of run `id`, or `None` when the run does not exist.
pub async fn journal(store: &dyn Store, id: &RunId) -> Option<Vec<JournalEntry>> {
    let mut journals = store.run_journals(std::slice::from_ref(id)).await.expect("run_journals failed");
    assert_eq!(journals.len(), 1, "one journal per run asked for");
    journals.pop().flatten().map(|journal| journal.entries)
}

pub(crate) async fn create(store: &dyn Store, w: &Waitpoint) -> Waitpoint {
    match write_one(store, WriteOp::Create(w.clone())).await {
        CreateOutcome::Created(created) => created,
        other => panic!("expected Created, got {other:?}"),
    }
}

pub(crate) async fn finish(store: &dyn Store, id: &WaitpointId, finishing: Finishing) -> FinishOutcome {
    let finish = Finish { id: id.clone(), environment_id: None, finishing, hand_to: Takers::default() };
    write_one(store, WriteOp::Finish(finish)).await
}

pub(crate) async fn new_env(store: &dyn Store, ids: &IdGenerator, name: &str) -> Environment {
    let env = environment(ids, name);
    store.environment_create(&env).await.expect("environment_create failed");
    env
}

pub(crate) fn query(env: &Environment) -> ListQuery {
    ListQuery {
        environment_id: env.id.clone(),
        statuses: Vec::new(),
        idempotency_key: None,
        tags: Vec::new(),
        window: Window::newest(100),
    }
}

async fn list_ids(store: &dyn Store, q: &ListQuery) -> Vec<WaitpointId> {
    store.waitpoint_list(q).await.expect("waitpoint_list failed").into_iter().map(|w| w.id).collect()
}

/// Environments are created, found by name, key and id, listed, and re-keyed.
pub async fn environments_are_created_found_and_rekeyed(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let dev = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;

    assert_eq!(store.environment_by_name("dev").await.unwrap(), dev);
    assert_eq!(store.environment_by_api_key(dev.api_key.expose()).await.unwrap(), dev);
    assert_eq!(store.environment_by_id(&prod.id).await.unwrap(), prod);
    let names: Vec<_> = store.environment_list().await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["dev", "prod"]);

    let new_key = Secret::new("tr_dev_rotatedrotatedrotated1".into());
    let rekeyed = store.environment_set_api_key("dev", &new_key).await.unwrap();
    assert_eq!(rekeyed.api_key, new_key);
    assert_eq!(rekeyed.signing_secret, dev.signing_secret, "re-keying keeps the signing secret");
    assert!(matches!(store.environment_by_api_key(dev.api_key.expose()).await, Err(StorageError::NotFound)));
    assert_eq!(store.environment_by_api_key(new_key.expose()).await.unwrap().id, dev.id);

    assert!(matches!(store.environment_by_name("nope").await, Err(StorageError::NotFound)));
    assert!(matches!(
        store.environment_by_id(&EnvironmentId::parse("env_nope").unwrap()).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(store.environment_set_api_key("nope", &new_key).await, Err(StorageError::NotFound)));
}

/// Two environments cannot share a name or a key.
pub async fn environment_names_and_keys_are_unique(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let dev = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;

    let same_name = environment(&ids, "dev");
    assert!(matches!(store.environment_create(&same_name).await, Err(StorageError::Conflict(_))));
    let mut same_key = environment(&ids, "staging");
    same_key.api_key = dev.api_key.clone();
    assert!(matches!(store.environment_create(&same_key).await, Err(StorageError::Conflict(_))));
    assert!(matches!(store.environment_set_api_key("prod", &dev.api_key).await, Err(StorageError::Conflict(_))));
    assert_eq!(store.environment_by_name("prod").await.unwrap(), prod);
}

/// What is created reads back field for field, in every state.
pub async fn created_waitpoints_read_back_unchanged(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;

    let mut full = waitpoint(&ids, &env, at(0));
    full.idempotency_key = Some("key-1".into());
    full.idempotency_key_expires_at = Some(at(3_600_000));
    full.timeout_at = Some(at(600_000));
    full.tags = vec!["b".into(), "a".into(), "b".into(), String::new(), "ünïcødé 🚀".into()];
    assert_eq!(create(&*store, &full).await, full);
    assert_eq!(store.waitpoint_get(&full.id).await.unwrap(), full);

    let bare = waitpoint(&ids, &env, at(1));
    create(&*store, &bare).await;
    assert_eq!(store.waitpoint_get(&bare.id).await.unwrap(), bare);

    let outputs = [
        Some(Output::from_json_text(r#"{"status":"approved","big":12345678901234567890}"#)),
        Some(Output::from_text(String::new())),
        None,
    ];
    for (i, output) in outputs.into_iter().enumerate() {
        let w = waitpoint(&ids, &env, at(2));
        create(&*store, &w).await;
        let (when, via) = (at(10 + i as i64), CompletedVia::ALL[i]);
        let finishing = Finishing::Complete { at: when, via, output: output.clone() };
        let FinishOutcome::Finished(done, _) = finish(&*store, &w.id, finishing).await else {
            panic!("completion not applied");
        };
        assert_eq!(done.state, WaitpointState::Completed { at: when, via, output });
        assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), done);
    }
}

/// Reads, completions and timeouts of unknown ids say `NotFound`.
pub async fn unknown_waitpoints_are_not_found(db: &dyn TestDatabase) {
    let store = db.open().await;
    let unknown = WaitpointId::parse("waitpoint_cunknown").unwrap();
    assert!(matches!(store.waitpoint_get(&unknown).await, Err(StorageError::NotFound)));
    assert_eq!(finish(&*store, &unknown, completed(0, "1")).await, FinishOutcome::NotFound);
    assert_eq!(finish(&*store, &unknown, Finishing::Deadline { at: at(0) }).await, FinishOutcome::NotFound);
}

/// While its key is active, creating with the same key returns the first waitpoint, whatever
/// its state, and writes nothing.
pub async fn active_idempotency_key_returns_the_existing_waitpoint(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;

    let mut first = waitpoint(&ids, &env, at(0));
    first.idempotency_key = Some("approve-42".into());
    first.idempotency_key_expires_at = Some(at(60_000));
    first.tags = vec!["first".into()];
    create(&*store, &first).await;

    let mut again = waitpoint(&ids, &env, at(60_000));
    again.idempotency_key = Some("approve-42".into());
    again.idempotency_key_expires_at = Some(at(120_000));
    again.tags = vec!["second".into()];
    assert_eq!(
        write_one::<CreateOutcome>(&*store, WriteOp::Create(again.clone())).await,
        CreateOutcome::Existing(first.clone())
    );
    assert!(matches!(store.waitpoint_get(&again.id).await, Err(StorageError::NotFound)));

    let FinishOutcome::Finished(done, _) = finish(&*store, &first.id, completed(100, r#"{"ok":true}"#)).await else {
        panic!("completion not applied");
    };
    again.id = ids.waitpoint(at(200));
    assert_eq!(write_one::<CreateOutcome>(&*store, WriteOp::Create(again)).await, CreateOutcome::Existing(done));

    let mut forever = waitpoint(&ids, &env, at(0));
    forever.idempotency_key = Some("no-expiry".into());
    create(&*store, &forever).await;
    let mut much_later = waitpoint(&ids, &env, at(86_400_000 * 365));
    much_later.idempotency_key = Some("no-expiry".into());
    assert_eq!(
        write_one::<CreateOutcome>(&*store, WriteOp::Create(much_later)).await,
        CreateOutcome::Existing(forever)
    );
}

/// After its key expires, a create with the same key deactivates the old waitpoint's key and
/// creates a new one; both stay findable by the key in lists.
pub async fn expired_idempotency_key_is_deactivated_and_replaced(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;

    let mut old = waitpoint(&ids, &env, at(0));
    old.idempotency_key = Some("k".into());
    old.idempotency_key_expires_at = Some(at(1_000));
    create(&*store, &old).await;

    let mut new = waitpoint(&ids, &env, at(1_001));
    new.idempotency_key = Some("k".into());
    new.idempotency_key_expires_at = Some(at(2_001));
    assert_eq!(create(&*store, &new).await, new);

    let old_now = store.waitpoint_get(&old.id).await.unwrap();
    assert_eq!(old_now.idempotency_key, None);
    assert_eq!(old_now.inactive_idempotency_key.as_deref(), Some("k"));
    assert_eq!(old_now.user_idempotency_key(), Some("k"));

    let mut third = waitpoint(&ids, &env, at(1_500));
    third.idempotency_key = Some("k".into());
    assert_eq!(write_one::<CreateOutcome>(&*store, WriteOp::Create(third)).await, CreateOutcome::Existing(new.clone()));

    let mut q = query(&env);
    q.idempotency_key = Some("k".into());
    assert_eq!(list_ids(&*store, &q).await, [new.id, old.id]);
}

/// The same key in two environments makes two waitpoints.
pub async fn idempotency_keys_are_scoped_to_an_environment(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let dev = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    for env in [&dev, &prod] {
        let mut w = waitpoint(&ids, env, at(0));
        w.idempotency_key = Some("shared".into());
        create(&*store, &w).await;
    }
}

/// The first completion (or timeout) wins; later ones change nothing and return the record.
pub async fn first_completion_wins(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut w = waitpoint(&ids, &env, at(0));
    w.timeout_at = Some(at(1_000));
    create(&*store, &w).await;

    let FinishOutcome::Finished(done, _) = finish(&*store, &w.id, completed(10, r#""first""#)).await else {
        panic!("first completion not applied");
    };
    assert_eq!(done.status(), WaitpointStatus::Completed);
    assert_eq!(finish(&*store, &w.id, completed(20, r#""second""#)).await, FinishOutcome::Unchanged(done.clone()));
    assert_eq!(
        finish(&*store, &w.id, Finishing::Deadline { at: at(5_000) }).await,
        FinishOutcome::Unchanged(done.clone())
    );
    assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), done);
}

/// A rejection applies once, to a waiting token, and reads back with its error (data kept as
/// given); a datetime waitpoint is not rejected. Lists see the new status.
pub async fn a_rejection_applies_once_and_reads_back_with_its_error(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let w = Waitpoint { tags: vec!["t".into()], ..waitpoint(&ids, &env, at(0)) };
    create(&*store, &w).await;
    let error = Rejection {
        message: "card declined".into(),
        code: "CARD_DECLINED".into(),
        data: Some(r#"{"big":12345678901234567890}"#.into()),
    };
    let rejecting = Finishing::Reject { at: at(10), via: CompletedVia::PublicAccessToken, error: error.clone() };
    let FinishOutcome::Finished(done, _) = finish(&*store, &w.id, rejecting.clone()).await else {
        panic!("the rejection was not applied");
    };
    assert_eq!(done.state, WaitpointState::Rejected { at: at(10), via: CompletedVia::PublicAccessToken, error });
    assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), done);
    assert_eq!(finish(&*store, &w.id, completed(20, "1")).await, FinishOutcome::Unchanged(done.clone()));
    assert_eq!(finish(&*store, &w.id, rejecting.clone()).await, FinishOutcome::Unchanged(done.clone()));
    for statuses in [vec![WaitpointStatus::Rejected], vec![WaitpointStatus::Waiting, WaitpointStatus::Rejected]] {
        let mut q = query(&env);
        q.statuses = statuses;
        assert_eq!(list_ids(&*store, &q).await, std::slice::from_ref(&w.id));
        q.tags = vec!["t".into()];
        assert_eq!(list_ids(&*store, &q).await, std::slice::from_ref(&w.id), "by tag and status");
    }

    let mut datetime = waitpoint(&ids, &env, at(1));
    datetime.kind = WaitpointKind::Datetime;
    create(&*store, &datetime).await;
    assert_eq!(finish(&*store, &datetime.id, rejecting).await, FinishOutcome::Unchanged(datetime));
}

/// A token's callback verifier, secret included, reads back as it was created, alone and in a
/// batch of creates.
pub async fn callback_verifiers_are_stored_with_their_token(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let verifier = |scheme, header: Option<&str>| CallbackVerifier {
        scheme,
        secret: Secret::new(format!("secret-{scheme}")),
        header: header.map(Into::into),
    };
    let github =
        Waitpoint { callback_verifier: Some(verifier(VerifierScheme::GitHub, None)), ..waitpoint(&ids, &env, at(0)) };
    create(&*store, &github).await;
    assert_eq!(store.waitpoint_get(&github.id).await.unwrap(), github);
    let batch: Vec<Waitpoint> = [(VerifierScheme::Stripe, None), (VerifierScheme::HmacSha256, Some("x-acme"))]
        .into_iter()
        .map(|(scheme, header)| Waitpoint {
            callback_verifier: Some(verifier(scheme, header)),
            ..waitpoint(&ids, &env, at(1))
        })
        .collect();
    store.write_batch(batch.iter().cloned().map(WriteOp::Create).collect()).await.unwrap();
    for token in batch {
        assert_eq!(store.waitpoint_get(&token.id).await.unwrap(), token);
    }
}

/// A completion whose output does not fit the token's output schema is refused, says where, and
/// changes nothing, alone or in a batch; one that fits applies; a finished token answers as it
/// is, whatever the output; deadlines and rejections are not checked.
pub async fn a_completion_must_fit_the_output_schema(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let schema = r#"{"type":"object","properties":{"amount":{"type":"integer","minimum":10}},"required":["amount"]}"#;
    let w = Waitpoint { output_schema: Some(schema.into()), ..waitpoint(&ids, &env, at(0)) };
    assert_eq!(create(&*store, &w).await, w, "the schema reads back");
    assert_eq!(store.waitpoint_get(&w.id).await.unwrap().output_schema.as_deref(), Some(schema));

    let FinishOutcome::Refused(unchanged, reason) = finish(&*store, &w.id, completed(1, r#"{"amount":5}"#)).await
    else {
        panic!("an output below the minimum was applied");
    };
    assert_eq!(unchanged, w);
    assert!(reason.starts_with("at /amount: "), "{reason}");
    let batch = store
        .write_batch(vec![
            WriteOp::Finish(Finish {
                id: w.id.clone(),
                environment_id: None,
                finishing: completed(2, "{}"),
                hand_to: Takers::default(),
            }),
            WriteOp::Finish(Finish {
                id: w.id.clone(),
                environment_id: None,
                finishing: completed(3, r#""text""#),
                hand_to: Takers::default(),
            }),
        ])
        .await
        .unwrap();
    assert!(batch.iter().all(|o| matches!(o, WriteOutcome::Finish(FinishOutcome::Refused(..)))), "{batch:?}");
    assert_eq!(store.waitpoint_get(&w.id).await.unwrap().state, WaitpointState::Waiting, "nothing changed");

    let FinishOutcome::Finished(done, _) = finish(&*store, &w.id, completed(4, r#"{"amount":12}"#)).await else {
        panic!("a fitting output was not applied");
    };
    assert_eq!(finish(&*store, &w.id, completed(5, r#"{"amount":1}"#)).await, FinishOutcome::Unchanged(done));

    let mut deadline = Waitpoint { output_schema: Some(schema.into()), ..waitpoint(&ids, &env, at(0)) };
    deadline.timeout_at = Some(at(10));
    create(&*store, &deadline).await;
    assert!(matches!(
        finish(&*store, &deadline.id, Finishing::Deadline { at: at(10) }).await,
        FinishOutcome::Finished(..)
    ));
}

/// A timeout applies only at or after `timeout_at`, and only to a waiting waitpoint.
pub async fn timeout_applies_only_when_due_and_only_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut w = waitpoint(&ids, &env, at(0));
    w.timeout_at = Some(at(1_000));
    create(&*store, &w).await;
    let no_deadline = waitpoint(&ids, &env, at(0));
    create(&*store, &no_deadline).await;

    assert_eq!(finish(&*store, &w.id, Finishing::Deadline { at: at(999) }).await, FinishOutcome::Unchanged(w.clone()));
    assert_eq!(
        finish(&*store, &no_deadline.id, Finishing::Deadline { at: at(999_999) }).await,
        FinishOutcome::Unchanged(no_deadline.clone())
    );
    let FinishOutcome::Finished(timed_out, _) = finish(&*store, &w.id, Finishing::Deadline { at: at(1_000) }).await
    else {
        panic!("due timeout not applied");
    };
    assert_eq!(timed_out.state, WaitpointState::TimedOut { at: at(1_000), via: None });
    assert_eq!(
        finish(&*store, &w.id, Finishing::Deadline { at: at(2_000) }).await,
        FinishOutcome::Unchanged(timed_out.clone())
    );
    assert_eq!(finish(&*store, &w.id, completed(3_000, "1")).await, FinishOutcome::Unchanged(timed_out));
}

/// A completion that names an environment cannot touch another environment's waitpoint.
pub async fn completion_from_another_environment_is_not_found(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let dev = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let w = waitpoint(&ids, &dev, at(0));
    create(&*store, &w).await;

    let foreign = Finish {
        id: w.id.clone(),
        environment_id: Some(prod.id.clone()),
        finishing: completed(1, "1"),
        hand_to: Takers::default(),
    };
    assert_eq!(write_one::<FinishOutcome>(&*store, WriteOp::Finish(foreign)).await, FinishOutcome::NotFound);
    assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), w);
    let own = Finish {
        id: w.id.clone(),
        environment_id: Some(dev.id.clone()),
        finishing: completed(1, "1"),
        hand_to: Takers::default(),
    };
    assert!(matches!(write_one(&*store, WriteOp::Finish(own)).await, FinishOutcome::Finished(_, _)));
}

/// Operations in one batch apply in order and see each other; outcomes come back in order.
pub async fn a_batch_sees_its_own_writes(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut a = waitpoint(&ids, &env, at(0));
    a.idempotency_key = Some("same".into());
    let mut b = waitpoint(&ids, &env, at(1));
    b.idempotency_key = Some("same".into());
    let c = waitpoint(&ids, &env, at(2));
    let unknown = WaitpointId::parse("waitpoint_cnothere").unwrap();

    let outcomes = store
        .write_batch(vec![
            WriteOp::Create(a.clone()),
            WriteOp::Create(b),
            WriteOp::Finish(Finish {
                id: unknown,
                environment_id: None,
                finishing: completed(3, "0"),
                hand_to: Takers::default(),
            }),
            WriteOp::Create(c.clone()),
            WriteOp::Finish(Finish {
                id: a.id.clone(),
                environment_id: None,
                finishing: completed(4, "1"),
                hand_to: Takers::default(),
            }),
            WriteOp::Finish(Finish {
                id: a.id.clone(),
                environment_id: None,
                finishing: completed(5, "2"),
                hand_to: Takers::default(),
            }),
        ])
        .await
        .unwrap();
    let mut done_a = a.clone();
    done_a.state = WaitpointState::Completed {
        at: at(4),
        via: CompletedVia::SecretKey,
        output: Some(Output::from_json_text("1")),
    };
    assert_eq!(
        outcomes,
        [
            WriteOutcome::Create(CreateOutcome::Created(a.clone())),
            WriteOutcome::Create(CreateOutcome::Existing(a)),
            WriteOutcome::Finish(FinishOutcome::NotFound),
            WriteOutcome::Create(CreateOutcome::Created(c)),
            WriteOutcome::Finish(FinishOutcome::Finished(done_a.clone(), Resumed::default())),
            WriteOutcome::Finish(FinishOutcome::Unchanged(done_a)),
        ]
    );
    assert!(store.write_batch(Vec::new()).await.unwrap().is_empty());
}

/// Lists run newest first; `After` continues to older rows, `Before` walks back to newer ones.
pub async fn list_orders_newest_first_and_pages_both_ways(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let w = waitpoint(&ids, &env, at(i / 2));
        create(&*store, &w).await;
        created.push(w.id);
    }
    let newest_first: Vec<_> = created.iter().rev().cloned().collect();

    let mut q = query(&env);
    assert_eq!(list_ids(&*store, &q).await, newest_first);
    q.window.limit = 3;
    assert_eq!(list_ids(&*store, &q).await, newest_first[..3]);
    q.window.cursor = Cursor::After(newest_first[2].internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, newest_first[3..6]);
    q.window.cursor = Cursor::After(newest_first[6].internal().to_owned());
    assert!(list_ids(&*store, &q).await.is_empty());
    q.window.cursor = Cursor::Before(newest_first[5].internal().to_owned());
    let expected = [&newest_first[4], &newest_first[3], &newest_first[2]].map(Clone::clone);
    assert_eq!(list_ids(&*store, &q).await, expected);
    q.window.cursor = Cursor::Before(newest_first[1].internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [newest_first[0].clone()]);
}

/// Each status filter, alone and combined, returns exactly those statuses.
pub async fn list_filters_by_status(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let waiting = waitpoint(&ids, &env, at(0));
    let done = waitpoint(&ids, &env, at(1));
    let mut late = waitpoint(&ids, &env, at(2));
    late.timeout_at = Some(at(10));
    for w in [&waiting, &done, &late] {
        create(&*store, w).await;
    }
    finish(&*store, &done.id, completed(5, "1")).await;
    finish(&*store, &late.id, Finishing::Deadline { at: at(10) }).await;

    use WaitpointStatus::*;
    let cases: [(&[WaitpointStatus], Vec<&WaitpointId>); 7] = [
        (&[], vec![&late.id, &done.id, &waiting.id]),
        (&[Waiting], vec![&waiting.id]),
        (&[Completed], vec![&done.id]),
        (&[TimedOut], vec![&late.id]),
        (&[Waiting, TimedOut], vec![&late.id, &waiting.id]),
        (&[Completed, TimedOut], vec![&late.id, &done.id]),
        (&[Waiting, Completed, TimedOut], vec![&late.id, &done.id, &waiting.id]),
    ];
    for (statuses, expected) in cases {
        let mut q = query(&env);
        q.statuses = statuses.to_vec();
        let got = list_ids(&*store, &q).await;
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "statuses {statuses:?}");
    }

    let mut q = query(&env);
    q.statuses = vec![Waiting, TimedOut];
    q.window.limit = 1;
    assert_eq!(list_ids(&*store, &q).await, [late.id.clone()]);
    q.window.cursor = Cursor::After(late.id.internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, std::slice::from_ref(&waiting.id), "pages across statuses");
    q.window.cursor = Cursor::Before(waiting.id.internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [late.id.clone()]);
}

/// Idempotency key (exact), tags (any of, exact) and id bounds filter, and combine with each
/// other and with cursors.
pub async fn list_filters_by_idempotency_key_tags_and_dates(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut a = waitpoint(&ids, &env, at(0));
    a.tags = vec!["user:1".into(), "red".into()];
    a.idempotency_key = Some("key-a".into());
    let mut b = waitpoint(&ids, &env, at(1_000));
    b.tags = vec!["user:2".into(), "red".into(), "red".into()];
    let mut c = waitpoint(&ids, &env, at(2_000));
    c.tags = vec!["user:3".into()];
    c.idempotency_key = Some("key-c".into());
    for w in [&a, &b, &c] {
        create(&*store, w).await;
    }

    let mut q = query(&env);
    q.idempotency_key = Some("key-a".into());
    assert_eq!(list_ids(&*store, &q).await, [a.id.clone()]);
    q.idempotency_key = Some("key".into());
    assert!(list_ids(&*store, &q).await.is_empty(), "keys match exactly");

    let mut q = query(&env);
    q.tags = vec!["red".into()];
    assert_eq!(list_ids(&*store, &q).await, [b.id.clone(), a.id.clone()], "a tag given twice lists once");
    q.tags = vec!["user:1".into(), "user:3".into()];
    assert_eq!(list_ids(&*store, &q).await, [c.id.clone(), a.id.clone()]);
    q.tags = vec!["user".into()];
    assert!(list_ids(&*store, &q).await.is_empty(), "tags match exactly");
    q.tags = vec!["red".into(), "user:3".into()];
    q.window.limit = 1;
    q.window.cursor = Cursor::After(c.id.internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [b.id.clone()]);

    let mut q = query(&env);
    q.window.id_at_least = Some(internal_floor(at(1_000)));
    assert_eq!(list_ids(&*store, &q).await, [c.id.clone(), b.id.clone()]);
    q.window.id_below = Some(internal_floor(at(1_001)));
    assert_eq!(list_ids(&*store, &q).await, [b.id.clone()]);
    q.window.id_at_least = Some(b.id.internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [b.id.clone()], "the lower bound is inclusive");
    q.window.id_below = Some(b.id.internal().to_owned());
    assert!(list_ids(&*store, &q).await.is_empty(), "the upper bound is exclusive");
    q.window.id_at_least = None;
    q.window.id_below = Some(internal_floor(at(1_000)));
    assert_eq!(list_ids(&*store, &q).await, [a.id.clone()]);
    q.window.cursor = Cursor::Before(a.id.internal().to_owned());
    assert!(list_ids(&*store, &q).await.is_empty(), "bounds and cursors combine");
    q.window.cursor = Cursor::Newest;
    q.tags = vec!["user:3".into()];
    assert!(list_ids(&*store, &q).await.is_empty());
}

/// With several tags and other filters, a page holds the newest waitpoints matching everything,
/// whichever tag they have, and cursors continue from there.
pub async fn tag_pages_hold_the_newest_matches_of_all_tags(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut created = Vec::new();
    for i in 0..6 {
        let mut w = waitpoint(&ids, &env, at(i));
        w.tags = vec![if i % 2 == 0 { "x".into() } else { "y".into() }];
        create(&*store, &w).await;
        created.push(w.id);
    }
    for done in &created[4..] {
        finish(&*store, done, completed(10, "1")).await;
    }
    let mut q = query(&env);
    q.tags = vec!["x".into(), "y".into(), "z".into()];
    q.statuses = vec![WaitpointStatus::Waiting];
    q.window.limit = 2;
    assert_eq!(list_ids(&*store, &q).await, [created[3].clone(), created[2].clone()]);
    q.window.cursor = Cursor::After(created[2].internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [created[1].clone(), created[0].clone()]);
    q.window.cursor = Cursor::Before(created[1].internal().to_owned());
    assert_eq!(list_ids(&*store, &q).await, [created[2].clone(), created[3].clone()]);
}

/// One environment never sees another's waitpoints.
pub async fn list_is_scoped_to_an_environment(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let dev = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let mine = waitpoint(&ids, &dev, at(0));
    let mut theirs = waitpoint(&ids, &prod, at(1));
    theirs.tags = vec!["t".into()];
    create(&*store, &mine).await;
    create(&*store, &theirs).await;
    let mut q = query(&dev);
    assert_eq!(list_ids(&*store, &q).await, [mine.id]);
    q.tags = vec!["t".into()];
    assert!(list_ids(&*store, &q).await.is_empty());
}

/// Due timeouts come earliest first, only for waiting waitpoints, up to the limit.
pub async fn timeouts_are_found_in_deadline_order(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), None);

    let mut deadlines = Vec::new();
    for (i, deadline) in [5_000, 1_000, 3_000, 1_000, 9_000].into_iter().enumerate() {
        let mut w = waitpoint(&ids, &env, at(i as i64));
        w.timeout_at = Some(at(deadline));
        create(&*store, &w).await;
        deadlines.push(w.id);
    }
    create(&*store, &waitpoint(&ids, &env, at(0))).await;
    finish(&*store, &deadlines[1], completed(10, "1")).await;

    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(at(1_000)));
    assert_eq!(store.waitpoint_timeouts_due(at(999), 10).await.unwrap(), Vec::<WaitpointId>::new());
    assert_eq!(
        store.waitpoint_timeouts_due(at(5_000), 10).await.unwrap(),
        [deadlines[3].clone(), deadlines[2].clone(), deadlines[0].clone()]
    );
    assert_eq!(store.waitpoint_timeouts_due(at(5_000), 2).await.unwrap(), [deadlines[3].clone(), deadlines[2].clone()]);

    for id in store.waitpoint_timeouts_due(at(5_000), 10).await.unwrap() {
        finish(&*store, &id, Finishing::Deadline { at: at(5_000) }).await;
    }
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(at(9_000)));
}

/// Acknowledged writes are there after the store is dropped and the database opened again.
pub async fn writes_survive_reopening(db: &dyn TestDatabase) {
    let ids = IdGenerator::new();
    let versions = db.open().await.schema_versions().await.expect("schema_versions failed");
    assert_eq!(versions.applied, versions.known, "a store is open once its migrations are applied");
    let (env, waiting, done) = {
        let store = db.open().await;
        let env = new_env(&*store, &ids, "dev").await;
        let mut waiting = waitpoint(&ids, &env, at(0));
        waiting.timeout_at = Some(at(Duration::from_secs(60).as_millis() as i64));
        let other = waitpoint(&ids, &env, at(1));
        create(&*store, &waiting).await;
        create(&*store, &other).await;
        let FinishOutcome::Finished(done, _) = finish(&*store, &other.id, completed(2, r#"{"kept":true}"#)).await
        else {
            panic!("completion not applied");
        };
        (env, waiting, done)
    };
    let store = db.open().await;
    assert_eq!(store.environment_by_name("dev").await.unwrap(), env);
    assert_eq!(store.waitpoint_get(&waiting.id).await.unwrap(), waiting);
    assert_eq!(store.waitpoint_get(&done.id).await.unwrap(), done);
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), waiting.timeout_at);
}
