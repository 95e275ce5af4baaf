//! Upgrades: a database made by an earlier build is migrated with what it holds.

use tempfile::TempDir;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::{Finish, FinishOutcome, Finishing, Store, Takers, WriteOp, WriteOutcome};
use waitpoint_types::{CompletedVia, RunId, RunState, Timestamp, WaitpointId};

/// A database made before runs waited on sets keeps what its runs wait on: a run waiting on a
/// token when the build is upgraded resumes when the token completes, and the runs that waited
/// before are still found from their token.
#[tokio::test]
async fn runs_waiting_before_wait_sets_resume_after_the_upgrade() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("waitpoint.db");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
        )
        .unwrap();
        let migrations = [
            include_str!("../migrations/0001_waitpoints.sql"),
            include_str!("../migrations/0002_runs.sql"),
            include_str!("../migrations/0003_workers.sql"),
            include_str!("../migrations/0004_dashboard.sql"),
        ];
        for (version, sql) in (1..).zip(migrations) {
            old.execute_batch(sql).unwrap();
            old.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)", [version]).unwrap();
        }
        old.execute_batch(
            "INSERT INTO environments VALUES ('env1', 'dev', 'tr_dev_k', 's', 0);
             INSERT INTO waitpoints (id, environment_id, status, tags, created_at, kind)
                 VALUES ('tok1', 'env1', 'WAITING', '[]', 0, 'MANUAL'), ('tok0', 'env1', 'COMPLETED', '[]', 0, 'MANUAL');
             INSERT INTO runs (id, environment_id, task_id, payload, status, waiting_on, waiting_seq, attempt,
                               max_attempts, epoch, tags, created_at, updated_at)
                 VALUES ('run1', 'env1', 't', '{}', 'WAITING', 'tok1', 1, 1, 3, 1, '[]', 0, 0);
             INSERT INTO run_journal (run_id, seq, kind, name, result)
                 VALUES ('run1', 0, 'WAIT_TOKEN', 'waitpoint_tok0', '{\"ok\":true,\"output\":null}'),
                        ('run1', 1, 'WAIT_TOKEN', 'waitpoint_tok1', NULL);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let run = RunId::from_internal("run1".into());
    assert_eq!(store.run_get(&run).await.unwrap().state, RunState::Waiting { seq: 1, needed: 1 });
    let waits: Vec<_> = store.run_waits(&run, 1).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(waits, [WaitpointId::from_internal("tok1".into())]);
    let earlier = store.waitpoint_waiters(&WaitpointId::from_internal("tok0".into()), 10).await.unwrap();
    assert_eq!(earlier.len(), 1, "the runs that waited before are found from their token");

    let finish = Finish {
        id: WaitpointId::from_internal("tok1".into()),
        environment_id: None,
        finishing: Finishing::Complete { at: Timestamp::from_millis(10), via: CompletedVia::SecretKey, output: None },
        hand_to: Takers::default(),
    };
    let outcomes = store.write_batch(vec![WriteOp::Finish(finish)]).await.unwrap();
    let [WriteOutcome::Finish(FinishOutcome::Finished(_, resumed))] = outcomes.as_slice() else {
        panic!("not finished: {outcomes:?}")
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&run));
    let journal = waitpoint_storage::conformance::journal(&store, &run).await.expect("the run exists");
    assert_eq!(journal[1].result.as_deref(), Some(r#"{"ok":true,"output":null}"#));
}
