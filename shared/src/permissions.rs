//! Who may do what (SPEC.md §3), as pure functions: each takes the caller
//! and the records involved, as loaded for this request, and answers `Ok`
//! or the error to send. The use cases load the records and call these;
//! nothing here reads a store or a clock.

use crate::agents::AgentOwner;
use crate::app::Caller;
use crate::clients::{Client, ClientUpdate, ANY_QUEUE};
use crate::job::Job;
use crate::role::{AuthMode, Role};
use crate::{Error, Result};

/// Whether the caller may call an endpoint open to `allowed`: its role is
/// on the list, or anonymous callers hold one of those roles in `mode`.
/// Anonymous and refused: 401 (log in); a client without the role: 403.
pub fn route_access(allowed: &[Role], caller: &Caller, mode: AuthMode) -> Result<()> {
    let anonymous = mode.anonymous_roles();
    let permitted = allowed
        .iter()
        .any(|role| caller.role() == Some(*role) || anonymous.contains(role));
    if permitted {
        return Ok(());
    }
    let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
    let roles = roles.join(" or ");
    Err(match caller.client_id() {
        None => Error::Unauthorized(format!(
            "Authentication is required for this endpoint (role: {roles})."
        )),
        Some(id) => Error::Forbidden(format!(
            "Client '{id}' may not do this: it needs the role {roles}."
        )),
    })
}

/// As [`route_access`], but an identified client must itself hold one of
/// the roles: the roles anonymous callers get in the mode do not extend to
/// it (the v2 agent report: admins and managers get 403 even in `open`).
pub fn route_access_only(allowed: &[Role], caller: &Caller, mode: AuthMode) -> Result<()> {
    match caller.role() {
        Some(role) if !allowed.contains(&role) => {
            let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(Error::Forbidden(format!(
                "Client '{}' may not do this: it needs the role {}.",
                caller.client_id().unwrap_or_default(),
                roles.join(" or ")
            )))
        }
        _ => route_access(allowed, caller, mode),
    }
}

/// The caller's client, or 401 naming what needed one.
pub fn require_client<'a>(caller: &'a Caller, what: &str) -> Result<&'a Client> {
    caller.client.as_ref().ok_or_else(|| {
        Error::Unauthorized(format!(
            "{what} needs an authenticated client; log in with a client id and secret."
        ))
    })
}

/// Admins and managers act on other clients' jobs.
pub fn is_manager(caller: &Caller) -> bool {
    matches!(caller.role(), Some(Role::Admin | Role::Manager))
}

/// A job submitted with a token is cancelled only by its client, a manager
/// or an admin; an anonymous job by anyone (as upstream). `owner` is the
/// job's submitting client.
pub fn may_cancel(caller: &Caller, job: &str, owner: Option<&str>) -> Result<()> {
    let Some(owner) = owner else {
        return Ok(());
    };
    if caller.client.is_none() {
        // 401, so that a client with credentials logs in and replays.
        return Err(Error::Unauthorized(format!(
            "Job {job} was submitted by a client: cancelling it needs that client's (or a manager's) token."
        )));
    }
    if caller.client_id() != Some(owner) && !is_manager(caller) {
        return Err(Error::Forbidden(format!(
            "Job {job} belongs to client '{owner}': only that client, a manager or an admin may cancel it."
        )));
    }
    Ok(())
}

/// Who changes a client: a client through the API, or the operator at the
/// server's own command line (who may do anything).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Operator,
    Client(&'a Client),
}

/// Whether `actor` may apply `update` to client `target_id` (`current`
/// when it exists). An admin changes anyone; anyone else other clients of
/// its own role or below, and itself only in its secret; nobody but an
/// admin grants a role above their own, or more than they hold themselves
/// (priority, queues, reservation time).
pub fn may_update_client(
    actor: Actor<'_>,
    target_id: &str,
    current: Option<&Client>,
    update: &ClientUpdate,
) -> Result<()> {
    let me = match actor {
        Actor::Operator => return Ok(()),
        Actor::Client(me) => me,
    };
    if let Some(current) = current {
        let allowed = if current.client_id == me.client_id {
            me.role == Role::Admin || update.only_secret()
        } else {
            me.may_change(&current.client_id, current.role)
        };
        if !allowed {
            return Err(Error::Forbidden(format!(
                "Client '{}' ({}) may not change client '{target_id}' ({}): only an admin changes \
                 clients of its own role or above, or its own permissions.",
                me.client_id,
                me.role.as_str(),
                current.role.as_str()
            )));
        }
    }
    if me.role == Role::Admin {
        return Ok(());
    }
    if let Some(role) = update.role {
        if role.rank() > me.role.rank() {
            return Err(Error::Forbidden(format!(
                "Client '{}' ({}) may grant only roles up to its own, not {}.",
                me.client_id,
                me.role.as_str(),
                role.as_str()
            )));
        }
    }
    grants_within(me, update)
}

