//! Subscribes to a publisher over WHEP and writes every RTP packet it receives to
//! `<out_dir>/video.rtp` and `<out_dir>/audio.rtp` (format in fixtures/README.md).
//! Used by scripts/capture-fixtures.mjs.
//!
//! Usage: whep_capture <base url> <room> <publisher identity> <out dir> <seconds>

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capstan::config::RtcConfig;
use capstan::sfu::peer::{PeerEvent, PeerFactory};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::marshal::Marshal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, room, publisher, out_dir, secs] = args.as_slice() else {
        return Err("usage: whep_capture <base url> <room> <publisher> <out dir> <seconds>".into());
    };
    let length = Duration::from_secs_f64(secs.parse()?);
    let out_dir = PathBuf::from(out_dir);

    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .get(format!("{base}/api/dev/token"))
        .query(&[("room", room.as_str()), ("identity", "fixture-capture")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().ok_or("no token")?.to_string();

    let factory = PeerFactory::new(RtcConfig {
        bind_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..RtcConfig::default()
    });
    let (peer, mut events) = factory.create().await?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        peer.pc.add_transceiver_from_kind(kind, Some(init)).await?;
    }
    let response = http
        .post(format!("{base}/whep/{room}/{publisher}"))
        .bearer_auth(&token)
        .header("Content-Type", "application/sdp")
        .body(peer.offer().await?)
        .send()
        .await?
        .error_for_status()?;
    peer.accept_answer(response.text().await?).await?;

    let mut writers = Vec::new();
    while writers.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await?
            .ok_or("connection closed before both tracks arrived")?;
        let PeerEvent::Track(track) = event else {
            continue;
        };
        let name = match track.kind().await {
            RtpCodecKind::Video => "video.rtp",
            _ => "audio.rtp",
        };
        let path = out_dir.join(name);
        writers.push(tokio::spawn(async move {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let mut first: Option<Instant> = None;
            let mut count = 0u32;
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let start = *first.get_or_insert_with(Instant::now);
                let at = start.elapsed();
                if at > length {
                    break;
                }
                let data = packet.marshal()?;
                file.write_all(&u32::try_from(at.as_micros())?.to_be_bytes())?;
                file.write_all(&u16::try_from(data.len())?.to_be_bytes())?;
                file.write_all(&data)?;
                count += 1;
            }
            file.flush()?;
            println!("{}: {count} packets", path.display());
            Ok::<_, Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    peer.close().await;
    Ok(())
}
