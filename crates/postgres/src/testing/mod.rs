//! Test support (feature `test-util`): a fresh schema in a real PostgreSQL server per test.
//!
//! The server is chosen once per test process: the one at `WAITPOINT_TEST_POSTGRES_URL` when it
//! is set; else the default `postgres://postgres@127.0.0.1:5432/test` when something answers
//! there; else a throwaway cluster of the process's own, started from PostgreSQL's installed
//! binaries and removed when the process ends; else none, and the PostgreSQL tests are skipped
//! with a note, except under `CI=true`, where they fail.
//!
//! A test creates its own schema `wp_test_…` and opens stores whose `search_path` is that
//! schema, so tests run side by side and a reopened store sees the same data. The schema is
//! dropped when the test ends.
//!
//! # Layout
//! - [`PostgresSchema`]: a test's schema, and [`admin`] connections.
//! - [`STORE_TABLES`]: the tables the store keeps up, which its migrations must match.
//! - `server`: which server the tests of this process use.
//! - `cluster`: the throwaway cluster.

mod cluster;
mod server;

use std::sync::Arc;

use crate::PostgresStore;
pub use crate::upkeep::TABLES as STORE_TABLES;
use tokio_postgres::NoTls;
use waitpoint_storage::Store;
use waitpoint_storage::conformance::TestDatabase;

/// A schema of its own in the test server.
#[derive(Debug)]
pub struct PostgresSchema {
    admin_url: String,
    schema: String,
}

impl PostgresSchema {
    /// Creates a new, empty schema, or returns `None` when there is no server and the
    /// PostgreSQL tests are skipped: the test then returns without doing anything.
    ///
    /// Panics, naming the server, when it cannot create the schema; and when there is no
    /// server under `CI=true` or the throwaway cluster did not start, saying why.
    pub async fn fresh() -> Option<Self> {
        let admin_url = server::url().await?.to_owned();
        let schema = format!("wp_test_{}", waitpoint_types::id::random_alphanumeric(16).to_lowercase());
        let client = admin(&admin_url).await.unwrap_or_else(|error| {
            let cause = std::error::Error::source(&error).map(|cause| format!(": {cause}")).unwrap_or_default();
            panic!(
                "cannot connect to the test PostgreSQL server at {admin_url} (set {} to another server): \
                 {error}{cause}",
                server::URL_VARIABLE
            )
        });
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create the test schema");
        Some(Self { admin_url, schema })
    }

    /// The URL of the test server with this schema as the `search_path`.
    pub fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.admin_url, self.schema)
    }

    /// Opens a store on this schema.
    pub async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url()).await.expect("connect to the test schema")
    }

    /// How many connections listen for this schema's wake-ups (one per subscription).
    pub async fn listeners(&self) -> i64 {
        self.on_listeners("count(*)").await
    }

    /// Ends the connections that listen for this schema's wake-ups, as a lost connection would
    /// end them, and says how many it ended.
    pub async fn end_listeners(&self) -> i64 {
        self.on_listeners("count(*) FILTER (WHERE pg_terminate_backend(pid))").await
    }

    /// Evaluates `aggregate` over this schema's listening connections (their last statement is
    /// the `LISTEN` on the schema's channel).
    async fn on_listeners(&self, aggregate: &str) -> i64 {
        let client = admin(&self.url()).await.expect("connect to the test schema");
        let sql = format!(
            "SELECT {aggregate} FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN ' || ({})",
            crate::wakeups::CHANNEL
        );
        let row = client.query_one(&sql, &[&crate::LISTENER_APPLICATION_NAME]).await.expect("read pg_stat_activity");
        row.get(0)
    }
}

#[async_trait::async_trait]
impl TestDatabase for PostgresSchema {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.store().await)
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        // The test's runtime is busy running this drop: drop the schema from a thread of its own.
        let (url, schema) = (self.admin_url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let client = admin(&url).await.ok()?;
                client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test schema {}", self.schema);
        }
    }
}

/// Connects with a single connection, driven by a task of the current runtime.
pub async fn admin(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
