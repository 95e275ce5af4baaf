//! What a token's hosted approval page asks, and what an answer to it becomes.
//!
//! Every token has an approval page. Without an [`Approval`], the page asks to approve or reject
//! with an optional comment; an [`Approval`] given at create adds a title, a description and a
//! few form fields. An answer completes the token with
//! `{"status": "approved" | "rejected", "comment": <text or null>, <field>: <value>, …}`: the
//! spec's `ApprovalToken` shape, plus what the fields collected.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most fields a page may have.
pub const MAX_FIELDS: usize = 20;
/// The most options a choice may offer.
pub const MAX_OPTIONS: usize = 20;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// The longest field name, label or option, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest text a person may type into a comment or a text field, in characters.
pub const MAX_ANSWER_CHARS: usize = 10_000;
/// Field names the output already uses.
pub const RESERVED_NAMES: [&str; 2] = ["status", "comment"];

/// How a token's approval page looks, as given at create (`"approval": {…}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Approval {
    /// The page's heading; "Approval requested" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, max_length = 200))]
    pub title: Option<String>,
    /// What is asked, shown under the title as plain text (line breaks kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, max_length = 4000))]
    pub description: Option<String>,
    /// Form fields, in order, whose values join the output under their names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub fields: Vec<ApprovalField>,
}

/// One form field of an approval page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalField {
    /// The key of its value in the output: 1 to 100 letters, digits, `_` or `-`, neither
    /// `status` nor `comment`, unique within the page.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,100}$"))]
    pub name: String,
    /// What the page shows beside it; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, max_length = 100))]
    pub label: Option<String>,
    /// What it takes.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Whether approving needs a value (rejecting never does). A boolean is never required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Text only: a text area rather than one line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiline: bool,
    /// Number only: the smallest value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, value_type = Option<f64>))]
    pub min: Option<serde_json::Number>,
    /// Number only: the largest value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, value_type = Option<f64>))]
    pub max: Option<serde_json::Number>,
    /// Choice only (and needed there): the options, in order, 1 to 20, each 1 to 100 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub options: Vec<String>,
}

/// What a field takes, and the JSON its value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum FieldKind {
    /// Text (a JSON string).
    Text,
    /// A number (a JSON number), within `min` and `max`.
    Number,
    /// One of the `options` (a JSON string).
    Choice,
    /// A checkbox (`true` or `false`).
    Boolean,
}

impl ApprovalField {
    /// What the page shows beside the field.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// The smallest number accepted.
    pub fn min(&self) -> Option<f64> {
        self.min.as_ref().and_then(serde_json::Number::as_f64)
    }

    /// The largest number accepted.
    pub fn max(&self) -> Option<f64> {
        self.max.as_ref().and_then(serde_json::Number::as_f64)
    }
}

/// A person's answer, as the page's form sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalAnswer {
    /// Approve (`true`) or reject.
    pub approved: bool,
    /// The comment; blank means none.
    pub comment: String,
    /// The fields' values as typed, by name (a checked box sends any value, an unchecked one
    /// nothing).
    pub values: Vec<(String, String)>,
}

/// Why a page's description or an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApprovalError(pub String);

