//! The OpenAPI 3.1 document of the API, served at `GET /v1/openapi.json`
//! and `GET /openapi.json` (SPEC.md §4.5).
//!
//! It is generated from the route table: each [`crate::Endpoint`] carries
//! the [`Operation`] that documents it (the `endpoint!` macro takes it from
//! [`ops`], named after the handler, so an entry cannot be added without
//! one), and [`document`] adds what follows from the entry itself: the
//! path parameters, the security requirement of its [`Access`], and the
//! answers every endpoint of its kind can give (400 for a path id that is
//! not a UUID, 401/403 where a token is read, 413/415/422 where a JSON body
//! is read, 503 when the server's request budget is spent).
//!
//! The bodies of this API are JSON documents whose unknown fields are kept
//! (SPEC.md §2), built by the views rather than by typed structs, so the
//! schemas are written here, beside the operations, after SPEC.md; a test
//! checks that each resolves and that the document lists exactly the
//! route table.

pub mod ops;
mod schemas;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use testflinger_shared::role::Role;

use crate::auth::Access;
use crate::routes::ENDPOINTS;

/// What an operation reads as its body: decides the answers every such
/// operation can give (a JSON body: 400, 413, 415, 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    None,
    Json,
    Stream,
}

/// The documentation of one endpoint: summary, parameters, body and every
/// answer SPEC.md gives it. Built with the methods below, e.g.
///
/// ```ignore
/// op("The dashboard's agents page").html(200, "The page.")
/// ```
#[derive(Debug, Clone)]
pub struct Operation {
    summary: &'static str,
    description: Option<String>,
    parameters: Vec<Value>,
    body: Option<Value>,
    body_kind: BodyKind,
    responses: Map<String, Value>,
    basic_auth: bool,
}

/// An operation with its one-line summary.
pub fn op(summary: &'static str) -> Operation {
    Operation {
        summary,
        description: None,
        parameters: Vec::new(),
        body: None,
        body_kind: BodyKind::None,
        responses: Map::new(),
        basic_auth: false,
    }
}

/// `{"$ref": "#/components/schemas/<name>"}`
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

impl Operation {
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// An optional query parameter; an array schema makes it repeatable
    /// (`?queue=a&queue=b`).
    pub fn query(self, name: &str, schema: Value, description: &str) -> Self {
        self.parameter("query", name, false, schema, description)
    }

    /// A query parameter that must be given.
    pub fn required_query(self, name: &str, schema: Value, description: &str) -> Self {
        self.parameter("query", name, true, schema, description)
    }

    pub fn cookie(self, name: &str, description: &str) -> Self {
        self.parameter(
            "cookie",
            name,
            false,
            json!({"type": "string"}),
            description,
        )
    }

    fn parameter(
        mut self,
        location: &str,
        name: &str,
        required: bool,
        schema: Value,
        description: &str,
    ) -> Self {
        self.parameters.push(json!({
            "name": name,
            "in": location,
            "required": required,
            "description": description,
            "schema": schema,
        }));
        self
    }

    /// A JSON body (`application/json`) of this schema.
    pub fn json_body(mut self, schema: Value) -> Self {
        self.body = Some(json!({
            "required": true,
            "content": {"application/json": {"schema": schema}},
        }));
        self.body_kind = BodyKind::Json;
        self
    }

    /// A raw text body, read as it is.
    pub fn text_body(mut self, description: &str) -> Self {
        self.body = Some(json!({
            "required": true,
            "description": description,
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }));
        self.body_kind = BodyKind::Stream;
        self
    }

    /// A `multipart/form-data` upload with the file in the field `file`.
    pub fn multipart_file(mut self, description: &str) -> Self {
        self.body = Some(json!({
            "required": true,
            "description": description,
            "content": {"multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
                },
            }},
        }));
        self.body_kind = BodyKind::Stream;
        self
    }

    /// The caller authenticates with HTTP Basic (the token endpoint).
    pub fn basic_auth(mut self) -> Self {
        self.basic_auth = true;
        self
    }

    /// An answer with a JSON body of this schema.
    pub fn json(self, status: u16, description: &str, schema: Value) -> Self {
        self.answer(
            status,
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }),
        )
    }

    /// A plain-text answer (`OK`, a position, live output).
    pub fn text(self, status: u16, description: &str) -> Self {
        self.answer(
            status,
            json!({
                "description": description,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }),
        )
    }

    /// An HTML page (the dashboard).
    pub fn html(self, status: u16, description: &str) -> Self {
        self.answer(
            status,
            json!({
                "description": description,
                "content": {"text/html": {"schema": {"type": "string"}}},
            }),
        )
    }

    /// A binary stream of this media type.
    pub fn binary(self, status: u16, media_type: &str, description: &str) -> Self {
        self.answer(
            status,
            json!({
                "description": description,
                "content": {media_type: {"schema": {"type": "string", "contentMediaType": media_type}}},
            }),
        )
    }

    /// A link from an answer to another operation (by its route-table
    /// name) whose parameter `parameter` takes the value at `expression`
    /// (`$response.body#/job_id`): how a client (or a stateful fuzzer)
    /// follows on from this answer.
    pub fn link(
        mut self,
        status: u16,
        operation_id: &str,
        parameter: &str,
        expression: &str,
    ) -> Self {
        let response = self
            .responses
            .get_mut(&status.to_string())
            .unwrap_or_else(|| panic!("{}: a link from an undocumented {status}", self.summary));
        response["links"][operation_id] = json!({
            "operationId": operation_id,
            "parameters": {parameter: expression},
        });
        self
    }

    /// An answer without a body (204, or a redirect).
    pub fn empty(self, status: u16, description: &str) -> Self {
        self.answer(status, json!({ "description": description }))
    }

    /// An error: the JSON body of SPEC.md §2.
    pub fn error(self, status: u16, description: &str) -> Self {
        self.json(status, description, schema_ref("Error"))
    }

    fn answer(mut self, status: u16, response: Value) -> Self {
        assert!(
            self.responses
                .insert(status.to_string(), response)
                .is_none(),
            "{}: answer {status} documented twice",
            self.summary
        );
        self
    }

    /// Adds an error answer unless the operation documents that status
    /// itself (with a better description).
    fn default_error(&mut self, status: u16, description: &str) {
        self.responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema_ref("Error")}},
            })
        });
    }
}

