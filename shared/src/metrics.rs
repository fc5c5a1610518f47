//! The process's metrics, rendered in Prometheus's text format by
//! `GET /metrics`: counters and latency histograms kept in memory (per
//! process: under Lambda, per instance; see the README), and the gauges a
//! scrape computes from the store ([`crate::app::App::gauges`]).
//!
//! Every metric is declared once in [`METRICS`] with its help text; the
//! README's table lists the same names (a test keeps them in agreement).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{LazyLock, Mutex, MutexGuard};

/// `(name, type, help)` of every metric this server exports.
pub const METRICS: &[(&str, &str, &str)] = &[
    (HTTP_REQUESTS, "counter", "HTTP requests answered, by route-table name, method and status."),
    (HTTP_DURATION, "histogram", "Seconds from a request's arrival to its answer's head, by route-table name."),
    (JOBS_SUBMITTED, "counter", "Jobs submitted, by queue."),
    (JOBS_CLAIMED, "counter", "Jobs claimed by agents, by queue."),
    (JOBS_FINISHED, "counter", "Jobs that reached a final state, by that state (complete, cancelled)."),
    (JOBS_REQUEUED, "counter", "Jobs put back in their queue after their agent went silent past its lease."),
    (LEASES_ENDED, "counter", "Jobs ended (cancelled) because their last lease ran out."),
    (ARTIFACT_BYTES, "counter", "Artifact and attachment bytes stored (direction=in) and sent (direction=out) by this process."),
    (STORE_DURATION, "histogram", "Seconds per store operation, by backend and operation."),
    (JOBS_ACTIVE, "gauge", "Jobs waiting or running now, by queue and state (waiting, running)."),
    (AGENTS, "gauge", "Agents now, by state (the reported state; silent for agents not heard from)."),
];

pub const HTTP_REQUESTS: &str = "testflinger_http_requests_total";
pub const HTTP_DURATION: &str = "testflinger_http_request_duration_seconds";
pub const JOBS_SUBMITTED: &str = "testflinger_jobs_submitted_total";
pub const JOBS_CLAIMED: &str = "testflinger_jobs_claimed_total";
pub const JOBS_FINISHED: &str = "testflinger_jobs_finished_total";
pub const JOBS_REQUEUED: &str = "testflinger_jobs_requeued_total";
pub const LEASES_ENDED: &str = "testflinger_jobs_lease_ended_total";
pub const ARTIFACT_BYTES: &str = "testflinger_artifact_bytes_total";
pub const STORE_DURATION: &str = "testflinger_store_operation_duration_seconds";
pub const JOBS_ACTIVE: &str = "testflinger_jobs";
pub const AGENTS: &str = "testflinger_agents";

/// A gauge computed at scrape time: its metric, labels and value.
pub type Gauge = (&'static str, Vec<(&'static str, String)>, f64);

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Series one metric may have at most: label values come from requests
/// (queue names), and a flood of new ones must not grow memory without
/// bound. Past it, new values are counted under `_other`.
const MAX_SERIES: usize = 2_000;
const OTHER: &str = "_other";

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One metric's series, by their rendered labels.
type Series<T> = BTreeMap<String, T>;

