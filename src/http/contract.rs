//! The OpenAPI document as served and printed: poem-openapi's generation, completed with what it
//! cannot say itself: the statuses every operation of a kind can answer, OpenAPI links between
//! operations, date-time formats, the rule for unknown JSON fields, and the raw-body webhook
//! receiver.
//!
//! A new route gets the common statuses here by its shape (a body, parameters, a credential);
//! the statuses only it answers belong in its own `ApiResponse`. A new path parameter needs a
//! link in [`LINKS`] from the operation that returns its values, or stateful testing cannot
//! reach it.

use serde_json::{Map, Value, json};

use crate::notify::Kind;

/// `(from operationId, status, parameters, links)`: the response of `from` supplies the
/// parameters, as runtime expressions, of each linked operation `(link name, to operationId)`.
type Links = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

/// What a notification's id opens.
const NOTIFICATION_LINKS: &[(&str, &str)] = &[
    ("DeleteNotification", "adminDeleteNotification"),
    ("NotificationDeliveries", "adminNotificationDeliveries"),
    ("PauseNotification", "adminPauseNotification"),
    ("ResumeNotification", "adminResumeNotification"),
    ("TestNotification", "adminTestNotification"),
];

/// What a project's name opens.
const PROJECT_LINKS: &[(&str, &str)] = &[
    ("ListKeys", "adminListKeys"),
    ("CreateKey", "adminCreateKey"),
    ("ListPushes", "adminListPushes"),
    ("RotateSecret", "adminRotateSecret"),
    ("DeleteProject", "adminDeleteProject"),
    ("CreateNotification", "adminCreateNotification"),
    ("ListNotifications", "adminListNotifications"),
];

/// The parameters of an owner's page of pushes that open its first push.
const FIRST_PUSH_OF_PAGE: &[(&str, &str)] = &[
    ("name", "$request.path.name"),
    ("id", "$response.body#/pushes/0/id"),
];

pub const LINKS: &[Links] = &[
    (
        "adminCreateNotification",
        "201",
        &[("name", "$request.path.name"), ("id", "$response.body#/id")],
        NOTIFICATION_LINKS,
    ),
    (
        "adminCreateProject",
        "201",
        &[("name", "$response.body#/name")],
        PROJECT_LINKS,
    ),
    (
        "adminListProjects",
        "200",
        &[("name", "$response.body#/0/name")],
        &[
            ("ListNotifications", "adminListNotifications"),
            ("ListKeys", "adminListKeys"),
        ],
    ),
    (
        "adminListNotifications",
        "200",
        &[
            ("name", "$request.path.name"),
            ("id", "$response.body#/0/id"),
        ],
        NOTIFICATION_LINKS,
    ),
    (
        "adminListKeys",
        "200",
        &[
            ("name", "$request.path.name"),
            ("key", "$response.body#/0/id"),
        ],
        &[("RevokeKey", "adminRevokeKey")],
    ),
    (
        "adminCreateKey",
        "201",
        &[
            ("name", "$response.body#/project"),
            ("key", "$response.body#/id"),
        ],
        &[("RevokeKey", "adminRevokeKey")],
    ),
    (
        "adminListPushes",
        "200",
        FIRST_PUSH_OF_PAGE,
        &[("GetPush", "adminGetPush")],
    ),
    (
        "adminSearchPushes",
        "200",
        FIRST_PUSH_OF_PAGE,
        &[("GetPush", "adminGetPush")],
    ),
    (
        "listPushes",
        "200",
        &[("id", "$response.body#/pushes/0/id")],
        &[("GetPush", "getPush"), ("Resummarize", "adminResummarize")],
    ),
];

/// `domain::ProjectName`'s rule, which the manager enforces with its `invalid_name` answer.
pub const PROJECT_NAME_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

const ERROR_REF: &str = "#/components/schemas/ErrorBody";

/// What the document says about request bodies, in its description.
pub const UNKNOWN_FIELDS_RULE: &str = "Request bodies are refused with 400 when they carry a \
     field the operation does not declare (`additionalProperties: false`), so a misspelt field \
     is never silently dropped; `null` is refused wherever a field is not declared nullable. \
     Responses may gain fields in later releases: clients should ignore fields they do not know.";

