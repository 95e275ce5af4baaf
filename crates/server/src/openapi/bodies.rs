//! Bodies that no wire type describes: the complete route's request, which the server reads by
//! hand (see `body::parse_complete`), and the record route's answer, which it writes as JSON.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Ref, Schema, SchemaType};
use utoipa::{PartialSchema, ToSchema};
use waitpoint_types::api::worker::JournalEntryBody;

/// The body of `POST /api/v1/waitpoints/tokens/{id}/complete`: `{"data": <output>}` as the
/// official SDK sends it, `{"output": <output>}` as the spec's curl example does, or `{}` to
/// complete without an output; never both fields.
#[derive(Debug)]
pub(crate) enum CompleteTokenBody {}

impl PartialSchema for CompleteTokenBody {
    fn schema() -> RefOr<Schema> {
        let output =
            |description: &str| ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(description));
        ObjectBuilder::new()
            .description(Some(
                "The output, as `data` (what the official SDK sends) or `output` (the spec's curl example), \
                 never both; `{}` completes without an output. A JSON string is stored as text, any other \
                 value as JSON.",
            ))
            .property("data", output("The output: any JSON value."))
            .property("output", output("The output, as `data`: any JSON value."))
            .max_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for CompleteTokenBody {}

/// The answer of `POST /api/v1/runs/{id}/journal`: `{"entry": <the recorded entry>}`.
#[derive(Debug)]
pub(crate) enum RecordResponse {}

impl PartialSchema for RecordResponse {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("The entry as recorded."))
            .property("entry", Ref::from_schema_name(JournalEntryBody::name()))
            .required("entry")
            .into()
    }
}

impl ToSchema for RecordResponse {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((JournalEntryBody::name().into_owned(), JournalEntryBody::schema()));
        JournalEntryBody::schemas(schemas);
    }
}
