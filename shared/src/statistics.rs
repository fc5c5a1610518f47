//! Job statistics: how many jobs were submitted, per UTC day, queue and
//! submitter (upstream #1327, `GET /v1/statistics/jobs`).
//!
//! The stores keep one counter per (day, queue, submitter), incremented as
//! each job is stored ([`CounterKey::of`] says which counter a job goes
//! to), so a question about a month reads at most a month of counters and
//! never the jobs themselves. Counters are not touched by retention: they
//! outlive the jobs they counted.

use std::collections::BTreeMap;
use std::fmt;

use time::{Date, Month};

use crate::job::NewJob;
use crate::Timestamp;

const MILLIS_PER_DAY: i64 = 86_400_000;
/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Days a query covers when it names no `start`: the last 30, today included.
pub const DEFAULT_STATISTICS_DAYS: i64 = 30;
/// Most days one query may cover (a leap year).
pub const MAX_STATISTICS_DAYS: i64 = 366;
/// Most values each of the `queues` and `submitters` filters may list.
pub const MAX_STATISTICS_FILTER_VALUES: usize = 100;

/// A calendar day in UTC, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The day `t` falls on.
    pub fn of(t: Timestamp) -> Day {
        Day(t.millis().div_euclid(MILLIS_PER_DAY))
    }

    pub fn from_days_since_epoch(days: i64) -> Day {
        Day(days)
    }

    pub fn days_since_epoch(self) -> i64 {
        self.0
    }

    /// Midnight (UTC) at the start of the day.
    pub fn start(self) -> Timestamp {
        Timestamp::from_millis(self.0.saturating_mul(MILLIS_PER_DAY))
    }

    /// This day plus (or minus) `days`.
    pub fn plus(self, days: i64) -> Day {
        Day(self.0.saturating_add(days))
    }

    /// Days from `earlier` to `self` (negative when `earlier` is later).
    pub fn days_since(self, earlier: Day) -> i64 {
        self.0 - earlier.0
    }

    /// `YYYY-MM-DD` (a calendar date only: no time, no offset).
    pub fn parse(text: &str) -> Option<Day> {
        let mut parts = text.splitn(3, '-');
        let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
            return None;
        }
        let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
        let date = Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
        Some(Day(i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY))
    }

    fn date(self) -> Option<Date> {
        let julian = i32::try_from(self.0 + UNIX_EPOCH_JULIAN_DAY).ok()?;
        Date::from_julian_day(julian).ok()
    }
}

/// `2026-09-17`: how the API shows a day and how both stores key counters
/// (the text sorts as the days do).
impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date() {
            Some(d) => write!(
                f,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            None => write!(f, "day{}", self.0),
        }
    }
}

/// What the counts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The job's queue.
    Queue,
    /// The client that submitted the job with a token; anonymous jobs form
    /// one group whose key is `None` (JSON `null`).
    SubmittedBy,
}

impl GroupBy {
    pub const ALL: [GroupBy; 2] = [GroupBy::SubmittedBy, GroupBy::Queue];

    pub fn parse(text: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Queue => "queue",
            GroupBy::SubmittedBy => "submitted_by",
        }
    }
}

/// The counter one stored job adds 1 to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    /// The UTC day of the job's `created_at`.
    pub day: Day,
    pub queue: String,
    /// The job's `client_id`; `None` for an anonymous job.
    pub submitted_by: Option<String>,
}

impl CounterKey {
    /// Which counter a newly stored job is counted under: defined once,
    /// both stores count by it.
    pub fn of(job: &NewJob) -> CounterKey {
        CounterKey {
            day: Day::of(job.created_at),
            queue: job.job_queue.clone(),
            submitted_by: job.client_id().map(str::to_owned),
        }
    }

    /// The increments a batch of new jobs makes, one per counter.
    pub fn tally(jobs: &[NewJob]) -> BTreeMap<CounterKey, u64> {
        let mut counts = BTreeMap::new();
        for job in jobs {
            *counts.entry(CounterKey::of(job)).or_insert(0) += 1;
        }
        counts
    }
}

/// `GET /v1/statistics/jobs` as the client asked it: each parameter parsed,
/// none yet checked against the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatisticsRequest {
    /// `None`: by submitter.
    pub group_by: Option<GroupBy>,
    /// From this instant's day (inclusive); `None`: [`DEFAULT_STATISTICS_DAYS`]
    /// before `stop`.
    pub start: Option<Timestamp>,
    /// Until this instant (exclusive), widened to the end of its day when
    /// it is not a midnight; `None`: the end of today (UTC).
    pub stop: Option<Timestamp>,
    pub queues: Vec<String>,
    pub submitters: Vec<String>,
}

/// Which counters to read and how to group them: the days `start` ≤ day <
/// `stop`, only the listed queues and submitters (every one when a list is
/// empty). A `submitters` filter selects clients, so it leaves anonymous
/// jobs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsQuery {
    pub group_by: GroupBy,
    pub start: Day,
    pub stop: Day,
    pub queues: Vec<String>,
    pub submitters: Vec<String>,
}

impl StatisticsQuery {
    /// Whether a counter is one the query reads: the definition both
    /// stores' filters encode (checked by the conformance suite).
    pub fn admits(&self, key: &CounterKey) -> bool {
        (self.start..self.stop).contains(&key.day)
            && (self.queues.is_empty() || self.queues.contains(&key.queue))
            && (self.submitters.is_empty()
                || key
                    .submitted_by
                    .as_ref()
                    .is_some_and(|s| self.submitters.contains(s)))
    }

