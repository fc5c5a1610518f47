//! Conformance of log fragments and the legacy live output.

use super::*;
use testflinger_shared::logs::LogCut;

conformance!(
    log_fragments_are_kept_in_order_and_resends_change_nothing,
    logs_for_an_unknown_job_are_refused,
    legacy_output_is_consumed_by_each_read,
    log_tails_are_the_end_of_each_phase,
);

async fn log_fragments_are_kept_in_order_and_resends_change_nothing(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    // Out of order, across phases, one resent with other data.
    for f in [
        fragment(2, "test", "c"),
        fragment(0, "setup", "a"),
        fragment(1, "provision", "b"),
        fragment(2, "test", "resent"),
    ] {
        assert!(store
            .append_log(id, LogType::Output, &f, t(5))
            .await
            .unwrap());
    }
    store
        .append_log(id, LogType::Serial, &fragment(0, "test", "serial"), t(5))
        .await
        .unwrap();

    let output = store.read_logs(id, LogType::Output, 0).await.unwrap();
    let numbers: Vec<i64> = output.iter().map(|f| f.fragment_number).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(output[2], fragment(2, "test", "c"));
    assert_eq!(output[0].timestamp, t(1_000));
    let later = store.read_logs(id, LogType::Output, 2).await.unwrap();
    assert_eq!(later, vec![fragment(2, "test", "c")]);
    let serial = store.read_logs(id, LogType::Serial, 0).await.unwrap();
    assert_eq!(serial, vec![fragment(0, "test", "serial")]);
}

async fn logs_for_an_unknown_job_are_refused(store: Arc<dyn Store>) {
    let unknown = Uuid::new_v4();
    assert!(!store
        .append_log(unknown, LogType::Output, &fragment(0, "test", "x"), t(1))
        .await
        .unwrap());
    assert!(store
        .read_logs(unknown, LogType::Output, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .append_live_output(unknown, LegacyStream::Output, "x", t(1))
        .await
        .unwrap());
}

async fn legacy_output_is_consumed_by_each_read(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap(),
        None
    );
    for chunk in ["line 1\n", "line 2\n"] {
        assert!(store
            .append_live_output(id, LegacyStream::Output, chunk, t(2))
            .await
            .unwrap());
    }
    store
        .append_live_output(id, LegacyStream::SerialOutput, "serial\n", t(2))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap()
            .as_deref(),
        Some("line 1\nline 2\n")
    );
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap(),
        None
    );
    store
        .append_live_output(id, LegacyStream::Output, "line 3\n", t(3))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::Output)
            .await
            .unwrap()
            .as_deref(),
        Some("line 3\n")
    );
    assert_eq!(
        store
            .take_live_output(id, LegacyStream::SerialOutput)
            .await
            .unwrap()
            .as_deref(),
        Some("serial\n")
    );
}

/// The tails `GET /v1/result/{id}` shows: per phase, the last bytes, read
/// from the end, and where they start when the phase's log is longer.
async fn log_tails_are_the_end_of_each_phase(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    // Numbers run across phases; `test` has 8 fragments of 100 bytes.
    let mut n = 0;
    let mut append = |phase: &'static str, text: String| {
        let f = fragment(n, phase, &text);
        n += 1;
        let store = store.clone();
        async move {
            assert!(store
                .append_log(id, LogType::Output, &f, t(5))
                .await
                .unwrap());
        }
    };
    append("setup", "set up\n".into()).await;
    for i in 0..8u8 {
        append("test", char::from(b'a' + i).to_string().repeat(100)).await;
        if i == 3 {
            append("provision", "provisioned\n".into()).await;
        }
    }
    let tails = store
        .read_log_tails(id, LogType::Output, 250)
        .await
        .unwrap();
    let phases: Vec<&str> = tails.iter().map(|t| t.phase.as_str()).collect();
    assert_eq!(phases, ["setup", "provision", "test"]);
    assert_eq!(tails[0].text, "set up\n");
    assert_eq!(tails[0].cut, None);
    assert_eq!(tails[1].text, "provisioned\n");
    let test = &tails[2];
    assert_eq!(
        test.text,
        format!("{}{}{}", "f".repeat(50), "g".repeat(100), "h".repeat(100))
    );
    // "f" is the sixth test fragment: number 7 (setup is 0, provision 5).
    assert_eq!(
        test.cut,
        Some(LogCut {
            fragment_number: 7,
            offset: 50
        })
    );
    let whole = store
        .read_log_tails(id, LogType::Output, 800)
        .await
        .unwrap();
    assert_eq!(whole[2].text.len(), 800);
    assert_eq!(whole[2].cut, None);
    assert!(store
        .read_log_tails(id, LogType::Serial, 800)
        .await
        .unwrap()
        .is_empty());
}
