//! Protection of the HTTP surface against hostile and careless clients: the client IP, rate
//! limits per IP and per token, caps on pending WHIP/WHEP sessions, the body read timeout and
//! CORS. The decisions themselves are the pure ones of `crate::limits`.

use super::{ApiError, AppState};
use crate::auth::Claims;
use crate::config::{Config, Limits};
use crate::limits::{self, RateLimiter, Slot, Slots};
use crate::metrics::METRICS;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use signaling::protocol::ErrorCode;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Largest request body read (the SDP and JSON bodies are far smaller).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A token's identity: its room and subject.
type Identity = (String, String);

/// Why a request or message was refused by a rate limit.
#[derive(Debug)]
pub struct Limited {
    /// `client IP` or `token`.
    pub per: &'static str,
    pub retry_after: Duration,
}

/// Why a WHIP/WHEP session may not start now.
#[derive(Debug)]
pub struct TooManyPending {
    /// `client IP` or `token`.
    pub per: &'static str,
    pub max: usize,
    /// The longest a pending session can stay pending.
    pub retry_after: Duration,
}

/// The shared limiter state.
pub struct Guard {
    per_ip: Option<Mutex<RateLimiter<IpAddr>>>,
    per_token: Option<Mutex<RateLimiter<Identity>>>,
    pending_per_ip: Slots<IpAddr>,
    pending_per_token: Slots<Identity>,
    max_pending_per_ip: usize,
    max_pending_per_token: usize,
    connect_timeout: Duration,
}

/// Places held by a WHIP/WHEP session until its ICE connects.
pub struct Pending {
    _ip: Slot<IpAddr>,
    _token: Slot<Identity>,
}

impl Guard {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        Self {
            per_ip: limits.rate_per_ip.map(|r| Mutex::new(RateLimiter::new(r))),
            per_token: limits
                .rate_per_token
                .map(|r| Mutex::new(RateLimiter::new(r))),
            pending_per_ip: Slots::default(),
            pending_per_token: Slots::default(),
            max_pending_per_ip: limits.max_pending_per_ip,
            max_pending_per_token: limits.max_pending_per_token,
            connect_timeout: config.rtc.connect_timeout,
        }
    }

    /// Spends one request or message of `ip` and of the token `claims` (when verified).
    pub fn admit(&self, ip: IpAddr, claims: Option<&Claims>) -> Result<(), Limited> {
        let now = Instant::now();
        if let Some(limiter) = &self.per_ip {
            let checked = limiter.lock().expect("limiter lock").check(ip, now);
            checked.map_err(|retry_after| {
                METRICS.refuse("rate_per_ip");
                Limited {
                    per: "client IP",
                    retry_after,
                }
            })?;
        }
        if let (Some(limiter), Some(claims)) = (&self.per_token, claims) {
            let checked = limiter
                .lock()
                .expect("limiter lock")
                .check(identity(claims), now);
            checked.map_err(|retry_after| {
                METRICS.refuse("rate_per_token");
                Limited {
                    per: "token",
                    retry_after,
                }
            })?;
        }
        Ok(())
    }

    /// A place for one more not-yet-connected WHIP/WHEP session of `ip` and `claims`.
    pub fn pending(&self, ip: IpAddr, claims: &Claims) -> Result<Pending, TooManyPending> {
        let Some(ip_slot) = self.pending_per_ip.acquire(ip, self.max_pending_per_ip) else {
            METRICS.refuse("pending_per_ip");
            return Err(TooManyPending {
                per: "client IP",
                max: self.max_pending_per_ip,
                retry_after: self.connect_timeout,
            });
        };
        let Some(token_slot) = self
            .pending_per_token
            .acquire(identity(claims), self.max_pending_per_token)
        else {
            METRICS.refuse("pending_per_token");
            return Err(TooManyPending {
                per: "token",
                max: self.max_pending_per_token,
                retry_after: self.connect_timeout,
            });
        };
        Ok(Pending {
            _ip: ip_slot,
            _token: token_slot,
        })
    }
}

fn identity(claims: &Claims) -> Identity {
    (claims.room.clone(), claims.sub.clone())
}

/// The client's IP: the socket peer, or `X-Forwarded-For` from a trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(ClientIp(client_ip(parts, &state.config.limits)))
    }
}

