//! Query strings: parsed into the domain's queries, every bad parameter
//! reported at once (422 under `detail.query`), and the search's next-page
//! link.

use testflinger_shared::error::Location;
use testflinger_shared::logs::{LogQuery, LOG_PHASES};
use testflinger_shared::queues::{JobSummary, SearchQuery, SEARCH_MAX_LIMIT};
use testflinger_shared::statistics::{Day, GroupBy, StatisticsRequest};
use testflinger_shared::validation::FieldErrors;
use testflinger_shared::{Error, Timestamp};
use uuid::Uuid;

/// The decoded `key=value` pairs of a query string, in order.
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Every value of a repeatable query parameter, in order.
pub fn values(query: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn checked<T>(value: T, errors: FieldErrors) -> Result<T, Error> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(Error::validation_at(Location::Query, errors))
    }
}

/// `?start_fragment=N&start_timestamp=T&phase=P`
pub fn log_query(pairs: &[(String, String)]) -> Result<LogQuery, Error> {
    let mut errors = FieldErrors::new();
    let mut out = LogQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            "start_fragment" => match value.parse::<i64>() {
                Ok(n) if n >= 0 => out.start_fragment = n,
                _ => errors.add("start_fragment", "Must be an integer of 0 or more."),
            },
            "start_timestamp" => match Timestamp::parse_rfc3339(value) {
                Some(t) => out.start_timestamp = Some(t),
                None => errors.add("start_timestamp", "Must be an RFC 3339 date-time."),
            },
            "phase" => {
                if LOG_PHASES.contains(&value.as_str()) {
                    out.phase = Some(value.clone());
                } else {
                    errors.add(
                        "phase",
                        format!("Must be one of: {}.", LOG_PHASES.join(", ")),
                    );
                }
            }
            _ => {}
        }
    }
    checked(out, errors)
}

/// `?tags=..&match=any|all&state=..&limit=..&before=..`
pub fn search_query(pairs: &[(String, String)]) -> Result<SearchQuery, Error> {
    let mut errors = FieldErrors::new();
    let mut query = SearchQuery::default();
    for (key, value) in pairs {
        match key.as_str() {
            "tags" => query.tags.push(value.clone()),
            "match" => match value.as_str() {
                "any" => query.match_all = false,
                "all" => query.match_all = true,
                _ => errors.add("match", "Must be \"any\" or \"all\"."),
            },
            "state" if value == "active" => query.active = true,
            "state" if !value.is_empty() => query.states.push(value.clone()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=SEARCH_MAX_LIMIT).contains(&n) => query.limit = n,
                _ => errors.add(
                    "limit",
                    format!("Must be an integer from 1 to {SEARCH_MAX_LIMIT}."),
                ),
            },
            "before" => match parse_cursor(value) {
                Some(cursor) => query.before = Some(cursor),
                None => errors.add("before", "Not a cursor from a previous page's Link header."),
            },
            _ => {}
        }
    }
    checked(query, errors)
}

/// `?group_by=submitted_by|queue&start=..&stop=..&queues=..&submitters=..`
/// (`queues` and `submitters` repeatable). `start` and `stop` are a date
/// (`2026-09-01`, midnight UTC) or an RFC 3339 date-time.
pub fn statistics_request(pairs: &[(String, String)]) -> Result<StatisticsRequest, Error> {
    let mut errors = FieldErrors::new();
    let mut request = StatisticsRequest::default();
    let instant = |value: &str| {
        Day::parse(value)
            .map(Day::start)
            .or_else(|| Timestamp::parse_rfc3339(value))
    };
    for (key, value) in pairs {
        match key.as_str() {
            "group_by" => match GroupBy::parse(value) {
                Some(group_by) => request.group_by = Some(group_by),
                None => errors.add(
                    "group_by",
                    format!(
                        "Must be one of: {}.",
                        GroupBy::ALL.map(GroupBy::as_str).join(", ")
                    ),
                ),
            },
            "start" | "stop" => match instant(value) {
                Some(t) if key == "start" => request.start = Some(t),
                Some(t) => request.stop = Some(t),
                None => errors.add(
                    key.as_str(),
                    "Must be a date (YYYY-MM-DD, UTC) or an RFC 3339 date-time.",
                ),
            },
            "queues" => request.queues.push(value.clone()),
            "submitters" => request.submitters.push(value.clone()),
            _ => {}
        }
    }
    checked(request, errors)
}

