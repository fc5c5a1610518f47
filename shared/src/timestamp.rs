//! Points in time as milliseconds since the Unix epoch, shown as RFC 3339 in UTC.

use std::fmt;
use time::{
    format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime,
    PrimitiveDateTime,
};

/// A UTC instant with millisecond precision, the resolution every backend keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }

    pub fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// This instant plus (or minus) whole seconds, saturating.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 date-time (any offset), as clients send them; one
    /// without an offset is taken as UTC, as upstream's server did.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
            let naive = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            PrimitiveDateTime::parse(text, &naive)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })?;
        Some(Timestamp(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }

    /// `2026-11-25T00:43:53.642Z`: the form SPEC.md §2 asks for in responses.
    pub fn to_rfc3339(self) -> String {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }

    /// Seconds from `earlier` to `self`, never negative.
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0).max(0) / 1000
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = Timestamp::from_millis(1_795_567_433_642);
        assert_eq!(t.to_rfc3339(), "2026-11-25T00:43:53.642Z");
    }

    #[test]
    fn parses_offsets_into_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-25T01:43:53.642+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T00:43:53.642Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
        let naive = Timestamp::parse_rfc3339("2026-11-25T00:43:53.642").unwrap();
        assert_eq!(naive.to_rfc3339(), "2026-11-25T00:43:53.642Z");
    }
}
