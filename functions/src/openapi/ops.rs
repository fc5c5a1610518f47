//! One [`Operation`] per handler of the route table, in modules named as
//! the handlers' (`ops::jobs::submit_job` documents
//! `handlers::jobs::submit_job`): the `endpoint!` macro of the route table
//! takes each entry's documentation from here, so an endpoint without one
//! does not compile. Each lists every answer SPEC.md gives the endpoint;
//! those every endpoint of its kind can give (401/403 where a token is
//! read, 400/413/415/422 for a JSON body, ...) are added by
//! [`super::build`].

use serde_json::json;

use super::{op, schema_ref, Operation};

fn list_of(name: &str) -> serde_json::Value {
    json!({"type": "array", "items": schema_ref(name)})
}

fn repeated_strings() -> serde_json::Value {
    json!({"type": "array", "items": {"type": "string"}})
}

pub mod meta {
    use super::*;

    pub fn version() -> Operation {
        op("Health check").text(200, "`Testflinger Server v<version>`.")
    }

    pub fn metrics() -> Operation {
        op("Prometheus metrics")
            .describe("Request counts and latencies by route, job and lease counters, artifact bytes, store latency, and gauges of unfinished jobs per queue and agents per state, in Prometheus's text format (version 0.0.4). The README lists every metric.")
            .text(200, "The metrics.")
            .error(404, "The harness serves metrics on the address `TESTFLINGER_METRICS_BIND` names, not here.")
    }
}

pub mod openapi {
    use super::*;

    pub fn serve_document() -> Operation {
        op("This OpenAPI document").json(
            200,
            "The OpenAPI 3.1 document of every endpoint.",
            schema_ref("OpenApiDocument"),
        )
    }
}

pub mod jobs {
    use super::*;

    pub fn submit_job() -> Operation {
        op("Submit a job")
            .describe("Stores the job in state `waiting`. Priority above 0, a restricted queue or a long reservation need a token that allows it (403 otherwise).")
            .json_body(schema_ref("Job"))
            .json(
                200,
                "The job is stored.",
                json!({"type": "object", "required": ["job_id"], "properties": {"job_id": {"type": "string", "format": "uuid"}}}),
            )
            .error(422, "A field is not valid (every bad field is named), or no agent of the queue may run it.")
            .links_to_the_job(&[
                "job-get", "job-position", "job-action", "job-events-get", "result-get",
                "result-status", "result-post", "log-post", "log-get", "legacy-output-post",
                "legacy-output-get", "artifact-upload", "artifact-download", "attachments-upload",
                "attachments-download", "job-events",
            ])
    }

    pub fn claim_job() -> Operation {
        op("Claim the next job (agents)")
            .describe("Atomically claims the waiting job of highest priority, oldest first, among the queues named (SPEC.md §7).")
            .required_query("queue", json!({"type": "array", "items": {"type": "string"}, "minItems": 1}), "A queue the agent serves (repeatable).")
            .cookie("agent_name", "The agent's name (from `POST /v1/agents/data/{name}`); required unless the mode is `open`.")
            .json(200, "The claimed job.", schema_ref("ClaimedJob"))
            .empty(204, "No job is eligible.")
            .error(400, "No queue was named.")
            .error(401, "A token is needed, or the agent is not identified (no `agent_name` cookie).")
            .error(403, "The token's role may not claim, or the `agent_name` names another client's agent.")
            .links_to_the_job(&[
                "result-post", "log-post", "legacy-output-post", "legacy-serial-post",
                "artifact-upload", "attachments-download", "job-events",
            ])
    }

    pub fn get_job() -> Operation {
        op("A job as submitted")
            .json(200, "The job plus `job_id`.", schema_ref("JobDefinition"))
            .empty(204, "No such job.")
    }

    pub fn act_on_job() -> Operation {
        op("Cancel a job")
            .json_body(json!({"type": "object", "required": ["action"], "properties": {"action": {"enum": ["cancel"]}}}))
            .text(200, "`OK`: the job is cancelled.")
            .error(400, "The job is already complete or cancelled (or the body is not JSON).")
            .error(404, "No such job.")
            .error(422, "An unknown action.")
    }

    pub fn job_position() -> Operation {
        op("A waiting job's place in its queue")
            .text(200, "An integer: 0 is next to run.")
            .error(410, "The job is not waiting, or does not exist.")
    }

