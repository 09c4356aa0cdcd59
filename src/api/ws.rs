//! `GET /ws?token=JWT`: the signaling WebSocket, bridged to a participant session.

use super::error::ErrorBody;
use super::extract::Query;
use super::guard::{ClientIp, Limited};
use super::{ApiError, AppState};
use crate::auth::{AuthError, Claims};
use crate::sfu::participant::{self, Incoming, Participant};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use signaling::protocol::{
    ErrorCode, IceServer, ParticipantInfo, ServerMessage, MAX_MESSAGE_BYTES,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Frames above this close the socket with code 1009 (message too big); between
/// [`MAX_MESSAGE_BYTES`] and this they get a `message_too_large` error and the connection
/// stays up.
const HARD_FRAME_LIMIT: usize = 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The access token (browsers cannot set headers on a WebSocket).
    token: Option<String>,
}

/// The signaling WebSocket (JSON messages of the `signaling` protocol).
#[utoipa::path(
    get,
    path = "/ws",
    tag = "signaling",
    params(WsQuery),
    responses(
        (status = 101, description = "Upgraded to a WebSocket"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 426, description = "Upgrade required", body = ErrorBody),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = q.token.ok_or(AuthError::Missing)?;
    let claims = state.keys.verify(&token)?;
    let ws = ws.map_err(|e| ApiError::new(e.status(), ErrorCode::BadRequest, e.body_text()))?;
    let sender = Sender {
        ip,
        claims: claims.clone(),
    };
    let participant = Participant {
        room: claims.room.clone(),
        info: ParticipantInfo {
            identity: claims.sub,
            name: claims.name,
            role: claims.role.as_str().into(),
            tracks: vec![],
        },
        ice_servers: ice_servers(&state),
    };
    Ok(ws
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| bridge(socket, state, participant, sender)))
}

/// Whose messages a socket carries, for the rate limits.
struct Sender {
    ip: std::net::IpAddr,
    claims: Claims,
}

/// The error that replaces a message dropped by a rate limit.
fn rate_limited(limited: Limited) -> Incoming {
    Incoming::Rejected {
        code: ErrorCode::RateLimited,
        message: format!(
            "too many messages from this {}; this one was dropped (retry in {} ms)",
            limited.per,
            limited.retry_after.as_millis().max(1)
        ),
    }
}

fn ice_servers(state: &AppState) -> Vec<IceServer> {
    let urls = &state.config.rtc.ice_servers;
    if urls.is_empty() {
        return vec![];
    }
    vec![IceServer {
        urls: urls.clone(),
        username: None,
        credential: None,
    }]
}

/// How the server closes after a read error: 1009 for a message above [`HARD_FRAME_LIMIT`].
fn close_after(error: axum::Error) -> Option<CloseFrame> {
    let too_big = error
        .into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    too_big.then(|| CloseFrame {
        code: close_code::SIZE,
        reason: format!("messages are limited to {HARD_FRAME_LIMIT} bytes").into(),
    })
}

/// Bridges the socket and the participant session. The server pings every
/// `ws_ping_interval`; a client that sent nothing, not even a pong, for two intervals is
/// dropped (its connection died without a close).
async fn bridge(socket: WebSocket, state: AppState, participant: Participant, sender: Sender) {
    let every = state.config.ws_ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    let mut last_heard = Instant::now();
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(32);
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let session = tokio::spawn(participant::run(
        state.sfu.clone(),
        participant,
        in_rx,
        out_tx,
    ));
    let mut close = None;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if last_heard.elapsed() >= 2 * every {
                    tracing::info!("dropping a WebSocket client silent for {:?}", last_heard.elapsed());
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &frame {
                    if let Err(limited) = state.guard.admit(sender.ip, Some(&sender.claims)) {
                        if in_tx.send(rate_limited(limited)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                let incoming = match frame {
                    Some(Ok(Message::Text(text))) if text.len() > MAX_MESSAGE_BYTES => Incoming::Rejected {
                        code: ErrorCode::MessageTooLarge,
                        message: format!("message is {} bytes; the limit is {MAX_MESSAGE_BYTES}", text.len()),
                    },
                    Some(Ok(Message::Text(text))) => Incoming::Text(text.to_string()),
                    Some(Ok(Message::Binary(_))) => Incoming::Rejected {
                        code: ErrorCode::MalformedMessage,
                        message: "binary frames are not part of the protocol; send JSON text".into(),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) => {
                        close = close_after(e);
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                };
                if in_tx.send(incoming).await.is_err() {
                    break;
                }
            }
            msg = out_rx.recv() => {
                let Some(msg) = msg else { break };
                let fatal = matches!(msg, ServerMessage::Error { fatal: true, .. });
                let text = serde_json::to_string(&msg).expect("server messages serialize");
                if sink.send(Message::Text(text.into())).await.is_err() || fatal {
                    break;
                }
            }
        }
    }
    drop(in_tx);
    drop(out_rx);
    let _ = session.await;
    let _ = sink.send(Message::Close(close)).await;
}
