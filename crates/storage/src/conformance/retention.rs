//! The retention half of the conformance suite: what a purge deletes and what it keeps, by the
//! rule stated on [`Purge`], on a fixed timeline: records finish on day 1, the cutoff is day 30,
//! and the purge runs on day 60.

use waitpoint_types::{
    IdGenerator, JournalKind, Run, RunError, RunId, RunState, Waitpoint, WaitpointId, WaitpointKind, WaitpointState,
    WaitpointStatus,
};

use super::runs::{claim_one, create_run, datetime_wait, end, entry, record, run, wait, worker};
use super::{TestDatabase, at, completed, create, finish, list_ids, new_env, query, waitpoint, write_one};
use crate::{
    CreateOutcome, FinishOutcome, Finishing, JournalOutcome, Purge, Purged, RunCreateToken, RunEndOutcome,
    RunListQuery, RunOutcome, StorageError, Store, Window, WriteOp,
};

const DAY: i64 = 86_400_000;
/// Records that finished before this may go.
const CUTOFF: i64 = 30 * DAY;
/// When the purges run: idempotency keys are judged at this time.
const NOW: i64 = 60 * DAY;

/// A purge at `NOW` of what finished before `CUTOFF`, at most `limit` of each kind.
async fn purge(store: &dyn Store, limit: usize) -> Purged {
    let purge = Purge { finished_before: at(CUTOFF), now: at(NOW), limit };
    store.retention_purge(&purge).await.expect("retention_purge failed")
}

fn purged(waitpoints: u64, runs: u64, journal_entries: u64) -> Purged {
    Purged { waitpoints, runs, journal_entries, events: 0 }
}

/// Creates `w` and completes it at `at(finished_ms)`; returns it as stored.
async fn finished_token(store: &dyn Store, w: &Waitpoint, finished_ms: i64) -> Waitpoint {
    create(store, w).await;
    match finish(store, &w.id, completed(finished_ms, "1")).await {
        FinishOutcome::Finished(done, _) => done,
        other => panic!("expected Finished, got {other:?}"),
    }
}

async fn is_gone(store: &dyn Store, id: &WaitpointId) -> bool {
    matches!(store.waitpoint_get(id).await, Err(StorageError::NotFound))
}

async fn run_is_gone(store: &dyn Store, id: &RunId) -> bool {
    matches!(store.run_get(id).await, Err(StorageError::NotFound)) && super::journal(store, id).await.is_none()
}

/// Creates `new` and cancels it at `at(canceled_ms)`.
async fn canceled_run(store: &dyn Store, new: &Run, canceled_ms: i64) -> Run {
    create_run(store, new).await;
    let op =
        WriteOp::RunCancel { run: new.id.clone(), environment_id: new.environment_id.clone(), at: at(canceled_ms) };
    match write_one(store, op).await {
        RunEndOutcome::Ended(canceled) => canceled,
        other => panic!("expected Ended, got {other:?}"),
    }
}