    pub fn search_jobs() -> Operation {
        op("Search jobs by tag and state")
            .query("tags", repeated_strings(), "A tag (repeatable).")
            .query(
                "match",
                json!({"enum": ["any", "all"]}),
                "Whether a job needs any or all of the tags (default any).",
            )
            .query(
                "state",
                repeated_strings(),
                "A state (repeatable); `active` is every state not terminal.",
            )
            .query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                "At most this many jobs (default 100).",
            )
            .query(
                "before",
                json!({"type": "string"}),
                "The cursor of the next page, from the `Link` header.",
            )
            .answer_with_link(list_of("JobSummary"))
            .error(
                422,
                "A query parameter is not valid (each is named in `detail.query`).",
            )
    }
}

impl Operation {
    /// Links from the 200 answer's `job_id` to the `{id}` of each operation.
    fn links_to_the_job(self, operations: &[&str]) -> Self {
        operations.iter().fold(self, |op, target| {
            op.link(200, target, "id", "$response.body#/job_id")
        })
    }

    /// 200 with a JSON list and, when there are more, a `Link` to the next
    /// page.
    fn answer_with_link(self, schema: serde_json::Value) -> Self {
        self.answer(
            200,
            json!({
                "description": "The jobs, newest first.",
                "headers": {"Link": {
                    "description": "`<...>; rel=\"next\"` when more jobs match.",
                    "schema": {"type": "string"},
                }},
                "content": {"application/json": {"schema": schema}},
            }),
        )
    }
}

pub mod results {
    use super::*;

    pub fn post_result() -> Operation {
        op("Post results (agents)")
            .json_body(schema_ref("ResultPost"))
            .text(200, "`OK`: the keys are merged into the result.")
            .error(403, "Another client claimed the job.")
            .error(404, "No such job.")
            .error(409, "The caller's lease on the job has ended.")
    }

    pub fn get_result() -> Operation {
        op("A job's results")
            .json(200, "The results.", schema_ref("Result"))
            .empty(204, "No such job.")
    }

    pub fn get_status() -> Operation {
        op("A job's state and phase exit codes")
            .json(
                200,
                "The state and exit statuses.",
                schema_ref("ResultStatus"),
            )
            .empty(204, "No such job.")
    }
}

pub mod events {
    use super::*;

    pub fn get_job_events() -> Operation {
        op("A job's events, as the server recorded them")
            .json(200, "The events.", schema_ref("JobEvents"))
            .error(404, "No such job.")
    }

    pub fn relay_events() -> Operation {
        op("Relay job events to the job's webhooks (agents)")
            .describe("With one `default` webhook, the answer is that webhook's (its status and body); otherwise a summary (SPEC.md §8).")
            .json_body(schema_ref("EventsPost"))
            .json(200, "The webhooks took the events.", schema_ref("RelaySummary"))
            .error(403, "Another client claimed the job, or no webhook of the job is on a trusted host.")
            .error(404, "No such job.")
            .error(409, "The caller's lease on the job has ended.")
            .error(502, "No webhook took the events.")
            .error(504, "Every webhook tried timed out.")
    }
}

pub mod artifacts {
    use super::*;

    pub fn upload_attachments() -> Operation {
        op("Upload a job's attachments")
            .multipart_file("The attachments, a .tar.gz, in the field `file`.")
            .text(200, "`OK`: the job becomes claimable.")
            .error(404, "No such job.")
            .error(415, "The body is not `multipart/form-data`.")
            .error(
                422,
                "The job is not waiting for attachments, or no field `file`.",
            )
    }

    pub fn download_attachments() -> Operation {
        op("Download a job's attachments (agents)")
            .binary(200, "application/gzip", "The attachments archive.")
            .empty(204, "The job has no attachments.")
    }

    pub fn upload_artifact() -> Operation {
        op("Upload a job's artifact (agents)")
            .multipart_file("The artifact, a .tar.gz, in the field `file`.")
            .text(200, "`OK`: stored (a newer upload replaces it).")
            .error(403, "Another client claimed the job.")
            .error(404, "No such job.")
            .error(409, "The caller's lease on the job has ended.")
            .error(415, "The body is not `multipart/form-data`.")
            .error(422, "No field `file`.")
    }

    pub fn download_artifact() -> Operation {
        op("Download a job's artifact")
            .binary(
                200,
                "application/gzip",
                "The artifact (`Content-Disposition: attachment; filename=artifact.tar.gz`).",
            )
            .empty(204, "The job has no artifact.")
            .empty(
                307,
                "Under Lambda with S3, a large artifact is at the presigned URL in `Location`.",
            )
    }

