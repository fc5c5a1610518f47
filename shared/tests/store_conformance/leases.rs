//! Claim leases: the claim starts one, renewals move it by one conditional
//! update, the sweep's end of a lease is conditional on the same claim.

use super::*;
use testflinger_shared::job::JobState;
use testflinger_shared::store::LeaseEnd;

conformance!(
    the_claim_starts_a_lease_and_counts_the_attempt,
    a_renewal_moves_the_lease_of_its_holder_only,
    expired_leases_are_found_and_requeued_in_place,
    a_requeued_job_passes_over_the_silent_agent,
    ending_a_lease_loses_to_a_renewal_and_to_a_new_claim,
    the_last_attempt_ends_the_job,
);

fn leased(queues: &[&str], agent: &str, until: i64) -> ClaimRequest {
    ClaimRequest {
        lease_until: Some(t(until)),
        ..claim(queues, Some(agent))
    }
}

async fn job(store: &Arc<dyn Store>, id: Uuid) -> testflinger_shared::job::Job {
    store.get_job(id).await.unwrap().expect("the job")
}

async fn the_claim_starts_a_lease_and_counts_the_attempt(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 0).await;
    let fresh = job(&store, id).await;
    assert_eq!((fresh.attempts, fresh.lease_until), (0, None));
    let claimed = store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.lease_until, Some(t(200_000)));
    assert_eq!(claimed.lease_holder.as_deref(), Some("dev-1"));
    assert_eq!(claimed.attempts, 1);
    let read = job(&store, id).await;
    assert_eq!(read.lease_until, Some(t(200_000)));
    assert_eq!(read.attempts, 1);
}

async fn a_renewal_moves_the_lease_of_its_holder_only(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 0).await;
    // No lease before the claim: nothing to renew.
    assert!(!store
        .renew_lease(id, Some("dev-1"), t(300_000))
        .await
        .unwrap());
    store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    assert!(!store
        .renew_lease(id, Some("dev-2"), t(300_000))
        .await
        .unwrap());
    assert_eq!(job(&store, id).await.lease_until, Some(t(200_000)));
    assert!(store
        .renew_lease(id, Some("DEV-1"), t(300_000))
        .await
        .unwrap());
    assert!(store.renew_lease(id, None, t(250_000)).await.unwrap());
    // A renewal never shortens the lease.
    assert_eq!(job(&store, id).await.lease_until, Some(t(300_000)));
    // A finished job's lease no longer moves.
    store
        .apply_result(id, &patch(json!({"job_state": "complete"})), t(310_000))
        .await
        .unwrap();
    assert!(!store
        .renew_lease(id, Some("dev-1"), t(400_000))
        .await
        .unwrap());
    assert!(store
        .expired_leases(t(1_000_000), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn expired_leases_are_found_and_requeued_in_place(store: Arc<dyn Store>) {
    let first = insert(&store, json!({"job_queue": "q", "job_priority": 5}), 0).await;
    let second = insert(&store, json!({"job_queue": "q", "job_priority": 5}), 1).await;
    let claimed = store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.job_id, first);
    store
        .apply_result(first, &patch(json!({"job_state": "provision"})), t(110_000))
        .await
        .unwrap();
    assert!(store
        .expired_leases(t(200_000), 10)
        .await
        .unwrap()
        .is_empty());
    let expired = store.expired_leases(t(200_001), 10).await.unwrap();
    assert_eq!(
        expired.iter().map(|j| j.job_id).collect::<Vec<_>>(),
        vec![first]
    );
    let requeue = LeaseEnd::Requeue { passed_over: None };
    assert!(store
        .end_lease(first, 1, t(200_001), requeue.clone())
        .await
        .unwrap());
    let back = job(&store, first).await;
    assert_eq!(back.state, JobState::Waiting);
    assert_eq!(
        (back.lease_until, back.lease_holder.as_deref()),
        (None, None)
    );
    assert_eq!((back.attempts, back.job_priority), (1, 5));
    assert!(back.lease_lost_by(Some("dev-1")));
    // Its place in the queue is its own: ahead of the later job.
    assert_eq!(store.job_position(first).await.unwrap(), Some(0));
    assert_eq!(store.job_position(second).await.unwrap(), Some(1));
    // Done once: the same end does not apply twice.
    assert!(!store
        .end_lease(first, 1, t(200_002), requeue)
        .await
        .unwrap());
    let again = store
        .claim_job(&leased(&["q"], "dev-1", 400_000), t(300_000))
        .await
        .unwrap()
        .expect("claimed again");
    assert_eq!((again.job_id, again.attempts), (first, 2));
    assert!(!job(&store, first).await.lease_lost_by(Some("dev-1")));
}

async fn a_requeued_job_passes_over_the_silent_agent(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 0).await;
    store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    let requeue = LeaseEnd::Requeue {
        passed_over: Some("dev-1".into()),
    };
    assert!(store.end_lease(id, 1, t(200_001), requeue).await.unwrap());
    let passed = job(&store, id).await;
    assert_eq!(passed.passed_over.as_deref(), Some("dev-1"));
    assert!(!claim(&["q"], Some("Dev-1")).admits(&passed));
    assert!(claim(&["q"], Some("dev-2")).admits(&passed));
    let none = store
        .claim_job(&leased(&["q"], "Dev-1", 400_000), t(300_000))
        .await
        .unwrap();
    assert!(none.is_none());
    let other = store
        .claim_job(&leased(&["q"], "dev-2", 400_000), t(300_000))
        .await
        .unwrap()
        .expect("another agent claims it");
    assert_eq!(other.job_id, id);
    assert_eq!(other.passed_over, None);
    assert_eq!(other.lease_holder.as_deref(), Some("dev-2"));
    // The silent agent lost it: another agent holds the lease.
    assert!(job(&store, id).await.lease_lost_by(Some("dev-1")));
    assert!(!store
        .renew_lease(id, Some("dev-1"), t(500_000))
        .await
        .unwrap());
}

