//! Upkeep vacuums the store's tables that autovacuum leaves alone once enough of their rows
//! changed, and then has nothing more to do.

use waitpoint_postgres::testing::{self, PostgresSchema, STORE_TABLES};
use waitpoint_storage::conformance::{self, at};
use waitpoint_storage::{Store, WriteOp};
use waitpoint_types::IdGenerator;

/// Dead rows and changes of `runs` as the statistics count them.
async fn runs_statistics(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'runs'",
            &[],
        )
        .await
        .expect("read the statistics of runs");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn upkeep_vacuums_a_table_autovacuum_leaves_alone_once_enough_of_it_changed() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let store = db.store().await;
    let client = testing::admin(&db.url()).await.expect("connect to the test schema");
    // Off for this table whatever the server says, so that only this table is due.
    client.batch_execute("ALTER TABLE runs SET (autovacuum_enabled = false)").await.expect("turn autovacuum off");
    let ids = IdGenerator::new();
    let env = conformance::environment(&ids, "dev");
    store.environment_create(&env).await.expect("environment_create failed");
    store.write_batch(vec![WriteOp::RunCreate(conformance::run(&ids, &env, "t", at(0)))]).await.expect("create a run");
    // Copies of it, and a change of each, on this connection, whose statistics are flushed
    // below (the store's connections flush theirs when they like).
    client
        .batch_execute(
            "INSERT INTO runs SELECT (jsonb_populate_record(r, jsonb_build_object('id', r.id || g))).*
             FROM runs r, generate_series(1, 1200) AS g;
             UPDATE runs SET updated_at = updated_at + 1",
        )
        .await
        .expect("add and change runs");
    // Another application's table in the same schema, as changed and as neglected: not ours.
    client
        .batch_execute(
            "CREATE TABLE other_app (n INTEGER) WITH (autovacuum_enabled = false);
             INSERT INTO other_app SELECT generate_series(1, 1200);
             UPDATE other_app SET n = n + 1",
        )
        .await
        .expect("make another application's table");
    client.batch_execute("SELECT pg_stat_force_next_flush()").await.expect("flush the statistics");
    assert!(runs_statistics(&client).await.0 >= 1_200, "every change left a dead row");

    let upkeep = store.upkeep().await.expect("upkeep failed");
    assert_eq!(upkeep.vacuumed.len(), 1, "{upkeep:?}");
    assert!(upkeep.vacuumed[0].ends_with(".runs"), "{upkeep:?}");
    // A transaction elsewhere on the server (another test's) can hold back what a vacuum may
    // remove: the dead rows then stay, runs stays due, and the next upkeep vacuums it again.
    let mut upkeeps = 1;
    while runs_statistics(&client).await != (0, 0) {
        assert!(upkeeps < 50, "runs is not vacuumed clean: {:?}", runs_statistics(&client).await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = store.upkeep().await.expect("upkeep failed");
        assert!(again.vacuumed.iter().all(|table| table.ends_with(".runs")), "{again:?}");
        upkeeps += 1;
    }
    assert_eq!(store.upkeep().await.expect("upkeep failed").vacuumed, Vec::<String>::new(), "nothing left to do");
}

#[tokio::test]
async fn upkeep_covers_every_table_the_migrations_make() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let _store = db.store().await;
    let client = testing::admin(&db.url()).await.expect("connect to the test schema");
    let tables: Vec<String> = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'
             ORDER BY tablename",
            &[],
        )
        .await
        .expect("list the tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tables, STORE_TABLES, "a table the migrations make is missing from upkeep's list, or the reverse");
}