/// The route table's `{*path}` is OpenAPI's `{path}`.
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The names of a path's parameters, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect()
}

fn path_parameter(name: &str) -> Value {
    let (schema, description) = match name {
        "id" => (
            json!({"type": "string", "format": "uuid"}),
            "The job's id (a UUID; anything else is 400).",
        ),
        "log_type" => (
            json!({"type": "string", "enum": ["output", "serial"]}),
            "The log: `output` or `serial` (another name is 404).",
        ),
        "queue" => (json!({"type": "string"}), "The queue's name."),
        "name" => (json!({"type": "string"}), "The agent's name."),
        "client_id" => (json!({"type": "string"}), "The client's id."),
        "path" => (
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"}),
            "The secret's path: segments of letters, digits, `_` and `-` joined by `/`.",
        ),
        other => panic!("path parameter {{{other}}} has no documentation"),
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

fn role_names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The security requirement of an endpoint's access (SPEC.md §3): a bearer
/// token, which anonymous callers may do without where some mode lets them
/// (`{}` is "no token").
fn security(access: Access) -> (Value, Option<String>) {
    let roles = match access {
        Access::Public => return (json!([]), None),
        Access::Roles(roles) | Access::Only(roles) => roles,
    };
    // The admin and manager endpoints need a token in every mode; the
    // others are open to anonymous callers in the `open` mode (and the
    // contributor's in `standard`).
    let anonymous_may = roles
        .iter()
        .any(|r| matches!(r, Role::Contributor | Role::Agent));
    let requirement = if anonymous_may {
        json!([{}, {"bearer": []}])
    } else {
        json!([{"bearer": []}])
    };
    let only = matches!(access, Access::Only(_));
    let who = format!(
        "Roles: {}{}.",
        role_names(roles),
        if only { " (and no other role)" } else { "" }
    );
    (requirement, Some(who))
}

/// Builds the document from the route table.
pub fn build() -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let mut operation = endpoint.operation();
        let parameters = path_parameters(endpoint.path);
        if !parameters.is_empty() {
            operation.default_error(400, "A path parameter is not valid (a job id that is not a UUID, a segment that is not UTF-8).");
        }
        if endpoint.access != Access::Public {
            operation.default_error(
                401,
                "A token is needed and none was given, or it has expired.",
            );
            operation.default_error(403, "The token is not valid, or its role may not do this.");
        }
        match operation.body_kind {
            BodyKind::Json => {
                operation.default_error(400, "The body is not valid JSON.");
                operation.default_error(408, "The body arrived too slowly.");
                operation.default_error(413, "The body is over the configured limit.");
                operation.default_error(415, "The body is not JSON (`Content-Type`).");
                operation.default_error(
                    422,
                    "The body is not a JSON object, has a field that is not valid (each is named in `detail.json`), or exceeds the configured shape.",
                );
            }
            BodyKind::Stream => {
                operation.default_error(400, "The body could not be read.");
                operation.default_error(408, "The body arrived too slowly.");
                operation.default_error(413, "The body is over the configured limit.");
            }
            BodyKind::None => {}
        }
        operation.default_error(
            503,
            "The server's budget for request bodies is spent; retry after `Retry-After` seconds.",
        );

        let (security, who) = if operation.basic_auth {
            (json!([{"basic": []}]), None)
        } else {
            security(endpoint.access)
        };
        let description = match (operation.description.take(), who) {
            (Some(text), Some(who)) => Some(format!("{text}\n\n{who}")),
            (text, who) => text.or(who),
        };
        let mut parameters: Vec<Value> = parameters.into_iter().map(path_parameter).collect();
        parameters.append(&mut operation.parameters);

        let mut value = Map::new();
        value.insert("operationId".into(), json!(endpoint.name));
        value.insert("summary".into(), json!(operation.summary));
        if let Some(description) = description {
            value.insert("description".into(), json!(description));
        }
        if !parameters.is_empty() {
            value.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(body) = operation.body {
            value.insert("requestBody".into(), body);
        }
        value.insert("responses".into(), Value::Object(operation.responses));
        value.insert("security".into(), security);

        let item = paths
            .entry(openapi_path(endpoint.path))
            .or_insert_with(|| json!({}));
        item[endpoint.method.as_str().to_ascii_lowercase()] = Value::Object(value);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Testflinger server",
            "version": testflinger_shared::VERSION,
            "description": "The Testflinger API: jobs, results and logs, agents and queues, clients and secrets. Errors are always `{\"message\", \"detail\"}` (see the `Error` schema). A trailing slash is optional on every path.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas::all(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "An access token from `POST /v1/oauth2/token` or `/v1/oauth2/refresh`."},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "`client_id:client_secret`."},
            },
        },
    })
}

/// The document, built once and kept as the bytes served.
pub fn document() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_vec(&build()).expect("a JSON value serializes"))
}

/// `GET /v1/openapi.json` and `GET /openapi.json`
pub async fn serve_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}
