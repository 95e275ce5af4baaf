//! The webhook routes: subscribe a URL to the environment's events, list the subscriptions
//! with how far delivery got, and delete one. Secret key only.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use waitpoint_engine::{Engine, NewWebhook};
use waitpoint_types::api::{CompleteResponse, CreateWebhookRequest, WebhookDetail};
use waitpoint_types::event::EventKind;
use waitpoint_types::webhook::Webhook;

use crate::auth::SecretKey;
use crate::body::{self, CREATE_LIMIT, Length};
use crate::error::ApiError;
use crate::openapi::{BadRequest, Conflict, NotFound, PayloadTooLarge, ServerError, Unauthorized};

/// `POST /api/v1/webhooks`: subscribe a URL to the environment's events.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "createWebhook",
    tag = "events",
    summary = "Subscribe a URL to the events",
    description = "waitpoint's own: the environment's events from now on (all, or only `kinds`, or only those \
                   whose subject has any of `tags`) are POSTed to `url`, in order, at least once, signed per \
                   Standard Webhooks with the `secret` this answer shows once (`webhook-id` is the event's \
                   position: dedupe on it). Failed deliveries are retried with backoff from 1 s to 1 h; a failing \
                   URL holds up no other. Only `http`/`https` URLs, never to internal addresses unless the server \
                   allows it (`--webhooks-allow-private`); at most 20 per environment.",
    request_body(content = CreateWebhookRequest, description = "The subscription."),
    responses(
        (status = 201, description = "Subscribed; the secret is shown this once.", body = WebhookDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn create(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WebhookDetail>), ApiError> {
    let bytes = body::read(&headers, body, CREATE_LIMIT, Length::Optional).await?;
    let request: CreateWebhookRequest = body::parse_webhook(&bytes)?;
    let kinds = request
        .kinds
        .iter()
        .map(|kind| {
            EventKind::parse(kind).ok_or_else(|| {
                let all: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
                ApiError::bad_request(format!("Unknown event kind {kind:?}: kinds are {}", all.join(", ")))
            })
        })
        .collect::<Result<_, _>>()?;
    let webhook =
        engine.create_webhook(&environment, NewWebhook { url: request.url, kinds, tags: request.tags }).await?;
    let mut detail = detail(&webhook);
    detail.secret = Some(webhook.secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(detail)))
}

/// `GET /api/v1/webhooks`: the environment's subscriptions.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "events",
    summary = "List the webhook subscriptions",
    description = "waitpoint's own: the environment's subscriptions, oldest first, with how far delivery got \
                   and, while one fails, why and when it is tried again. Secrets are not shown.",
    responses(
        (status = 200, description = "The subscriptions.", body = Vec<WebhookDetail>),
        (status = 401, response = Unauthorized),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn list(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
) -> Result<Json<Vec<WebhookDetail>>, ApiError> {
    Ok(Json(engine.list_webhooks(&environment).await?.iter().map(detail).collect()))
}

/// `DELETE /api/v1/webhooks/{id}`: stop delivering to a subscription.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "deleteWebhook",
    tag = "events",
    summary = "Delete a webhook subscription",
    description = "waitpoint's own: nothing more is delivered to it.",
    params(("id" = String, Path, description = "The subscription's id, `webhook_…`.")),
    responses(
        (status = 200, description = "Deleted.", body = CompleteResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn delete(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<CompleteResponse>, ApiError> {
    engine.delete_webhook(&environment, &id).await?;
    Ok(Json(CompleteResponse { success: true }))
}

fn detail(webhook: &Webhook) -> WebhookDetail {
    WebhookDetail {
        id: webhook.id.public(),
        url: webhook.url.clone(),
        kinds: webhook.kinds.iter().map(|kind| kind.as_str().to_owned()).collect(),
        tags: webhook.tags.clone(),
        secret: None,
        created_at: webhook.created_at,
        delivered_through: webhook.delivery.through,
        attempts: webhook.delivery.attempts,
        retry_at: webhook.delivery.retry_at,
        last_error: webhook.delivery.last_error.clone(),
    }
}
