//! Timestamps, duration strings and dates.
//!
//! Every time in waitpoint is a [`Timestamp`]: milliseconds since the Unix epoch, UTC, written
//! on the wire as ISO 8601 with milliseconds (`2025-03-26T12:34:56.789Z`, what JavaScript's
//! `Date.toJSON` gives). Durations are written the way Trigger.dev writes them: `"30s"`,
//! `"10m"`, `"2h"`, `"3d"`, `"4w"` and combinations such as `"1h30m"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;

/// What the duration grammar accepts, for error messages.
pub const DURATION_GRAMMAR: &str =
    "a duration such as \"30s\", \"10m\", \"2h\", \"3d\", \"4w\" or \"1h30m\" (units w, d, h or hr, m, s)";

/// The longest duration string accepted (as Trigger.dev's parser).
const MAX_DURATION_LEN: usize = 100;

/// The earliest and latest timestamps waitpoint represents: the Unix epoch, and the last
/// millisecond of jiff's range (`9999-12-30T22:00:00.999Z`, which leaves room for any UTC
/// offset), so every timestamp prints as the date it is.
const MIN_MILLIS: i64 = 0;
const MAX_MILLIS: i64 = 253_402_207_200_999;

/// A point in time: milliseconds since the Unix epoch, UTC, from 1970 to
/// [`Timestamp::MAX`] (December 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A string that is not a duration, or not a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not in the duration grammar.
    #[error("{0:?} is not {DURATION_GRAMMAR}")]
    Invalid(String),
    /// In the grammar, but zero.
    #[error("{0:?} is zero; it must be longer than that")]
    Zero(String),
    /// In the grammar, but too long to represent.
    #[error("{0:?} is too long a duration")]
    Overflow(String),
}

impl Timestamp {
    /// The latest timestamp: `9999-12-30T22:00:00.999Z`.
    pub const MAX: Timestamp = Timestamp(MAX_MILLIS);