impl Approval {
    /// Checks what a create asked for: the limits above, names usable as keys, options to
    /// choose from, bounds in order, and no NUL characters.
    pub fn validate(&self) -> Result<(), ApprovalError> {
        let error = |message: String| Err(ApprovalError(format!("approval: {message}")));
        let texts = self.title.iter().chain(&self.description).chain(self.fields.iter().flat_map(|f| &f.label));
        if texts.clone().any(|text| text.contains('\0')) {
            return error("texts cannot hold NUL characters".into());
        }
        if self.title.as_deref().is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS) {
            return error(format!("title must be at most {MAX_TITLE_CHARS} characters"));
        }
        if self.description.as_deref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
            return error(format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"));
        }
        if self.fields.len() > MAX_FIELDS {
            return error(format!("a page has at most {MAX_FIELDS} fields, not {}", self.fields.len()));
        }
        for (i, field) in self.fields.iter().enumerate() {
            let name = &field.name;
            let valid_name = !name.is_empty()
                && name.chars().count() <= MAX_NAME_CHARS
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                return error(format!(
                    "fields[{i}].name {name:?} must be 1 to {MAX_NAME_CHARS} letters, digits, '_' or '-'"
                ));
            }
            if RESERVED_NAMES.contains(&name.as_str()) {
                return error(format!("fields[{i}].name {name:?} is taken by the answer itself; choose another"));
            }
            if self.fields[..i].iter().any(|other| other.name == *name) {
                return error(format!("fields[{i}].name {name:?} is used twice"));
            }
            if field.label.as_deref().is_some_and(|l| l.chars().count() > MAX_NAME_CHARS) {
                return error(format!("fields[{i}].label must be at most {MAX_NAME_CHARS} characters"));
            }
            let bounds = field.min.is_some() || field.max.is_some();
            let options = !field.options.is_empty();
            let misplaced = match field.kind {
                FieldKind::Text => bounds || options,
                FieldKind::Number => field.multiline || options,
                FieldKind::Choice => field.multiline || bounds,
                FieldKind::Boolean => field.multiline || bounds || options,
            };
            if misplaced {
                return error(format!(
                    "fields[{i}] has settings of another type: multiline is for text, min and max for number, \
                     options for choice"
                ));
            }
            let options = &field.options;
            if field.kind == FieldKind::Choice && (options.is_empty() || options.len() > MAX_OPTIONS) {
                return error(format!("fields[{i}].options must hold 1 to {MAX_OPTIONS} options"));
            }
            if options.iter().any(|o| o.is_empty() || o.chars().count() > MAX_NAME_CHARS || o.contains('\0')) {
                return error(format!("fields[{i}].options must each be 1 to {MAX_NAME_CHARS} characters"));
            }
            if let (Some(min), Some(max)) = (field.min(), field.max())
                && min > max
            {
                return error(format!("fields[{i}]: min {min} is above max {max}"));
            }
        }
        Ok(())
    }

    /// The output an answer completes the token with: `status`, `comment` (`null` when blank),
    /// then each field that has a value. Approving needs every required field; a value that
    /// does not fit its field (not a number, out of bounds, not an option, too long) is
    /// refused whichever the answer.
    pub fn output(&self, answer: &ApprovalAnswer) -> Result<Value, ApprovalError> {
        let mut output = Map::new();
        let status = if answer.approved { "approved" } else { "rejected" };
        output.insert("status".into(), status.into());
        let comment = answer.comment.trim();
        check_length("the comment", comment)?;
        output.insert("comment".into(), if comment.is_empty() { Value::Null } else { comment.into() });
        for field in &self.fields {
            let typed = answer.values.iter().find(|(name, _)| *name == field.name).map(|(_, value)| value.as_str());
            let label = field.label();
            let value = match (field.kind, typed.map(str::trim).filter(|v| !v.is_empty())) {
                (FieldKind::Boolean, typed) => Some(Value::Bool(typed.is_some())),
                (_, None) if field.required && answer.approved => {
                    return Err(ApprovalError(format!("{label} is required to approve")));
                }
                (_, None) => None,
                (FieldKind::Text, Some(text)) => {
                    check_length(label, text)?;
                    Some(Value::String(text.to_owned()))
                }
                (FieldKind::Number, Some(text)) => Some(number(label, text, field.min(), field.max())?),
                (FieldKind::Choice, Some(choice)) => match field.options.iter().find(|o| o.as_str() == choice) {
                    Some(option) => Some(Value::String(option.clone())),
                    None => return Err(ApprovalError(format!("{label} must be one of the options given"))),
                },
            };
            if let Some(value) = value {
                output.insert(field.name.clone(), value);
            }
        }
        Ok(Value::Object(output))
    }
}

fn check_length(what: &str, text: &str) -> Result<(), ApprovalError> {
    if text.chars().count() > MAX_ANSWER_CHARS {
        return Err(ApprovalError(format!("{what} must be at most {MAX_ANSWER_CHARS} characters")));
    }
    if text.contains('\0') {
        return Err(ApprovalError(format!("{what} cannot hold NUL characters")));
    }
    Ok(())
}

