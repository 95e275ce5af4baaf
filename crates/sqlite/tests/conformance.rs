//! The storage conformance suite against a real SQLite file on disk.

use std::sync::Arc;

use tempfile::TempDir;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::Store;
use waitpoint_storage::conformance::TestDatabase;

/// A fresh database file in its own temporary directory, removed when the test ends.
struct SqliteFile {
    dir: TempDir,
}

#[async_trait::async_trait]
impl TestDatabase for SqliteFile {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(self.dir.path().join("waitpoint.db")).await.expect("open SQLite"))
    }
}

async fn fresh() -> Option<SqliteFile> {
    Some(SqliteFile { dir: TempDir::new().expect("temporary directory") })
}

waitpoint_storage::conformance_tests!(fresh());