    pub fn artifact_upload_url() -> Operation {
        op("A presigned URL to upload a large artifact to (agents)")
            .json_body(json!({"type": "object", "required": ["size"], "properties": {"size": {"type": "integer", "minimum": 0}}}))
            .json(200, "Where to `PUT` the artifact.", schema_ref("UploadUrl"))
            .error(400, "Artifacts are not stored in S3 here.")
            .error(403, "Another client claimed the job.")
            .error(404, "No such job.")
            .error(409, "The caller's lease on the job has ended.")
    }
}

pub mod logs {
    use super::*;

    pub fn post_log() -> Operation {
        op("Post a log fragment (agents)")
            .json_body(schema_ref("LogFragment"))
            .text(
                200,
                "`OK`: stored; a resend of the same fragment changes nothing.",
            )
            .error(403, "Another client claimed the job.")
            .error(404, "No such job, or an unknown log type.")
            .error(409, "The caller's lease on the job has ended.")
    }

    pub fn get_log() -> Operation {
        op("A job's log fragments, per phase")
            .query(
                "start_fragment",
                json!({"type": "integer", "minimum": 0}),
                "Only fragments numbered from this one.",
            )
            .query(
                "start_timestamp",
                json!({"type": "string", "format": "date-time"}),
                "Only fragments from this time.",
            )
            .query(
                "phase",
                json!({"enum": testflinger_shared::logs::LOG_PHASES}),
                "Only this phase.",
            )
            .json(200, "The log of each phase.", schema_ref("Log"))
            .error(404, "An unknown log type.")
            .error(
                422,
                "A query parameter is not valid (each is named in `detail.query`).",
            )
    }

    fn post_legacy(summary: &'static str) -> Operation {
        op(summary)
            .text_body("Text to append.")
            .text(200, "`OK`")
            .error(403, "Another client claimed the job.")
            .error(404, "No such job.")
            .error(409, "The caller's lease on the job has ended.")
    }

    fn get_legacy(summary: &'static str) -> Operation {
        op(summary)
            .text(
                200,
                "What was appended since the last read (the read consumes it).",
            )
            .empty(204, "Nothing new.")
    }

    pub fn post_legacy_output() -> Operation {
        post_legacy("Append live output (legacy agents)")
    }

    pub fn get_legacy_output() -> Operation {
        get_legacy("Read new live output (legacy)")
    }

    pub fn post_legacy_serial() -> Operation {
        post_legacy("Append serial output (legacy agents)")
    }

    pub fn get_legacy_serial() -> Operation {
        get_legacy("Read new serial output (legacy)")
    }
}

pub mod agents {
    use super::*;

    fn cookie_answer(description: &str) -> Operation {
        op("").answer(
            200,
            json!({
                "description": description,
                "headers": {"Set-Cookie": {
                    "description": "`agent_name=<name>; HttpOnly; Path=/; SameSite=Strict`",
                    "schema": {"type": "string"},
                }},
                "content": {"application/json": {"schema": schema_ref("StatusOk")}},
            }),
        )
    }

    pub fn post_agent_data() -> Operation {
        Operation {
            summary: "Report an agent's data (agents)",
            ..cookie_answer("Stored; the cookie identifies the agent to the claim.")
        }
        .json_body(schema_ref("AgentData"))
        .error(403, "The name belongs to another client's agent.")
    }

    pub fn post_agent_data_v2() -> Operation {
        Operation {
            summary: "Report an agent's data, v2 (agents)",
            ..cookie_answer("Stored; the cookie identifies the agent to the claim.")
        }
        .json_body(schema_ref("AgentDataV2"))
        .error(400, "A mode without a sub-state (`offline`, `restart`) was given a state, or the body is not JSON.")
        .error(403, "The name belongs to another client's agent.")
    }

    pub fn list_agents() -> Operation {
        op("Every agent").json(200, "The agents, without their logs.", list_of("Agent"))
    }

    pub fn get_agent() -> Operation {
        op("One agent")
            .json(200, "The agent, with its logs.", schema_ref("Agent"))
            .error(404, "No such agent.")
    }

    pub fn list_agents_v2() -> Operation {
        op("Every agent, v2").json(200, "The agents.", list_of("AgentV2"))
    }

    pub fn get_agent_v2() -> Operation {
        op("One agent, v2")
            .json(200, "The agent.", schema_ref("AgentV2"))
            .error(404, "No such agent.")
    }

