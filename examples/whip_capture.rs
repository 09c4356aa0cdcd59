//! A minimal WHIP endpoint that writes every VP8 simulcast layer it receives to
//! `<out dir>/vp8-simulcast-<rid>.rtp` (format in fixtures/README.md). It needs no Capstan
//! server: the SFU forwards one layer only, this receives them all. Used by
//! scripts/capture-fixtures.mjs.
//!
//! Usage: whip_capture <out dir> <seconds> <rid>...
//!
//! Serves on 127.0.0.1, announced on stdout as `listening on http://127.0.0.1:PORT`:
//! `GET /` is an empty page (so the publishing page's WHIP request is same-origin), and
//! `POST /whip` answers one offer with the server's webrtc-rs stack (`PeerFactory`: VP8 at
//! payload type 96, the simulcast header extensions mid/rtp-stream-id/repaired-rtp-stream-id,
//! NACK, receiver reports and TWCC feedback, so Chromium's bandwidth estimate can grow until it
//! sends every layer). Once every given RID has sent a packet, each layer's file holds `seconds`
//! from its next keyframe on (asked for with a PLI if none comes within [`PLI_INTERVAL`]);
//! payload types are rewritten to 96 and header extensions stripped, as the server forwards
//! them. Fails if a layer does not start within [`LAYER_TIMEOUT`], sends no keyframe within
//! [`KEYFRAME_TIMEOUT`] or stops before its `seconds` are captured.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use capstan::config::RtcConfig;
use capstan::sfu::peer::{Peer, PeerEvent, PeerEvents, PeerFactory, VP8_PAYLOAD_TYPE};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::shared::marshal::Marshal;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long the page has to send its offer.
const OFFER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the answer every layer must have sent a packet (Chromium starts the upper
/// layers as its bandwidth estimate grows).
const LAYER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after all layers flow each one must have sent a keyframe.
const KEYFRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Spacing of the PLIs sent to a layer still waiting for its keyframe.
const PLI_INTERVAL: Duration = Duration::from_secs(1);

/// One received RTP packet of a video track.
struct Arrival {
    track: Arc<dyn TrackRemote>,
    rid: Option<String>,
    packet: rtp::Packet,
    at: Instant,
}

/// A layer's file, from its first keyframe after all layers flow.
struct Recording {
    start: Instant,
    file: std::io::BufWriter<std::fs::File>,
    packets: u32,
    done: bool,
}

/// What is known of one RID.
struct Layer {
    path: PathBuf,
    /// The track and SSRC its packets came on, once one arrived.
    source: Option<(Arc<dyn TrackRemote>, u32)>,
    recording: Option<Recording>,
}

impl Layer {
    /// No packet yet.
    fn silent(&self) -> bool {
        self.source.is_none()
    }

    /// Not yet recording: waits for a keyframe.
    fn waiting(&self) -> bool {
        self.recording.is_none()
    }

    /// Its file is not complete yet.
    fn unfinished(&self) -> bool {
        !self.recording.as_ref().is_some_and(|r| r.done)
    }

    /// Writes `arrival` if it belongs in the file: from the first keyframe on, for `length`.
    fn record(&mut self, arrival: Arrival, length: Duration) -> Result<(), Error> {
        if self.waiting() && is_keyframe_start(&arrival.packet.payload) {
            self.recording = Some(Recording {
                start: arrival.at,
                file: std::io::BufWriter::new(std::fs::File::create(&self.path)?),
                packets: 0,
                done: false,
            });
        }
        let Some(recording) = self.recording.as_mut().filter(|r| !r.done) else {
            return Ok(());
        };
        let at = arrival.at - recording.start;
        if at > length {
            recording.done = true;
            recording.file.flush()?;
            println!("{}: {} packets", self.path.display(), recording.packets);
            return Ok(());
        }
        let mut packet = arrival.packet;
        packet.header.payload_type = VP8_PAYLOAD_TYPE;
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        let data = packet.marshal()?;
        let file = &mut recording.file;
        file.write_all(&u32::try_from(at.as_micros())?.to_be_bytes())?;
        file.write_all(&u16::try_from(data.len())?.to_be_bytes())?;
        file.write_all(&data)?;
        recording.packets += 1;
        Ok(())
    }
}

/// Hands the publisher's answered connection to `main`.
type Publisher = oneshot::Sender<(Peer, PeerEvents)>;

#[derive(Clone)]
struct Whip {
    factory: PeerFactory,
    /// Where the one publisher's connection goes; taken by the first offer.
    publisher: Arc<Mutex<Option<Publisher>>>,
}

/// `POST /whip`: answers the first offer (201 with the SDP answer), refuses any other.
async fn whip(State(whip): State<Whip>, offer: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(publisher) = whip.publisher.lock().unwrap().take() else {
        return (StatusCode::CONFLICT, "one publisher only").into_response();
    };
    let (peer, events) = match whip.factory.create().await {
        Ok(created) => created,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let answer = match peer.answer(offer).await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let _ = publisher.send((peer, events));
    let headers = [
        (header::CONTENT_TYPE, "application/sdp"),
        (header::LOCATION, "/whip"),
    ];
    (StatusCode::CREATED, headers, answer).into_response()
}

#[tokio::main]
#[expect(
    clippy::disallowed_methods,
    reason = "an example's own server, not the API"
)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out_dir, secs, rids) = match args.as_slice() {
        [out_dir, secs, rids @ ..] if !rids.is_empty() => (out_dir, secs, rids),
        _ => return Err("usage: whip_capture <out dir> <seconds> <rid>...".into()),
    };
    let length = Duration::from_secs_f64(secs.parse()?);
    let mut layers: HashMap<String, Layer> = rids
        .iter()
        .map(|rid| {
            let path = Path::new(out_dir).join(format!("vp8-simulcast-{rid}.rtp"));
            let layer = Layer {
                path,
                source: None,
                recording: None,
            };
            (rid.clone(), layer)
        })
        .collect();

    let (publisher, connection) = oneshot::channel();
    let state = Whip {
        factory: PeerFactory::new(RtcConfig {
            bind_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..RtcConfig::default()
        }),
        publisher: Arc::new(Mutex::new(Some(publisher))),
    };
    let app = Router::new()
        .route(
            "/",
            get(|| async { axum::response::Html("<!doctype html><title>WHIP</title>") }),
        )
        .route("/whip", post(whip))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (peer, events) = tokio::time::timeout(OFFER_TIMEOUT, connection)
        .await
        .map_err(|_| "no WHIP offer arrived")??;
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    tokio::spawn(read_tracks(events, arrivals_tx));

    // Every layer's first packet, then from each layer's next keyframe `length` of packets.
    let start = Instant::now();
    let mut flowing: Option<Instant> = None;
    let mut ticks = tokio::time::interval(PLI_INTERVAL);
    while layers.values().any(Layer::unfinished) {
        let arrival = tokio::select! {
            _ = ticks.tick() => {
                let now = Instant::now();
                let Some(flowing) = flowing else {
                    if now > start + LAYER_TIMEOUT {
                        return Err(late(&layers, Layer::silent, "sent no packet", LAYER_TIMEOUT));
                    }
                    continue;
                };
                if now > flowing + KEYFRAME_TIMEOUT && layers.values().any(Layer::waiting) {
                    return Err(late(&layers, Layer::waiting, "sent no keyframe", KEYFRAME_TIMEOUT));
                }
                let within = KEYFRAME_TIMEOUT + length + PLI_INTERVAL;
                if now > flowing + within {
                    return Err(late(&layers, Layer::unfinished, "stopped sending", within));
                }
                // Chromium sends a keyframe on every layer when one starts: a PLI only to the
                // layers still without one an interval later.
                if now >= flowing + PLI_INTERVAL {
                    for layer in layers.values().filter(|l| l.waiting()) {
                        let (track, ssrc) = layer.source.as_ref().unwrap();
                        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: *ssrc };
                        track.write_rtcp(vec![Box::new(pli)]).await?;
                    }
                }
                continue;
            }
            arrival = arrivals.recv() => arrival.ok_or("the connection failed")?,
        };
        let Some(layer) = arrival.rid.as_ref().and_then(|rid| layers.get_mut(rid)) else {
            continue;
        };
        if layer.silent() {
            let ssrc = arrival.packet.header.ssrc;
            let codec = arrival.track.codec(ssrc).await.map(|c| c.mime_type);
            if !codec.is_some_and(|m| m.eq_ignore_ascii_case(MIME_TYPE_VP8)) {
                return Err(format!("{:?} is not VP8", arrival.rid).into());
            }
            println!(
                "layer {:?} (SSRC {ssrc}) flows",
                arrival.rid.as_ref().unwrap()
            );
            layer.source = Some((Arc::clone(&arrival.track), ssrc));
        }
        if flowing.is_none() && !layers.values().any(Layer::silent) {
            flowing = Some(arrival.at);
        }
        if flowing.is_some() {
            let layer = layers.get_mut(arrival.rid.as_ref().unwrap()).unwrap();
            layer.record(arrival, length)?;
        }
    }
    peer.close().await;
    server.abort();
    Ok(())
}

