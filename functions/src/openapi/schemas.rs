//! The named schemas of the document (`#/components/schemas/...`), after
//! SPEC.md: the error body, the job document, and the views the API
//! answers with. Enumerations come from the domain's own lists, so a new
//! phase, role or mode appears here without an edit.

use serde_json::{json, Map, Value};
use testflinger_shared::agents::AgentMode;
use testflinger_shared::events::EventName;
use testflinger_shared::logs::LOG_PHASES;
use testflinger_shared::role::Role;
use testflinger_shared::statistics::GroupBy;
use testflinger_shared::webhooks::WebhookKind;

fn string() -> Value {
    json!({"type": "string"})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

fn nullable_date_time() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

/// `{name: integer}` maps: priority per queue, reservation seconds per queue.
fn per_queue_integers() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "integer"}})
}

pub fn all() -> Value {
    let phases: Vec<&str> = LOG_PHASES.to_vec();
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let modes: Vec<&str> = AgentMode::ALL.iter().map(|m| m.as_str()).collect();
    let modes_or_null: Vec<Value> = modes
        .iter()
        .map(|m| Value::from(*m))
        .chain([Value::Null])
        .collect();
    let events: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
    let group_by: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
    let webhook_kinds: Vec<&str> = WebhookKind::ALL.iter().map(|k| k.as_str()).collect();
    let phase_data = json!({"type": "object", "additionalProperties": true});
    let webhook = json!({
        "oneOf": [
            {"type": "string", "description": "An http(s) URL."},
            {
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {"url": string(), "type": {"enum": webhook_kinds}},
            },
        ],
    });
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error answer (SPEC.md §2). For 422, `detail` is `{\"json\": {\"<field>\": [\"<what is wrong>\"]}}` (or `query`, `path`).",
            "required": ["message", "detail"],
            "properties": {
                "message": {"type": "string", "description": "One human sentence."},
                "detail": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
}),
    );
    schemas.insert(
        "StatusOk".into(),
        json!({
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "OK"}},
        }),
    );
    schemas.insert(
        "Job".into(),
        json!({
            "type": "object",
            "description": "A job as submitted (SPEC.md §5). Unknown fields are kept and passed to the agent.",
            "required": ["job_queue"],
            "additionalProperties": true,
            "properties": {
                "job_queue": {"type": "string", "minLength": 1},
                "name": string(),
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 256}, "maxItems": 100},
                "parent_job_id": {"type": "string", "format": "uuid"},
                "job_status_webhook": {
                    "oneOf": [
                        webhook.clone(),
                        {"type": "array", "items": webhook, "minItems": 1, "maxItems": 10},
                    ],
                },
                "debug": {"type": "boolean"},
                "job_priority": {"type": "integer", "minimum": 0},
                "global_timeout": {"type": "integer", "minimum": 1},
                "output_timeout": {"type": "integer", "minimum": 1},
                "allocation_timeout": {"type": "integer", "minimum": 1},
                "exclude_agents": strings(),
                "provision_data": phase_data.clone(),
                "firmware_update_data": phase_data.clone(),
                "allocate_data": phase_data,
                "test_data": {
                    "type": "object",
                    "additionalProperties": true,
                    "properties": {
                        "test_cmds": string(),
                        "attachments": {"type": "array", "items": {
                            "type": "object",
                            "required": ["agent"],
                            "properties": {"agent": string(), "device": string()},
                        }},
                        "secrets": {"type": "object", "additionalProperties": {"type": "string"},
                                    "description": "{ENV_NAME: secret path}"},
                    },
                },
                "reserve_data": {
                    "type": "object",
                    "additionalProperties": true,
                    "properties": {
                        "ssh_keys": {"type": "array", "items": {"type": "string", "pattern": "^(lp|gh):"}},
                        "timeout": {
                            "oneOf": [
                                {"type": "integer", "minimum": 1},
                                {"type": "string", "description": "A duration such as `30m` or `7h`."},
                            ],
                        },
                    },
                },
            },
}),
    );
    schemas.insert(
        "JobDefinition".into(),
        json!({
            "type": "object",
            "description": "The job as submitted, plus `job_id`.",
            "required": ["job_id", "job_queue"],
            "additionalProperties": true,
            "properties": {"job_id": {"type": "string", "format": "uuid"}, "job_queue": string()},
}),
    );
    schemas.insert(
        "ClaimedJob".into(),
        json!({
            "type": "object",
            "description": "The claim's answer (SPEC.md §7): the job's fields flattened, `job_id`, `started_at`, `attachments_status` when it has attachments, and each of `test_data.secrets` resolved to its value.",
            "required": ["job_id", "job_queue"],
            "additionalProperties": true,
            "properties": {
                "job_id": {"type": "string", "format": "uuid"},
                "job_queue": string(),
                "client_id": string(),
                "started_at": date_time(),
                "attachments_status": string(),
            },
}),
    );
    schemas.insert(
        "JobSummary".into(),
        json!({
                    "type": "object",
                    "required": ["job_id", "created_at", "job_state", "job_queue", "submitted_by"],
                    "properties": {
                        "job_id": {"type": "string", "format": "uuid"},
                        "created_at": date_time(),
                        "job_state": string(),
                        "job_queue": string(),
                        "submitted_by": nullable_string(),
                        "tags": strings(),
                    },
        }),
    );
    schemas.insert(
        "Result".into(),
        json!({
            "type": "object",
            "description": "Every stored result key, `job_state`, `<phase>_status`, `<phase>_output` and `<phase>_serial` (each at most its tail; a cut log is named in `truncated_logs`).",
            "required": ["job_state"],
            "additionalProperties": true,
            "properties": {
                "job_state": string(),
                "truncated_logs": {"type": "object", "additionalProperties": {
                    "type": "object",
                    "required": ["returned_bytes", "starts_at_fragment", "starts_at_offset", "full_log"],
                    "properties": {
                        "returned_bytes": {"type": "integer", "minimum": 0},
                        "starts_at_fragment": {"type": "integer"},
                        "starts_at_offset": {"type": "integer", "minimum": 0},
                        "full_log": string(),
                    },
                }},
            },
}),
    );
    schemas.insert(
        "ResultStatus".into(),
        json!({
            "type": "object",
            "description": "`job_state` and `<phase>_status` for each phase with an exit status.",
            "required": ["job_state"],
            "properties": {"job_state": string()},
            "additionalProperties": true,
}),
    );
    schemas.insert(
        "ResultPost".into(),
        json!({
            "type": "object",
            "description": "Any result keys; `status` replaces the stored map, `job_state` moves the job (SPEC.md §6).",
            "additionalProperties": true,
            "properties": {
                "status": {"type": "object", "additionalProperties": {"type": "integer"}},
                "job_state": string(),
                "device_info": {"type": "object", "additionalProperties": true},
            },
}),
    );
    schemas.insert(
        "JobEvents".into(),
        json!({
                    "type": "object",
                    "required": ["job_id", "events"],
                    "properties": {
                        "job_id": {"type": "string", "format": "uuid"},
                        "events": {"type": "array", "items": {
                            "type": "object",
                            "required": ["event_name", "timestamp", "message", "detail"],
                            "properties": {
                                "event_name": {"enum": events},
                                "timestamp": {
                                    "type": "object",
                                    "required": ["$date"],
                                    "properties": {"$date": date_time()},
                                },
                                "message": string(),
                                "detail": string(),
                                "phase": string(),
                                "status": {"type": "integer"},
                            },
                        }},
                    },
        }),
    );
    schemas.insert(
        "EventsPost".into(),
        json!({
            "type": "object",
            "required": ["events"],
            "additionalProperties": true,
            "properties": {
                "job_status_webhook": {},
                "agent_id": string(),
                "job_queue": string(),
                "events": {"type": "array", "items": {"type": "object", "additionalProperties": true}},
            },
}),
    );
    schemas.insert(
        "RelaySummary".into(),
        json!({
                    "type": "object",
                    "required": ["status", "delivered", "failed", "webhooks"],
                    "properties": {
                        "status": {"const": "OK"},
                        "delivered": {"type": "integer", "minimum": 0},
                        "failed": {"type": "integer", "minimum": 0},
                        "webhooks": {"type": "array", "items": {
                            "type": "object",
                            "required": ["index", "type", "delivered"],
                            "properties": {
                                "index": {"type": "integer", "minimum": 0},
                                "type": string(),
                                "delivered": {"type": "boolean"},
                                "status": {"type": "integer"},
                                "error": string(),
                            },
                        }},
                    },
        }),
    );
    schemas.insert(
        "LogFragment".into(),
        json!({
                    "type": "object",
                    "required": ["fragment_number", "timestamp", "phase", "log_data"],
                    "properties": {
                        "fragment_number": {"type": "integer", "minimum": 0},
                        "timestamp": date_time(),
                        "phase": {"enum": phases.clone()},
                        "log_data": string(),
                    },
        }),
    );
    schemas.insert(
        "Log".into(),
        json!({
            "type": "object",
            "description": "`{\"<type>\": {\"<phase>\": {\"last_fragment_number\", \"log_data\"}}}`, every phase unless `phase` narrows it (−1 and \"\" when empty).",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"enum": phases.clone()},
                "additionalProperties": {
                    "type": "object",
                    "required": ["last_fragment_number", "log_data"],
                    "properties": {
                        "last_fragment_number": {"type": "integer", "minimum": -1},
                        "log_data": string(),
                    },
                },
            },
}),
    );
    schemas.insert(
        "Agent".into(),
        json!({
            "type": "object",
            "description": "An agent as it reported itself, with `name`, `updated_at`, its provision streak and `restricted_to`; one agent alone also carries `log` and `provision_log`.",
            "required": ["name", "updated_at", "restricted_to"],
            "additionalProperties": true,
            "properties": {
                "name": string(),
                "state": string(),
                "queues": strings(),
                "location": string(),
                "provision_type": string(),
                "job_id": string(),
                "identifier": string(),
                "comment": string(),
                "updated_at": date_time(),
                "provision_streak_type": {"enum": ["pass", "fail"]},
                "provision_streak_count": {"type": "integer", "minimum": 0},
                "restricted_to": {"type": "object", "additionalProperties": strings()},
                "log": strings(),
                "provision_log": {"type": "array", "items": {"type": "object", "additionalProperties": true}},
            },
}),
    );
    schemas.insert(
        "AgentData".into(),
        json!({
                    "type": "object",
                    "description": "What an agent reports (v1); other fields are kept.",
                    "additionalProperties": true,
                    "properties": {
                        "state": string(),
                        "mode": {"enum": modes.clone()},
                        "queues": strings(),
                        "location": string(),
                        "provision_type": string(),
                        "job_id": string(),
                        "log": strings(),
                        "identifier": string(),
                        "comment": string(),
                    },
        }),
    );
    schemas.insert(
        "AgentDataV2".into(),
        json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "identifier": string(),
                        "job_id": string(),
                        "location": string(),
                        "provision_type": string(),
                        "log": strings(),
                        "queues": strings(),
                        "mode": {"enum": modes.clone()},
                        "state": string(),
                    },
        }),
    );
    schemas.insert(
        "AgentV2".into(),
        json!({
            "type": "object",
            "required": ["name", "mode", "mode_changed_at", "commanded_mode", "commanded_mode_changed_at",
                         "commanded_mode_changed_by", "state", "state_changed_at", "job_id", "queues",
                         "location", "provision_type", "comment", "restricted_to", "job"],
            "properties": {
                "name": string(),
                "mode": {"enum": modes_or_null.clone()},
                "mode_changed_at": nullable_date_time(),
                "commanded_mode": {"enum": modes_or_null},
                "commanded_mode_changed_at": nullable_date_time(),
                "commanded_mode_changed_by": nullable_string(),
                "state": nullable_string(),
                "state_changed_at": nullable_date_time(),
                "job_id": nullable_string(),
                "queues": strings(),
                "location": nullable_string(),
                "provision_type": nullable_string(),
                "comment": nullable_string(),
                "restricted_to": {"type": "object", "additionalProperties": strings()},
                "job": {"oneOf": [{"type": "null"}, {
                    "type": "object",
                    "required": ["job_id", "job_state", "job_queue", "created_at", "started_at", "submitted_by"],
                    "properties": {
                        "job_id": {"type": "string", "format": "uuid"},
                        "job_state": string(),
                        "job_queue": string(),
                        "created_at": date_time(),
                        "started_at": nullable_date_time(),
                        "submitted_by": nullable_string(),
                    },
                }]},
            },
}),
    );
    schemas.insert(
        "OwnerChange".into(),
        json!({
                    "type": "object",
                    "required": ["name", "client_id", "previous_client_id"],
                    "properties": {
                        "name": string(),
                        "client_id": nullable_string(),
                        "previous_client_id": nullable_string(),
                    },
        }),
    );
    schemas.insert(
        "QueueDescriptions".into(),
        json!({
                    "type": "object",
                    "description": "`{queue: description}`",
                    "additionalProperties": {"type": "string"},
        }),
    );
    schemas.insert(
        "Images".into(),
        json!({
                    "type": "object",
                    "description": "`{image: provision data}`",
                    "additionalProperties": {"type": "string"},
        }),
    );
    schemas.insert(
        "WaitTimes".into(),
        json!({
                    "type": "object",
                    "description": "`{queue: {\"5\", \"10\", \"50\", \"90\", \"95\": seconds}}`",
                    "additionalProperties": {
                        "type": "object",
                        "propertyNames": {"enum": ["5", "10", "50", "90", "95"]},
                        "additionalProperties": {"type": "number", "minimum": 0},
                    },
        }),
    );
    schemas.insert(
        "JobStatistics".into(),
        json!({
            "type": "object",
            "required": ["group_by", "start", "stop", "queues", "submitters", "total", "totals", "daily"],
            "properties": {
                "group_by": {"enum": group_by},
                "start": {"type": "string", "format": "date"},
                "stop": {"type": "string", "format": "date"},
                "queues": strings(),
                "submitters": strings(),
                "total": {"type": "integer", "minimum": 0},
                "totals": {"type": "array", "items": {
                    "type": "object",
                    "required": ["key", "count"],
                    "properties": {"key": nullable_string(), "count": {"type": "integer", "minimum": 0}},
                }},
                "daily": {"type": "array", "items": {
                    "type": "object",
                    "required": ["date", "key", "count"],
                    "properties": {
                        "date": {"type": "string", "format": "date"},
                        "key": nullable_string(),
                        "count": {"type": "integer", "minimum": 0},
                    },
                }},
            },
}),
    );
    schemas.insert(
        "Tokens".into(),
        json!({
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": string(),
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 1},
                "refresh_token": {"type": "string", "description": "Only from `/v1/oauth2/token`."},
            },
}),
    );
    schemas.insert(
        "RefreshToken".into(),
        json!({
                    "type": "object",
                    "required": ["refresh_token"],
                    "properties": {"refresh_token": string()},
        }),
    );
    schemas.insert(
        "Client".into(),
        json!({
            "type": "object",
            "description": "A client's permissions; never its secret.",
            "required": ["client_id", "role", "max_priority", "allowed_queues", "max_reservation_time"],
            "properties": {
                "client_id": string(),
                "role": {"enum": roles.clone()},
                "max_priority": per_queue_integers(),
                "allowed_queues": strings(),
                "max_reservation_time": per_queue_integers(),
            },
}),
    );
    schemas.insert(
        "ClientUpdate".into(),
        json!({
            "type": "object",
            "description": "A new client needs `client_secret`; an update changes the fields given.",
            "properties": {
                "client_secret": {"type": "string", "minLength": 15},
                "role": {"enum": roles},
                "max_priority": per_queue_integers(),
                "allowed_queues": strings(),
                "max_reservation_time": per_queue_integers(),
            },
}),
    );
    schemas.insert(
        "ClientId".into(),
        json!({
                    "type": "object",
                    "required": ["client_id"],
                    "properties": {"client_id": string()},
        }),
    );
    schemas.insert(
        "RestrictedQueue".into(),
        json!({
                    "type": "object",
                    "required": ["queue", "owners"],
                    "properties": {"queue": string(), "owners": strings()},
        }),
    );
    schemas.insert(
        "Secret".into(),
        json!({
            "type": "object",
            "required": ["value"],
            "properties": {
                "value": string(),
                "expire_after": {"type": ["integer", "null"], "minimum": 1, "description": "Seconds; null for never."},
                "ephemeral": {"type": "boolean"},
            },
}),
    );
    schemas.insert(
        "SecretStored".into(),
        json!({
                    "type": "object",
                    "required": ["expires_at"],
                    "properties": {"expires_at": nullable_date_time()},
        }),
    );
    schemas.insert(
        "UploadUrl".into(),
        json!({
                    "type": "object",
                    "required": ["url", "method", "headers", "expires_in"],
                    "properties": {
                        "url": string(),
                        "method": {"const": "PUT"},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "expires_in": {"type": "integer", "minimum": 1},
                    },
        }),
    );
    schemas.insert(
        "OpenApiDocument".into(),
        json!({
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}},
}),
    );
    Value::Object(schemas)
}
