//! Waitpoints in the API's JSON shapes.

use waitpoint_engine::Engine;
use waitpoint_types::api::{TokenDetail, TokenItem};
use waitpoint_types::{Environment, Waitpoint, WaitpointState};

/// A waitpoint as the list shows it: tags sorted, no output.
pub(crate) fn item(engine: &Engine, environment: &Environment, waitpoint: &Waitpoint) -> TokenItem {
    let mut tags = waitpoint.tags.clone();
    tags.sort();
    TokenItem {
        id: waitpoint.id.public(),
        url: engine.callback_url(environment, &waitpoint.id),
        status: waitpoint.status().as_str().to_owned(),
        completed_at: waitpoint.completed_at(),
        timeout_at: waitpoint.timeout_at,
        completed_after: waitpoint.timeout_at,
        idempotency_key: waitpoint.user_idempotency_key().map(str::to_owned),
        idempotency_key_expires_at: waitpoint.idempotency_key_expires_at,
        tags,
        created_at: waitpoint.created_at,
    }
}

/// A waitpoint as retrieve shows it: with output (or the timeout error) and how it finished.
pub(crate) fn detail(engine: &Engine, environment: &Environment, waitpoint: &Waitpoint) -> TokenDetail {
    let output = waitpoint.output();
    let completed_via = match &waitpoint.state {
        WaitpointState::Waiting => None,
        WaitpointState::Completed { via, .. } => Some(via.as_str().to_owned()),
        WaitpointState::TimedOut { .. } => Some("TIMEOUT".to_owned()),
    };
    TokenDetail {
        id: waitpoint.id.public(),
        kind: "MANUAL".to_owned(),
        url: engine.callback_url(environment, &waitpoint.id),
        status: waitpoint.status().as_str().to_owned(),
        idempotency_key: waitpoint.user_idempotency_key().map(str::to_owned),
        idempotency_key_expires_at: waitpoint.idempotency_key_expires_at,
        output_type: output.as_ref().map(|o| o.data_type.clone()),
        output: output.map(|o| o.data),
        output_is_error: Some(matches!(waitpoint.state, WaitpointState::TimedOut { .. })),
        timeout_at: waitpoint.timeout_at,
        completed_after: waitpoint.timeout_at,
        completed_at: waitpoint.completed_at(),
        completed_via,
        created_at: waitpoint.created_at,
        tags: waitpoint.tags.clone(),
    }
}
