//! Output schemas: the JSON Schema (draft 2020-12) a token's completions must fit, given at
//! create. Checked once when given (it must compile, and refer to nothing outside itself: no
//! URL or file is ever fetched), and against every completion's output in the transaction that
//! would apply it ([`crate::transitions::completion_refused`]).

use waitpoint_types::Output;

/// Whether `schema` is a JSON Schema (2020-12) that needs nothing from outside itself; why not
/// otherwise, for the caller.
pub fn check(schema: &serde_json::Value) -> Result<(), String> {
    jsonschema::draft202012::new(schema).map(drop).map_err(|error| error.to_string())
}

/// Whether `output` (`None`: completed without one, which is `null`) fits `schema` (JSON text,
/// as stored); otherwise the first place that does not, and why: `at /amount: 5 is less than
/// the minimum of 10`.
pub fn output_fits(schema: &str, output: Option<&Output>) -> Result<(), String> {
    let schema: serde_json::Value =
        serde_json::from_str(schema).map_err(|error| format!("the stored outputSchema is unreadable: {error}"))?;
    let validator = jsonschema::draft202012::new(&schema).map_err(|error| format!("outputSchema: {error}"))?;
    let instance = output.map_or(serde_json::Value::Null, Output::decode);
    match validator.validate(&instance) {
        Ok(()) => Ok(()),
        Err(error) => {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() { "the output".to_owned() } else { format!("at {path}") };
            Err(format!("{at}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schema_must_compile_and_stand_alone() {
        assert!(check(&json!({ "type": "object", "required": ["status"] })).is_ok());
        assert!(check(&json!(true)).is_ok());
        assert!(check(&json!({ "type": "nothing" })).is_err());
        let remote = check(&json!({ "$ref": "https://example.com/schema.json" }));
        assert!(remote.is_err(), "a remote $ref is refused: {remote:?}");
        let file = check(&json!({ "$ref": "file:///etc/passwd" }));
        assert!(file.is_err(), "a file $ref is refused: {file:?}");
        let local = json!({ "$defs": { "n": { "type": "integer" } }, "properties": { "a": { "$ref": "#/$defs/n" } } });
        assert!(check(&local).is_ok(), "a $ref inside the schema is fine");
    }

    #[test]
    fn an_output_that_does_not_fit_says_where() {
        let schema = json!({
            "type": "object",
            "properties": { "amount": { "type": "integer", "minimum": 10 } },
            "required": ["amount"]
        })
        .to_string();
        assert_eq!(output_fits(&schema, Some(&Output::from_json_text(r#"{"amount": 12}"#))), Ok(()));
        let low = output_fits(&schema, Some(&Output::from_json_text(r#"{"amount": 5}"#))).unwrap_err();
        assert!(low.starts_with("at /amount: "), "{low}");
        let missing = output_fits(&schema, None).unwrap_err();
        assert!(missing.starts_with("the output: "), "{missing}");
        assert!(output_fits(r#"{"type": "string"}"#, Some(&Output::from_text("yes".into()))).is_ok());
    }
}
