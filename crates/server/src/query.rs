//! The list route's query string, parsed into [`ListTokens`]. Parameter names are Trigger.dev's;
//! unknown or repeated parameters and bad values are 400s naming the parameter.

use std::collections::HashSet;

use waitpoint_engine::ListTokens;
use waitpoint_types::time::parse_duration;
use waitpoint_types::{Timestamp, WaitpointStatus};

use crate::error::ApiError;

const PAGE_SIZE: &str = "page[size]";
const PAGE_AFTER: &str = "page[after]";
const PAGE_BEFORE: &str = "page[before]";
const STATUS: &str = "filter[status]";
const IDEMPOTENCY_KEY: &str = "filter[idempotencyKey]";
const TAGS: &str = "filter[tags]";
const PERIOD: &str = "filter[createdAt][period]";
const FROM: &str = "filter[createdAt][from]";
const TO: &str = "filter[createdAt][to]";
const KNOWN: [&str; 9] = [PAGE_SIZE, PAGE_AFTER, PAGE_BEFORE, STATUS, IDEMPOTENCY_KEY, TAGS, PERIOD, FROM, TO];

/// Parses the raw query string of `GET /api/v1/waitpoints/tokens`.
pub(crate) fn parse_list(raw: Option<&str>) -> Result<ListTokens, ApiError> {
    let mut list = ListTokens::default();
    let mut seen = HashSet::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let Some(&name) = KNOWN.iter().find(|known| **known == name) else {
            return Err(ApiError::bad_query(&name, format!("unknown parameter; the list takes {}", KNOWN.join(", "))));
        };
        if !seen.insert(name) {
            return Err(ApiError::bad_query(name, "given more than once; give it once (lists are comma-separated)"));
        }
        let value = value.into_owned();
        if value.contains('\0') {
            return Err(ApiError::bad_query(name, "contains a NUL character"));
        }
        match name {
            PAGE_SIZE => {
                list.page_size = Some(value.parse().ok().filter(|size| (1..=100).contains(size)).ok_or_else(|| {
                    ApiError::bad_query(name, format!("{value:?} is not a whole number from 1 to 100"))
                })?);
            }
            PAGE_AFTER => list.after = Some(value),
            PAGE_BEFORE => list.before = Some(value),
            STATUS => list.statuses = statuses(&value)?,
            IDEMPOTENCY_KEY => list.idempotency_key = Some(value),
            TAGS => list.tags = tags(&value)?,
            PERIOD => {
                list.period = Some(parse_duration(&value).map_err(|_| {
                    ApiError::bad_query(name, format!("{value:?} is not a period such as 1h, 1d, 7d or 30d"))
                })?);
            }
            FROM => list.from = Some(date(name, &value)?),
            TO => list.to = Some(date(name, &value)?),
            _ => unreachable!("every known parameter is handled"),
        }
    }
    if let (Some(from), Some(to)) = (list.from, list.to)
        && from > to
    {
        return Err(ApiError::bad_query(FROM, format!("{from} is after {TO} ({to})")));
    }
    Ok(list)
}

fn statuses(value: &str) -> Result<Vec<WaitpointStatus>, ApiError> {
    let mut statuses = Vec::new();
    let mut invalid = Vec::new();
    for text in value.split(',') {
        match WaitpointStatus::parse(text) {
            Some(status) if !statuses.contains(&status) => statuses.push(status),
            Some(_) => {}
            None => invalid.push(text),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::bad_query(
            STATUS,
            format!(
                "Invalid status values: {}; use WAITING, COMPLETED or TIMED_OUT, comma-separated",
                invalid.join(", ")
            ),
        ));
    }
    Ok(statuses)
}

fn tags(value: &str) -> Result<Vec<String>, ApiError> {
    let tags: Vec<String> = value.split(',').map(str::to_owned).collect();
    if tags.iter().any(String::is_empty) {
        return Err(ApiError::bad_query(TAGS, "has an empty tag; give tags comma-separated, such as user:1,red"));
    }
    Ok(tags)
}

/// Epoch milliseconds (what the official SDK sends) or an ISO 8601 date.
fn date(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    let parsed = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse().ok().map(Timestamp::from_millis)
    } else {
        Timestamp::parse_iso8601(value)
    };
    parsed.ok_or_else(|| {
        ApiError::bad_query(
            name,
            format!("{value:?} is not a date: use epoch milliseconds or ISO 8601 such as 2025-04-01T10:00:00Z"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_every_filter_the_sdk_sends() {
        let list = parse_list(Some(
            "page%5Bsize%5D=10&page%5Bafter%5D=cabc&filter%5Bstatus%5D=WAITING,TIMED_OUT,WAITING\
             &filter%5BidempotencyKey%5D=k&filter%5Btags%5D=a,b%3Ac&filter%5BcreatedAt%5D%5Bperiod%5D=7d\
             &filter%5BcreatedAt%5D%5Bfrom%5D=1743501600000&filter%5BcreatedAt%5D%5Bto%5D=2025-04-02T00:00:00Z",
        ))
        .unwrap();
        assert_eq!(list.page_size, Some(10));
        assert_eq!(list.after.as_deref(), Some("cabc"));
        assert_eq!(list.statuses, [WaitpointStatus::Waiting, WaitpointStatus::TimedOut]);
        assert_eq!(list.idempotency_key.as_deref(), Some("k"));
        assert_eq!(list.tags, ["a", "b:c"]);
        assert_eq!(list.period, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(list.from, Some(Timestamp::from_millis(1_743_501_600_000)));
        assert_eq!(list.to, Timestamp::parse_iso8601("2025-04-02"));
        assert_eq!(parse_list(None).unwrap(), ListTokens::default());
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for (query, hint) in [
            ("page[size]=0", "1 to 100"),
            ("page[size]=101", "1 to 100"),
            ("page[size]=ten", "1 to 100"),
            ("filter[status]=FOO", "Invalid status values: FOO"),
            ("filter[status]=waiting", "Invalid status values"),
            ("filter[createdAt][period]=all", "period"),
            ("filter[createdAt][from]=yesterday", "not a date"),
            ("filter[createdAt][from]=2025-04-02&filter[createdAt][to]=2025-04-01", "after"),
            ("filter[tags]=a,,b", "empty tag"),
            ("filter[colour]=red", "unknown parameter"),
            ("limit=5", "unknown parameter"),
            ("filter[idempotencyKey]=a%00b", "NUL"),
            ("filter[status]=WAITING&filter[status]=COMPLETED", "more than once"),
        ] {
            let error = parse_list(Some(query)).unwrap_err();
            assert_eq!(error.status(), 400);
            assert!(error.message().contains(hint), "{query}: {}", error.message());
        }
    }
}
