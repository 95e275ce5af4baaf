//! The part of the conformance suite the dashboard and the approval pages rely on: forced
//! timeouts, approval pages stored with their token, counts, tags by prefix, what times out
//! soonest, what waits longest, and the runs that waited on a token.

use waitpoint_types::{
    Approval, CompletedVia, IdGenerator, JournalKind, Output, RunStatus, WaitpointKind, WaitpointState, WaitpointStatus,
};

use super::runs::{claim_one, create_run, run, wait, worker};
use super::{TestDatabase, at, completed, create, finish, new_env, query, waitpoint};
use crate::{Cursor, FinishOutcome, Finishing, JournalOutcome, RunListQuery, Window};

/// A timeout forced from the dashboard applies at once, before the deadline or without one,
/// records how, and still only to a waiting token; forcing a datetime waitpoint completes it
/// (a skipped wait). Completions by the dashboard and by an approval page read back as such.
pub async fn forced_timeouts_apply_at_once_and_say_how(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut token = waitpoint(&ids, &env, at(0));
    token.timeout_at = Some(at(600_000));
    token.tags = vec!["t".into(), "t".into(), "u".into()];
    create(&*store, &token).await;
    let no_deadline = waitpoint(&ids, &env, at(1));
    create(&*store, &no_deadline).await;

    let forced = Finishing::Force { at: at(10), via: CompletedVia::Dashboard };
    for w in [&token, &no_deadline] {
        let FinishOutcome::Finished(done, _) = finish(&*store, &w.id, forced.clone()).await else {
            panic!("a forced timeout was not applied at once");
        };
        assert_eq!(done.state, WaitpointState::TimedOut { at: at(10), via: Some(CompletedVia::Dashboard) });
        assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), done, "reads back with its way");
        let again = Finishing::Force { at: at(20), via: CompletedVia::Dashboard };
        assert_eq!(finish(&*store, &w.id, again).await, FinishOutcome::Unchanged(done.clone()));
        assert_eq!(finish(&*store, &w.id, completed(30, "1")).await, FinishOutcome::Unchanged(done));
    }

    let mut by_tag = query(&env);
    by_tag.tags = vec!["t".into(), "u".into()];
    by_tag.statuses = vec![WaitpointStatus::TimedOut];
    let listed: Vec<_> = store.waitpoint_list(&by_tag).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(listed, [token.id.clone()], "a tag filter with statuses sees the new status");
    by_tag.statuses = vec![WaitpointStatus::Waiting, WaitpointStatus::Completed];
    assert!(store.waitpoint_list(&by_tag).await.unwrap().is_empty());

    let mut datetime = waitpoint(&ids, &env, at(2));
    datetime.kind = WaitpointKind::Datetime;
    datetime.timeout_at = Some(at(3_600_000));
    create(&*store, &datetime).await;
    let FinishOutcome::Finished(skipped, _) = finish(&*store, &datetime.id, forced.clone()).await else {
        panic!("a skipped wait was not applied");
    };
    assert_eq!(skipped.state, WaitpointState::Completed { at: at(10), via: CompletedVia::Dashboard, output: None });

    for via in [CompletedVia::Dashboard, CompletedVia::ApprovalPage] {
        let w = waitpoint(&ids, &env, at(3));
        create(&*store, &w).await;
        let output = Some(Output::from_json_text("{}"));
        let finishing = Finishing::Complete { at: at(40), via, output: output.clone() };
        assert!(matches!(finish(&*store, &w.id, finishing).await, FinishOutcome::Finished(_, _)));
        assert_eq!(
            store.waitpoint_get(&w.id).await.unwrap().state,
            WaitpointState::Completed { at: at(40), via, output }
        );
    }
}

/// A token's approval page is stored with it, field for field, through every way of creating.
pub async fn approval_pages_are_stored_with_their_token(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let approval: Approval = serde_json::from_value(serde_json::json!({
        "title": "Ship <it>?",
        "description": "line 1\nline \"2\"",
        "fields": [
            {"name": "amount", "type": "number", "required": true, "min": 0, "max": 1.5},
            {"name": "tier", "label": "Tier", "type": "choice", "options": ["a", "b"]},
            {"name": "note", "type": "text", "multiline": true},
            {"name": "ok", "type": "boolean"}
        ]
    }))
    .expect("a valid approval");
    let mut plain = waitpoint(&ids, &env, at(0));
    plain.approval = Some(approval.clone());
    let mut keyed = waitpoint(&ids, &env, at(1));
    keyed.approval = Some(approval);
    keyed.idempotency_key = Some("k".into());
    for w in [&plain, &keyed] {
        assert_eq!(create(&*store, w).await, *w);
        assert_eq!(store.waitpoint_get(&w.id).await.unwrap(), *w);
    }
    let listed = store.waitpoint_list(&query(&env)).await.unwrap();
    assert_eq!(listed, [keyed, plain]);
}