/// The query string of the search page after `last`.
pub fn next_page(query: &SearchQuery, last: &JobSummary) -> String {
    let mut pairs: Vec<(&str, String)> = query.tags.iter().map(|t| ("tags", t.clone())).collect();
    if query.match_all {
        pairs.push(("match", "all".into()));
    }
    pairs.extend(query.states.iter().map(|s| ("state", s.clone())));
    if query.active {
        pairs.push(("state", "active".into()));
    }
    pairs.push(("limit", query.limit.to_string()));
    pairs.push(("before", cursor(last)));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `<created_at ms>_<job id>`: where the next page starts.
pub fn cursor(summary: &JobSummary) -> String {
    format!("{}_{}", summary.created_at.millis(), summary.job_id)
}

fn parse_cursor(text: &str) -> Option<(Timestamp, Uuid)> {
    let (millis, id) = text.split_once('_')?;
    Some((
        Timestamp::from_millis(millis.parse().ok()?),
        Uuid::parse_str(id).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testflinger_shared::job::JobState;

    fn list(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(error: Error) -> Vec<String> {
        match error {
            Error::Validation {
                location: Location::Query,
                fields,
                ..
            } => fields.fields().map(str::to_owned).collect(),
            other => panic!("expected a query validation error, not {other:?}"),
        }
    }

    #[test]
    fn repeated_query_parameters_are_all_kept() {
        assert_eq!(
            values(Some("queue=a&x=1&queue=b%20c"), "queue"),
            vec!["a", "b c"]
        );
        assert!(values(None, "queue").is_empty());
    }

    #[test]
    fn queries_are_parsed_and_checked() {
        let q = |items: &[(&str, &str)]| log_query(&list(items));
        assert_eq!(q(&[("start_fragment", "3")]).unwrap().start_fragment, 3);
        let errors = q(&[
            ("start_fragment", "x"),
            ("phase", "lunch"),
            ("start_timestamp", "no"),
        ])
        .unwrap_err();
        assert_eq!(
            fields(errors),
            ["phase", "start_fragment", "start_timestamp"]
        );
    }

    #[test]
    fn statistics_queries_take_dates_or_times_and_repeat_filters() {
        let q = statistics_request(&list(&[
            ("group_by", "queue"),
            ("start", "2026-09-01"),
            ("stop", "2026-09-03T12:00:00+02:00"),
            ("queues", "a"),
            ("queues", "b"),
            ("submitters", "ci"),
        ]))
        .unwrap();
        assert_eq!(q.group_by, Some(GroupBy::Queue));
        assert_eq!(q.start.unwrap().to_rfc3339(), "2026-09-01T00:00:00.000Z");
        assert_eq!(q.stop.unwrap().to_rfc3339(), "2026-09-03T10:00:00.000Z");
        assert_eq!(q.queues, ["a", "b"]);
        assert_eq!(q.submitters, ["ci"]);
        assert_eq!(
            statistics_request(&[]).unwrap(),
            StatisticsRequest::default()
        );
        let bad = statistics_request(&list(&[
            ("group_by", "agent"),
            ("start", "yesterday"),
            ("stop", "2026-02-30"),
        ]))
        .unwrap_err();
        assert_eq!(fields(bad), ["group_by", "start", "stop"]);
    }

    #[test]
    fn search_queries_parse_and_page() {
        let q = search_query(&list(&[
            ("tags", "a b"),
            ("tags", "c"),
            ("match", "all"),
            ("state", "active"),
            ("limit", "2"),
        ]))
        .unwrap();
        assert_eq!(q.tags, ["a b", "c"]);
        assert!(q.match_all && q.active);
        assert!(q.admits_state(&JobState::parse("test")) && !q.admits_state(&JobState::Cancelled));
        let last = JobSummary {
            job_id: Uuid::nil(),
            created_at: Timestamp::from_millis(42),
            job_state: JobState::Waiting,
            job_queue: "q".into(),
            tags: vec![],
            submitted_by: None,
        };
        let next = next_page(&q, &last);
        assert_eq!(
            next,
            format!(
                "tags=a%20b&tags=c&match=all&state=active&limit=2&before=42_{}",
                Uuid::nil()
            )
        );
        let again = search_query(&pairs(Some(&next))).unwrap();
        assert_eq!(
            again.before,
            Some((Timestamp::from_millis(42), Uuid::nil()))
        );
        let bad =
            search_query(&list(&[("match", "some"), ("limit", "0"), ("before", "x")])).unwrap_err();
        assert_eq!(fields(bad), ["before", "limit", "match"]);
    }
}
