//! The storage conformance suite against a real PostgreSQL server, one fresh schema per test.

use waitpoint_postgres::testing::PostgresSchema;

async fn fresh() -> Option<PostgresSchema> {
    Some(PostgresSchema::fresh().await)
}

waitpoint_storage::conformance_tests!(fresh());
