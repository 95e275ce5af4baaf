//! The list routes' query strings, parsed into [`ListTokens`] and [`ListRuns`]. Parameter names
//! are Trigger.dev's; unknown or repeated parameters and bad values are 400s naming the
//! parameter.

use std::collections::HashSet;

use waitpoint_engine::{ListPage, ListRuns, ListTokens, MAX_PAGE_SIZE};
use waitpoint_types::time::parse_duration;
use waitpoint_types::{RunStatus, Timestamp, WaitpointStatus};

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
const TASK: &str = "filter[taskIdentifier]";
const COMMON: [&str; 9] = [PAGE_SIZE, PAGE_AFTER, PAGE_BEFORE, STATUS, IDEMPOTENCY_KEY, TAGS, PERIOD, FROM, TO];

/// The parameters both lists share, parsed; `status` is left as text for each list to read.
#[derive(Default)]
struct Common {
    page: ListPage,
    status: Option<String>,
    idempotency_key: Option<String>,
    tags: Vec<String>,
    task_ids: Vec<String>,
}

/// Parses a list's query string, accepting the common parameters and `extra` ones.
fn parse_common(raw: Option<&str>, extra: &[&'static str]) -> Result<Common, ApiError> {
    let known: Vec<&'static str> = COMMON.iter().chain(extra).copied().collect();
    let mut common = Common::default();
    let mut seen = HashSet::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let Some(&name) = known.iter().find(|known| **known == name) else {
            return Err(ApiError::bad_query(&name, format!("unknown parameter; the list takes {}", known.join(", "))));
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
                common.page.page_size =
                    Some(value.parse().ok().filter(|size| (1..=MAX_PAGE_SIZE).contains(size)).ok_or_else(|| {
                        ApiError::bad_query(name, format!("{value:?} is not a whole number from 1 to {MAX_PAGE_SIZE}"))
                    })?);
            }
            PAGE_AFTER => common.page.after = Some(value),
            PAGE_BEFORE => common.page.before = Some(value),
            STATUS => common.status = Some(value),
            IDEMPOTENCY_KEY => common.idempotency_key = Some(value),
            TAGS => common.tags = comma_list(TAGS, &value, "tag", "user:1,red")?,
            TASK => common.task_ids = comma_list(TASK, &value, "task id", "send-email,resize-image")?,
            PERIOD => {
                common.page.period = Some(parse_duration(&value).map_err(|_| {
                    ApiError::bad_query(name, format!("{value:?} is not a period such as 1h, 1d, 7d or 30d"))
                })?);
            }
            FROM => common.page.from = Some(date(name, &value)?),
            TO => common.page.to = Some(date(name, &value)?),
            _ => unreachable!("every known parameter is handled"),
        }
    }
    if let (Some(from), Some(to)) = (common.page.from, common.page.to)
        && from > to
    {
        return Err(ApiError::bad_query(FROM, format!("{from} is after {TO} ({to})")));
    }
    Ok(common)
}

/// Parses the raw query string of `GET /api/v1/waitpoints/tokens`.
pub(crate) fn parse_list(raw: Option<&str>) -> Result<ListTokens, ApiError> {
    let common = parse_common(raw, &[])?;
    Ok(ListTokens {
        statuses: common.status.as_deref().map(statuses).transpose()?.unwrap_or_default(),
        idempotency_key: common.idempotency_key,
        tags: common.tags,
        page: common.page,
    })
}

/// Parses the raw query string of `GET /api/v1/runs`: the token list's parameters, with run
/// statuses, and `filter[taskIdentifier]`.
pub(crate) fn parse_run_list(raw: Option<&str>) -> Result<ListRuns, ApiError> {
    let common = parse_common(raw, &[TASK])?;
    Ok(ListRuns {
        statuses: common.status.as_deref().map(run_statuses).transpose()?.unwrap_or_default(),
        task_ids: common.task_ids,
        idempotency_key: common.idempotency_key,
        tags: common.tags,
        page: common.page,
    })
}

/// Reads `filter[status]`: a comma-separated list of the statuses `parse` knows, which are
/// `all`; repeats are dropped.
fn parse_statuses<S: Copy + PartialEq>(
    value: &str,
    parse: impl Fn(&str) -> Option<S>,
    all: &[&str],
) -> Result<Vec<S>, ApiError> {
    let mut statuses = Vec::new();
    let mut invalid = Vec::new();
    for text in value.split(',') {
        match parse(text) {
            Some(status) if !statuses.contains(&status) => statuses.push(status),
            Some(_) => {}
            None => invalid.push(text),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::bad_query(
            STATUS,
            format!("Invalid status values: {}; use {}, comma-separated", invalid.join(", "), all.join(", ")),
        ));
    }
    Ok(statuses)
}

fn run_statuses(value: &str) -> Result<Vec<RunStatus>, ApiError> {
    let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    parse_statuses(value, RunStatus::parse, &all)
}

fn statuses(value: &str) -> Result<Vec<WaitpointStatus>, ApiError> {
    let all: Vec<&str> = WaitpointStatus::ALL.iter().map(|s| s.as_str()).collect();
    parse_statuses(value, WaitpointStatus::parse, &all)
}

/// A comma-separated list without empty items.
fn comma_list(name: &str, value: &str, item: &str, example: &str) -> Result<Vec<String>, ApiError> {
    let items: Vec<String> = value.split(',').map(str::to_owned).collect();
    if items.iter().any(String::is_empty) {
        return Err(ApiError::bad_query(
            name,
            format!("has an empty {item}; give them comma-separated, such as {example}"),
        ));
    }
    Ok(items)
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
        assert_eq!(list.page.page_size, Some(10));
        assert_eq!(list.page.after.as_deref(), Some("cabc"));
        assert_eq!(list.statuses, [WaitpointStatus::Waiting, WaitpointStatus::TimedOut]);
        assert_eq!(list.idempotency_key.as_deref(), Some("k"));
        assert_eq!(list.tags, ["a", "b:c"]);
        assert_eq!(list.page.period, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(list.page.from, Some(Timestamp::from_millis(1_743_501_600_000)));
        assert_eq!(list.page.to, Timestamp::parse_iso8601("2025-04-02"));
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
