//! OpenAPI schemas (`utoipa`) for the wire values whose JSON the derive cannot read off their
//! Rust type: [`Timestamp`], which travels as an ISO 8601 string; [`JournalKind`], which
//! travels as its name; [`RawJson`], which is any JSON value; and the tag lists of the bodies the server parses by hand, which take
//! one string as well as an array. Only with the `openapi` feature.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::json::RawJson;
use crate::run::JournalKind;
use crate::time::Timestamp;

/// An ISO 8601 date in UTC with milliseconds, as JavaScript's `Date.toJSON` writes it.
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("An ISO 8601 date in UTC with milliseconds."))
            .examples(["2025-04-01T10:00:00.000Z"])
            .into()
    }
}

impl ToSchema for Timestamp {}

/// One of the names [`JournalKind::as_str`] gives, which are the ones the server takes.
impl PartialSchema for JournalKind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("What a journal entry records."))
            .enum_values(Some(JournalKind::ALL.map(JournalKind::as_str)))
            .into()
    }
}

impl ToSchema for JournalKind {}

/// Any JSON value.
impl PartialSchema for RawJson {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue).into()
    }
}

impl ToSchema for RawJson {}

/// The `tags` of a create or a trigger: one tag, or up to 10, each shorter than 128 characters.
pub(crate) fn tags() -> Schema {
    let tag = || ObjectBuilder::new().schema_type(Type::String).max_length(Some(127));
    OneOfBuilder::new()
        .description(Some("Up to 10 tags, each shorter than 128 characters; one tag may be sent as a string."))
        .item(tag())
        .item(ArrayBuilder::new().items(tag()).max_items(Some(10)))
        .into()
}