    /// The timestamp `millis` milliseconds after the Unix epoch, clamped to 1970..=[`Timestamp::MAX`].
    pub const fn from_millis(millis: i64) -> Self {
        if millis < MIN_MILLIS {
            Self(MIN_MILLIS)
        } else if millis > MAX_MILLIS {
            Self(MAX_MILLIS)
        } else {
            Self(millis)
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This timestamp plus `duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self::from_millis(self.0.saturating_add(millis))
    }

    /// This timestamp plus `duration`, or `None` past [`Timestamp::MAX`]: for durations a caller
    /// gave, whose end must not be quietly moved.
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let millis = i64::try_from(duration.as_millis()).ok()?;
        self.0.checked_add(millis).filter(|end| *end <= MAX_MILLIS).map(Self)
    }

    /// This timestamp minus `duration`, saturating at 1970.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self::from_millis(self.0.saturating_sub(millis))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// Parses an ISO 8601 date-time with a UTC offset (`2025-04-01T10:00:00Z`,
    /// `2025-04-01T12:00:00.5+02:00`) or a bare date (`2025-04-01`, midnight UTC).
    pub fn parse_iso8601(text: &str) -> Option<Self> {
        let text = text.trim();
        let ts = match text.parse::<jiff::Timestamp>() {
            Ok(ts) => ts,
            Err(_) => text.parse::<Date>().ok()?.to_zoned(TimeZone::UTC).ok()?.timestamp(),
        };
        let millis = ts.as_millisecond();
        (MIN_MILLIS..=MAX_MILLIS).contains(&millis).then_some(Self(millis))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// [`Timestamp::saturating_add`]: `deadline = now + Duration::from_secs(10)`.
    fn add(self, duration: Duration) -> Timestamp {
        self.saturating_add(duration)
    }
}

impl fmt::Display for Timestamp {
    /// `2025-03-26T12:34:56.789Z`. Written digit by digit: every API answer and list holds
    /// timestamps, and `write!` with seven padded fields cost about 3,000 instructions each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In jiff's range by construction (see `MAX_MILLIS`), so the conversion cannot fail,
        // and the year has four digits (1970 to 9999).
        let ts = jiff::Timestamp::from_millisecond(self.0).unwrap_or(jiff::Timestamp::MAX);
        let dt = TimeZone::UTC.to_datetime(ts);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let fields = [
            (0..4, i32::from(dt.year())),
            (5..7, i32::from(dt.month())),
            (8..10, i32::from(dt.day())),
            (11..13, i32::from(dt.hour())),
            (14..16, i32::from(dt.minute())),
            (17..19, i32::from(dt.second())),
            (20..23, i32::from(dt.millisecond())),
        ];
        for (range, value) in fields {
            let mut rest = value.unsigned_abs();
            for digit in text[range].iter_mut().rev() {
                *digit = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_iso8601(s).ok_or_else(|| format!("{s:?} is not an ISO 8601 date-time"))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a duration in Trigger.dev's grammar: one or more `<digits><unit>` groups, units
/// `w` (weeks), `d`, `h` or `hr`, `m` (minutes), `s`; for example `"10m"` or `"1h30m"`.
/// Zero is rejected: a timeout or a time to live of nothing is always a mistake.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    if text.is_empty() || text.len() > MAX_DURATION_LEN {
        return Err(invalid());
    }
    let bytes = text.as_bytes();
    let mut total: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let amount: u64 = text[start..i].parse().map_err(|_| DurationError::Overflow(text.to_owned()))?;
        let (seconds_per_unit, unit_len) = match &bytes[i..] {
            [b'h', b'r', ..] => (3_600, 2),
            [b'w', ..] => (604_800, 1),
            [b'd', ..] => (86_400, 1),
            [b'h', ..] => (3_600, 1),
            [b'm', ..] => (60, 1),
            [b's', ..] => (1, 1),
            _ => return Err(invalid()),
        };
        i += unit_len;
        total = amount
            .checked_mul(seconds_per_unit)
            .and_then(|s| s.checked_add(total))
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
    }
    if total == 0 {
        return Err(DurationError::Zero(text.to_owned()));
    }
    // Durations beyond year 9999 cannot be represented by a Timestamp anyway.
    if total > (MAX_MILLIS / 1000) as u64 {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_every_field_as_the_calendar_has_it_across_the_range() {
        let reference = |millis: i64| {
            let dt =
                TimeZone::UTC.to_datetime(jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::MAX));
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            )
        };
        // A walk over the whole range with a step that lands on every kind of field value.
        let step = 7_777_777_777_i64;
        let mut millis = MIN_MILLIS;
        while millis <= MAX_MILLIS {
            assert_eq!(Timestamp::from_millis(millis).to_string(), reference(millis), "{millis}");
            millis += step;
        }
        assert_eq!(Timestamp::MAX.to_string(), reference(MAX_MILLIS));
        assert_eq!(Timestamp::from_millis(951_782_400_000 + 86_399_999).to_string(), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn formats_like_javascript_date_to_json() {
        assert_eq!(Timestamp::from_millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_millis(1_743_501_600_007).to_string(), "2025-04-01T10:00:00.007Z");
    }

    /// Regression: timestamps after jiff's range printed as 1970.
    #[test]
    fn the_latest_timestamps_print_as_themselves() {
        assert_eq!(Timestamp::MAX.as_millis(), jiff::Timestamp::MAX.as_millisecond());
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-30T22:00:00.999Z");
        assert_eq!(Timestamp::from_millis(i64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_millis(0).saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::parse_iso8601("9999-12-31T23:59:59Z"), None);
        assert_eq!(Timestamp::parse_iso8601("9999-12-30T22:00:00.999Z"), Some(Timestamp::MAX));
    }

    #[test]
    fn adding_a_duration_saturates_at_the_latest_timestamp() {
        let now = Timestamp::from_millis(1_000);
        assert_eq!(now + Duration::from_secs(2), Timestamp::from_millis(3_000));
        assert_eq!(now + Duration::MAX, Timestamp::MAX);
    }

    #[test]
    fn checked_add_refuses_ends_past_the_latest_timestamp() {
        let now = Timestamp::from_millis(1_743_501_600_000);
        assert_eq!(now.checked_add(Duration::from_secs(1)), Some(Timestamp::from_millis(1_743_501_601_000)));
        assert_eq!(now.checked_add(Duration::from_secs(2_932_000 * 86_400)), None);
        assert_eq!(now.checked_add(Duration::from_millis(u64::MAX)), None);
        assert_eq!(now.checked_add(Duration::MAX), None);
        let to_max = Duration::from_millis((MAX_MILLIS - now.as_millis()) as u64);
        assert_eq!(now.checked_add(to_max), Some(Timestamp::MAX));
    }

    #[test]
    fn parses_iso_dates_with_offsets_and_bare_dates() {
        let t = Timestamp::parse_iso8601("2025-04-01T10:00:00Z").unwrap();
        assert_eq!(t.as_millis(), 1_743_501_600_000);
        assert_eq!(Timestamp::parse_iso8601("2025-04-01T12:00:00+02:00"), Some(t));
        assert_eq!(Timestamp::parse_iso8601("2025-04-01T10:00:00.250Z").unwrap().as_millis(), 1_743_501_600_250);
        assert_eq!(Timestamp::parse_iso8601("2025-04-01").unwrap().as_millis(), 1_743_465_600_000);
        for bad in ["", "yesterday", "10m", "2025-13-01", "1", "1969-12-31T23:59:59Z"] {
            assert_eq!(Timestamp::parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_round_trip_through_json() {
        let t = Timestamp::from_millis(1_743_501_600_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-04-01T10:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn parses_the_duration_grammar() {
        let cases = [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7_200),
            ("2hr", 7_200),
            ("3d", 259_200),
            ("4w", 2_419_200),
            ("1h30m", 5_400),
            ("2d12h", 216_000),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_positive_duration() {
        for bad in ["", "10", "m", "10 m", "10M", "1mo", "1y", "10ms", "-5m", "1.5h", "soon", " 10m"] {
            assert!(matches!(parse_duration(bad), Err(DurationError::Invalid(_))), "{bad}");
        }
        assert!(matches!(parse_duration("0s"), Err(DurationError::Zero(_))));
        assert!(matches!(parse_duration("99999999999999999999w"), Err(DurationError::Overflow(_))));
        assert!(matches!(parse_duration("999999999w"), Err(DurationError::Overflow(_))));
        let message = parse_duration("soon").unwrap_err().to_string();
        assert!(message.contains("\"10m\""), "{message}");
    }
}
