//! The part of the conformance suite about outbound webhook subscriptions.

use waitpoint_types::event::EventKind;
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{Environment, IdGenerator, Secret};

use super::{TestDatabase, at, new_env};
use crate::StorageError;

fn webhook(ids: &IdGenerator, env: &Environment, kinds: Vec<EventKind>, tags: Vec<String>) -> Webhook {
    Webhook {
        id: ids.webhook(at(0)),
        environment_id: env.id.clone(),
        url: "https://example.com/hooks/waitpoint".into(),
        secret: Secret::new("whsec_c2VjcmV0".into()),
        kinds,
        tags,
        created_at: at(0),
        delivery: Delivery { through: 7, ..Delivery::default() },
    }
}

/// Webhooks read back as created, per environment or all; their delivery progress is recorded;
/// a delete takes one of its own environment only.
pub async fn webhooks_are_stored_listed_advanced_and_deleted(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let other = new_env(&*store, &ids, "prod").await;
    let all_events = webhook(&ids, &env, Vec::new(), Vec::new());
    let some = webhook(&ids, &env, vec![EventKind::WaitpointCompleted, EventKind::RunFailed], vec!["a".into()]);
    let theirs = webhook(&ids, &other, Vec::new(), Vec::new());
    for hook in [&all_events, &some, &theirs] {
        store.webhook_create(hook).await.unwrap();
    }
    assert_eq!(store.webhook_list(Some(&env.id)).await.unwrap(), [all_events.clone(), some.clone()]);
    assert_eq!(store.webhook_list(None).await.unwrap().len(), 3);

    let failing = Delivery { through: 9, attempts: 2, retry_at: Some(at(5_000)), last_error: Some("503".into()) };
    store.webhook_delivered(&some.id, &failing).await.unwrap();
    let listed = store.webhook_list(Some(&env.id)).await.unwrap();
    assert_eq!(listed[1].delivery, failing);

    assert!(matches!(store.webhook_delete(&other.id, &some.id).await, Err(StorageError::NotFound)));
    store.webhook_delete(&env.id, &some.id).await.unwrap();
    assert_eq!(store.webhook_list(Some(&env.id)).await.unwrap(), [all_events]);
    store.webhook_delivered(&some.id, &Delivery::default()).await.unwrap();
    assert!(matches!(store.webhook_delete(&env.id, &some.id).await, Err(StorageError::NotFound)));
}