/// Tokens (and unused datetime waitpoints) of every environment that finished before the
/// cutoff go, with their tags; waiting ones, recent ones, and those whose idempotency key is
/// still active at `now` (or never expires) stay, and a create with such a key still finds its
/// token.
pub async fn retention_deletes_old_finished_tokens_and_keeps_the_rest(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let keyed = |key: &str, expires: Option<i64>, created_ms: i64| {
        let mut w = waitpoint(&ids, &env, at(created_ms));
        w.idempotency_key = Some(key.into());
        w.idempotency_key_expires_at = expires.map(at);
        w
    };

    let mut old = waitpoint(&ids, &env, at(0));
    old.tags = vec!["gone".into(), "both".into(), "gone".into()];
    let old = finished_token(&*store, &old, DAY).await;
    let mut timed_out = waitpoint(&ids, &env, at(1));
    timed_out.timeout_at = Some(at(DAY));
    create(&*store, &timed_out).await;
    assert!(matches!(
        finish(&*store, &timed_out.id, Finishing::Deadline { at: at(DAY) }).await,
        FinishOutcome::Finished(..)
    ));
    let just_before = finished_token(&*store, &waitpoint(&ids, &env, at(2)), CUTOFF - 1).await;
    let expired_key = finished_token(&*store, &keyed("expired", Some(NOW - 1), 3), DAY).await;
    let superseded = finished_token(&*store, &keyed("k", Some(10), 4), DAY).await;
    let successor = finished_token(&*store, &keyed("k", Some(NOW + DAY), 20), DAY).await;
    let mut unused_datetime = waitpoint(&ids, &env, at(5));
    unused_datetime.kind = WaitpointKind::Datetime;
    unused_datetime.timeout_at = Some(at(DAY));
    create(&*store, &unused_datetime).await;
    assert!(matches!(
        finish(&*store, &unused_datetime.id, Finishing::Deadline { at: at(DAY) }).await,
        FinishOutcome::Finished(..)
    ));
    let foreign = finished_token(&*store, &waitpoint(&ids, &prod, at(6)), DAY).await;

    let at_cutoff = finished_token(&*store, &waitpoint(&ids, &env, at(7)), CUTOFF).await;
    let key_ends_now = finished_token(&*store, &keyed("ends-now", Some(NOW), 8), DAY).await;
    let key_forever = finished_token(&*store, &keyed("forever", None, 9), DAY).await;
    let mut waiting = waitpoint(&ids, &env, at(10));
    waiting.tags = vec!["both".into()];
    create(&*store, &waiting).await;
    let successor = store.waitpoint_get(&successor.id).await.unwrap();

    assert_eq!(purge(&*store, 100).await, purged(7, 0, 0));
    for gone in [&old.id, &timed_out.id, &just_before.id, &expired_key.id, &superseded.id] {
        assert!(is_gone(&*store, gone).await, "{gone} finished before the cutoff and is unprotected");
    }
    assert!(is_gone(&*store, &unused_datetime.id).await, "a datetime waitpoint goes as a token does");
    assert!(is_gone(&*store, &foreign.id).await, "retention applies to every environment");
    let kept = [&waiting, &key_forever, &key_ends_now, &at_cutoff, &successor];
    for w in kept {
        assert_eq!(&store.waitpoint_get(&w.id).await.unwrap(), w, "{} is kept unchanged", w.id);
    }

    let listed = list_ids(&*store, &query(&env)).await;
    let mut newest_first: Vec<WaitpointId> = kept.iter().map(|w| w.id.clone()).collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, newest_first);
    assert_eq!(store.waitpoint_count(&query(&env)).await.unwrap(), 5);
    let mut completed_only = query(&env);
    completed_only.statuses = vec![WaitpointStatus::Completed, WaitpointStatus::TimedOut];
    assert_eq!(store.waitpoint_count(&completed_only).await.unwrap(), 4);
    let mut tagged = query(&env);
    tagged.tags = vec!["gone".into(), "both".into()];
    assert_eq!(list_ids(&*store, &tagged).await, [waiting.id.clone()], "the tag rows went with their tokens");
    assert_eq!(store.waitpoint_tags(&env.id, "", 10).await.unwrap(), ["both"]);
    assert!(list_ids(&*store, &query(&prod)).await.is_empty());

    assert_eq!(purge(&*store, 100).await, Purged::default(), "nothing more is due");
    let mut again = keyed("forever", None, NOW);
    assert_eq!(
        write_one::<CreateOutcome>(&*store, WriteOp::Create(again.clone())).await,
        CreateOutcome::Existing(key_forever.clone()),
        "a key that never expires still finds its token"
    );
    again.idempotency_key = Some("expired".into());
    assert_eq!(create(&*store, &again).await, again, "a purged token's expired key is free");
}

