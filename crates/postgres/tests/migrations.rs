//! Migrations carry existing data over: a schema written by an older version, opened by this
//! one, reads as it did.

use std::path::Path;

use waitpoint_postgres::testing::{self, PostgresSchema};
use waitpoint_storage::conformance::{self, at};
use waitpoint_storage::{Store, WriteOp};
use waitpoint_types::event::EventKind;
use waitpoint_types::{IdGenerator, Timestamp};

/// Brings the schema at `url` to `version` as that version's server would have.
async fn migrate_to(url: &str, version: u32) {
    let client = testing::admin(url).await.expect("connect to the test schema");
    client
        .batch_execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await
        .expect("create schema_migrations");
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .expect("read the migrations")
        .map(|entry| entry.expect("read the migrations").path())
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().and_then(|name| name.to_str()).expect("a migration's name").to_owned();
        let number: u32 = name[..4].parse().expect("a migration's name starts with its version");
        if number > version {
            break;
        }
        client.batch_execute(&std::fs::read_to_string(&file).expect("read a migration")).await.expect(&name);
        client
            .execute("INSERT INTO schema_migrations VALUES ($1, 0)", &[&i64::from(number)])
            .await
            .expect("record a migration");
    }
}

/// Version 14 moved the event log from a row per event to a row per batch: events keep their
/// positions, one not yet sequenced gets the next, and new ones follow them.
#[tokio::test]
async fn events_keep_their_positions_when_the_log_becomes_a_row_per_batch() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    migrate_to(&db.url(), 13).await;
    let client = testing::admin(&db.url()).await.expect("connect to the test schema");
    let ids = IdGenerator::new();
    let (a, b) = (conformance::environment(&ids, "a"), conformance::environment(&ids, "b"));
    client
        .execute(
            "INSERT INTO events (seq, environment_id, kind, subject, tags, data, created_at) VALUES
                 (1, $1, 'waitpoint.created', 'waitpoint_one', ARRAY['x', 'y'], '{\"id\":\"waitpoint_one\",\"n\":1.5}', 1000),
                 (2, $2, 'run.completed', 'run_two', ARRAY[]::text[], '{\"id\":\"run_two\"}', 2000),
                 (NULL, $1, 'waitpoint.timed_out', 'waitpoint_three', ARRAY['x'], '{\"id\":\"waitpoint_three\"}', 3000)",
            &[&a.id.internal(), &b.id.internal()],
        )
        .await
        .expect("insert events as version 13 stored them");

    let store = db.store().await;
    store.environment_create(&a).await.expect("environment_create failed");
    let events = store.events_after(&a.id, 0, &[], 10).await.expect("events_after failed");
    let read: Vec<_> = events
        .iter()
        .map(|e| {
            (e.seq, e.event.kind, e.event.subject.as_str(), e.event.tags.clone(), e.event.data.to_string(), e.event.at)
        })
        .collect();
    assert_eq!(
        read,
        [
            (
                1,
                EventKind::WaitpointCreated,
                "waitpoint_one",
                vec!["x".to_owned(), "y".to_owned()],
                r#"{"id":"waitpoint_one","n":1.5}"#.to_owned(),
                Timestamp::from_millis(1_000)
            ),
            (
                3,
                EventKind::WaitpointTimedOut,
                "waitpoint_three",
                vec!["x".to_owned()],
                r#"{"id":"waitpoint_three"}"#.to_owned(),
                Timestamp::from_millis(3_000)
            ),
        ]
    );
    let others = store.events_after(&b.id, 0, &[], 10).await.expect("events_after failed");
    assert_eq!(others.iter().map(|e| (e.seq, e.event.subject.as_str())).collect::<Vec<_>>(), [(2, "run_two")]);

    let token = conformance::waitpoint(&ids, &a, at(4_000));
    store.write_batch(vec![WriteOp::Create(token.clone())]).await.expect("write_batch failed");
    let later = store.events_after(&a.id, 3, &[], 10).await.expect("events_after failed");
    assert_eq!(later.iter().map(|e| (e.seq, e.event.subject.clone())).collect::<Vec<_>>(), [(4, token.id.public())]);
    assert_eq!(store.events_head().await.expect("events_head failed"), 4);
}
