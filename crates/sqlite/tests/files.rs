//! The database's files on disk: they hold secret keys and signing secrets, so only their
//! owner may read them.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::Store;
use waitpoint_types::{Environment, IdGenerator, Secret, Timestamp};

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
