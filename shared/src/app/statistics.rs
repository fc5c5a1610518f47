//! Job statistics: totals and daily counts of submitted jobs, by submitter
//! or by queue, read from the counters the stores keep as jobs are stored.

use super::App;
use crate::clients::is_client_id;
use crate::error::Location;
use crate::statistics::{
    Day, GroupBy, JobStatistics, StatisticsQuery, StatisticsRequest, DEFAULT_STATISTICS_DAYS,
    MAX_STATISTICS_DAYS, MAX_STATISTICS_FILTER_VALUES,
};
use crate::validation::FieldErrors;
use crate::{Error, Result, Timestamp};

impl App {
    /// `GET /v1/statistics/jobs`: jobs submitted over whole UTC days, in
    /// total and per day, grouped by submitter (the default) or by queue.
    /// Every bad parameter is reported at once (422, `detail.query`).
    pub async fn job_statistics(
        &self,
        request: StatisticsRequest,
        now: Timestamp,
    ) -> Result<JobStatistics> {
        let query = resolve(request, now)?;
        let counts = self.store.daily_job_counts(&query).await?;
        Ok(JobStatistics::new(query, counts))
    }
}

/// The days and filters a request asks for. `start` counts from its day;
/// `stop` is exclusive, and an instant within a day takes that whole day
/// (counters are per day). By default the range ends with today (UTC) and
/// starts [`DEFAULT_STATISTICS_DAYS`] earlier.
fn resolve(request: StatisticsRequest, now: Timestamp) -> Result<StatisticsQuery> {
    let mut errors = FieldErrors::new();
    let stop = match request.stop {
        // The first day that begins at or after `stop`.
        Some(stop) => Day::of(Timestamp::from_millis(stop.millis() - 1)).plus(1),
        None => Day::of(now).plus(1),
    };
    let start = match request.start {
        Some(start) => Day::of(start),
        None => stop.plus(-DEFAULT_STATISTICS_DAYS),
    };
    // A range problem is named after the bound the client gave (`stop`
    // when both were given).
    let bound = if request.stop.is_some() || request.start.is_none() {
        "stop"
    } else {
        "start"
    };
    let days = stop.days_since(start);
    if days <= 0 {
        errors.add(
            bound,
            format!("The range is empty: start ({start}) must be before stop ({stop}, exclusive)."),
        );
    } else if days > MAX_STATISTICS_DAYS {
        errors.add(
            bound,
            format!(
                "At most {MAX_STATISTICS_DAYS} days at once: {start} to {stop} (exclusive) is {days}."
            ),
        );
    }
    let queues = filter_values(request.queues, "queues", &mut errors, |queue| {
        (!queue.trim().is_empty())
            .then_some(())
            .ok_or("Must be a non-empty queue name.")
    });
    let submitters = filter_values(request.submitters, "submitters", &mut errors, |id| {
        is_client_id(id).then_some(()).ok_or(
            "Not a client id (1 to 128 printable characters without whitespace, '/', '$' or ':').",
        )
    });
    if !errors.is_empty() {
        return Err(Error::validation_at(Location::Query, errors));
    }
    Ok(StatisticsQuery {
        group_by: request.group_by.unwrap_or(GroupBy::SubmittedBy),
        start,
        stop,
        queues,
        submitters,
    })
}

