//! The query parameters of the two list routes, as `query` parses them: Trigger.dev's names,
//! lists comma-separated, each parameter at most once; any other parameter is a 400.

use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Required, Schema};

/// The query of `GET /api/v1/waitpoints/tokens`.
#[derive(Debug)]
pub(crate) enum TokenListQuery {}

impl IntoParams for TokenListQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let status = text(
            "filter[status]",
            "Only tokens in these statuses, comma-separated: `WAITING`, `COMPLETED`, `TIMED_OUT`.",
            "WAITING,TIMED_OUT",
        );
        [status].into_iter().chain(shared()).collect()
    }
}

/// The query of `GET /api/v1/runs`.
#[derive(Debug)]
pub(crate) enum RunListQuery {}

impl IntoParams for RunListQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let status = text(
            "filter[status]",
            "Only runs in these statuses, comma-separated: `QUEUED`, `DELAYED`, `EXECUTING`, `WAITING`, \
             `COMPLETED`, `FAILED`, `CANCELED`.",
            "WAITING,EXECUTING",
        );
        let tasks = text(
            "filter[taskIdentifier]",
            "Only runs of these tasks, comma-separated (at most 100).",
            "send-email,resize-image",
        );
        [status, tasks].into_iter().chain(shared()).collect()
    }
}

/// The filters and cursor pages both lists take (newest first).
fn shared() -> [Parameter; 8] {
    let page_size = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(100));
    [
        text("filter[idempotencyKey]", "Only items created with this idempotency key.", "my-idempotency-key"),
        text("filter[tags]", "Only items with any of these tags, comma-separated (at most 100).", "user:1,red"),
        text(
            "filter[createdAt][period]",
            "Only items created within this period before now, such as `1h`, `1d`, `7d` or `30d`.",
            "7d",
        ),
        text(
            "filter[createdAt][from]",
            "Only items created at or after this date: epoch milliseconds (what the official SDK sends) or \
             ISO 8601.",
            "1743501600000",
        ),
        text(
            "filter[createdAt][to]",
            "Only items created at or before this date: epoch milliseconds or ISO 8601.",
            "2025-04-02T00:00:00Z",
        ),
        parameter("page[size]", "Items per page, 1 to 100; 25 when absent.", page_size.into(), 10.into()),
        text(
            "page[after]",
            "The next (older) page: the `pagination.next` of the page before.",
            "c0mx0cc6pu0000l6xkisgtnvx",
        ),
        text(
            "page[before]",
            "The previous (newer) page: the `pagination.previous` of the page after.",
            "c0mx0cc6pu0000l6xkisgtnvx",
        ),
    ]
}

/// An optional query parameter that takes a string.
fn text(name: &str, description: &str, example: &str) -> Parameter {
    parameter(name, description, ObjectBuilder::new().schema_type(Type::String).into(), example.into())
}

/// An optional query parameter.
fn parameter(name: &str, description: &str, schema: Schema, example: serde_json::Value) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .example(Some(example))
        .build()
}
