//! WHIP publish (RFC 9725) and WHEP subscribe over HTTP.

use super::access::RoomMember;
use super::error::ErrorBody;
use super::extract::{Body, Path};
use super::guard::ClientIp;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::sfu::http_session;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use signaling::protocol::ErrorCode;
use signaling::protocol::ParticipantInfo;
use signaling::sdp::{check_media_offer, OfferProblem, OfferRoute};

/// Largest SDP body accepted.
const MAX_SDP_BYTES: usize = 64 * 1024;

fn sdp_body(headers: &HeaderMap, body: &Bytes, route: OfferRoute) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_sdp(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/sdp",
        ));
    }
    if body.len() > MAX_SDP_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("SDP is {} bytes; the limit is {MAX_SDP_BYTES}", body.len()),
        ));
    }
    let sdp = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidSdp,
            "SDP is not UTF-8",
        )
    })?;
    check_media_offer(&sdp, route).map_err(|p| {
        let code = match p {
            OfferProblem::Malformed(_) | OfferProblem::WrongDirection(_) => ErrorCode::InvalidSdp,
            OfferProblem::UnsupportedCodecs(_) => ErrorCode::UnsupportedCodecs,
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, p.to_string())
    })?;
    Ok(sdp)
}

/// Whether a `Content-Type` is `application/sdp`, in any case and with any parameters.
fn is_sdp(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/sdp"))
}

/// Bytes escaped in a path segment: all but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A resource path from its segments, each percent-encoded, so that an identity such as `a/b`
/// or `../x` names exactly one resource.
fn resource(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT)))
        .collect()
}

fn created(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

/// WHIP publish: the token's identity becomes a participant of the room.
#[utoipa::path(
    post,
    path = "/whip/{room}",
    tag = "whip",
    params(("room" = String, Path, description = "Room name")),
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    responses(
        (status = 201, description = "The SDP answer", body = String, content_type = "application/sdp",
            headers(("Location" = String, description = "The session resource, for `DELETE`"))),
        (status = 400, description = "Invalid or unsupported SDP", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "No such room, publisher or session", body = ErrorBody),
        (status = 413, description = "SDP too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/sdp", body = ErrorBody),
        (status = 422, description = "Negotiation failed", body = ErrorBody),
        (status = 429, description = "Too many sessions waiting for ICE", body = ErrorBody),
        (status = 503, description = "Room full or no media port", body = ErrorBody),
    )
)]
pub async fn publish(
    State(state): State<AppState>,
    RoomMember { claims, room }: RoomMember,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let offer = sdp_body(&headers, &body, OfferRoute::Publish)?;
    let pending = state.guard.pending(ip, &claims)?;
    let info = ParticipantInfo {
        identity: claims.sub.clone(),
        name: claims.name,
        role: claims.role.as_str().into(),
        tracks: vec![],
    };
    let answer = http_session::start_whip(&state.sfu, &room, info, offer, pending).await?;
    Ok(created(resource(&["whip", &room, &claims.sub]), answer))
}

/// Ends a WHIP session (the publisher itself or an admin).
#[utoipa::path(
    delete,
    path = "/whip/{room}/{identity}",
    tag = "whip",
    params(("room" = String, Path, description = "Room name"), ("identity" = String, Path, description = "The publisher's identity")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Ended"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "No such room, publisher or session", body = ErrorBody),
    )
)]
pub async fn unpublish(
    State(state): State<AppState>,
    RoomMember { claims, room }: RoomMember,
    Path((_, identity)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if claims.sub != identity && claims.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "only the publisher may end its WHIP session",
        ));
    }
    stop(&state, &room, &identity).await
}

/// WHEP: watch `identity`'s tracks.
#[utoipa::path(
    post,
    path = "/whep/{room}/{identity}",
    tag = "whip",
    params(("room" = String, Path, description = "Room name"), ("identity" = String, Path, description = "The publisher's identity")),
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    responses(
        (status = 201, description = "The SDP answer", body = String, content_type = "application/sdp",
            headers(("Location" = String, description = "The session resource, for `DELETE`"))),
        (status = 400, description = "Invalid or unsupported SDP", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "No such room, publisher or session", body = ErrorBody),
        (status = 413, description = "SDP too large", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/sdp", body = ErrorBody),
        (status = 422, description = "Negotiation failed", body = ErrorBody),
        (status = 429, description = "Too many sessions waiting for ICE", body = ErrorBody),
        (status = 503, description = "Room full or no media port", body = ErrorBody),
    )
)]
pub async fn view(
    State(state): State<AppState>,
    RoomMember { claims, room }: RoomMember,
    ClientIp(ip): ClientIp,
    Path((_, identity)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let offer = sdp_body(&headers, &body, OfferRoute::Subscribe)?;
    let pending = state.guard.pending(ip, &claims)?;
    let (answer, viewer) =
        http_session::start_whep(&state.sfu, &room, &identity, offer, pending).await?;
    Ok(created(
        resource(&["whep", &room, &identity, &viewer]),
        answer,
    ))
}

/// Ends a WHEP session.
#[utoipa::path(
    delete,
    path = "/whep/{room}/{identity}/{viewer}",
    tag = "whip",
    params(("room" = String, Path, description = "Room name"), ("identity" = String, Path, description = "The publisher's identity"), ("viewer" = String, Path, description = "The viewer id from the `Location` of the WHEP answer")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Ended"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed for this token", body = ErrorBody),
        (status = 404, description = "No such room, publisher or session", body = ErrorBody),
    )
)]
pub async fn unview(
    State(state): State<AppState>,
    RoomMember { room, .. }: RoomMember,
    Path((_, _, viewer)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    if !viewer.starts_with("whep-") {
        return Err(ApiError::not_found(format!("no WHEP viewer `{viewer}`")));
    }
    stop(&state, &room, &viewer).await
}

async fn stop(state: &AppState, room: &str, identity: &str) -> Result<StatusCode, ApiError> {
    if http_session::stop(&state.sfu, room, identity).await {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found(format!(
            "no session `{identity}` in room `{room}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_content_types_match_in_any_case() {
        for fine in [
            "application/sdp",
            "Application/SDP",
            "application/sdp; charset=utf-8",
            " APPLICATION/sdp ;x=y",
        ] {
            assert!(is_sdp(fine), "{fine}");
        }
        for wrong in [
            "",
            "text/plain",
            "application/sdpx",
            "application/sdp-x; a=b",
        ] {
            assert!(!is_sdp(wrong), "{wrong}");
        }
    }

    #[test]
    fn resource_paths_escape_each_segment() {
        assert_eq!(resource(&["whip", "r", "cam"]), "/whip/r/cam");
        assert_eq!(resource(&["whip", "r", "a/b"]), "/whip/r/a%2Fb");
        assert_eq!(
            resource(&["whip", "r", "../../../evil"]),
            "/whip/r/..%2F..%2F..%2Fevil"
        );
        assert_eq!(
            resource(&["whep", "caf\u{e9}", "zo\u{eb} x", "whep-1"]),
            "/whep/caf%C3%A9/zo%C3%AB%20x/whep-1"
        );
        assert_eq!(
            resource(&["whip", "r", "a\nb?#%"]),
            "/whip/r/a%0Ab%3F%23%25"
        );
    }
}
