//! Outbound webhooks: an environment's subscriptions to its event log, each delivered to a URL
//! in order, signed per Standard Webhooks, at least once.

use crate::environment::Secret;
use crate::event::EventKind;
use crate::id::{EnvironmentId, WebhookId};
use crate::time::Timestamp;

/// A subscription: where to deliver which events, and how far delivery got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Whose events.
    pub environment_id: EnvironmentId,
    /// Where they go: an `http` or `https` URL.
    pub url: String,
    /// The Standard Webhooks secret deliveries are signed with (`whsec_` and base64).
    pub secret: Secret,
    /// Only these kinds (all when empty).
    pub kinds: Vec<EventKind>,
    /// Only events whose subject has any of these tags (all when empty).
    pub tags: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// How far delivery got.
    pub delivery: Delivery,
}

/// How far delivery of a webhook got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Every event of the log up to this position was delivered or did not pass the filter;
    /// the next delivery is of the first event after it.
    pub through: u64,
    /// Failed attempts at delivering the next event, since the last success.
    pub attempts: u32,
    /// When to try again after a failure; `None` when nothing failed.
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}