fn client_ip(parts: &Parts, limits: &Limits) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |c| c.0);
    // A header that is not text ends the walk like any other unparsable entry.
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    limits::client_ip(peer, &forwarded, &limits.trusted_proxies)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The verified claims of the request's `Authorization: Bearer` token, left in the request's
/// extensions by [`rate_limit`] so that the `Caller` extractor does not verify it again.
#[derive(Clone)]
pub struct BearerClaims(pub Claims);

/// The verified claims of the request's bearer token, or of its `?token=` (the WebSocket);
/// `BearerClaims` when they came from the header.
fn claims_of(state: &AppState, parts: &Parts) -> (Option<Claims>, Option<BearerClaims>) {
    if let Ok(token) = super::error::bearer(&parts.headers) {
        let claims = state.keys.verify(token).ok();
        let bearer = claims.clone().map(BearerClaims);
        return (claims, bearer);
    }
    let token = Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|q| q.0.token);
    (token.and_then(|t| state.keys.verify(&t).ok()), None)
}

/// Middleware: refuses a request over the rate of its client IP or its token with 429.
pub async fn rate_limit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let (claims, bearer) = claims_of(&state, &parts);
    if let Err(limited) = state.guard.admit(ip, claims.as_ref()) {
        return ApiError::from(limited).into_response();
    }
    if let Some(bearer) = bearer {
        parts.extensions.insert(bearer);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Middleware: reads the request body within the body timeout (408 after it), so a client
/// that announces a body and sends it slowly or never holds no handler.
pub async fn read_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    read_body_up_to(&state, MAX_BODY_BYTES, request, next).await
}

/// [`read_body`] for the chunk upload route: its limit fits a base64 chunk of
/// `CAPSTAN_UPLOAD_MAX_CHUNK` bytes.
pub async fn read_chunk_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limit = super::uploads::chunk_body_limit(state.uploads.config().max_chunk);
    read_body_up_to(&state, limit, request, next).await
}

async fn read_body_up_to(
    state: &AppState,
    limit: usize,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let hint = request.body().size_hint();
    if hint.exact() == Some(0) {
        return Ok(next.run(request).await);
    }
    if hint.lower() > limit as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is {} bytes; the limit is {limit}", hint.lower()),
        ));
    }
    let timeout = state.config.limits.body_timeout;
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("cannot read the request body: {e}"),
            ))
        }
        Err(_) => {
            METRICS.refuse("body_timeout");
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {}",
                    humantime::format_duration(timeout)
                ),
            ));
        }
    };
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

/// The tus headers a page of another origin sends (`PATCH`, `HEAD` and `POST` of uploads).
const TUS_REQUEST_HEADERS: [&str; 5] = [
    "tus-resumable",
    "upload-length",
    "upload-defer-length",
    "upload-offset",
    "upload-metadata",
];

/// The tus headers such a page may read in the answers.
const TUS_ANSWER_HEADERS: [&str; 8] = [
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "upload-length",
    "upload-defer-length",
    "upload-offset",
    "upload-metadata",
];

/// CORS for the allowed origins: WHIP/WHEP, the API and tus uploads may be called from their
/// pages (`Authorization`, `Content-Type` and the tus headers allowed, `Location` and the tus
/// headers readable); `None` when no origin is allowed (same-origin only).
pub fn cors(limits: &Limits) -> Option<CorsLayer> {
    if limits.allowed_origins.is_empty() {
        return None;
    }
    let origins = limits
        .allowed_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("origins are validated in config"));
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::DELETE,
                Method::PATCH,
                Method::HEAD,
            ])
            .allow_headers(
                [header::AUTHORIZATION, header::CONTENT_TYPE]
                    .into_iter()
                    .chain(TUS_REQUEST_HEADERS.map(HeaderName::from_static))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(
                [header::LOCATION, header::RETRY_AFTER]
                    .into_iter()
                    .chain(TUS_ANSWER_HEADERS.map(HeaderName::from_static))
                    .collect::<Vec<_>>(),
            )
            .max_age(Duration::from_secs(600)),
    )
}

/// Middleware outside [`cors`]: a preflight from an origin not allowed is refused with 403
/// instead of getting the allowed methods and headers.
pub async fn refuse_foreign_preflight(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let preflight = request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let (true, Some(origin)) = (preflight, headers.get(header::ORIGIN)) {
        let allowed = &state.config.limits.allowed_origins;
        if !allowed.iter().any(|o| o.as_bytes() == origin.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this origin may not call the API (CAPSTAN_ALLOWED_ORIGINS)",
            ));
        }
    }
    Ok(next.run(request).await)
}