/// A token that a run which has not finished refers to stays, however old: one it created
/// (its replay reads the token back), one it waited on; so does the token it waits on now. Once
/// the run finishes, its tokens follow the rule like any other.
pub async fn retention_keeps_tokens_that_live_runs_refer_to(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let create_token = |held: &Run, token: &Waitpoint| {
        WriteOp::RunCreateToken(RunCreateToken {
            run: held.id.clone(),
            environment_id: env.id.clone(),
            epoch: held.epoch,
            seq: 0,
            waitpoint: token.clone(),
        })
    };

    create_run(&*store, &run(&ids, &env, "creator", at(0))).await;
    let creator = claim_one(&*store, &env, &me, "creator", at(1)).await.run;
    let created = waitpoint(&ids, &env, at(2));
    assert!(matches!(write_one(&*store, create_token(&creator, &created)).await, JournalOutcome::TokenCreated(..)));
    finish(&*store, &created.id, completed(DAY, "1")).await;

    let waited_on = waitpoint(&ids, &env, at(0));
    create(&*store, &waited_on).await;
    create_run(&*store, &run(&ids, &env, "waiter", at(0))).await;
    let waiter = claim_one(&*store, &env, &me, "waiter", at(1)).await.run;
    assert!(matches!(wait(&*store, &waiter, 0, &waited_on.id, at(2)).await, JournalOutcome::Suspended(_)));
    finish(&*store, &waited_on.id, completed(DAY, "1")).await;

    create_run(&*store, &run(&ids, &env, "done", at(0))).await;
    let done = claim_one(&*store, &env, &me, "done", at(1)).await.run;
    let done_token = waitpoint(&ids, &env, at(2));
    assert!(matches!(write_one(&*store, create_token(&done, &done_token)).await, JournalOutcome::TokenCreated(..)));
    finish(&*store, &done_token.id, completed(DAY, "1")).await;
    end(&*store, &done, RunOutcome::Completed { output: "1".into() }, at(DAY + 1)).await;

    let recent_token = waitpoint(&ids, &env, at(0));
    create(&*store, &recent_token).await;
    create_run(&*store, &run(&ids, &env, "recent", at(0))).await;
    let recent = claim_one(&*store, &env, &me, "recent", at(1)).await.run;
    assert!(matches!(wait(&*store, &recent, 0, &recent_token.id, at(2)).await, JournalOutcome::Suspended(_)));
    finish(&*store, &recent_token.id, completed(DAY, "1")).await;
    let recent = claim_one(&*store, &env, &me, "recent", at(CUTOFF)).await.run;
    end(&*store, &recent, RunOutcome::Completed { output: "1".into() }, at(CUTOFF + 1)).await;

    let pending = waitpoint(&ids, &env, at(0));
    create(&*store, &pending).await;
    create_run(&*store, &run(&ids, &env, "pending", at(0))).await;
    let sleeper = claim_one(&*store, &env, &me, "pending", at(1)).await.run;
    assert!(matches!(wait(&*store, &sleeper, 0, &pending.id, at(2)).await, JournalOutcome::Suspended(_)));

    assert_eq!(purge(&*store, 100).await, purged(2, 1, 1));
    assert!(is_gone(&*store, &done_token.id).await, "its run finished before the cutoff");
    assert!(run_is_gone(&*store, &done.id).await);
    assert!(is_gone(&*store, &recent_token.id).await, "only a finished run refers to it");
    assert_eq!(super::journal(&*store, &recent.id).await.unwrap().len(), 1, "a recent run keeps its journal");
    for kept in [&created.id, &waited_on.id, &pending.id] {
        assert!(store.waitpoint_get(kept).await.is_ok(), "{kept} is referred to by a live run");
    }
    assert_eq!(
        store.waitpoint_waiters(&pending.id, 10).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>(),
        std::slice::from_ref(&sleeper.id)
    );

    end(&*store, &creator, RunOutcome::Completed { output: "1".into() }, at(CUTOFF + 2)).await;
    assert_eq!(purge(&*store, 100).await, purged(1, 0, 0), "the creator finished: its token follows the rule");
    assert!(is_gone(&*store, &created.id).await);
    assert!(store.run_get(&creator.id).await.is_ok(), "the creator finished after the cutoff");
}