/// The served document: `spec` (poem-openapi's JSON) completed.
pub fn complete(spec: &str) -> String {
    let mut doc: Value = serde_json::from_str(spec).expect("poem-openapi writes valid JSON");
    let description = doc["info"]["description"].as_str().unwrap_or("").to_owned();
    doc["info"]["description"] = Value::String(format!("{description}\n\n{UNKNOWN_FIELDS_RULE}"));
    common_statuses(&mut doc);
    closed_request_bodies(&mut doc);
    doc["components"]["schemas"]["NewProject"]["properties"]["name"]["pattern"] =
        Value::String(PROJECT_NAME_PATTERN.into());
    // The handler reads `kind` as a string so that a wrong one is a 400 naming the field; the
    // document still lists the values it accepts, for generated clients.
    doc["components"]["schemas"]["NewNotificationBody"]["properties"]["kind"]["enum"] =
        Kind::ALL.iter().map(|k| Value::from(k.as_str())).collect();
    nullable_means_present(&mut doc);
    date_time_formats(&mut doc);
    links(&mut doc);
    webhook(&mut doc);
    examples(&mut doc);
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json; charset=utf-8": {"schema": {"$ref": ERROR_REF}}}
    })
}

fn operations(doc: &mut Value) -> impl Iterator<Item = (&String, &mut Map<String, Value>)> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.iter_mut())
        .filter_map(|(method, op)| op.as_object_mut().map(|op| (method, op)))
}

/// Adds each status an operation can answer because of its shape, unless it declares it.
fn common_statuses(doc: &mut Value) {
    for (_, op) in operations(doc) {
        let has_body = op.contains_key("requestBody");
        let has_params = op
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        let schemes: Vec<String> = op
            .get("security")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|s| s.keys().cloned())
            .collect();
        let admin = schemes.iter().any(|s| s.starts_with("Admin"));
        let mut add: Vec<(&str, &str)> = Vec::new();
        if has_body || has_params {
            add.push((
                "400",
                "A parameter or the body is not valid: the message names it.",
            ));
        }
        if !schemes.is_empty() {
            add.push(("401", "The credential is missing, unknown or revoked."));
        }
        if admin {
            add.push((
                "403",
                "A cross-site request with the session cookie was refused.",
            ));
            add.push((
                "429",
                "Too many wrong admin tokens or logins from this address; retry after the \
                 `Retry-After` seconds.",
            ));
        }
        if has_body {
            add.push(("408", "The body did not arrive within the body deadline."));
            add.push(("413", "The body is over this route's size limit."));
            add.push((
                "415",
                "The body is not sent as `Content-Type: application/json`.",
            ));
        }
        add.push((
            "503",
            "The server holds as many connections, or runs as many searches, as it allows; retry \
             after the `Retry-After` seconds.",
        ));
        let responses = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses is an object");
        for (status, description) in add {
            responses
                .entry(status)
                .or_insert_with(|| error_response(description));
        }
        if has_params {
            // Answered by the HTTP layer itself, before any route runs, so without a JSON body.
            responses.entry("414").or_insert_with(
                || json!({"description": "The request line (the path and query) is too long."}),
            );
        }
    }
}