/// A count is the number of tokens (or runs) the list would return with the same query: every
/// filter, the cursor, and the limit as a cap.
pub async fn counts_are_what_lists_would_return(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let other = new_env(&*store, &ids, "other").await;
    let mut created = Vec::new();
    for i in 0..9 {
        let mut w = waitpoint(&ids, &env, at(i));
        w.tags = vec![format!("t{}", i % 3)];
        create(&*store, &w).await;
        created.push(w.id);
    }
    create(&*store, &waitpoint(&ids, &other, at(0))).await;
    for id in &created[..4] {
        finish(&*store, id, completed(100, "1")).await;
    }
    let mut cases = Vec::new();
    let mut q = query(&env);
    cases.push(q.clone());
    q.statuses = vec![WaitpointStatus::Waiting];
    cases.push(q.clone());
    q.tags = vec!["t0".into(), "t1".into()];
    cases.push(q.clone());
    q.window.cursor = Cursor::After(created[7].internal().to_owned());
    cases.push(q.clone());
    q.window.limit = 1;
    cases.push(q.clone());
    let mut q = query(&env);
    q.statuses = vec![WaitpointStatus::Completed, WaitpointStatus::TimedOut];
    cases.push(q.clone());
    q.window.limit = 2;
    cases.push(q);
    for q in cases {
        let listed = store.waitpoint_list(&q).await.unwrap().len() as u64;
        assert_eq!(store.waitpoint_count(&q).await.unwrap(), listed, "{q:?}");
    }
    let mut q = query(&env);
    q.statuses = vec![WaitpointStatus::Waiting];
    assert_eq!(store.waitpoint_count(&q).await.unwrap(), 5);

    let me = worker(&ids);
    for i in 0..3 {
        create_run(&*store, &run(&ids, &env, if i == 0 { "a" } else { "b" }, at(i))).await;
    }
    claim_one(&*store, &env, &me, "a", at(5)).await;
    let run_query = |statuses: Vec<RunStatus>, task_ids: Vec<String>, limit: usize| RunListQuery {
        environment_id: env.id.clone(),
        statuses,
        task_ids,
        idempotency_key: None,
        tags: Vec::new(),
        window: Window::newest(limit),
        now: at(10),
    };
    for (q, expected) in [
        (run_query(Vec::new(), Vec::new(), 100), 3),
        (run_query(vec![RunStatus::Queued], Vec::new(), 100), 2),
        (run_query(vec![RunStatus::Executing], Vec::new(), 100), 1),
        (run_query(Vec::new(), vec!["b".into()], 1), 1),
    ] {
        assert_eq!(store.run_count(&q).await.unwrap(), expected, "{q:?}");
        assert_eq!(store.run_list(&q).await.unwrap().len() as u64, expected);
    }
}

/// Tags are listed once each, in order, those starting with the prefix, only the environment's.
pub async fn tags_are_listed_once_each_by_prefix(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let other = new_env(&*store, &ids, "other").await;
    for (i, tags) in
        [vec!["user:2", "red"], vec!["user:1", "red"], vec!["user:10"], vec!["", "us"]].into_iter().enumerate()
    {
        let mut w = waitpoint(&ids, &env, at(i as i64));
        w.tags = tags.into_iter().map(str::to_owned).collect();
        create(&*store, &w).await;
    }
    let mut foreign = waitpoint(&ids, &other, at(0));
    foreign.tags = vec!["user:3".into()];
    create(&*store, &foreign).await;

    assert_eq!(store.waitpoint_tags(&env.id, "", 10).await.unwrap(), ["", "red", "us", "user:1", "user:10", "user:2"]);
    assert_eq!(store.waitpoint_tags(&env.id, "user:", 10).await.unwrap(), ["user:1", "user:10", "user:2"]);
    assert_eq!(store.waitpoint_tags(&env.id, "user:", 2).await.unwrap(), ["user:1", "user:10"]);
    assert_eq!(store.waitpoint_tags(&env.id, "user:1", 10).await.unwrap(), ["user:1", "user:10"]);
    assert!(store.waitpoint_tags(&env.id, "zz", 10).await.unwrap().is_empty());
    assert!(store.waitpoint_tags(&env.id, "red", 0).await.unwrap().is_empty());
}

