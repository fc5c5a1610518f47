//! Conformance of job events and the agent–job link.

use super::*;
use testflinger_shared::events::{EventName, JobEvent, MAX_JOB_EVENTS};
use testflinger_shared::job::JobState;

conformance!(
    job_events_are_kept_in_order_per_job_and_bounded,
    job_events_expire_with_retention,
    the_claim_names_the_agent_in_the_result,
    a_result_post_answers_what_it_changed,
    agents_are_linked_to_their_job_until_it_ends,
    provision_entries_carry_the_client_of_the_agents_job,
);

fn event(n: i64) -> JobEvent {
    let mut event = JobEvent::assigned(t(n), Some(&format!("agent-{n}")));
    event.status = Some(n);
    event
}

async fn job_events_are_kept_in_order_per_job_and_bounded(store: Arc<dyn Store>) {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    assert!(store.job_events(a).await.unwrap().is_empty());
    store
        .record_events(a, &[event(1), event(2)], t(2))
        .await
        .unwrap();
    store.record_events(b, &[event(9)], t(9)).await.unwrap();
    store.record_events(a, &[event(3)], t(3)).await.unwrap();
    store.record_events(a, &[], t(4)).await.unwrap();
    let got = store.job_events(a).await.unwrap();
    assert_eq!(got, [event(1), event(2), event(3)]);
    assert_eq!(got[0].name, EventName::JobAssigned);
    assert_eq!(store.job_events(b).await.unwrap(), [event(9)]);
    // Bounded: the first MAX_JOB_EVENTS stay, later ones are dropped.
    let many: Vec<JobEvent> = (10..10 + MAX_JOB_EVENTS as i64).map(event).collect();
    store.record_events(a, &many, t(10)).await.unwrap();
    store.record_events(a, &[event(5000)], t(11)).await.unwrap();
    let got = store.job_events(a).await.unwrap();
    assert_eq!(got.len(), MAX_JOB_EVENTS);
    assert_eq!(got[3], event(10));
    assert!(!got.contains(&event(5000)));
}

async fn job_events_expire_with_retention(store: Arc<dyn Store>) {
    let old = insert(&store, json!({"job_queue": "q"}), 1).await;
    store.record_events(old, &[event(1)], t(1)).await.unwrap();
    let kept = insert(&store, json!({"job_queue": "q"}), 1_000).await;
    store
        .record_events(kept, &[event(2)], t(1_000))
        .await
        .unwrap();
    store.purge_expired(t(500)).await.unwrap();
    assert!(store.job_events(old).await.unwrap().is_empty());
    assert_eq!(store.job_events(kept).await.unwrap(), [event(2)]);
}

async fn the_claim_names_the_agent_in_the_result(store: Arc<dyn Store>) {
    let named = insert(&store, json!({"job_queue": "q"}), 1).await;
    let anonymous = insert(&store, json!({"job_queue": "q"}), 2).await;
    let job = store
        .claim_job(&claim(&["q"], Some("dev-1")), t(3))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(job.job_id, named);
    assert_eq!(job.agent_id(), Some("dev-1"));
    let stored = store.get_job(named).await.unwrap().unwrap();
    assert_eq!(stored.agent_id(), Some("dev-1"));
    let job = store
        .claim_job(&claim(&["q"], None), t(4))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(job.job_id, anonymous);
    assert_eq!(job.agent_id(), None);
}

async fn a_result_post_answers_what_it_changed(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 1).await;
    store
        .claim_job(&claim(&["q"], Some("dev-1")), t(2))
        .await
        .unwrap()
        .expect("claimed");
    let change = store
        .apply_result(
            id,
            &patch(json!({"job_state": "setup", "status": {"setup": 0}})),
            t(3),
        )
        .await
        .unwrap()
        .expect("the job exists");
    assert_eq!(change.before, JobState::Running);
    assert_eq!(change.after, JobState::Reported("setup".into()));
    assert!(change.previous_status.is_empty());
    assert_eq!(change.agent_id.as_deref(), Some("dev-1"));
    let change = store
        .apply_result(
            id,
            &patch(json!({"job_state": "complete", "status": {"setup": 0, "test": 1}})),
            t(4),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.before, JobState::Reported("setup".into()));
    assert_eq!(change.after, JobState::Complete);
    assert_eq!(
        change.previous_status,
        *json!({"setup": 0}).as_object().unwrap()
    );
    // A terminal job keeps its state: before and after agree.
    let change = store
        .apply_result(id, &patch(json!({"job_state": "test"})), t(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.before, change.after),
        (JobState::Complete, JobState::Complete)
    );
}

async fn agents_are_linked_to_their_job_until_it_ends(store: Arc<dyn Store>) {
    let job = Uuid::new_v4();
    let other = Uuid::new_v4();
    // An unknown agent: nothing is created.
    store
        .set_agent_job("ghost", job, Some("ci"), t(1))
        .await
        .unwrap();
    assert!(store.get_agent("ghost").await.unwrap().is_none());
    store
        .upsert_agent("dev-1", &agent_update(json!({"state": "waiting"})), t(1))
        .await
        .unwrap();
    store
        .set_agent_job("dev-1", job, Some("ci"), t(2))
        .await
        .unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.fields["job_id"], json!(job.to_string()));
    assert_eq!(agent.submitted_by(), Some("ci"));
    assert_eq!(agent.fields["state"], json!("waiting"), "other fields kept");
    // Another job's end does not unlink it.
    store.clear_agent_job("dev-1", other, t(3)).await.unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.fields["job_id"], json!(job.to_string()));
    store.clear_agent_job("dev-1", job, t(4)).await.unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.fields["job_id"], json!(""));
    assert_eq!(agent.submitted_by(), None);
    // An anonymous job links without a submitter.
    store
        .set_agent_job("dev-1", other, None, t(5))
        .await
        .unwrap();
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.fields["job_id"], json!(other.to_string()));
    assert_eq!(agent.submitted_by(), None);
}

async fn provision_entries_carry_the_client_of_the_agents_job(store: Arc<dyn Store>) {
    store
        .upsert_agent("dev-1", &agent_update(json!({"state": "waiting"})), t(1))
        .await
        .unwrap();
    let job = Uuid::new_v4();
    store
        .set_agent_job("dev-1", job, Some("ci"), t(2))
        .await
        .unwrap();
    let entry = ProvisionEntry {
        job_id: job.to_string(),
        exit_code: 0,
        detail: String::new(),
    };
    assert!(store.record_provision("dev-1", &entry, t(3)).await.unwrap());
    store.clear_agent_job("dev-1", job, t(4)).await.unwrap();
    assert!(store.record_provision("dev-1", &entry, t(5)).await.unwrap());
    let agent = store.get_agent("dev-1").await.unwrap().unwrap();
    assert_eq!(agent.provision_log[0]["client_id"], json!("ci"));
    assert_eq!(agent.provision_log[1]["client_id"], json!(null));
}
