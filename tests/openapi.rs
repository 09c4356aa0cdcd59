//! The OpenAPI document against the real server: real answers of recording, compatibility,
//! WHIP/WHEP, ops and dev-token requests (successes and errors) must each have their status
//! documented for their operation, and a JSON body must validate against that status's schema.

mod common;

use capstan::auth::Role;
use common::peer::Participant;
use common::recording::id_of;
use common::upload::{chunk_json, make_webm};
use common::{wait_for, TestServer};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use signaling::protocol::MediaKind;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The document, and the server it checks answers of.
struct Checker {
    doc: Value,
    base: String,
    client: reqwest::Client,
}

/// An answer, checked against the document.
struct Checked {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Checker {
    async fn new(server: &TestServer) -> Self {
        let response = reqwest::get(format!("{}/api/openapi.json", server.base))
            .await
            .expect("GET /api/openapi.json");
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.expect("JSON document");
        assert_eq!(doc["openapi"], "3.1.0");
        Checker {
            doc,
            base: server.base.clone(),
            client: reqwest::Client::new(),
        }
    }

    /// The path template of the operation that `path` (no query) reaches with `method`: of
    /// the templates matching it, the one with the most literal segments, as axum routes.
    fn operation(&self, method: &Method, path: &str) -> (String, &Value) {
        let segments: Vec<&str> = path.split('/').collect();
        let method = method.as_str().to_lowercase();
        self.doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                let matches = parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(p, s)| {
                        (p.starts_with('{') && p.ends_with('}') && !s.is_empty()) || p == s
                    });
                let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
                let op = item.get(&method)?;
                matches.then_some((literal, template.clone(), op))
            })
            .max_by_key(|(literal, ..)| *literal)
            .map(|(_, template, op)| (template, op))
            .unwrap_or_else(|| panic!("no documented operation for {method} {path}"))
    }

    /// Sends `request` (`method path` for the messages) and checks the answer.
    async fn send(&self, method: Method, path: &str, request: RequestBuilder) -> Checked {
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let route = path.split('?').next().unwrap_or(path);
        let (template, op) = self.operation(&method, route);
        let what = format!("{method} {path} ({template}) answered {status}");
        let documented = &op["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{what}: status not documented; body {}",
            String::from_utf8_lossy(&bytes)
        );
        let media_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ASCII Content-Type"))
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_string());
        let content = documented["content"].as_object();
        let body = match (media_type, content) {
            // A HEAD answer has the headers of a GET and no body.
            _ if method == Method::HEAD => {
                assert!(bytes.is_empty(), "{what}: a body");
                Value::Null
            }
            (None, None) => {
                assert!(bytes.is_empty(), "{what}: undocumented body");
                Value::Null
            }
            (Some(media_type), Some(content)) => {
                let Some(media) = content.get(&media_type) else {
                    panic!("{what}: {media_type} is not documented ({content:?})");
                };
                if media_type == "application/json" {
                    let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
                    self.validate(&media["schema"], &body, &what);
                    body
                } else {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }
            }
            (media_type, content) => panic!("{what}: {media_type:?} but documented {content:?}"),
        };
        Checked {
            status,
            headers,
            body,
        }
    }

    /// Validates `body` against `schema`, its `#/components/...` references resolved in the
    /// document's components (OpenAPI 3.1 schemas are JSON Schema 2020-12).
    fn validate(&self, schema: &Value, body: &Value, what: &str) {
        let mut root = schema.as_object().expect("schema object").clone();
        root.insert("components".into(), self.doc["components"].clone());
        let validator =
            jsonschema::draft202012::new(&Value::Object(root)).expect("a valid JSON Schema");
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}\nbody: {body:#}");
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>) -> Checked {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(method, path, request).await
    }

    /// POSTs `body` with `content_type` (WHIP/WHEP).
    async fn post_sdp(
        &self,
        path: &str,
        content_type: &str,
        token: Option<&str>,
        body: &str,
    ) -> Checked {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(Method::POST, path, request).await
    }

    /// POSTs an SDP-ish body (not a valid offer) with `content_type`; the status.
    async fn offer(&self, path: &str, content_type: &str, token: Option<&str>) -> StatusCode {
        self.post_sdp(path, content_type, token, "v=0\r\n")
            .await
            .status
    }

    /// `call`, asserting the status; the body.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        status: StatusCode,
    ) -> Value {
        let answer = self.call(method.clone(), path, token).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer.body
    }
}