/// The tokens timing out soonest are the environment's waiting tokens with a deadline, earliest
/// first; the runs waiting longest are its waiting runs, the earliest to wait first.
pub async fn what_times_out_soonest_and_what_waits_longest(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let other = new_env(&*store, &ids, "other").await;
    let mut deadlines = Vec::new();
    for (i, deadline) in [5_000, 1_000, 3_000].into_iter().enumerate() {
        let mut w = waitpoint(&ids, &env, at(i as i64));
        w.timeout_at = Some(at(deadline));
        create(&*store, &w).await;
        deadlines.push(w.id);
    }
    let mut done = waitpoint(&ids, &env, at(3));
    done.timeout_at = Some(at(10));
    create(&*store, &done).await;
    finish(&*store, &done.id, completed(4, "1")).await;
    create(&*store, &waitpoint(&ids, &env, at(4))).await;
    let mut foreign = waitpoint(&ids, &other, at(0));
    foreign.timeout_at = Some(at(1));
    create(&*store, &foreign).await;
    let mut datetime = waitpoint(&ids, &env, at(5));
    datetime.kind = WaitpointKind::Datetime;
    datetime.timeout_at = Some(at(2));
    create(&*store, &datetime).await;

    let soonest: Vec<_> =
        store.waitpoint_timeouts_soonest(&env.id, 10).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(soonest, [deadlines[1].clone(), deadlines[2].clone(), deadlines[0].clone()]);
    assert_eq!(store.waitpoint_timeouts_soonest(&env.id, 1).await.unwrap().len(), 1);

    let me = worker(&ids);
    let mut waiting = Vec::new();
    for (i, token) in deadlines.iter().enumerate() {
        create_run(&*store, &run(&ids, &env, "t", at(10 + i as i64))).await;
        let held = claim_one(&*store, &env, &me, "t", at(20)).await.run;
        // The third run begins to wait first.
        let when = at(1_000 - 100 * i as i64);
        assert!(matches!(wait(&*store, &held, 0, token, when).await, JournalOutcome::Suspended(_)));
        waiting.push(held.id);
    }
    create_run(&*store, &run(&ids, &other, "t", at(10))).await;
    let longest: Vec<_> = store.run_waiting_longest(&env.id, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(longest, [waiting[2].clone(), waiting[1].clone(), waiting[0].clone()]);
    finish(&*store, &deadlines[2], completed(2_000, "1")).await;
    let longest: Vec<_> = store.run_waiting_longest(&env.id, 1).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(longest, [waiting[1].clone()], "a resumed run waits no more");
}

/// The runs that waited on a token are found from it: those waiting now and those it released,
/// newest first, and no run that waited on something else.
pub async fn a_token_finds_the_runs_that_waited_on_it(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let token = waitpoint(&ids, &env, at(0));
    let other = waitpoint(&ids, &env, at(0));
    create(&*store, &token).await;
    create(&*store, &other).await;
    let me = worker(&ids);
    let mut runs = Vec::new();
    for (i, on) in [&token, &other, &token].into_iter().enumerate() {
        create_run(&*store, &run(&ids, &env, "t", at(1 + i as i64))).await;
        let held = claim_one(&*store, &env, &me, "t", at(10)).await.run;
        assert!(matches!(wait(&*store, &held, 0, &on.id, at(11)).await, JournalOutcome::Suspended(_)));
        runs.push(held.id);
    }
    let found: Vec<_> = store.waitpoint_waiters(&token.id, 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(found, [runs[2].clone(), runs[0].clone()]);
    finish(&*store, &token.id, completed(20, "1")).await;
    let released = store.waitpoint_waiters(&token.id, 10).await.unwrap();
    assert_eq!(released.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), [runs[2].clone(), runs[0].clone()]);
    assert!(released.iter().all(|r| r.status(at(30)) == RunStatus::Queued), "released by the token");
    assert_eq!(store.waitpoint_waiters(&token.id, 1).await.unwrap().len(), 1);
    let journal = super::journal(&*store, &runs[0]).await.unwrap();
    assert_eq!(journal[0].kind, JournalKind::WaitToken);
}
