//! Job status webhooks: what a job's `job_status_webhook` may name, and
//! what a Mattermost webhook is told.
//!
//! The field is a URL string, an object `{"url", "type"?}` (`type` is
//! `default`, the default, or `mattermost`), or a non-empty list of those.
//! The job keeps the value as it was submitted; the relay reads it as a list
//! of [`WebhookTarget`]s, in the order written.

use serde_json::Value;

use crate::validation::FieldErrors;

/// The job field that names the webhooks.
pub const FIELD: &str = "job_status_webhook";

/// The most webhooks one job may name: every event post is sent to each.
pub const MAX_WEBHOOKS: usize = 10;

/// The longest event detail quoted in a Mattermost message, in characters.
pub const MAX_DETAIL_CHARS: usize = 300;

/// How a webhook is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// `PUT` of the agent's events as they were posted, with the server's
    /// bearer token (`WEBHOOK_AUTH`).
    Default,
    /// `POST {"text": "..."}` (a Mattermost incoming webhook), without any
    /// `Authorization` header: the URL is its own secret.
    Mattermost,
}

impl WebhookKind {
    pub const ALL: [WebhookKind; 2] = [WebhookKind::Default, WebhookKind::Mattermost];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Default => "default",
            WebhookKind::Mattermost => "mattermost",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One webhook of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub kind: WebhookKind,
}

/// Reads a `job_status_webhook` value into its targets, adding every problem
/// to `errors` under the field's path (`job_status_webhook`,
/// `job_status_webhook.1`, `job_status_webhook.1.type`, ...). The targets
/// are meaningful only when nothing was added.
pub fn parse_webhooks(value: &Value, errors: &mut FieldErrors) -> Vec<WebhookTarget> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                errors.add(FIELD, "Must name at least one webhook.");
            }
            if items.len() > MAX_WEBHOOKS {
                errors.add(
                    FIELD,
                    format!("At most {MAX_WEBHOOKS} webhooks are allowed."),
                );
            }
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| parse_target(&format!("{FIELD}.{i}"), item, errors))
                .collect()
        }
        Value::String(_) | Value::Object(_) => {
            parse_target(FIELD, value, errors).into_iter().collect()
        }
        _ => {
            errors.add(
                FIELD,
                "Not a valid webhook: a URL, an object {\"url\", \"type\"} or a list of them.",
            );
            Vec::new()
        }
    }
}

/// The targets of a job's `job_status_webhook`; `None` when it has none.
/// A stored value that does not read (it was validated when submitted) is a
/// 422 naming the field.
pub fn job_webhooks(
    job_data: &serde_json::Map<String, Value>,
) -> crate::Result<Option<Vec<WebhookTarget>>> {
    let Some(value) = job_data.get(FIELD) else {
        return Ok(None);
    };
    let mut errors = FieldErrors::new();
    let targets = parse_webhooks(value, &mut errors);
    errors.into_result()?;
    Ok(Some(targets))
}

fn parse_target(path: &str, item: &Value, errors: &mut FieldErrors) -> Option<WebhookTarget> {
    match item {
        Value::String(url) => check_url(path, url, errors).then(|| WebhookTarget {
            url: url.clone(),
            kind: WebhookKind::Default,
        }),
        Value::Object(map) => {
            let mut unknown = false;
            for key in map.keys().filter(|k| !matches!(k.as_str(), "url" | "type")) {
                errors.add(format!("{path}.{key}"), "Unknown field.");
                unknown = true;
            }
            let url_path = format!("{path}.url");
            let url = match map.get("url") {
                None => {
                    errors.add(url_path, "Missing data for required field.");
                    None
                }
                Some(Value::String(url)) => check_url(&url_path, url, errors).then_some(url),
                Some(_) => {
                    errors.add(url_path, "Not a valid string.");
                    None
                }
            };
            let kind = match map.get("type") {
                None => Some(WebhookKind::Default),
                Some(v) => {
                    let kind = v.as_str().and_then(WebhookKind::parse);
                    if kind.is_none() {
                        errors.add(
                            format!("{path}.type"),
                            "Must be one of: default, mattermost.",
                        );
                    }
                    kind
                }
            };
            match (url, kind) {
                (Some(url), Some(kind)) if !unknown => Some(WebhookTarget {
                    url: url.clone(),
                    kind,
                }),
                _ => None,
            }
        }
        _ => {
            errors.add(
                path,
                "Not a valid webhook: a URL or an object {\"url\", \"type\"}.",
            );
            None
        }
    }
}