/// Runs that finished before the cutoff (completed, failed, canceled) go with their journals,
/// their tags and their datetime waitpoints; runs that have not finished, recent ones, and
/// those whose idempotency key is active at `now` (or never expires) stay.
pub async fn retention_deletes_old_finished_runs_with_their_journals_and_tags(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let completes = |held: Run, finished_ms: i64| {
        let store = store.clone();
        async move {
            match end(&*store, &held, RunOutcome::Completed { output: "1".into() }, at(finished_ms)).await {
                RunEndOutcome::Ended(done) => done,
                other => panic!("expected Ended, got {other:?}"),
            }
        }
    };

    let mut tagged = run(&ids, &env, "tagged", at(0));
    tagged.tags = vec!["gone".into(), "both".into(), "gone".into()];
    create_run(&*store, &tagged).await;
    let tagged = claim_one(&*store, &env, &me, "tagged", at(1)).await.run;
    for seq in 0..2 {
        let step = entry(seq, JournalKind::Step, "step", Some("1"));
        assert!(matches!(record(&*store, &tagged, step).await, JournalOutcome::Recorded(_)));
    }
    let tagged = completes(tagged, DAY).await;
    let mut fatal = run(&ids, &env, "fatal", at(0));
    fatal.max_attempts = 1;
    create_run(&*store, &fatal).await;
    let fatal = claim_one(&*store, &env, &me, "fatal", at(1)).await.run;
    let failure = RunOutcome::Failed { error: RunError::new("TaskError", "boom"), retry_at: None };
    assert!(matches!(end(&*store, &fatal, failure, at(DAY)).await, RunEndOutcome::Ended(_)));
    let canceled = canceled_run(&*store, &run(&ids, &env, "canceled", at(0)), DAY).await;
    let mut expired_key = run(&ids, &env, "keyed", at(0));
    expired_key.idempotency_key = Some("expired".into());
    expired_key.idempotency_key_expires_at = Some(at(NOW - 1));
    let expired_key = canceled_run(&*store, &expired_key, DAY).await;

    create_run(&*store, &run(&ids, &env, "slept", at(0))).await;
    let slept = claim_one(&*store, &env, &me, "slept", at(1)).await.run;
    let (slept_until, op) = datetime_wait(&ids, &env, &slept, "nap", at(2), at(DAY));
    assert!(matches!(write_one(&*store, WriteOp::RunWait(op)).await, JournalOutcome::Suspended(_)));
    finish(&*store, &slept_until.id, Finishing::Deadline { at: at(DAY) }).await;
    let slept = claim_one(&*store, &env, &me, "slept", at(DAY)).await.run;
    completes(slept.clone(), DAY + 1).await;

    create_run(&*store, &run(&ids, &env, "sleeping", at(0))).await;
    let sleeping = claim_one(&*store, &env, &me, "sleeping", at(1)).await.run;
    let (sleeping_until, op) = datetime_wait(&ids, &env, &sleeping, "long nap", at(2), at(NOW + DAY));
    assert!(matches!(write_one(&*store, WriteOp::RunWait(op)).await, JournalOutcome::Suspended(_)));
    let mut recent = run(&ids, &env, "recent", at(0));
    recent.tags = vec!["both".into()];
    create_run(&*store, &recent).await;
    let recent = claim_one(&*store, &env, &me, "recent", at(1)).await.run;
    let recent = completes(recent, CUTOFF).await;
    let mut key_ends_now = run(&ids, &env, "keyed", at(0));
    key_ends_now.idempotency_key = Some("ends-now".into());
    key_ends_now.idempotency_key_expires_at = Some(at(NOW));
    let key_ends_now = canceled_run(&*store, &key_ends_now, DAY).await;
    let mut key_forever = run(&ids, &env, "keyed", at(0));
    key_forever.idempotency_key = Some("forever".into());
    let key_forever = canceled_run(&*store, &key_forever, DAY).await;
    let queued = create_run(&*store, &run(&ids, &env, "queued", at(0))).await;
    create_run(&*store, &run(&ids, &env, "executing", at(0))).await;
    let executing = claim_one(&*store, &env, &me, "executing", at(1)).await.run;

    assert_eq!(purge(&*store, 100).await, purged(1, 5, 3));
    for gone in [&tagged.id, &fatal.id, &canceled.id, &expired_key.id, &slept.id] {
        assert!(run_is_gone(&*store, gone).await, "{gone} finished before the cutoff");
    }
    assert!(is_gone(&*store, &slept_until.id).await, "a datetime waitpoint goes with its run");
    assert_eq!(
        store.waitpoint_get(&sleeping_until.id).await.unwrap().state,
        WaitpointState::Waiting,
        "a sleeping run keeps its datetime waitpoint"
    );
    let sleeping = store.run_get(&sleeping.id).await.unwrap();
    assert!(matches!(sleeping.state, RunState::Waiting { .. }));
    let kept = [&executing, &queued, &key_forever, &key_ends_now, &recent, &sleeping];
    for r in kept {
        assert_eq!(&store.run_get(&r.id).await.unwrap(), r, "{} is kept unchanged", r.id);
    }

    let runs = |tags: Vec<String>| RunListQuery {
        environment_id: env.id.clone(),
        statuses: Vec::new(),
        task_ids: Vec::new(),
        idempotency_key: None,
        tags,
        window: Window::newest(100),
        now: at(NOW),
    };
    let listed: Vec<RunId> = store.run_list(&runs(Vec::new())).await.unwrap().into_iter().map(|r| r.id).collect();
    let mut newest_first: Vec<RunId> = kept.iter().map(|r| r.id.clone()).collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, newest_first);
    assert_eq!(store.run_count(&runs(Vec::new())).await.unwrap(), 6);
    let by_tag = store.run_list(&runs(vec!["gone".into(), "both".into()])).await.unwrap();
    assert_eq!(by_tag.into_iter().map(|r| r.id).collect::<Vec<_>>(), std::slice::from_ref(&recent.id));
    assert_eq!(purge(&*store, 100).await, Purged::default(), "nothing more is due");
}

