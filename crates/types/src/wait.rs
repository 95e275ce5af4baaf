//! What a decided wait's journal entry records, typed: the server decides it
//! (`transitions::wait_decided`), the store serializes it into the journal, and an SDK reads it
//! back with the same types. On the wire (the worker protocol, the journal API) it is JSON:
//!
//! - a wait on one waitpoint: `{"ok": true, "output": …}`, `{"ok": false, "error": …}`, or
//!   `{"ok": false, "error": …, "rejected": true}`;
//! - a wait on a set: `{"ok": …, "waitpoints": [member, …]}` in the wait's order, each member
//!   `{"id": "waitpoint_…"}` with the fields above, or with `"pending": true` when it had not
//!   finished when the wait was decided.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a waitpoint finished, as a wait's result tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Fields", try_from = "Fields")]
pub enum WaitpointResult {
    /// Completed with `output` (`null` when it was completed without one).
    Completed {
        /// The output.
        output: Value,
    },
    /// Timed out (its deadline passed, a heartbeat was missed, or a datetime wait's time came).
    TimedOut {
        /// `{"code", "message"}`.
        error: Value,
    },
    /// Rejected.
    Rejected {
        /// `{"code", "message", "data"?}` as the rejecter gave it.
        error: Value,
    },
}

/// A decided wait on a set of waitpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetResult {
    /// Whether enough completed; false when so many timed out or were rejected that enough no
    /// longer could.
    pub ok: bool,
    /// Every waitpoint of the set, in the wait's order.
    pub waitpoints: Vec<SetMember>,
}

/// A waitpoint of a decided set wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "MemberFields", try_from = "MemberFields")]
pub struct SetMember {
    /// The waitpoint's public id.
    pub id: String,
    /// How it finished; `None` when it had not when the wait was decided.
    pub result: Option<WaitpointResult>,
}

/// A decided wait, on one waitpoint or on a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WaitDecided {
    /// A wait on one token or point in time.
    One(WaitpointResult),
    /// A wait on a set.
    Set(SetResult),
}

impl WaitDecided {
    /// The result as the journal stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The wire fields of a [`WaitpointResult`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rejected: bool,
}

impl From<WaitpointResult> for Fields {
    fn from(result: WaitpointResult) -> Self {
        match result {
            WaitpointResult::Completed { output } => {
                Self { ok: true, output: Some(output), error: None, rejected: false }
            }
            WaitpointResult::TimedOut { error } => {
                Self { ok: false, output: None, error: Some(error), rejected: false }
            }
            WaitpointResult::Rejected { error } => Self { ok: false, output: None, error: Some(error), rejected: true },
        }
    }
}

impl TryFrom<Fields> for WaitpointResult {
    type Error = &'static str;

    fn try_from(fields: Fields) -> Result<Self, Self::Error> {
        match fields {
            Fields { ok: true, error: None, rejected: false, output } => {
                Ok(Self::Completed { output: output.unwrap_or(Value::Null) })
            }
            Fields { ok: false, output: None, rejected, error } => {
                let error = error.unwrap_or(Value::Null);
                Ok(if rejected { Self::Rejected { error } } else { Self::TimedOut { error } })
            }
            Fields { ok: true, .. } => Err("a completed waitpoint's result has no error"),
            Fields { ok: false, .. } => Err("a failed waitpoint's result has no output"),
        }
    }
}

/// The wire fields of a [`SetMember`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFields {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rejected: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
}

impl From<SetMember> for MemberFields {
    fn from(member: SetMember) -> Self {
        match member.result.map(Fields::from) {
            None => Self { id: member.id, ok: None, output: None, error: None, rejected: false, pending: true },
            Some(Fields { ok, output, error, rejected }) => {
                Self { id: member.id, ok: Some(ok), output, error, rejected, pending: false }
            }
        }
    }
}

impl TryFrom<MemberFields> for SetMember {
    type Error = &'static str;

    fn try_from(member: MemberFields) -> Result<Self, Self::Error> {
        let MemberFields { id, ok, output, error, rejected, pending } = member;
        let result = match (ok, pending) {
            (None, true) if output.is_none() && error.is_none() && !rejected => None,
            (Some(ok), false) => Some(WaitpointResult::try_from(Fields { ok, output, error, rejected })?),
            _ => return Err("a set member is either pending or has an ok"),
        };
        Ok(Self { id, result })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip(decided: &WaitDecided, wire: &Value) {
        assert_eq!(serde_json::to_value(decided).unwrap(), *wire);
        assert_eq!(serde_json::from_value::<WaitDecided>(wire.clone()).unwrap(), *decided);
        assert_eq!(serde_json::from_str::<WaitDecided>(&decided.to_json()).unwrap(), *decided);
    }

    #[test]
    fn one_waitpoints_results_have_the_documented_wire_form() {
        let error = json!({ "code": "TRIGGER_WAITPOINT_TIMEOUT", "message": "timed out" });
        round_trip(
            &WaitDecided::One(WaitpointResult::Completed { output: json!({ "a": 1 }) }),
            &json!({ "ok": true, "output": { "a": 1 } }),
        );
        round_trip(
            &WaitDecided::One(WaitpointResult::Completed { output: Value::Null }),
            &json!({ "ok": true, "output": null }),
        );
        round_trip(
            &WaitDecided::One(WaitpointResult::TimedOut { error: error.clone() }),
            &json!({ "ok": false, "error": error }),
        );
        round_trip(
            &WaitDecided::One(WaitpointResult::Rejected { error: error.clone() }),
            &json!({ "ok": false, "error": error, "rejected": true }),
        );
    }

    #[test]
    fn set_results_name_each_member_in_order_pending_ones_included() {
        let decided = WaitDecided::Set(SetResult {
            ok: true,
            waitpoints: vec![
                SetMember { id: "waitpoint_a".into(), result: Some(WaitpointResult::Completed { output: json!(1) }) },
                SetMember { id: "waitpoint_b".into(), result: None },
                SetMember {
                    id: "waitpoint_c".into(),
                    result: Some(WaitpointResult::Rejected { error: json!({ "message": "no" }) }),
                },
            ],
        });
        round_trip(
            &decided,
            &json!({ "ok": true, "waitpoints": [
                { "id": "waitpoint_a", "ok": true, "output": 1 },
                { "id": "waitpoint_b", "pending": true },
                { "id": "waitpoint_c", "ok": false, "error": { "message": "no" }, "rejected": true },
            ] }),
        );
    }

    #[test]
    fn results_that_contradict_themselves_are_refused() {
        for wire in [
            json!({ "ok": true, "output": 1, "error": {} }),
            json!({ "ok": false, "output": 1 }),
            json!({ "ok": true, "rejected": true }),
            json!({ "ok": true, "waitpoints": [{ "id": "waitpoint_a" }] }),
            json!({ "ok": true, "waitpoints": [{ "id": "waitpoint_a", "ok": true, "pending": true }] }),
            json!({ "ok": true, "extra": 1 }),
        ] {
            assert!(serde_json::from_value::<WaitDecided>(wire.clone()).is_err(), "{wire}");
        }
    }
}