#[derive(Debug, Default)]
pub struct Registry {
    counters: Mutex<HashMap<&'static str, Series<u64>>>,
    histograms: Mutex<HashMap<&'static str, Series<Histogram>>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// This process's registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Adds `by` to a counter.
pub fn count(name: &'static str, labels: &[(&str, &str)], by: u64) {
    registry().count(name, labels, by);
}

/// Records one latency.
pub fn observe(name: &'static str, labels: &[(&str, &str)], seconds: f64) {
    registry().observe(name, labels, seconds);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned registry still holds valid numbers.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{a="x",b="y"}`, values escaped as the text format asks.
fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars().take(200) {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The series key for `labels`, or the `_other` one once the metric is full.
fn series_key<T>(series: &Series<T>, labels: &[(&str, &str)]) -> String {
    let key = render_labels(labels);
    if series.len() < MAX_SERIES || series.contains_key(&key) {
        return key;
    }
    let capped: Vec<(&str, &str)> = labels.iter().map(|(k, _)| (*k, OTHER)).collect();
    render_labels(&capped)
}

impl Registry {
    pub fn count(&self, name: &'static str, labels: &[(&str, &str)], by: u64) {
        let mut counters = lock(&self.counters);
        let series = counters.entry(name).or_default();
        let key = series_key(series, labels);
        *series.entry(key).or_default() += by;
    }

    pub fn observe(&self, name: &'static str, labels: &[(&str, &str)], seconds: f64) {
        let mut histograms = lock(&self.histograms);
        let series = histograms.entry(name).or_default();
        let key = series_key(series, labels);
        let histogram = series.entry(key).or_default();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The counter's value for exactly these labels (tests, gauges).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        lock(&self.counters)
            .get(name)
            .and_then(|s| s.get(&render_labels(labels)).copied())
            .unwrap_or(0)
    }

    /// Every metric in the text format (version 0.0.4), with `gauges`
    /// (`(name, labels, value)`) computed by the caller.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let counters = lock(&self.counters).clone();
        let histograms = lock(&self.histograms).clone();
        for (name, kind, help) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match *kind {
                "counter" => {
                    for (labels, value) in counters.get(name).into_iter().flatten() {
                        let _ = writeln!(out, "{name}{labels} {value}");
                    }
                }
                "histogram" => {
                    for (labels, h) in histograms.get(name).into_iter().flatten() {
                        write_histogram(&mut out, name, labels, h);
                    }
                }
                _ => {
                    for (_, labels, value) in gauges.iter().filter(|g| g.0 == *name) {
                        let pairs: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        let _ = writeln!(out, "{name}{} {value}", render_labels(&pairs));
                    }
                }
            }
        }
        out
    }
}

/// `_bucket` lines (cumulative, with `le`), `_sum` and `_count`.
fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    // `{a="x"}` becomes `{a="x",le="..."}`; no labels, `{le="..."}`.
    let with_le = |le: &str| match labels.strip_suffix('}') {
        Some(open) => format!("{open},le=\"{le}\"}}"),
        None => format!("{{le=\"{le}\"}}"),
    };
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(h.buckets) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            with_le(&bound.to_string())
        );
    }
    let _ = writeln!(out, "{name}_bucket{} {}", with_le("+Inf"), h.count);
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum);
    let _ = writeln!(out, "{name}_count{labels} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_render_in_the_text_format() {
        let registry = Registry::default();
        registry.count(JOBS_CLAIMED, &[("queue", "lab \"a\"")], 2);
        registry.count(JOBS_CLAIMED, &[("queue", "lab \"a\"")], 1);
        registry.observe(HTTP_DURATION, &[("route", "job-claim")], 0.003);
        registry.observe(HTTP_DURATION, &[("route", "job-claim")], 20.0);
        let text = registry.render(&[(AGENTS, vec![("state", "waiting".into())], 4.0)]);
        assert!(text.contains("# TYPE testflinger_jobs_claimed_total counter\n"));
        assert!(text.contains("testflinger_jobs_claimed_total{queue=\"lab \\\"a\\\"\"} 3\n"));
        assert!(text.contains(
            "testflinger_http_request_duration_seconds_bucket{route=\"job-claim\",le=\"0.0025\"} 0\n"
        ));
        assert!(text.contains(
            "testflinger_http_request_duration_seconds_bucket{route=\"job-claim\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "testflinger_http_request_duration_seconds_bucket{route=\"job-claim\",le=\"+Inf\"} 2\n"
        ));
        assert!(text
            .contains("testflinger_http_request_duration_seconds_count{route=\"job-claim\"} 2\n"));
        assert!(text.contains("testflinger_agents{state=\"waiting\"} 4\n"));
        for (name, _, _) in METRICS {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn a_flood_of_label_values_is_capped() {
        let registry = Registry::default();
        for i in 0..MAX_SERIES + 50 {
            registry.count(JOBS_SUBMITTED, &[("queue", &format!("q{i}"))], 1);
        }
        assert_eq!(
            lock(&registry.counters)[JOBS_SUBMITTED].len(),
            MAX_SERIES + 1
        );
        assert_eq!(registry.counter(JOBS_SUBMITTED, &[("queue", OTHER)]), 50);
        assert_eq!(registry.counter(JOBS_SUBMITTED, &[("queue", "q7")]), 1);
    }
}
