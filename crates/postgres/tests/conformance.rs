//! The storage conformance suite against a real PostgreSQL server, one fresh schema per test
//! (skipped without a server: see `waitpoint_postgres::testing`).

use waitpoint_postgres::testing::PostgresSchema;

async fn fresh() -> Option<PostgresSchema> {
    PostgresSchema::fresh().await
}

waitpoint_storage::conformance_tests!(fresh());