/// Whether every permission an update grants is one `me` holds: a priority
/// or reservation no higher than its own for that queue, and queues it may
/// use itself (`"*"` only when it holds `"*"`).
fn grants_within(me: &Client, update: &ClientUpdate) -> Result<()> {
    let refuse = |what: String| {
        Err(Error::Forbidden(format!(
            "Client '{}' may not grant {what}: it does not hold that itself.",
            me.client_id
        )))
    };
    for (queue, priority) in update.max_priority.iter().flatten() {
        if me.priority_limit(queue).is_none_or(|own| *priority > own) {
            return refuse(format!("a max_priority of {priority} on queue '{queue}'"));
        }
    }
    for queue in update.allowed_queues.iter().flatten() {
        if !me.may_use_queue(queue)
            || (queue == ANY_QUEUE && !me.allowed_queues.iter().any(|q| q == ANY_QUEUE))
        {
            return refuse(format!("queue '{queue}'"));
        }
    }
    for (queue, seconds) in update.max_reservation_time.iter().flatten() {
        if me.reservation_limit(queue).is_none_or(|own| *seconds > own) {
            return refuse(format!(
                "a max_reservation_time of {seconds} s on queue '{queue}'"
            ));
        }
    }
    Ok(())
}

/// Owning a queue grants it in the owner's `allowed_queues`, so naming an
/// owner follows the rules of changing that client: oneself, or a client of
/// a lower role (an admin: anyone).
pub fn may_change_owner(caller: &Caller, owner: &Client) -> Result<()> {
    let me = require_client(caller, "Restricting queues")?;
    if owner.client_id == me.client_id || me.may_change(&owner.client_id, owner.role) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Client '{}' ({}) may not change the queues of client '{}' ({}).",
            me.client_id,
            me.role.as_str(),
            owner.client_id,
            owner.role.as_str()
        )))
    }
}

/// A client writes and deletes its own secrets; an admin anyone's.
pub fn may_write_secrets(caller: &Caller, owner_id: &str) -> Result<()> {
    let me = require_client(caller, "Writing secrets")?;
    if me.client_id != owner_id && me.role != Role::Admin {
        return Err(Error::Forbidden(format!(
            "Client '{}' may not change the secrets of client '{owner_id}'.",
            me.client_id
        )));
    }
    Ok(())
}

/// Secret values go only to a claim made with an agent token, never to an
/// anonymous claimer (who may be anyone in the open mode).
pub fn may_receive_secrets(caller: &Caller) -> bool {
    caller.role() == Some(Role::Agent)
}

/// Whether the agent names the caller uses are bound to its client: an
/// agent client's, outside the open mode (where anyone may act as any
/// agent anonymously, so a binding would protect nothing, and the open
/// mode keeps upstream's behaviour). Admins and managers act on any agent
/// (the CLI's `admin set agent-status` posts agent data) and bind none.
pub fn binds_agent_names(caller: &Caller, mode: AuthMode) -> bool {
    mode != AuthMode::Open && caller.role() == Some(Role::Agent)
}

/// An agent client acts only under an agent name it owns (names compared
/// whatever their case): it may not claim as, register or report for
/// another client's agent.
pub fn may_act_as_agent(caller: &Caller, name: &str, owner: &AgentOwner) -> Result<()> {
    if caller.client_id() == Some(owner.client_id.as_str()) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "Agent name '{name}' belongs to client '{}' (registered as '{}'): client '{}' may not act \
         as that agent. Use an agent name of this client's own, or ask an admin to reassign it \
         (PUT /v2/agents/{}/owner).",
        owner.client_id,
        owner.name,
        caller.client_id().unwrap_or_default(),
        owner.name,
    )))
}