fn check_url(path: &str, url: &str, errors: &mut FieldErrors) -> bool {
    let ok = url.starts_with("http://") || url.starts_with("https://");
    if !ok {
        errors.add(path, "Must be an http:// or https:// URL.");
    }
    ok
}

/// Scheme, host and port, compared without regard to case; default ports
/// filled in so `https://h` and `https://h:443` are one origin. A URL with
/// a character RFC 3986 does not allow (a backslash, a space, ...) has no
/// origin: parsers disagree on where its host is, so none is trusted.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    if url
        .bytes()
        .any(|b| !b.is_ascii_graphic() || b"\\\"<>^`{|}".contains(&b))
    {
        return None;
    }
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some((url.scheme().to_ascii_lowercase(), host, port))
}

/// The one line a Mattermost webhook is sent for a job's events: the job,
/// its queue and the last event's name, with its detail when it has one.
pub fn mattermost_text(job_id: &str, job_queue: &str, events: &[Value]) -> String {
    let head = format!("Testflinger job {job_id} on {job_queue}");
    let Some(last) = events.last() else {
        return format!("{head}: no events yet");
    };
    let name = last
        .get("event_name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("(unnamed event)");
    let detail = last
        .get("detail")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if detail.is_empty() {
        format!("{head}: {name}")
    } else if detail.chars().count() > MAX_DETAIL_CHARS {
        let cut: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
        format!("{head}: {name}: {cut}…")
    } else {
        format!("{head}: {name}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Vec<WebhookTarget>, Vec<String>> {
        let mut errors = FieldErrors::new();
        let targets = parse_webhooks(&value, &mut errors);
        if errors.is_empty() {
            Ok(targets)
        } else {
            Err(errors.fields().map(str::to_owned).collect())
        }
    }

    fn target(url: &str, kind: WebhookKind) -> WebhookTarget {
        WebhookTarget {
            url: url.to_owned(),
            kind,
        }
    }

    #[test]
    fn a_url_an_object_or_a_list_read_as_a_list_of_targets() {
        use WebhookKind::*;
        assert_eq!(
            parse(json!("https://h.example/x")),
            Ok(vec![target("https://h.example/x", Default)])
        );
        assert_eq!(
            parse(json!({"url": "https://h.example/x"})),
            Ok(vec![target("https://h.example/x", Default)])
        );
        assert_eq!(
            parse(json!({"url": "https://m.example/hooks/k", "type": "mattermost"})),
            Ok(vec![target("https://m.example/hooks/k", Mattermost)])
        );
        assert_eq!(
            parse(json!([
                "https://h.example/a",
                {"url": "https://h.example/b", "type": "default"},
                {"url": "https://m.example/hooks/k", "type": "mattermost"},
                "https://h.example/a",
            ])),
            Ok(vec![
                target("https://h.example/a", Default),
                target("https://h.example/b", Default),
                target("https://m.example/hooks/k", Mattermost),
                target("https://h.example/a", Default),
            ]),
            "in the order written, each entry one target"
        );
    }

    #[test]
    fn every_bad_part_is_named() {
        let err = |v| parse(v).unwrap_err();
        assert_eq!(err(json!("ftp://h.example/x")), [FIELD]);
        assert_eq!(err(json!(42)), [FIELD]);
        assert_eq!(err(json!(null)), [FIELD]);
        assert_eq!(err(json!([])), [FIELD]);
        assert_eq!(err(json!({})), ["job_status_webhook.url"]);
        assert_eq!(err(json!({"url": 5})), ["job_status_webhook.url"]);
        assert_eq!(err(json!({"url": "h.example"})), ["job_status_webhook.url"]);
        assert_eq!(
            err(json!({"url": "https://h.example", "type": "slack"})),
            ["job_status_webhook.type"]
        );
        assert_eq!(
            err(json!({"url": "https://h.example", "type": null})),
            ["job_status_webhook.type"]
        );
        assert_eq!(
            err(json!({"url": "https://h.example", "type": "Mattermost"})),
            ["job_status_webhook.type"],
            "types are lower case"
        );
        assert_eq!(
            err(json!({"url": "https://h.example", "token": "t"})),
            ["job_status_webhook.token"]
        );
        assert_eq!(
            err(json!([
                "https://h.example/ok",
                {"url": "https://h.example", "type": "irc"},
                ["https://h.example/nested"],
                {"url": ["https://h.example"], "extra": 1},
                7,
            ])),
            [
                "job_status_webhook.1.type",
                "job_status_webhook.2",
                "job_status_webhook.3.extra",
                "job_status_webhook.3.url",
                "job_status_webhook.4",
            ]
        );
        let many: Vec<Value> = (0..=MAX_WEBHOOKS)
            .map(|i| json!(format!("https://h.example/{i}")))
            .collect();
        assert_eq!(err(Value::Array(many)), [FIELD]);
    }

    #[test]
    fn a_jobs_stored_value_reads_back() {
        let data = json!({"job_queue": "q"});
        assert_eq!(job_webhooks(data.as_object().unwrap()).unwrap(), None);
        let data = json!({"job_status_webhook": ["https://h.example/a"]});
        assert_eq!(
            job_webhooks(data.as_object().unwrap()).unwrap(),
            Some(vec![target("https://h.example/a", WebhookKind::Default)])
        );
        let data = json!({"job_status_webhook": {"url": 1}});
        assert!(job_webhooks(data.as_object().unwrap()).is_err());
    }

    #[test]
    fn origins_compare_scheme_host_and_port_with_default_ports() {
        assert_eq!(
            origin("https://Hooks.example/x"),
            origin("https://hooks.example:443/y")
        );
        assert_ne!(
            origin("https://hooks.example/"),
            origin("http://hooks.example/")
        );
        assert_ne!(
            origin("https://hooks.example/"),
            origin("https://hooks.example:8443/")
        );
        assert_eq!(origin("not a url"), None);
        assert_eq!(origin("http://127.0.0.1:1\\@localhost:2/hook"), None);
    }

    #[test]
    fn mattermost_is_told_the_job_and_its_last_event() {
        let events = [
            json!({"event_name": "job_start", "timestamp": "t", "detail": ""}),
            json!({"event_name": "provision_fail", "timestamp": "t", "detail": " no ssh \n"}),
        ];
        assert_eq!(
            mattermost_text("j1", "rpi4", &events),
            "Testflinger job j1 on rpi4: provision_fail: no ssh"
        );
        assert_eq!(
            mattermost_text("j1", "rpi4", &events[..1]),
            "Testflinger job j1 on rpi4: job_start"
        );
        assert_eq!(
            mattermost_text("j1", "rpi4", &[]),
            "Testflinger job j1 on rpi4: no events yet"
        );
        assert_eq!(
            mattermost_text("j1", "q", &[json!({"detail": 5})]),
            "Testflinger job j1 on q: (unnamed event)"
        );
        let long = "é".repeat(MAX_DETAIL_CHARS + 10);
        let text = mattermost_text("j1", "q", &[json!({"event_name": "x", "detail": long})]);
        assert!(text.ends_with('…'), "{text}");
        assert_eq!(
            text.chars().count(),
            "Testflinger job j1 on q: x: ".len() + MAX_DETAIL_CHARS + 1
        );
    }
}
