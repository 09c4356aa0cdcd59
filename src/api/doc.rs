//! The OpenAPI 3.1 document of the HTTP API: built from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` types they answer with (see [`super::openapi`]), served at
//! `/api/openapi.json` and rendered by the page at `/api/docs`.

use super::error::ErrorBody;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

/// The document's frame: info, tags and the bearer scheme; [`super::openapi`] adds the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Capstan",
        description = "SFU media server that records WebRTC calls. Errors are \
            `{\"error\": code, \"message\": text}` (the `ErrorBody` schema), except on the \
            compatibility routes, which answer `{\"success\", \"data\", \"message\"}`."
    ),
    modifiers(&BearerJwt),
    tags(
        (name = "recordings", description = "The recording API"),
        (name = "compat", description = "Compatibility routes for existing clients"),
        (name = "uploads", description = "Client recording uploads: base64 chunks (seed route) and tus 1.0"),
        (name = "whip", description = "WHIP publish and WHEP subscribe (SDP bodies)"),
        (name = "signaling", description = "The signaling WebSocket"),
        (name = "ops", description = "Liveness, readiness and metrics (not rate-limited)"),
        (name = "dev", description = "Development helpers (`--dev` only)"),
        (name = "web", description = "The call UI"),
        (name = "docs", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: a JWT in `Authorization: Bearer ...`.
struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A token signed with the server's key; its `room` and `role` claims decide \
                 what it may do.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Adds the answers of the guard middleware (rate limit, body read) to every operation of
/// `doc`: 408, 413 and 429 with [`ErrorBody`]. Where an operation already documents the
/// status with another body, the schema becomes `anyOf` that body and [`ErrorBody`].
pub fn add_guard_responses(doc: &mut OpenApi) {
    let guard = [
        (
            "408",
            "The request body did not arrive within the body timeout",
        ),
        ("413", "The request body is too large"),
        ("429", "Rate limited (see `Retry-After`)"),
    ];
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .entry(ErrorBody::name().into_owned())
        .or_insert_with(ErrorBody::schema);
    let error_ref = || RefOr::Ref(Ref::from_schema_name(ErrorBody::name()));
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            for (status, description) in guard {
                let response = operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content("application/json", Content::new(Some(error_ref())))
                            .build()
                            .into()
                    });
                let RefOr::T(response) = response else {
                    continue;
                };
                let Some(content) = response.content.get_mut("application/json") else {
                    continue;
                };
                let other = content.schema.take();
                content.schema = Some(match other {
                    Some(RefOr::Ref(r)) if r == Ref::from_schema_name(ErrorBody::name()) => {
                        RefOr::Ref(r)
                    }
                    Some(other) => utoipa::openapi::schema::AnyOfBuilder::new()
                        .item(other)
                        .item(error_ref())
                        .into(),
                    None => error_ref(),
                });
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    super::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// A page that lists the operations of `/api/openapi.json`, with no outside resources.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "docs",
    responses((status = 200, description = "The page", body = String, content_type = "text/html"))
)]
pub async fn page(State(state): State<AppState>) -> Response {
    super::web::page(&state, signaling::web::api_docs())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(&super::DOCUMENT).expect("JSON")
    }

    #[test]
    fn every_operation_has_a_tag_a_summary_and_responses() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 28, "{:?}", paths.keys());
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let what = format!("{method} {path}");
                assert!(op["tags"][0].is_string(), "{what}: no tag");
                assert!(op["summary"].is_string(), "{what}: no doc comment");
                assert!(!op["responses"].as_object().expect(&what).is_empty());
            }
        }
    }

    #[test]
    fn the_guard_answers_are_documented_on_the_limited_routes_only() {
        let doc = document();
        let responses = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
        for (path, method) in [("/whip/{room}", "post"), ("/api/docs", "get")] {
            for status in ["408", "413", "429"] {
                assert!(
                    responses(path, method)[status].is_object(),
                    "{path} {status}"
                );
            }
        }
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert!(responses(path, "get")["429"].is_null(), "{path}");
        }
        let compat = responses("/video-calls/{call}/recording/start", "post");
        let any_of = &compat["429"]["content"]["application/json"]["schema"]["anyOf"];
        assert_eq!(any_of.as_array().map(Vec::len), Some(2), "{compat}");
    }

    #[test]
    fn the_bearer_scheme_guards_the_recording_api() {
        let doc = document();
        let scheme = &doc["components"]["securitySchemes"]["bearer"];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&"http".into(), &"bearer".into())
        );
        let start = &doc["paths"]["/api/webrtc/rooms/{room}/recording/start"]["post"];
        assert!(start["security"][0]["bearer"].is_array(), "{start}");
        let download = &doc["paths"]["/api/webrtc/recordings/{id}/download"]["get"];
        let params: Vec<&str> = download["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for signed in ["expires", "sig", "file"] {
            assert!(params.contains(&signed), "{params:?}");
        }
    }
}