/// Posts about a job (results and its state, log fragments, live output,
/// artifacts, job events) come from the client that claimed it, or an
/// admin; outside the open mode, where anyone may post anonymously as
/// before. A job claimed before claimers were recorded (or anonymously)
/// has none: any client that reached the agent route may post, as before.
/// A job that was never claimed has no agent to report on it.
pub fn may_report_on_job(caller: &Caller, mode: AuthMode, job: &Job) -> Result<()> {
    if mode == AuthMode::Open || caller.role() == Some(Role::Admin) {
        return Ok(());
    }
    let job_id = job.job_id;
    match (&job.claimed_by, job.started_at) {
        (Some(claimer), _) if caller.client_id() == Some(claimer.as_str()) => Ok(()),
        (Some(claimer), _) => Err(Error::Forbidden(format!(
            "Job {job_id} was claimed by client '{claimer}': only that client or an admin may \
             post about it, not client '{}'.",
            caller.client_id().unwrap_or_default()
        ))),
        (None, Some(_)) => Ok(()),
        (None, None) => Err(Error::Forbidden(format!(
            "Job {job_id} has not been claimed: only the client whose agent claims it (or an \
             admin) may post about it."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::validate_client_update;
    use serde_json::json;

    #[test]
    fn only_routes_refuse_identified_clients_of_other_roles_in_every_mode() {
        let agent_only = [Role::Agent];
        for mode in [AuthMode::Open, AuthMode::Standard, AuthMode::Strict] {
            assert!(route_access_only(&agent_only, &caller("g", Role::Agent), mode).is_ok());
            for role in [Role::Admin, Role::Manager, Role::Contributor] {
                assert!(matches!(
                    route_access_only(&agent_only, &caller("x", role), mode),
                    Err(Error::Forbidden(_))
                ));
            }
        }
        assert!(route_access_only(&agent_only, &Caller::anonymous(), AuthMode::Open).is_ok());
        assert!(matches!(
            route_access_only(&agent_only, &Caller::anonymous(), AuthMode::Standard),
            Err(Error::Unauthorized(_))
        ));
        // Plain routes let open mode's anonymous roles extend to everyone.
        assert!(route_access(&agent_only, &caller("a", Role::Admin), AuthMode::Open).is_ok());
    }

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            client: Some(Client::new(id, "hash", role)),
            agent: None,
        }
    }

    fn status(result: Result<()>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(Error::Unauthorized(_)) => "401",
            Err(Error::Forbidden(_)) => "403",
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn update(body: serde_json::Value) -> ClientUpdate {
        validate_client_update(body.as_object().unwrap()).unwrap()
    }

    #[test]
    fn anonymous_callers_hold_the_roles_of_their_mode() {
        let anon = Caller::anonymous();
        let agent_only = [Role::Agent];
        assert_eq!(
            status(route_access(&agent_only, &anon, AuthMode::Open)),
            "ok"
        );
        assert_eq!(
            status(route_access(&agent_only, &anon, AuthMode::Standard)),
            "401"
        );
        let people = [Role::Admin, Role::Manager, Role::Contributor];
        assert_eq!(
            status(route_access(&people, &anon, AuthMode::Standard)),
            "ok"
        );
        assert_eq!(
            status(route_access(&people, &anon, AuthMode::Strict)),
            "401"
        );
    }

    #[test]
    fn a_client_without_the_role_is_forbidden_not_unauthorized() {
        let agent = caller("a", Role::Agent);
        assert_eq!(
            status(route_access(&[Role::Admin], &agent, AuthMode::Open)),
            "403"
        );
        assert_eq!(
            status(route_access(&[Role::Agent], &agent, AuthMode::Strict)),
            "ok"
        );
    }

    #[test]
    fn jobs_are_cancelled_by_their_owner_or_a_manager() {
        let job = "j";
        assert_eq!(status(may_cancel(&Caller::anonymous(), job, None)), "ok");
        assert_eq!(
            status(may_cancel(&Caller::anonymous(), job, Some("c"))),
            "401"
        );
        assert_eq!(
            status(may_cancel(&caller("c", Role::Contributor), job, Some("c"))),
            "ok"
        );
        assert_eq!(
            status(may_cancel(&caller("d", Role::Contributor), job, Some("c"))),
            "403"
        );
        assert_eq!(
            status(may_cancel(&caller("m", Role::Manager), job, Some("c"))),
            "ok"
        );
        assert_eq!(
            status(may_cancel(&caller("x", Role::Admin), job, Some("c"))),
            "ok"
        );
    }

    #[test]
    fn managers_change_their_own_role_and_below_and_themselves_only_in_their_secret() {
        let manager = Client::new("m", "h", Role::Manager);
        let me = Actor::Client(&manager);
        let contributor = Client::new("c", "h", Role::Contributor);
        let peer = Client::new("p", "h", Role::Manager);
        let admin = Client::new("a", "h", Role::Admin);
        let check = |target: &str, current: Option<&Client>, body| {
            status(may_update_client(me, target, current, &update(body)))
        };
        let role = json!({"role": "agent"});
        assert_eq!(check("c", Some(&contributor), role.clone()), "ok");
        assert_eq!(check("p", Some(&peer), role.clone()), "ok");
        assert_eq!(check("a", Some(&admin), role.clone()), "403");
        let secret = json!({"client_secret": "a-long-enough-secret"});
        assert_eq!(check("m", Some(&manager), secret), "ok");
        assert_eq!(check("m", Some(&manager), role), "403");
        assert_eq!(check("new", None, json!({"role": "manager"})), "ok");
        assert_eq!(check("new", None, json!({"role": "admin"})), "403");
    }

    #[test]
    fn nobody_but_an_admin_grants_more_than_it_holds() {
        let mut manager = Client::new("m", "h", Role::Manager);
        manager.max_priority.insert("q".into(), 10);
        manager.allowed_queues = vec!["q".into()];
        manager.max_reservation_time.insert("*".into(), 7200);
        let me = Actor::Client(&manager);
        let grant = |body| status(may_update_client(me, "c", None, &update(body)));
        assert_eq!(grant(json!({"max_priority": {"q": 10}})), "ok");
        assert_eq!(grant(json!({"max_priority": {"q": 11}})), "403");
        assert_eq!(grant(json!({"max_priority": {"r": 1}})), "403");
        assert_eq!(grant(json!({"max_priority": {"*": 1}})), "403");
        assert_eq!(grant(json!({"allowed_queues": ["q"]})), "ok");
        assert_eq!(grant(json!({"allowed_queues": ["r"]})), "403");
        assert_eq!(grant(json!({"allowed_queues": ["*"]})), "403");
        assert_eq!(grant(json!({"max_reservation_time": {"any": 7200}})), "ok");
        assert_eq!(grant(json!({"max_reservation_time": {"*": 7201}})), "403");
        let admin = Client::new("a", "h", Role::Admin);
        let everything = update(json!({"max_priority": {"*": 1000}, "allowed_queues": ["*"]}));
        for actor in [Actor::Client(&admin), Actor::Operator] {
            assert_eq!(
                status(may_update_client(actor, "c", None, &everything)),
                "ok"
            );
        }
    }

    #[test]
    fn admins_and_the_operator_change_anyone() {
        let admin = Client::new("a", "h", Role::Admin);
        let other = Client::new("b", "h", Role::Admin);
        let grant = update(json!({"role": "admin"}));
        for actor in [Actor::Client(&admin), Actor::Operator] {
            assert_eq!(
                status(may_update_client(actor, "b", Some(&other), &grant)),
                "ok"
            );
            assert_eq!(
                status(may_update_client(actor, "a", Some(&admin), &grant)),
                "ok"
            );
        }
    }

    #[test]
    fn owners_are_named_under_the_rules_of_changing_them() {
        let manager = caller("m", Role::Manager);
        let contributor = Client::new("c", "h", Role::Contributor);
        let admin = Client::new("a", "h", Role::Admin);
        assert_eq!(status(may_change_owner(&manager, &contributor)), "ok");
        assert_eq!(status(may_change_owner(&manager, &admin)), "403");
        let peer = Client::new("p", "h", Role::Manager);
        assert_eq!(status(may_change_owner(&manager, &peer)), "ok");
        let me = manager.client.clone().unwrap();
        assert_eq!(status(may_change_owner(&manager, &me)), "ok");
        assert_eq!(
            status(may_change_owner(&Caller::anonymous(), &contributor)),
            "401"
        );
    }

    fn owner(client_id: &str) -> AgentOwner {
        AgentOwner {
            name: "dev1".into(),
            client_id: client_id.into(),
            bound_at: crate::Timestamp::from_millis(0),
        }
    }

    #[test]
    fn agent_clients_act_only_under_their_own_names_outside_the_open_mode() {
        let agent = caller("lab-a", Role::Agent);
        assert!(binds_agent_names(&agent, AuthMode::Standard));
        assert!(binds_agent_names(&agent, AuthMode::Strict));
        assert!(!binds_agent_names(&agent, AuthMode::Open));
        for role in [Role::Admin, Role::Manager] {
            assert!(!binds_agent_names(&caller("x", role), AuthMode::Standard));
        }
        assert!(!binds_agent_names(&Caller::anonymous(), AuthMode::Standard));
        assert_eq!(
            status(may_act_as_agent(&agent, "DEV1", &owner("lab-a"))),
            "ok"
        );
        let Err(Error::Forbidden(message)) = may_act_as_agent(&agent, "DEV1", &owner("lab-b"))
        else {
            panic!("expected 403")
        };
        assert!(message.contains("belongs to client 'lab-b'"), "{message}");
    }

    #[test]
    fn posts_about_a_job_come_from_its_claimer_or_an_admin() {
        let mut job = Job {
            job_id: uuid::Uuid::nil(),
            job_queue: "q".into(),
            job_priority: 0,
            state: crate::job::JobState::Running,
            created_at: crate::Timestamp::from_millis(0),
            started_at: Some(crate::Timestamp::from_millis(1)),
            attachments_status: None,
            job_data: Default::default(),
            result_data: Default::default(),
            claimed_by: Some("lab-a".into()),
            lease_until: None,
            lease_holder: None,
            attempts: 1,
            passed_over: None,
        };
        let (mine, other) = (caller("lab-a", Role::Agent), caller("lab-b", Role::Agent));
        let check = |who: &Caller, mode, job: &Job| status(may_report_on_job(who, mode, job));
        assert_eq!(check(&mine, AuthMode::Standard, &job), "ok");
        assert_eq!(check(&other, AuthMode::Standard, &job), "403");
        assert_eq!(check(&other, AuthMode::Strict, &job), "403");
        assert_eq!(
            check(&caller("a", Role::Admin), AuthMode::Standard, &job),
            "ok"
        );
        assert_eq!(
            check(&caller("m", Role::Manager), AuthMode::Standard, &job),
            "403"
        );
        assert_eq!(check(&other, AuthMode::Open, &job), "ok");
        assert_eq!(check(&Caller::anonymous(), AuthMode::Open, &job), "ok");
        // Claimed before claimers were recorded: any agent client, as before.
        job.claimed_by = None;
        assert_eq!(check(&other, AuthMode::Standard, &job), "ok");
        // Never claimed: nobody's to report on, but an admin's.
        job.started_at = None;
        assert_eq!(check(&mine, AuthMode::Standard, &job), "403");
        assert_eq!(
            check(&caller("a", Role::Admin), AuthMode::Standard, &job),
            "ok"
        );
    }

    #[test]
    fn secrets_are_written_by_their_client_or_an_admin() {
        assert_eq!(
            status(may_write_secrets(&caller("c", Role::Contributor), "c")),
            "ok"
        );
        assert_eq!(
            status(may_write_secrets(&caller("c", Role::Manager), "d")),
            "403"
        );
        assert_eq!(
            status(may_write_secrets(&caller("a", Role::Admin), "d")),
            "ok"
        );
        assert_eq!(status(may_write_secrets(&Caller::anonymous(), "d")), "401");
        assert!(may_receive_secrets(&caller("g", Role::Agent)));
        assert!(!may_receive_secrets(&caller("a", Role::Admin)));
        assert!(!may_receive_secrets(&Caller::anonymous()));
    }
}