/// Forwards every RTP packet of the connection's video tracks, with its RID and arrival time;
/// ends (closing `arrivals`) when the connection fails or closes.
async fn read_tracks(mut events: PeerEvents, arrivals: mpsc::UnboundedSender<Arrival>) {
    while let Some(event) = events.recv().await {
        match event {
            PeerEvent::Track(track) if track.kind().await == RtpCodecKind::Video => {
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    while let Some(event) = track.poll().await {
                        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                            continue;
                        };
                        let at = Instant::now();
                        let rid = track.rid(packet.header.ssrc).await;
                        let track = Arc::clone(&track);
                        if arrivals
                            .send(Arrival {
                                track,
                                rid,
                                packet,
                                at,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                break;
            }
            _ => {}
        }
    }
}

/// An error naming the layers that are late and what they did not do `within` the time allowed.
fn late(
    layers: &HashMap<String, Layer>,
    is_late: fn(&Layer) -> bool,
    what: &str,
    within: Duration,
) -> Error {
    let mut rids: Vec<&str> = layers
        .iter()
        .filter(|(_, l)| is_late(l))
        .map(|(rid, _)| rid.as_str())
        .collect();
    rids.sort_unstable();
    format!("layer(s) {} {what} within {within:?}", rids.join(", ")).into()
}

/// Whether a VP8 RTP payload starts a keyframe: start of partition 0 (RFC 7741 payload
/// descriptor) whose payload header has the P bit clear.
fn is_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return false;
    }
    let mut offset = 1;
    if first & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        offset = 2;
        if x & 0x80 != 0 {
            offset += if payload.get(2).is_some_and(|m| m & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if x & 0x40 != 0 {
            offset += 1;
        }
        if x & 0x30 != 0 {
            offset += 1;
        }
    }
    payload.get(offset).is_some_and(|header| header & 0x01 == 0)
}