/// A filter's distinct values, each checked; at most
/// [`MAX_STATISTICS_FILTER_VALUES`].
fn filter_values(
    values: Vec<String>,
    field: &str,
    errors: &mut FieldErrors,
    check: impl Fn(&str) -> std::result::Result<(), &'static str>,
) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for value in values {
        if let Err(problem) = check(&value) {
            errors.add(field, format!("{problem} Got {value:?}."));
        } else if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    if distinct.len() > MAX_STATISTICS_FILTER_VALUES {
        errors.add(
            field,
            format!("At most {MAX_STATISTICS_FILTER_VALUES} distinct values."),
        );
    }
    distinct
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    fn problems(request: StatisticsRequest) -> Vec<String> {
        match resolve(request, at("2026-09-17T10:00:00Z")) {
            Err(Error::Validation {
                location: Location::Query,
                fields,
                ..
            }) => fields.fields().map(str::to_owned).collect(),
            other => panic!("expected a query validation error, not {other:?}"),
        }
    }

    #[test]
    fn by_default_the_last_thirty_days_by_submitter() {
        let query = resolve(StatisticsRequest::default(), at("2026-09-17T10:00:00Z")).unwrap();
        assert_eq!(query.group_by, GroupBy::SubmittedBy);
        assert_eq!(query.stop, day("2026-09-18"), "today is included");
        assert_eq!(query.start, day("2026-08-19"));
        assert_eq!(query.stop.days_since(query.start), 30);
    }

    #[test]
    fn bounds_widen_to_whole_days_and_stop_is_exclusive() {
        let resolve_at = |start: &str, stop: &str| {
            let request = StatisticsRequest {
                start: Some(at(start)),
                stop: Some(at(stop)),
                ..StatisticsRequest::default()
            };
            let query = resolve(request, at("2026-09-17T10:00:00Z")).unwrap();
            (query.start.to_string(), query.stop.to_string())
        };
        assert_eq!(
            resolve_at("2026-09-01T00:00:00Z", "2026-09-03T00:00:00Z"),
            ("2026-09-01".into(), "2026-09-03".into())
        );
        assert_eq!(
            resolve_at("2026-09-01T12:00:00Z", "2026-09-03T00:00:00.001Z"),
            ("2026-09-01".into(), "2026-09-04".into())
        );
        // Only the start given: up to the end of today.
        let request = StatisticsRequest {
            start: Some(at("2026-09-10T00:00:00Z")),
            ..StatisticsRequest::default()
        };
        let query = resolve(request, at("2026-09-17T10:00:00Z")).unwrap();
        assert_eq!(query.stop, day("2026-09-18"));
        // Only the stop given: the thirty days before it.
        let request = StatisticsRequest {
            stop: Some(at("2026-03-01T00:00:00Z")),
            ..StatisticsRequest::default()
        };
        let query = resolve(request, at("2026-09-17T10:00:00Z")).unwrap();
        assert_eq!(query.start, day("2026-01-30"));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let empty = StatisticsRequest {
            start: Some(at("2026-09-03T00:00:00Z")),
            stop: Some(at("2026-09-03T00:00:00Z")),
            queues: vec!["".into()],
            submitters: vec!["has space".into()],
            ..StatisticsRequest::default()
        };
        assert_eq!(problems(empty), ["queues", "stop", "submitters"]);
        let future_start = StatisticsRequest {
            start: Some(at("2026-10-01T00:00:00Z")),
            ..StatisticsRequest::default()
        };
        assert_eq!(problems(future_start), ["start"]);
        let too_long = StatisticsRequest {
            start: Some(at("2025-01-01T00:00:00Z")),
            stop: Some(at("2026-01-03T00:00:00Z")),
            ..StatisticsRequest::default()
        };
        assert_eq!(problems(too_long), ["stop"]);
        let year = StatisticsRequest {
            start: Some(at("2024-01-01T00:00:00Z")),
            stop: Some(at("2025-01-01T00:00:00Z")),
            ..StatisticsRequest::default()
        };
        assert!(
            resolve(year, at("2026-09-17T10:00:00Z")).is_ok(),
            "a leap year"
        );
        let many = StatisticsRequest {
            queues: (0..=MAX_STATISTICS_FILTER_VALUES)
                .map(|i| format!("q{i}"))
                .collect(),
            ..StatisticsRequest::default()
        };
        assert_eq!(problems(many), ["queues"]);
    }

    #[test]
    fn repeated_filter_values_count_once() {
        let request = StatisticsRequest {
            queues: vec!["a".into(), "b".into(), "a".into()],
            submitters: vec!["ci".into(), "ci".into()],
            ..StatisticsRequest::default()
        };
        let query = resolve(request, at("2026-09-17T10:00:00Z")).unwrap();
        assert_eq!(query.queues, ["a", "b"]);
        assert_eq!(query.submitters, ["ci"]);
    }
}
