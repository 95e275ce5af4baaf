//! The database's files on disk: they hold secret keys and signing secrets, so only their
//! owner may read them; they shrink as retention deletes records.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::{Finish, Finishing, Purge, Store, Takers, WriteOp};
use waitpoint_types::{
    CompletedVia, Environment, IdGenerator, Output, Secret, Timestamp, Waitpoint, WaitpointKind, WaitpointState,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Regression: the data directory was created 755 and the database, `-wal` and `-shm` 644, so
/// any local user could read the keys.
#[tokio::test]
async fn a_new_database_and_its_directory_are_private_to_their_owner() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("data").join("nested");
    let path = dir.join("waitpoint.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let at = Timestamp::from_millis(1_764_000_000_000);
    let environment = Environment {
        id: IdGenerator::new().environment(at),
        name: "dev".into(),
        api_key: Secret::new("tr_dev_filesTestKey0123456789".into()),
        signing_secret: Secret::new("signing".into()),
        created_at: at,
    };
    store.environment_create(&environment).await.unwrap();

    assert_eq!(mode(&root.path().join("data")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for file in ["waitpoint.db", "waitpoint.db-wal", "waitpoint.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

/// An existing directory and database keep the permissions their owner gave them.
#[tokio::test]
async fn existing_files_keep_their_permissions() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("waitpoint.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    SqliteStore::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o640);
}

/// A database that a newer build migrated says so, so that readiness can tell an operator to
/// upgrade the node.
#[tokio::test]
async fn a_database_migrated_by_a_newer_build_says_so() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("waitpoint.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let known = store.schema_versions().await.unwrap().known;
    let newer = rusqlite::Connection::open(&path).unwrap();
    newer.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)", [known + 1]).unwrap();
    let versions = store.schema_versions().await.unwrap();
    assert_eq!((versions.applied, versions.known), (known + 1, known));
}

/// `count` tokens of `environment`, each with a 2 KiB output, completed at `at`.
async fn finished_tokens(store: &SqliteStore, environment: &Environment, count: usize, at: Timestamp) {
    let ids = IdGenerator::new();
    let output = Output::from_json_text(&format!("\"{}\"", "x".repeat(2_048)));
    for _ in 0..count / 500 {
        let tokens: Vec<Waitpoint> = (0..500)
            .map(|_| Waitpoint {
                id: ids.waitpoint(at),
                kind: WaitpointKind::Manual,
                environment_id: environment.id.clone(),
                state: WaitpointState::Waiting,
                idempotency_key: None,
                inactive_idempotency_key: None,
                idempotency_key_expires_at: None,
                timeout_at: None,
                heartbeat: None,
                callback_verifier: None,
                tags: vec!["retention".into()],
                created_at: at,
                approval: None,
                output_schema: None,
            })
            .collect();
        let finishes = tokens.iter().map(|token| {
            let finishing = Finishing::Complete { at, via: CompletedVia::SecretKey, output: Some(output.clone()) };
            WriteOp::Finish(Finish {
                id: token.id.clone(),
                environment_id: None,
                finishing,
                hand_to: Takers::default(),
            })
        });
        let ops = tokens.iter().cloned().map(WriteOp::Create).chain(finishes).collect();
        store.write_batch(ops).await.unwrap();
    }
}

/// Purges everything that finished before `before`, and the events of the log appended
/// before it, 500 of a kind at a time, as the retention loop does; returns the waitpoints
/// deleted.
async fn purge_all(store: &SqliteStore, before: Timestamp) -> u64 {
    let purge = Purge { finished_before: before, now: before, limit: 500 };
    let mut deleted = 0;
    loop {
        let purged = store.retention_purge(&purge).await.unwrap();
        deleted += purged.waitpoints;
        if !purged.was_full(purge.limit) {
            break;
        }
    }
    while store.events_purge(before, purge.limit).await.unwrap() == 500 {}
    deleted
}

/// The database's pages, and how many of them are free.
fn pages(path: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get::<_, i64>(0)).unwrap();
    (count("page_count"), count("freelist_count"))
}

fn dev(at: Timestamp) -> Environment {
    Environment {
        id: IdGenerator::new().environment(at),
        name: "dev".into(),
        api_key: Secret::new("tr_dev_filesTestKey0123456789".into()),
        signing_secret: Secret::new("signing".into()),
        created_at: at,
    }
}

/// A new database gives the pages retention frees back to the file system as it purges.
#[tokio::test]
async fn a_new_database_shrinks_as_retention_deletes() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("waitpoint.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.returns_free_pages().await.unwrap());
    let at = Timestamp::from_millis(1_764_000_000_000);
    let environment = dev(at);
    store.environment_create(&environment).await.unwrap();
    finished_tokens(&store, &environment, 5_000, at).await;
    let (full, _) = pages(&path);

    assert_eq!(purge_all(&store, Timestamp::from_millis(at.as_millis() + 1)).await, 5_000);
    let (after, free) = pages(&path);
    assert!(after * 10 < full, "{full} pages before the purge, {after} after");
    assert_eq!(free, 0, "every page freed was given back");
}

/// A database made before waitpoint gave free pages back reuses them but keeps its size, until
/// `vacuum` rewrites it once; from then on it shrinks as a new one does.
#[tokio::test]
async fn an_older_database_shrinks_once_vacuumed() {
    let root = TempDir::new().unwrap();
    let path = root.path().join("waitpoint.db");
    let older = rusqlite::Connection::open(&path).unwrap();
    older.pragma_update(None, "journal_mode", "WAL").unwrap();
    drop(older);
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(!store.returns_free_pages().await.unwrap());
    let at = Timestamp::from_millis(1_764_000_000_000);
    let environment = dev(at);
    store.environment_create(&environment).await.unwrap();
    finished_tokens(&store, &environment, 5_000, at).await;
    let (full, _) = pages(&path);
    purge_all(&store, Timestamp::from_millis(at.as_millis() + 1)).await;
    let (after, free) = pages(&path);
    assert_eq!(after, full, "the file keeps its size");
    assert!(free * 10 > full * 9, "the pages freed are free for new records: {free} of {full}");
    drop(store);

    waitpoint_sqlite::vacuum(&path).await.unwrap();
    let (vacuumed, free) = pages(&path);
    assert!(vacuumed * 10 < full && free == 0, "{full} pages before, {vacuumed} after");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.returns_free_pages().await.unwrap());
    assert_eq!(store.environment_by_name("dev").await.unwrap(), environment, "the data is all there");
    finished_tokens(&store, &environment, 5_000, at).await;
    let (refilled, _) = pages(&path);
    purge_all(&store, Timestamp::from_millis(at.as_millis() + 1)).await;
    let (after, free) = pages(&path);
    assert!(after * 10 < refilled && free == 0, "{refilled} pages before the purge, {after} after");
    assert!(matches!(
        waitpoint_sqlite::vacuum(&root.path().join("none.db")).await,
        Err(waitpoint_storage::StorageError::NotFound)
    ));
}
