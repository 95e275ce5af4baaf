//! Bodies that no wire type describes: the complete and reject routes' requests, which the
//! server reads by hand (see `body::parse_complete`, `body::parse_reject`), and the record
//! route's answer, which it writes as JSON.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType};
use utoipa::{PartialSchema, ToSchema};

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

/// The body of `POST /api/v1/waitpoints/tokens/{id}/reject`: `{"error": {"message", "code"?,
/// "data"?}}`.
#[derive(Debug)]
pub(crate) enum RejectTokenBody {}

impl PartialSchema for RejectTokenBody {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str, max: usize| {
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(utoipa::openapi::Type::String))
                .description(Some(description))
                .min_length(Some(1))
                .max_length(Some(max))
        };
        let error = ObjectBuilder::new()
            .property("message", text("Why the token is rejected.", waitpoint_engine::MAX_REJECTION_MESSAGE))
            .property(
                "code",
                text(
                    "For programs, such as `PAYMENT_DECLINED`; `WAITPOINT_REJECTED` when left out.",
                    waitpoint_engine::MAX_REJECTION_CODE,
                ),
            )
            .property(
                "data",
                ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some("Anything else: any JSON.")),
            )
            .required("message")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        ObjectBuilder::new()
            .description(Some("The error a run waiting on the token gets."))
            .property("error", error)
            .required("error")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for RejectTokenBody {}
