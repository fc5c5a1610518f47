//! What any JSON body may hold (SPEC.md §2): keys every store can keep, and
//! bounded numbers of keys and levels; the same answer on every store.

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::common::*;
use crate::support::*;

/// A 422 naming exactly `pointer` (a JSON pointer into the body).
fn assert_refused_at(reply: &Reply, pointer: &str) -> Value {
    reply.assert_invalid_fields(&[pointer])
}

#[tokio::test]
async fn a_nul_in_a_key_is_refused_in_every_kind_of_body() {
    let server = standard().await;
    let admin = admin_token(&server).await;
    let agent = agent_token(&server).await;
    serve_queues(&server, &agent, "dev-1", &["q"]).await;
    let id = submit(&server, None, json!({"job_queue": "q"}))
        .await
        .ok_json()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: Vec<(Method, String, Option<&str>, Value, &str)> = vec![
        (
            Method::POST,
            "/v1/job".into(),
            None,
            json!({"job_queue": "q", "k\u{0}": 1}),
            "/k\u{0}",
        ),
        (
            Method::POST,
            "/v1/job".into(),
            None,
            json!({"job_queue": "q", "test_data": {"x": [{"n/\u{0}": 1}]}}),
            "/test_data/x/0/n~1\u{0}",
        ),
        (
            Method::POST,
            format!("/v1/result/{id}"),
            Some(&agent),
            json!({"k\u{0}": 1}),
            "/k\u{0}",
        ),
        (
            Method::POST,
            format!("/v1/result/{id}"),
            Some(&agent),
            json!({"device_info": {"ip\u{0}": "10.0.0.1"}}),
            "/device_info/ip\u{0}",
        ),
        (
            Method::POST,
            format!("/v1/result/{id}"),
            Some(&agent),
            json!({"status": {"te\u{0}st": 0}}),
            "/status/te\u{0}st",
        ),
        (
            Method::POST,
            "/v1/agents/data/dev-2".into(),
            Some(&agent),
            json!({"state": "waiting", "extra": {"k\u{0}": 1}}),
            "/extra/k\u{0}",
        ),
        (
            Method::POST,
            "/v2/agents/dev-2/data".into(),
            Some(&agent),
            json!({"k\u{0}": 1}),
            "/k\u{0}",
        ),
        (
            Method::POST,
            "/v1/agents/queues".into(),
            Some(&agent),
            json!({"q\u{0}": "a queue"}),
            "/q\u{0}",
        ),
        (
            Method::POST,
            "/v1/agents/images".into(),
            Some(&agent),
            json!({"q": {"image\u{0}": "url: http://x"}}),
            "/q/image\u{0}",
        ),
        (
            Method::POST,
            "/v1/agents/provision_logs/dev-1".into(),
            Some(&agent),
            json!({"job_id": id, "exit_code": 0, "detail\u{0}": "x"}),
            "/detail\u{0}",
        ),
        (
            Method::POST,
            format!("/v1/job/{id}/events"),
            Some(&agent),
            json!({"job_status_webhook": "http://127.0.0.1:9/hook",
                   "events": [{"event_name": "job_start", "detail": {"k\u{0}": 1}}]}),
            "/events/0/detail/k\u{0}",
        ),
        (
            Method::PUT,
            "/v1/client-permissions/ci-bot".into(),
            Some(&admin),
            json!({"client_secret": secret_of("ci-bot"), "max_priority": {"q\u{0}": 1}}),
            "/max_priority/q\u{0}",
        ),
    ];
    for (method, uri, token, body, pointer) in cases {
        let reply = server.call(method.clone(), &uri, token, Some(&body)).await;
        let body = assert_refused_at(&reply, pointer);
        assert!(
            body["detail"]["json"][pointer][0]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{method} {uri}: {body}"
        );
    }
    // Nothing of it was stored.
    server
        .get("/v1/agents/data/dev-2")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    assert_eq!(server.get("/v1/agents/queues").await.ok_json(), json!({}));
    let result = server.result(&id).await;
    assert_eq!(result, json!({"job_state": "waiting"}));
    // In a value, a NUL is only text, kept as sent (posted by the agent
    // that claimed the job, the only one that may).
    claim(&server, "q", Some(&agent), Some("dev-1"))
        .await
        .ok_json();
    server
        .call(
            Method::POST,
            &format!("/v1/result/{id}"),
            Some(&agent),
            Some(&json!({"note": "a\u{0}b"})),
        )
        .await
        .assert_ok_text();
    assert_eq!(server.result(&id).await["note"], json!("a\u{0}b"));
}