/// Request body schemas refuse undeclared fields (poem-openapi's `deny_unknown_fields`, which it
/// does not write into the schema).
fn closed_request_bodies(doc: &mut Value) {
    let mut refs = Vec::new();
    for (_, op) in operations(doc) {
        let content = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object);
        for media in content.into_iter().flat_map(|c| c.values()) {
            if let Some(name) = media["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                refs.push(name.to_owned());
            }
        }
    }
    for name in refs {
        if let Some(schema) = doc["components"]["schemas"][&name].as_object_mut() {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// poem-openapi writes `None` as `null`, never leaving the field out: in what the server
/// answers, a nullable field is always present, so a strict client may rely on it.
fn nullable_means_present(doc: &mut Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for schema in schemas.values_mut() {
        // Request bodies (closed by now) keep their optional fields optional.
        if schema["additionalProperties"] == false {
            continue;
        }
        let nullable: Vec<Value> = schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, p)| p["nullable"] == true)
            .map(|(name, _)| Value::String(name.clone()))
            .collect();
        if nullable.is_empty() {
            continue;
        }
        let required = schema
            .as_object_mut()
            .expect("a schema object")
            .entry("required")
            .or_insert_with(|| json!([]));
        if let Some(required) = required.as_array_mut() {
            for name in nullable {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
        }
    }
}

/// Every string property named `...At` holds an ISO 8601 UTC date-time.
fn date_time_formats(doc: &mut Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for schema in schemas.values_mut() {
        let Some(properties) = schema["properties"].as_object_mut() else {
            continue;
        };
        for (name, property) in properties.iter_mut() {
            if name.ends_with("At") && property["type"] == "string" {
                property["format"] = Value::String("date-time".into());
            }
        }
    }
}

/// The operationIds of the document.
fn operation_ids(doc: &mut Value) -> std::collections::HashSet<String> {
    operations(doc)
        .filter_map(|(_, op)| op.get("operationId").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn links(doc: &mut Value) {
    let ids = operation_ids(doc);
    for (from, status, params, links) in LINKS {
        let parameters: Map<String, Value> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        for (name, to) in *links {
            assert!(
                ids.contains(*from) && ids.contains(*to),
                "a link names an operation the document does not have: {from} -> {to}"
            );
            for (_, op) in operations(doc) {
                if op.get("operationId").and_then(Value::as_str) != Some(*from) {
                    continue;
                }
                let response = &mut op["responses"][*status];
                response["links"][*name] = json!({"operationId": to, "parameters": parameters});
            }
        }
    }
}

/// `POST /webhooks/{hookId}`: a plain poem handler, since it must read the raw body to check
/// its signature.
fn webhook(doc: &mut Value) {
    let header = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": false,
               "description": description, "schema": {"type": "string"}})
    };
    let receipt = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookReceipt"}}}
        })
    };
    let operation = json!({
        "tags": ["Webhooks"],
        "summary": "Receive a git host's push webhook.",
        "description": "The URL is the project's `webhookUrl`. The body is the host's JSON \
            payload, read raw: the signature is checked over its exact bytes, so it is taken as \
            sent (`application/json`; GitHub's `application/x-www-form-urlencoded` with a \
            `payload` field too). Which host sent it is read from the headers:\n\n\
            - GitHub: `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256` \
            (HMAC-SHA256 of the body with the webhook secret).\n\
            - GitLab: `X-Gitlab-Event`, `X-Gitlab-Token` (the secret itself), \
            `X-Gitlab-Event-UUID`.\n\
            - Gitea: `X-Gitea-Event`, `X-Gitea-Signature`.\n\
            - Forgejo: `X-Forgejo-Event`, `X-Forgejo-Signature`.\n\
            - Bitbucket: `X-Event-Key`, `X-Request-UUID`, `X-Hub-Signature`.",
        "operationId": "receiveWebhook",
        "parameters": [
            {"name": "hookId", "in": "path", "required": true,
             "description": "The project's hook id, the last segment of its `webhookUrl`.",
             "schema": {"type": "string"}},
            header("X-GitHub-Event", "GitHub: `push` or `ping`."),
            header("X-GitHub-Delivery", "GitHub: the delivery's id."),
            header("X-Hub-Signature-256", "GitHub: `sha256=` and the body's HMAC-SHA256."),
            header("X-Gitlab-Event", "GitLab: `Push Hook` or `Tag Push Hook`."),
            header("X-Gitlab-Token", "GitLab: the webhook secret."),
            header("X-Gitlab-Event-UUID", "GitLab: the delivery's id."),
            header("X-Gitea-Event", "Gitea: `push`."),
            header("X-Gitea-Signature", "Gitea: the body's HMAC-SHA256, hex."),
            header("X-Forgejo-Event", "Forgejo: `push`."),
            header("X-Forgejo-Signature", "Forgejo: the body's HMAC-SHA256, hex."),
            header("X-Event-Key", "Bitbucket: `repo:push`."),
            header("X-Request-UUID", "Bitbucket: the delivery's id."),
            header("X-Hub-Signature", "Bitbucket: `sha256=` and the body's HMAC-SHA256."),
        ],
        "requestBody": {
            "required": true,
            "description": "The host's payload, exactly as sent.",
            "content": {
                "application/json": {"schema": {"type": "string", "format": "binary"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        "responses": {
            "200": receipt("A ping answered, or a redelivery of pushes already stored (`duplicates`)."),
            "201": receipt("The pushes were stored (`pushes` holds their ids)."),
            "202": receipt("A signed event that is not a push (such as a tag deletion with nothing to summarize), accepted and ignored."),
            "400": error_response("The host could not be told (`unknown_provider`) or the payload could not be read (`malformed_payload`, `unreadable_body`)."),
            "401": error_response("The signature or token is missing, wrong, or its timestamp is stale."),
            "404": error_response("No project has this hook id (`unknown_webhook`)."),
            "408": error_response("The body did not arrive within the body deadline."),
            "413": error_response("The body is over the webhook body limit."),
            "415": error_response("The body's content type is not one the host sends."),
            "503": error_response("The server holds as many webhook bodies as it allows; retry after `Retry-After` seconds."),
        }
    });
    doc["paths"]["/webhooks/{hookId}"] = json!({"post": operation});
    doc["components"]["schemas"]["WebhookReceipt"] = json!({
        "type": "object",
        "required": ["ok", "message"],
        "properties": {
            "ok": {"type": "boolean"},
            "message": {"type": "string", "description": "What was done, for the host's delivery log."},
            "pushes": {"type": "array", "items": {"type": "string"},
                       "description": "The stored pushes' ids, in the order of the delivery's ref changes."},
            "duplicates": {"type": "integer", "minimum": 0,
                           "description": "How many of them had been stored before."}
        }
    });
    let tags = doc["tags"].as_array_mut();
    if let Some(tags) = tags {
        tags.push(json!({"name": "Webhooks", "description": "Where git hosts deliver pushes."}));
    }
}

/// An example for each parameter and request body a client sends, by name: what Swagger's
/// "Try it out" fills in and schemathesis's examples phase sends.
const PARAMETER_EXAMPLES: &[(&str, &str)] = &[
    ("name", "\"my-app\""),
    ("key", "\"1\""),
    ("limit", "20"),
    ("offset", "0"),
    ("branch", "\"main\""),
    ("since", "\"2024-01-01\""),
    ("until", "\"2024-02-01T00:00:00Z\""),
    ("hookId", "\"hk_example\""),
];

const BODY_EXAMPLES: &[(&str, &str)] = &[
    ("NewProject", r#"{"name": "my-app"}"#),
    ("NewKey", r#"{"label": "slack-bot"}"#),
    ("LoginRequest", r#"{"token": "gpa_..."}"#),
];

fn examples(doc: &mut Value) {
    for (_, op) in operations(doc) {
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = param["name"].as_str().unwrap_or("");
            // `id` names a push (a UUID) on some routes and a notification (an integer) on others.
            let example = match (name, param["schema"]["type"].as_str()) {
                ("id", Some("integer")) => Some("1"),
                ("id", _) => Some("\"0192f0c4-5a1e-7c3b-9d2e-1f0a2b3c4d5e\""),
                _ => PARAMETER_EXAMPLES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, example)| *example),
            };
            if let Some(example) = example {
                param["example"] = serde_json::from_str(example).expect("a JSON example");
            }
        }
    }
    for (schema, example) in BODY_EXAMPLES {
        if let Some(schema) = doc["components"]["schemas"][*schema].as_object_mut() {
            schema.insert(
                "example".into(),
                serde_json::from_str(example).expect("a JSON example"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::from_str(&complete(&crate::http::api_service().spec())).unwrap()
    }

    #[test]
    fn every_link_joins_operations_of_the_document() {
        let ids = operation_ids(&mut document());
        for (from, _, _, links) in LINKS {
            for (_, to) in *links {
                assert!(ids.contains(*from) && ids.contains(*to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn every_operation_declares_the_errors_its_shape_can_cause() {
        let doc = document();
        let create = &doc["paths"]["/api/admin/projects"]["post"]["responses"];
        for status in ["400", "401", "403", "413", "415", "429", "503"] {
            assert!(create.get(status).is_some(), "{status}");
        }
        let schema = &doc["components"]["schemas"]["NewProject"];
        assert_eq!(schema["additionalProperties"], false);
        for name in ["a", "my-app_2", &"x".repeat(64)] {
            assert!(crate::domain::ProjectName::parse(name).is_ok(), "{name}");
        }
        for name in ["", "My", "a b", &"x".repeat(65)] {
            assert!(crate::domain::ProjectName::parse(name).is_err(), "{name}");
        }
        assert_eq!(
            schema["properties"]["name"]["pattern"],
            PROJECT_NAME_PATTERN
        );
        assert!(doc["paths"]["/webhooks/{hookId}"]["post"]["responses"]["202"].is_object());
    }
}