    pub fn command_agent_mode() -> Operation {
        op("Command an agent's mode (admins)")
            .json_body(json!({
                "type": "object",
                "required": ["commanded_mode"],
                "properties": {
                    "commanded_mode": {"enum": testflinger_shared::agents::AgentMode::ALL.map(|m| m.as_str())},
                    "comment": {"type": ["string", "null"]},
                },
            }))
            .json(200, "The mode is commanded.", schema_ref("StatusOk"))
            .error(404, "No such agent.")
    }

    pub fn assign_agent_owner() -> Operation {
        op("Assign or release an agent name (admins)")
            .json_body(json!({"type": "object", "required": ["client_id"], "properties": {"client_id": {"type": ["string", "null"]}}}))
            .json(200, "The name's new owner.", schema_ref("OwnerChange"))
            .error(404, "No such client.")
            .error(422, "The client's role is not `agent`, or the body is not valid.")
    }

    pub fn post_provision_log() -> Operation {
        op("Record a provisioning attempt (agents)")
            .json_body(json!({
                "type": "object",
                "required": ["job_id", "exit_code"],
                "properties": {"job_id": {"type": "string"}, "exit_code": {"type": "integer"}, "detail": {"type": "string"}},
            }))
            .text(200, "`OK`")
            .error(404, "No such agent (nothing is written).")
    }

    pub fn advertise_queues() -> Operation {
        op("Advertise queues")
            .json_body(schema_ref("QueueDescriptions"))
            .text(200, "`OK`")
    }

    pub fn list_queues() -> Operation {
        op("Every advertised queue").json(
            200,
            "`{queue: description}`",
            schema_ref("QueueDescriptions"),
        )
    }

    pub fn advertise_images() -> Operation {
        op("Advertise the images of queues")
            .json_body(json!({"type": "object", "additionalProperties": schema_ref("Images")}))
            .text(200, "`OK`: each named queue's images are replaced.")
    }

    pub fn get_images() -> Operation {
        op("A queue's images").json(
            200,
            "`{image: provision data}` (`{}` when none).",
            schema_ref("Images"),
        )
    }
}

pub mod queues {
    use super::*;

    pub fn queue_agents() -> Operation {
        op("The agents serving a queue")
            .json(200, "The agents.", list_of("Agent"))
            .error(404, "`Queue '<q>' does not exist.`: no agent lists it.")
    }

    pub fn queue_jobs() -> Operation {
        op("A queue's jobs")
            .json(200, "The jobs, newest first.", list_of("JobSummary"))
            .empty(204, "The queue has no jobs.")
    }

    pub fn wait_times() -> Operation {
        op("Percentiles of recent waits per queue")
            .query(
                "queue",
                repeated_strings(),
                "A queue (repeatable); default every queue.",
            )
            .json(
                200,
                "Seconds waited, per percentile.",
                schema_ref("WaitTimes"),
            )
    }
}

pub mod statistics {
    use super::*;

    pub fn job_statistics() -> Operation {
        op("Jobs submitted per day, by submitter or queue")
            .query(
                "group_by",
                json!({"enum": testflinger_shared::statistics::GroupBy::ALL.map(|g| g.as_str())}),
                "How to group (default `submitted_by`).",
            )
            .query(
                "start",
                json!({"type": "string"}),
                "The first day: a date or an RFC 3339 time (default 29 days ago).",
            )
            .query(
                "stop",
                json!({"type": "string"}),
                "The day after the last: a date or an RFC 3339 time (default tomorrow).",
            )
            .query(
                "queues",
                repeated_strings(),
                "Only these queues (repeatable).",
            )
            .query(
                "submitters",
                repeated_strings(),
                "Only these submitters (repeatable).",
            )
            .json(200, "The counts.", schema_ref("JobStatistics"))
            .error(
                422,
                "A query parameter is not valid (each is named in `detail.query`).",
            )
    }
}

pub mod oauth {
    use super::*;

    pub fn issue_token() -> Operation {
        op("Client credentials for an access and a refresh token")
            .basic_auth()
            .json(200, "The tokens.", schema_ref("Tokens"))
            .error(401, "Unknown client or wrong secret.")
            .error(
                429,
                "Too many failed attempts; retry after `Retry-After` seconds.",
            )
    }