#[tokio::test]
async fn dotted_and_dollar_keys_get_one_answer_and_other_keys_are_kept() {
    let server = Server::new().await;
    // A field name with a '.' or a leading '$' (MongoDB would read it as a
    // path or an operator), and a '$' key at any depth (the driver would
    // read `{"$numberLong": "5"}` as the number 5): refused, naming each,
    // on every store.
    server
        .post_json(
            "/v1/job",
            &json!({"job_queue": "q", "a.b": 1, "$x": 1, "test_data": {"$numberLong": "5"},
                    "allocate_data": {"x": [{"$in": 1}]}}),
        )
        .await
        .assert_invalid_fields(&[
            "$x",
            "a.b",
            "allocate_data.x.0.$in",
            "test_data.$numberLong",
        ]);
    let id = server.submit(json!({"job_queue": "q"})).await;
    server
        .post_json(
            &format!("/v1/result/{id}"),
            &json!({"a.b": 1, "device_info": {"$set": 1}}),
        )
        .await
        .assert_invalid_fields(&["a.b", "device_info.$set"]);
    server
        .post_json(
            "/v1/agents/data/dev",
            &json!({"x.y": 1, "meta": {"$oid": "x"}}),
        )
        .await
        .assert_invalid_fields(&["meta.$oid", "x.y"]);
    server
        .post_json("/v1/agents/images", &json!({"q": {"a.b": "url: x"}}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);

    // Every other key is kept exactly: inside a value, dots and empty keys
    // are data (as upstream's server keeps them on MongoDB).
    let odd = json!({
        "a$b": 1, "with space": 2, "ünïcödé": 3, "-": 4, "_id": 5, "\u{1}ctl": 6,
        "slash/and~tilde": 7, "dollar": {"inner$": [{"_id": null}]},
        "eth0.ip": "10.0.0.1", "hosts": {"node1.lab": {"": [{"a.b.c": true}]}}
    });
    let id = server
        .submit(json!({"job_queue": "q", "free": odd.clone()}))
        .await;
    assert_eq!(
        server.get(&format!("/v1/job/{id}")).await.ok_json()["free"],
        odd
    );
    let mut top = odd.as_object().unwrap().clone();
    top.remove("eth0.ip");
    let top = Value::Object(top);
    server.post_result(&id, top.clone()).await;
    server
        .post_result(&id, json!({"device_info": odd.clone()}))
        .await;
    server
        .post_json("/v1/agents/data/dev", &json!({"meta": odd.clone()}))
        .await
        .ok_json();
    let result = server.result(&id).await;
    for (key, value) in top.as_object().unwrap() {
        assert_eq!(&result[key], value, "{key:?}");
    }
    assert_eq!(result["device_info"], odd);
    let agent = server.get("/v1/agents/data/dev").await.ok_json();
    assert_eq!(agent["meta"], odd, "{agent}");
}

fn keys(prefix: &str, n: usize) -> Map<String, Value> {
    (0..n).map(|i| (format!("{prefix}{i}"), json!(i))).collect()
}

fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "n": value });
    }
    value
}

#[tokio::test]
async fn bodies_over_the_default_key_and_depth_caps_are_refused_naming_where() {
    let server = Server::new().await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}");

    // 1,000 keys in one object at most.
    let body = assert_refused_at(
        &server
            .post_json(&uri, &Value::Object(keys("k", 1_001)))
            .await,
        "/k1000",
    );
    assert_message_contains(&body, "TESTFLINGER_MAX_JSON_KEYS_PER_OBJECT");
    // 10,000 keys in all.
    let mut wide = Map::new();
    for i in 0..10 {
        wide.insert(format!("o{i}"), Value::Object(keys("k", 999)));
    }
    wide.insert("extra".into(), json!(1));
    let body = assert_refused_at(
        &server.post_json(&uri, &Value::Object(wide)).await,
        "/extra",
    );
    assert_message_contains(&body, "TESTFLINGER_MAX_JSON_KEYS)");
    // 32 levels: the body's object is level 1.
    let body = assert_refused_at(
        &server
            .post_json("/v1/job", &json!({"job_queue": "q", "deep": nested(32)}))
            .await,
        &format!("/deep{}", "/n".repeat(31)),
    );
    assert_message_contains(&body, "TESTFLINGER_MAX_JSON_DEPTH");
    server
        .submit(json!({"job_queue": "q", "deep": nested(31)}))
        .await;
    // 100,000 keys are refused as soon as the limit is crossed.
    assert_refused_at(
        &server
            .post_json(&uri, &Value::Object(keys("k", 100_000)))
            .await,
        "/k1000",
    );
    // Nothing was merged.
    assert_eq!(server.result(&id).await, json!({"job_state": "waiting"}));
}

#[tokio::test]
async fn the_key_and_depth_caps_are_configurable() {
    let server = Server::with_config(|config| {
        config.limits.json_keys_per_object = 20;
        config.limits.json_keys = 50;
        config.limits.json_depth = 4;
    })
    .await;
    let id = server.submit(json!({"job_queue": "q"})).await;
    let uri = format!("/v1/result/{id}");
    server.post_result(&id, Value::Object(keys("k", 20))).await;
    assert_refused_at(
        &server.post_json(&uri, &Value::Object(keys("k", 21))).await,
        "/k20",
    );
    let mut fifty = Map::new();
    fifty.insert("a".into(), Value::Object(keys("k", 19)));
    fifty.insert("b".into(), Value::Object(keys("k", 19)));
    fifty.insert("c".into(), Value::Object(keys("k", 9)));
    server.post_result(&id, Value::Object(fifty.clone())).await;
    fifty.insert("d".into(), json!({"one": "too many"}));
    assert_refused_at(&server.post_json(&uri, &Value::Object(fifty)).await, "/d");
    server.post_result(&id, json!({"x": nested(3)})).await;
    assert_refused_at(
        &server.post_json(&uri, &json!({"x": nested(4)})).await,
        "/x/n/n/n",
    );
}