/// A purge deletes at most `limit` waitpoints and `limit` runs, the earliest finished first,
/// and says exactly how many; the calls that follow take the rest.
pub async fn retention_purges_at_most_limit_the_earliest_finished_first(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut tokens = Vec::new();
    for (i, finished) in [5, 1, 3, 2, 4].into_iter().enumerate() {
        let w = waitpoint(&ids, &env, at(i as i64));
        tokens.push((finished, finished_token(&*store, &w, DAY + finished).await.id));
    }
    let mut runs = Vec::new();
    for (i, finished) in [3, 1, 2].into_iter().enumerate() {
        let r = run(&ids, &env, "t", at(i as i64));
        runs.push((finished, canceled_run(&*store, &r, DAY + finished).await.id));
    }
    tokens.sort();
    runs.sort();
    let remaining_tokens = || async {
        let mut left = Vec::new();
        for (_, id) in &tokens {
            if !is_gone(&*store, id).await {
                left.push(id.clone());
            }
        }
        left
    };
    let remaining_runs = || async {
        let mut left = Vec::new();
        for (_, id) in &runs {
            if store.run_get(id).await.is_ok() {
                left.push(id.clone());
            }
        }
        left
    };

    let first = purge(&*store, 2).await;
    assert_eq!(first, purged(2, 2, 0));
    assert!(first.was_full(2));
    let token_ids = |from: usize| tokens[from..].iter().map(|(_, id)| id.clone()).collect::<Vec<_>>();
    let run_ids = |from: usize| runs[from..].iter().map(|(_, id)| id.clone()).collect::<Vec<_>>();
    assert_eq!(remaining_tokens().await, token_ids(2), "the two earliest finished tokens went first");
    assert_eq!(remaining_runs().await, run_ids(2), "the two earliest finished runs went first");
    assert_eq!(purge(&*store, 2).await, purged(2, 1, 0));
    assert_eq!(remaining_tokens().await, token_ids(4));
    let last = purge(&*store, 2).await;
    assert_eq!(last, purged(1, 0, 0));
    assert!(!last.was_full(2), "a call that deleted fewer than its limit found nothing more");
    assert!(remaining_tokens().await.is_empty() && remaining_runs().await.is_empty());
    assert_eq!(purge(&*store, 2).await, Purged::default());
    assert_eq!(store.waitpoint_count(&query(&env)).await.unwrap(), 0);
}