    pub fn refresh_token() -> Operation {
        op("A refresh token for a new access token")
            .json_body(schema_ref("RefreshToken"))
            .json(200, "A new access token.", schema_ref("Tokens"))
            .error(
                400,
                "An unknown, revoked or expired refresh token (or a body that is not JSON).",
            )
    }

    pub fn revoke_token() -> Operation {
        op("Revoke a refresh token (admins)")
            .json_body(schema_ref("RefreshToken"))
            .json(200, "Revoked.", schema_ref("StatusOk"))
            .error(
                400,
                "An unknown or already revoked refresh token (or a body that is not JSON).",
            )
    }
}

pub mod clients {
    use super::*;

    pub fn list_clients() -> Operation {
        op("Every client's permissions").json(200, "The clients.", list_of("Client"))
    }

    pub fn get_client() -> Operation {
        op("A client's permissions")
            .json(200, "The client.", schema_ref("Client"))
            .error(404, "No such client.")
    }

    pub fn put_client() -> Operation {
        op("Create or update a client")
            .describe("Nobody grants or edits a role above their own, nor more priority, queues or reservation time than they hold (403).")
            .json_body(schema_ref("ClientUpdate"))
            .text(200, "`Created permissions for client '<id>'` or `Updated ...`.")
    }

    pub fn delete_client() -> Operation {
        op("Delete a client, its refresh tokens and its secrets (admins)")
            .text(200, "`OK`")
            .error(404, "No such client.")
    }

    pub fn list_restricted_queues() -> Operation {
        op("Every restricted queue").json(
            200,
            "The queues and their owners.",
            list_of("RestrictedQueue"),
        )
    }

    pub fn get_restricted_queue() -> Operation {
        op("A restricted queue")
            .json(
                200,
                "The queue and its owners.",
                schema_ref("RestrictedQueue"),
            )
            .error(404, "The queue is not restricted.")
    }

    pub fn restrict_queue() -> Operation {
        op("Restrict a queue to an owner")
            .json_body(schema_ref("ClientId"))
            .text(200, "`OK`")
            .error(404, "No such client, or no agent serves the queue.")
    }

    pub fn unrestrict_queue() -> Operation {
        op("Remove an owner of a restricted queue")
            .json_body(schema_ref("ClientId"))
            .text(200, "`OK`: the restriction ends with its last owner.")
            .error(
                404,
                "The queue is not restricted, or the client is not an owner.",
            )
    }
}

pub mod secrets {
    use super::*;

    pub fn put_secret() -> Operation {
        op("Store a client's secret (that client, or an admin)")
            .json_body(schema_ref("Secret"))
            .json(200, "Stored; when it expires.", schema_ref("SecretStored"))
            .error(400, "This server keeps no secrets (no `TESTFLINGER_SECRETS_KEY`), or the body is not JSON.")
    }

    pub fn delete_secret() -> Operation {
        op("Delete a client's secret (that client, or an admin)")
            .text(200, "`OK`")
            .error(
                400,
                "This server keeps no secrets (no `TESTFLINGER_SECRETS_KEY`).",
            )
            .error(404, "No such secret.")
            .error(422, "The path is not a secret's.")
    }
}

/// The dashboard's pages ([`crate::routes::PAGES`]): HTML for browsers,
/// described here as every route-table entry must be, but kept out of the
/// API document that [`crate::openapi::build`] makes from `ENDPOINTS`.
pub mod dashboard {
    use super::*;

    fn page(summary: &'static str) -> Operation {
        op(summary).html(200, "The page.")
    }

    pub fn overview_page() -> Operation {
        page("Overview: queues, agents by state, recent jobs")
    }
    pub fn agents_page() -> Operation {
        page("Agents, filtered by queue, state and location")
    }
    pub fn agent_page() -> Operation {
        page("One agent: details, provision history, recent log")
    }
    pub fn jobs_page() -> Operation {
        page("Job search, paged")
    }
    pub fn job_page() -> Operation {
        page("One job: fields, phases, events, output tail")
    }
    pub fn job_output() -> Operation {
        op("A job's output tail, for the page's live refresh").text(200, "The tail.")
    }
    pub fn queues_page() -> Operation {
        page("Queues with depth and waits")
    }
    pub fn queue_page() -> Operation {
        page("One queue: agents, jobs, wait chart")
    }
    pub fn stylesheet() -> Operation {
        op("The dashboard's stylesheet").binary(200, "text/css", "CSS.")
    }
    pub fn script() -> Operation {
        op("The dashboard's script").binary(200, "text/javascript", "JavaScript.")
    }
}