    /// The group a counter is added to.
    pub fn group_of(&self, key: &CounterKey) -> Option<String> {
        match self.group_by {
            GroupBy::Queue => Some(key.queue.clone()),
            GroupBy::SubmittedBy => key.submitted_by.clone(),
        }
    }
}

/// Jobs submitted on one day in one group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyCount {
    pub day: Day,
    /// The queue, or the submitting client (`None`: anonymous).
    pub key: Option<String>,
    pub count: u64,
}

/// Jobs submitted over the whole range in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTotal {
    pub key: Option<String>,
    pub count: u64,
}

/// The answer to a statistics query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatistics {
    pub query: StatisticsQuery,
    /// Every job counted.
    pub total: u64,
    /// One entry per group with jobs: most jobs first, then by key
    /// (anonymous first).
    pub totals: Vec<GroupTotal>,
    /// One entry per day and group with jobs: by day, then by key.
    pub daily: Vec<DailyCount>,
}

impl JobStatistics {
    /// Totals and order from the store's daily counts (in any order; a day
    /// and group given twice is added up).
    pub fn new(query: StatisticsQuery, counts: Vec<DailyCount>) -> Self {
        let mut daily: BTreeMap<(Day, Option<String>), u64> = BTreeMap::new();
        let mut groups: BTreeMap<Option<String>, u64> = BTreeMap::new();
        for c in counts.into_iter().filter(|c| c.count > 0) {
            *groups.entry(c.key.clone()).or_insert(0) += c.count;
            *daily.entry((c.day, c.key)).or_insert(0) += c.count;
        }
        let mut totals: Vec<GroupTotal> = groups
            .into_iter()
            .map(|(key, count)| GroupTotal { key, count })
            .collect();
        totals.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        JobStatistics {
            query,
            total: totals.iter().map(|t| t.count).sum(),
            totals,
            daily: daily
                .into_iter()
                .map(|((day, key), count)| DailyCount { day, key, count })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        let t = Timestamp::parse_rfc3339("2026-09-17T23:59:59.999Z").unwrap();
        assert_eq!(Day::of(t).to_string(), "2026-09-17");
        assert_eq!(Day::of(t.plus_seconds(1)).to_string(), "2026-09-18");
        let late = Timestamp::parse_rfc3339("2026-09-17T23:30:00-02:00").unwrap();
        assert_eq!(Day::of(late).to_string(), "2026-09-18");
        assert_eq!(Day::of(Timestamp::from_millis(0)).to_string(), "1970-01-01");
        assert_eq!(
            Day::of(Timestamp::from_millis(-1)).to_string(),
            "1969-12-31"
        );
        let day = Day::parse("2026-09-17").unwrap();
        assert_eq!(day.start().to_rfc3339(), "2026-09-17T00:00:00.000Z");
        assert_eq!(Day::of(day.start()), day);
        assert_eq!(day.plus(14).to_string(), "2026-10-01");
        assert_eq!(
            Day::parse("2028-02-29").unwrap().plus(1).to_string(),
            "2028-03-01"
        );
        for bad in [
            "2026-02-30",
            "2026-9-17",
            "17-09-2026",
            "2026-09-17T00:00:00Z",
            "",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
    }

    fn key(day: i64, queue: &str, by: Option<&str>) -> CounterKey {
        CounterKey {
            day: Day(day),
            queue: queue.into(),
            submitted_by: by.map(str::to_owned),
        }
    }

    #[test]
    fn a_query_admits_its_days_queues_and_submitters() {
        let mut query = StatisticsQuery {
            group_by: GroupBy::Queue,
            start: Day(10),
            stop: Day(12),
            queues: vec![],
            submitters: vec![],
        };
        assert!(query.admits(&key(10, "q", None)));
        assert!(query.admits(&key(11, "q", Some("ci"))));
        assert!(!query.admits(&key(9, "q", None)));
        assert!(!query.admits(&key(12, "q", None)), "stop is exclusive");
        query.queues = vec!["q".into()];
        assert!(!query.admits(&key(10, "other", None)));
        query.submitters = vec!["ci".into()];
        assert!(query.admits(&key(10, "q", Some("ci"))));
        assert!(!query.admits(&key(10, "q", Some("bot"))));
        assert!(!query.admits(&key(10, "q", None)), "anonymous is no client");
    }

    #[test]
    fn totals_are_summed_and_ordered() {
        let query = StatisticsQuery {
            group_by: GroupBy::SubmittedBy,
            start: Day(0),
            stop: Day(5),
            queues: vec![],
            submitters: vec![],
        };
        let c = |day, key: Option<&str>, count| DailyCount {
            day: Day(day),
            key: key.map(str::to_owned),
            count,
        };
        let stats = JobStatistics::new(
            query,
            vec![
                c(2, Some("b"), 1),
                c(1, None, 2),
                c(1, Some("a"), 1),
                c(2, Some("a"), 1),
                c(1, Some("b"), 1),
                c(3, Some("z"), 0),
                c(1, Some("a"), 1),
            ],
        );
        assert_eq!(stats.total, 7);
        let totals: Vec<(Option<&str>, u64)> = stats
            .totals
            .iter()
            .map(|t| (t.key.as_deref(), t.count))
            .collect();
        assert_eq!(totals, [(Some("a"), 3), (None, 2), (Some("b"), 2)]);
        assert_eq!(
            stats.daily,
            [
                c(1, None, 2),
                c(1, Some("a"), 2),
                c(1, Some("b"), 1),
                c(2, Some("a"), 1),
                c(2, Some("b"), 1),
            ]
        );
    }
}
