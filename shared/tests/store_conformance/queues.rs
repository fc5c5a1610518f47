//! Conformance of advertised queues and images.

use super::*;

conformance!(queues_and_images_are_upserted,);

async fn queues_and_images_are_upserted(store: Arc<dyn Store>) {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    store
        .upsert_queues(&map(&[("q1", "first"), ("q2", "second")]), t(1))
        .await
        .unwrap();
    store
        .upsert_queues(&map(&[("q1", "renamed")]), t(2))
        .await
        .unwrap();
    assert_eq!(
        store.list_queues().await.unwrap(),
        map(&[("q1", "renamed"), ("q2", "second")])
    );

    let mut images = BTreeMap::new();
    images.insert(
        "q1".to_string(),
        map(&[("jammy", "url: a"), ("noble", "url: b")]),
    );
    images.insert("imageonly".to_string(), map(&[("x", "url: x")]));
    store.set_images(&images, t(3)).await.unwrap();
    assert_eq!(
        store.get_images("q1").await.unwrap(),
        map(&[("jammy", "url: a"), ("noble", "url: b")])
    );
    images.insert("q1".to_string(), map(&[("oracular", "url: c")]));
    store.set_images(&images, t(4)).await.unwrap();
    assert_eq!(
        store.get_images("q1").await.unwrap(),
        map(&[("oracular", "url: c")])
    );
    assert!(store.get_images("nowhere").await.unwrap().is_empty());
    // A queue known only for its images is not an advertised queue.
    assert_eq!(
        store.list_queues().await.unwrap(),
        map(&[("q1", "renamed"), ("q2", "second")])
    );
}