#[tokio::test]
async fn real_answers_match_the_document() {
    let server = TestServer::start().await;
    let api = Checker::new(&server).await;
    let host = server.token("r", "host-r", Role::Host);
    let guest = server.token("r", "guest", Role::Participant);
    let admin = server.token("r", "root", Role::Admin);
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    use StatusCode as S;

    // The document itself, ops, dev tokens, pages.
    api.expect(get.clone(), "/api/openapi.json", None, S::OK)
        .await;
    let healthz = api.expect(get.clone(), "/healthz", None, S::OK).await;
    assert_eq!(healthz, "ok");
    api.expect(get.clone(), "/readyz", None, S::OK).await;
    api.expect(get.clone(), "/metrics", None, S::OK).await;
    let token = "/api/dev/token?room=r&identity=dev&host=1";
    let dev = api.expect(get.clone(), token, None, S::OK).await;
    assert_eq!(dev["role"], "host");
    for bad in ["/api/dev/token?room=r", "/api/dev/token?room=&identity=x"] {
        api.expect(get.clone(), bad, None, S::BAD_REQUEST).await;
    }
    for page in ["/", "/room/r", "/static/app.js", "/static/style.css"] {
        api.expect(get.clone(), page, None, S::OK).await;
    }
    api.expect(get.clone(), "/static/nope.js", None, S::NOT_FOUND)
        .await;
    api.expect(get.clone(), "/ws", None, S::UNAUTHORIZED).await;

    // WHIP: a publish of Chromium's offer and its end; refusals.
    let cam = server.token("w", "cam", Role::Participant);
    let offer = include_str!("../fixtures/offer-browser.sdp");
    let published = api
        .post_sdp("/whip/w", "application/sdp", Some(&cam), offer)
        .await;
    assert_eq!(published.status, S::CREATED, "{}", published.body);
    let location = published.headers["location"].to_str().expect("Location");
    assert_eq!(location, "/whip/w/cam");
    api.expect(delete.clone(), location, Some(&cam), S::OK)
        .await;
    assert_eq!(
        api.offer("/whip/r", "application/sdp", None).await,
        S::UNAUTHORIZED
    );
    assert_eq!(
        api.offer("/whip/r", "text/plain", Some(&guest)).await,
        S::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        api.offer("/whep/r/host-r", "application/sdp", Some(&guest))
            .await,
        S::BAD_REQUEST
    );
    api.expect(delete.clone(), "/whip/r/guest", Some(&guest), S::NOT_FOUND)
        .await;
    api.expect(delete.clone(), "/whip/r/host-r", Some(&guest), S::FORBIDDEN)
        .await;
    let viewer = "/whep/r/host-r/whep-1";
    api.expect(delete.clone(), viewer, Some(&guest), S::NOT_FOUND)
        .await;

    // Recording refusals before there is anything to record.
    let rec = "/api/webrtc/rooms/r/recording";
    let start = format!("{rec}/start");
    api.expect(post.clone(), &start, None, S::UNAUTHORIZED)
        .await;
    api.expect(post.clone(), &start, Some(&guest), S::FORBIDDEN)
        .await;
    let bad_format = format!("{start}?recording_format=avi");
    api.expect(post.clone(), &bad_format, Some(&host), S::BAD_REQUEST)
        .await;
    api.expect(post.clone(), &start, Some(&host), S::NOT_FOUND)
        .await;
    let compat = "/video-calls/r/recording";
    api.expect(
        post.clone(),
        &format!("{compat}/start"),
        None,
        S::UNAUTHORIZED,
    )
    .await;
    api.expect(
        get.clone(),
        &format!("{compat}/nope"),
        Some(&guest),
        S::NOT_FOUND,
    )
    .await;
    api.expect(
        post.clone(),
        &format!("{compat}/stop"),
        Some(&host),
        S::NOT_FOUND,
    )
    .await;
    let unknown = format!("{rec}/nope/status");
    api.expect(get.clone(), &unknown, Some(&guest), S::NOT_FOUND)
        .await;
    let bad_status = "/api/webrtc/rooms/r/recordings?status=sleeping";
    api.expect(get.clone(), bad_status, Some(&guest), S::BAD_REQUEST)
        .await;
    api.expect(
        get.clone(),
        "/api/webrtc/pipelines",
        Some(&host),
        S::FORBIDDEN,
    )
    .await;

    // A real recording of two publishing peers.
    let a = Participant::join(&server, "r", "a").await;
    let b = Participant::join(&server, "r", "b").await;
    for (viewer, publisher) in [(&a, "b"), (&b, "a")] {
        wait_for(&format!("{publisher}'s video"), WAIT, || async {
            viewer.seen.frames_from(publisher, MediaKind::Video) > 10
        })
        .await;
    }
    let started = api
        .expect(post.clone(), &start, Some(&host), S::CREATED)
        .await;
    let id = id_of(&started);
    api.expect(post.clone(), &start, Some(&host), S::CONFLICT)
        .await;
    let busy = api
        .expect(
            post.clone(),
            &format!("{compat}/start"),
            Some(&host),
            S::CONFLICT,
        )
        .await;
    assert_eq!(busy["success"], false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pipelines = api
        .expect(get.clone(), "/api/webrtc/pipelines", Some(&admin), S::OK)
        .await;
    assert_eq!(pipelines["pipelines"][0]["recording_id"], id.as_str());
    api.expect(
        post.clone(),
        &format!("{rec}/{id}/pause"),
        Some(&host),
        S::OK,
    )
    .await;
    api.expect(
        post.clone(),
        &format!("{rec}/{id}/resume"),
        Some(&host),
        S::OK,
    )
    .await;
    api.expect(
        post.clone(),
        &format!("{rec}/{id}/rewind"),
        Some(&host),
        S::NOT_FOUND,
    )
    .await;
    let detail = api
        .expect(get.clone(), &format!("{compat}/{id}"), Some(&guest), S::OK)
        .await;
    assert_eq!(detail["data"]["recordingId"], id.as_str());
    let url = format!("/api/webrtc/recordings/{id}/download-url");
    api.expect(post.clone(), &url, Some(&host), S::CONFLICT)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = api
        .expect(post.clone(), &format!("{compat}/stop"), Some(&host), S::OK)
        .await;
    assert_eq!(stopped["data"]["status"], "completed", "{stopped}");
    let state = api
        .expect(
            get.clone(),
            &format!("{rec}/{id}/status"),
            Some(&guest),
            S::OK,
        )
        .await;
    assert_eq!(state["status"], "completed");
    api.expect(
        get.clone(),
        "/api/webrtc/rooms/r/recordings?status=completed",
        Some(&guest),
        S::OK,
    )
    .await;
    let own = api
        .expect(get.clone(), "/api/webrtc/recordings", Some(&host), S::OK)
        .await;
    assert_eq!(own.as_array().map(Vec::len), Some(1));
    let upload = format!("/api/webrtc/recordings/{id}/upload");
    api.expect(post.clone(), &upload, Some(&host), S::CONFLICT)
        .await;

    // Downloads: with the token, by range, by signed URL, and refused ones.
    let download = format!("/api/webrtc/recordings/{id}/download");
    let file = api.call(get.clone(), &download, Some(&guest)).await;
    assert_eq!(file.status, S::OK);
    let ranged = api
        .client
        .get(format!("{}{download}", api.base))
        .bearer_auth(&guest)
        .header("Range", "bytes=0-9");
    let part = api.send(get.clone(), &download, ranged).await;
    assert_eq!(part.status, S::PARTIAL_CONTENT);
    assert!(part.headers.contains_key("content-range"));
    let signed = api.expect(post.clone(), &url, Some(&guest), S::OK).await;
    let signed = signed["url"].as_str().expect("url").to_string();
    api.expect(get.clone(), &signed, None, S::OK).await;
    let forged = format!("{download}?expires=9999999999&sig=00");
    api.expect(get.clone(), &forged, None, S::FORBIDDEN).await;
    let in_url = format!("{download}?token={guest}");
    api.expect(get.clone(), &in_url, None, S::UNAUTHORIZED)
        .await;
    api.expect(
        get.clone(),
        &format!("{download}?file=7"),
        Some(&guest),
        S::NOT_FOUND,
    )
    .await;
    let other = server.token("elsewhere", "x", Role::Host);
    api.expect(get.clone(), &download, Some(&other), S::FORBIDDEN)
        .await;

    // Deletes: of a finished recording, and a second one cancelled then deleted.
    api.expect(
        delete.clone(),
        &format!("/api/webrtc/recordings/{id}"),
        Some(&guest),
        S::FORBIDDEN,
    )
    .await;
    api.expect(
        delete.clone(),
        &format!("/api/webrtc/recordings/{id}"),
        Some(&host),
        S::NO_CONTENT,
    )
    .await;
    let second = api
        .expect(
            post.clone(),
            &format!("{compat}/start"),
            Some(&host),
            S::CREATED,
        )
        .await;
    let second = second["data"]["recordingId"]
        .as_str()
        .expect("id")
        .to_string();
    let cancelled = api
        .expect(
            delete.clone(),
            &format!("{rec}/{second}"),
            Some(&host),
            S::OK,
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    api.expect(
        delete.clone(),
        &format!("{compat}/{second}"),
        Some(&host),
        S::OK,
    )
    .await;
    api.expect(
        delete.clone(),
        &format!("{rec}/{second}"),
        Some(&host),
        S::NOT_FOUND,
    )
    .await;
    drop((a, b));
    server.assert_clean_log();
}

#[tokio::test]
async fn the_docs_page_renders_the_document() {
    let server = TestServer::start().await;
    let api = Checker::new(&server).await;
    let page = api.call(Method::GET, "/api/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let content_type = &page.headers[reqwest::header::CONTENT_TYPE];
    assert!(content_type.to_str().unwrap().starts_with("text/html"));
    let html = page.body.as_str().expect("HTML");
    assert!(html.contains("/api/openapi.json"), "{html}");
    assert!(
        !html.contains("://"),
        "the page loads nothing from elsewhere: {html}"
    );
    for script in ["/static/api-docs.js", "/static/api-docs.css"] {
        assert!(html.contains(script), "{html}");
        let asset = api.call(Method::GET, script, None).await;
        assert_eq!(asset.status, StatusCode::OK, "{script}");
        let text = asset.body.as_str().expect("text");
        assert!(
            !text.contains("://"),
            "{script} loads nothing from elsewhere"
        );
    }
    let bearer = &api.doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (bearer["scheme"].clone(), bearer["bearerFormat"].clone()),
        (json!("bearer"), json!("JWT"))
    );
}

/// Every documented operation reaches a handler: asked without a token and with placeholder
/// path parameters, none gets the router's "no such route" or "wrong method" answer.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let api = Checker::new(&server).await;
    for (template, item) in api.doc["paths"].as_object().expect("paths") {
        let path: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let answer = api.call(method.clone(), &path, None).await;
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_ne!(answer.body["message"], "no such route", "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_answers_match_the_document() {
    let server = TestServer::start().await;
    let api = Checker::new(&server).await;
    let ann = server.token("u", "ann", Role::Participant);
    let other = server.token("elsewhere", "bob", Role::Participant);
    let dir = tempfile::tempdir().unwrap();
    let webm = std::fs::read(make_webm(dir.path(), 2)).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let chunk = |sequence: u64, bytes: &[u8], last: bool, token: &str| {
        let body = chunk_json(&id, "ann", sequence, bytes, last);
        let request = api
            .client
            .post(format!("{}/video-calls/chunks/upload", api.base))
            .bearer_auth(token)
            .json(&body);
        api.send(Method::POST, "/video-calls/chunks/upload", request)
    };
    use StatusCode as S;

    // The seed route: stored, a gap too far ahead, another room, final.
    let (head, tail) = webm.split_at(webm.len() / 2);
    assert_eq!(chunk(0, head, false, &ann).await.status, S::OK);
    assert_eq!(chunk(40, b"x", false, &ann).await.status, S::CONFLICT);
    assert_eq!(chunk(1, tail, false, &other).await.status, S::FORBIDDEN);
    assert_eq!(chunk(1, tail, true, &ann).await.status, S::OK);
    let status = format!("/video-calls/recording/{id}/status");
    api.expect(Method::GET, &status, Some(&ann), S::OK).await;
    let unknown = format!("/video-calls/recording/{}/status", uuid::Uuid::new_v4());
    api.expect(Method::GET, &unknown, Some(&ann), S::NOT_FOUND)
        .await;

    // tus: options, create, head, patch, and a wrong version.
    let tus = |method: Method, path: &str| {
        api.client
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(&ann)
            .header("Tus-Resumable", "1.0.0")
    };
    let options = tus(Method::OPTIONS, "/api/webrtc/uploads");
    let answer = api
        .send(Method::OPTIONS, "/api/webrtc/uploads", options)
        .await;
    assert_eq!(answer.status, S::NO_CONTENT);
    let create = tus(Method::POST, "/api/webrtc/uploads").header("Upload-Length", webm.len());
    let created = api.send(Method::POST, "/api/webrtc/uploads", create).await;
    assert_eq!(created.status, S::CREATED);
    let location = created.headers["location"].to_str().unwrap().to_string();
    let head = api
        .send(Method::HEAD, &location, tus(Method::HEAD, &location))
        .await;
    assert_eq!(head.status, S::OK);
    let patch = tus(Method::PATCH, &location)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(webm.clone());
    assert_eq!(
        api.send(Method::PATCH, &location, patch).await.status,
        S::NO_CONTENT
    );
    let wrong = api
        .client
        .post(format!("{}/api/webrtc/uploads", api.base))
        .bearer_auth(&ann)
        .header("Tus-Resumable", "0.2.2");
    let refused = api.send(Method::POST, "/api/webrtc/uploads", wrong).await;
    assert_eq!(refused.status, S::PRECONDITION_FAILED);
}
