//! Conformance of log fragments and the legacy live output.

use super::*;

conformance!(
    log_fragments_are_kept_in_order_and_resends_change_nothing,
    logs_for_an_unknown_job_are_refused,
    legacy_output_is_consumed_by_each_read,
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