fn number(label: &str, text: &str, min: Option<f64>, max: Option<f64>) -> Result<Value, ApprovalError> {
    let not_a_number = || ApprovalError(format!("{label} must be a number, such as 42 or 3.5"));
    let parsed: f64 = text.parse().map_err(|_| not_a_number())?;
    if !parsed.is_finite() {
        return Err(not_a_number());
    }
    if min.is_some_and(|min| parsed < min) || max.is_some_and(|max| parsed > max) {
        let bounds = match (min, max) {
            (Some(min), Some(max)) => format!("from {min} to {max}"),
            (Some(min), None) => format!("at least {min}"),
            (_, max) => format!("at most {}", max.unwrap_or_default()),
        };
        return Err(ApprovalError(format!("{label} must be {bounds}")));
    }
    // Whole numbers stay integers in the output (42, not 42.0).
    let value = match text.parse::<i64>() {
        Ok(whole) => Value::from(whole),
        Err(_) => serde_json::Number::from_f64(parsed).map(Value::Number).ok_or_else(not_a_number)?,
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page() -> Approval {
        serde_json::from_value(json!({
            "title": "Publish?",
            "fields": [
                {"name": "amount", "label": "Amount", "type": "number", "required": true, "min": 0, "max": 100},
                {"name": "reason", "type": "text", "multiline": true},
                {"name": "tier", "type": "choice", "options": ["low", "high"]},
                {"name": "notify", "type": "boolean"}
            ]
        }))
        .unwrap()
    }

    fn answer(approved: bool, values: &[(&str, &str)]) -> ApprovalAnswer {
        ApprovalAnswer {
            approved,
            comment: " fine ".into(),
            values: values.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn answers_become_the_approval_token_shape_with_the_fields() {
        let page = page();
        page.validate().unwrap();
        let output = page.output(&answer(true, &[("amount", "42"), ("tier", "high"), ("notify", "on")])).unwrap();
        assert_eq!(
            output,
            json!({"status": "approved", "comment": "fine", "amount": 42, "tier": "high", "notify": true})
        );
        let rejected = Approval::default().output(&ApprovalAnswer::default()).unwrap();
        assert_eq!(rejected, json!({"status": "rejected", "comment": null}));
        let half = page.output(&answer(true, &[("amount", "2.5")])).unwrap();
        assert_eq!(half["amount"], json!(2.5));
        assert_eq!(half["notify"], json!(false));
    }

    #[test]
    fn answers_that_do_not_fit_are_refused() {
        let page = page();
        for (approved, values, hint) in [
            (true, vec![], "Amount is required"),
            (true, vec![("amount", "lots")], "must be a number"),
            (true, vec![("amount", "101")], "from 0 to 100"),
            (false, vec![("amount", "-1")], "from 0 to 100"),
            (true, vec![("amount", "1"), ("tier", "mid")], "one of the options"),
            (true, vec![("amount", "NaN")], "must be a number"),
        ] {
            let error = page.output(&answer(approved, &values)).unwrap_err().to_string();
            assert!(error.contains(hint), "{values:?}: {error}");
        }
        assert!(page.output(&answer(false, &[])).is_ok(), "rejecting needs no field");
    }

    #[test]
    fn pages_are_checked_at_create() {
        for (page, hint) in [
            (json!({"fields": [{"name": "status", "type": "text"}]}), "taken"),
            (json!({"fields": [{"name": "a b", "type": "text"}]}), "letters"),
            (json!({"fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "boolean"}]}), "twice"),
            (json!({"fields": [{"name": "c", "type": "choice", "options": []}]}), "1 to 20"),
            (json!({"fields": [{"name": "c", "type": "text", "options": ["a"]}]}), "options for choice"),
            (json!({"fields": [{"name": "n", "type": "number", "min": 2, "max": 1}]}), "above max"),
            (json!({"title": "x".repeat(201)}), "title"),
        ] {
            let page: Approval = serde_json::from_value(page).unwrap();
            let error = page.validate().unwrap_err().to_string();
            assert!(error.contains(hint), "{error}");
        }
        let unknown = serde_json::from_value::<Approval>(json!({"fields": [{"name": "a", "type": "date"}]}));
        assert!(unknown.is_err());
    }
}