async fn ending_a_lease_loses_to_a_renewal_and_to_a_new_claim(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q"}), 0).await;
    store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    // The sweep saw the lease expired, the agent renewed first: no end.
    assert_eq!(store.expired_leases(t(200_001), 10).await.unwrap().len(), 1);
    assert!(store
        .renew_lease(id, Some("dev-1"), t(500_000))
        .await
        .unwrap());
    assert!(!store
        .end_lease(id, 1, t(200_001), LeaseEnd::Fail)
        .await
        .unwrap());
    assert_eq!(job(&store, id).await.state, JobState::Running);
    // A stale claim number never ends the lease.
    assert!(!store
        .end_lease(id, 0, t(600_000), LeaseEnd::Fail)
        .await
        .unwrap());
    assert!(store
        .end_lease(id, 1, t(600_000), LeaseEnd::Fail)
        .await
        .unwrap());
}

async fn the_last_attempt_ends_the_job(store: Arc<dyn Store>) {
    let id = insert(&store, json!({"job_queue": "q", "max_attempts": 1}), 0).await;
    store
        .claim_job(&leased(&["q"], "dev-1", 200_000), t(100_000))
        .await
        .unwrap()
        .expect("claimed");
    let expired = store.expired_leases(t(200_001), 10).await.unwrap();
    assert_eq!(expired[0].max_attempts(2), 1);
    assert!(store
        .end_lease(id, 1, t(200_001), LeaseEnd::Fail)
        .await
        .unwrap());
    let ended = job(&store, id).await;
    assert_eq!(ended.state, JobState::Cancelled);
    assert!(ended.lease_lost_by(Some("dev-1")));
    assert!(store
        .expired_leases(t(900_000), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .claim_job(&leased(&["q"], "dev-2", 400_000), t(300_000))
        .await
        .unwrap()
        .is_none());
}
