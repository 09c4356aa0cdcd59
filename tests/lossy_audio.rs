//! Opus in-band FEC and DTX pass through the server into a recording across a lossy link:
//! a WHIP publisher whose Opus encoder codes FEC (LBRR) data and stops sending during
//! silence publishes through the impaired-link relay with 5 % uplink loss, the room is
//! recorded in `tracks` mode, and every Opus packet in the file is compared with the packets
//! the publisher sent.

mod common;

use common::check::{assert_decodes_cleanly, decoded_frame_times};
use common::lossy::{clean, publish_through, published, random_loss};
use common::peer::MediaOptions;
use common::recording::{id_of, Host};
use common::TestServer;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the publisher is recorded.
const RECORDED: Duration = Duration::from_secs(10);

/// A 440 Hz tone of 680 ms every 1.5 s, silence in between (`source` adds `audiotestsrc`
/// properties), coded as voice with DTX and, if `fec`, in-band FEC.
fn tones(source: &str, fec: bool) -> String {
    format!(
        "audiotestsrc {source} wave=ticks freq=440 sine-periods-per-tick=300 \
         tick-interval=1500000000 ! audio/x-raw,rate=48000,channels=2 \
         ! opusenc audio-type=voice bitrate-type=vbr bitrate=32000 inband-fec={fec} \
         packet-loss-percentage=10 dtx=true"
    )
}

/// The payload type the server negotiates for Opus.
const OPUS_PT: u8 = 111;

/// Samples of one 20 ms Opus frame at 48 kHz, the RTP clock rate.
const FRAME: u32 = 960;

/// The SILK header flags of an Opus packet holding one 20 ms SILK-only or hybrid frame:
/// `(voice activity, LBRR)`, each set when the mid or (in a stereo packet) the side channel
/// has it. The TOC byte (RFC 6716 §3.1) gives the configuration (0-15 are SILK-only or
/// hybrid, which begin with a SILK layer), stereo and the frame count code. The SILK layer's
/// header bits (RFC 6716 §4.2.3) are range-coded with probability 1/2 and so are the leading
/// bits of the first byte after the TOC: per channel, mid then side, one VAD flag per 20 ms
/// SILK frame and then the LBRR flag, which says the frame carries the previous frame again
/// at a lower bitrate (the in-band FEC). `None` for other packets (CELT, longer frames, empty).
fn silk_flags(payload: &[u8]) -> Option<(bool, bool)> {
    let (&toc, frame) = payload.split_first()?;
    let single_20_ms = toc & 0x03 == 0 && matches!(toc >> 3, 1 | 5 | 9 | 13 | 15);
    let header = *frame.first().filter(|_| single_20_ms)?;
    let channels = if toc & 0x04 != 0 { 2 } else { 1 };
    let flag = |bit: u8| (0..channels).any(|c| header & (bit >> (2 * c)) != 0);
    Some((flag(0x80), flag(0x40)))
}

/// Whether an Opus packet carries LBRR (FEC) data, see [`silk_flags`].
fn has_lbrr(payload: &[u8]) -> bool {
    silk_flags(payload).is_some_and(|(_, lbrr)| lbrr)
}

/// `(pts s, payload)` of every packet of the file's audio stream (ffprobe's hex dump).
fn audio_packets(file: &Path) -> Vec<(f64, Vec<u8>)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-show_packets"])
        .args(["-show_data", "-show_entries", "packet=pts_time,data"])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| {
            let pts: f64 = p["pts_time"].as_str().unwrap().parse().unwrap();
            // Lines of `offset: eight groups of four hex digits  ascii`.
            let hex: String = p["data"]
                .as_str()
                .unwrap()
                .lines()
                .filter_map(|line| line.split_once(": "))
                .flat_map(|(_, rest)| rest.chars().take(39).filter(|c| !c.is_whitespace()))
                .collect();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (pts, bytes)
        })
        .collect()
}

/// The Opus packets of 6 s of [`tones`] encoded offline, one file per packet.
fn encoded_offline(fec: bool) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let description = format!(
        "{} ! multifilesink location={}/%05d",
        tones("num-buffers=282", fec),
        dir.path().display()
    );
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(description.split_whitespace())
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "{description}");
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// [`has_lbrr`] tells the encoder's FEC: with the same tones, packets carry LBRR data when
/// the encoder codes FEC and never when it does not.
#[test]
fn the_lbrr_flag_is_set_only_with_in_band_fec_on() {
    let with = encoded_offline(true);
    let without = encoded_offline(false);
    let lbrr = |packets: &[Vec<u8>]| packets.iter().filter(|p| has_lbrr(p)).count();
    println!(
        "FEC on: {} of {} packets carry LBRR data; FEC off: {} of {}",
        lbrr(&with),
        with.len(),
        lbrr(&without),
        without.len()
    );
    assert!(lbrr(&with) >= with.len() / 4, "FEC on: {}", lbrr(&with));
    assert_eq!(lbrr(&without), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_fec_and_dtx_pass_through_into_a_recording_across_uplink_loss() {
    let server = TestServer::start().await;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let options = MediaOptions {
        // The payloader sends nothing for the frames the encoder leaves empty in DTX.
        audio: Some(format!(
            "{} ! rtpopuspay pt={OPUS_PT} mtu=1150 dtx=true",
            tones("is-live=true", true)
        )),
        sent_audio: Some(Arc::clone(&sent)),
        ..Default::default()
    };
    let publisher = publish_through(
        &server,
        "opus",
        "mic",
        (random_loss(0.05), clean()),
        5,
        options,
    )
    .await;
    published(&server, 2).await;
    let host = Host::new(&server, "opus");
    let id = id_of(&host.start("mode=tracks").await.expect(StatusCode::CREATED));
    tokio::time::sleep(RECORDED).await;
    host.act(&id, "stop").await.expect(StatusCode::OK);
    let state = host.status(&id).await;
    assert_eq!(state["files"].as_array().unwrap().len(), 1, "{state}");
    let dir = tempfile::tempdir().unwrap();
    let file = host.download(&id, 0, dir.path()).await;
    // Counted once the recording is final: a packet missing in its last second is given up
    // (and counted) only when the jitter buffer drains at the stop.
    let lost = server
        .metric(r#"capstan_recorder_lost_packets_total{kind="audio"}"#)
        .await as u64;
    let sent = sent.lock().unwrap().clone();
    let up = publisher.relay.uplink();

    // Every recorded packet is one the publisher sent, byte for byte, in the order sent: the
    // recording is a subsequence of the sent packets from its first packet to its last.
    let recorded = audio_packets(&file);
    assert!(recorded.len() > 100, "{} audio packets", recorded.len());
    let first = sent
        .iter()
        .position(|p| p.payload[..] == recorded[0].1[..])
        .expect("the first recorded packet was sent");
    let mut matched = Vec::with_capacity(recorded.len());
    let mut next = first;
    for (i, (pts, payload)) in recorded.iter().enumerate() {
        let found = sent[next..]
            .iter()
            .position(|p| p.payload[..] == payload[..])
            .unwrap_or_else(|| {
                panic!(
                    "recorded packet {i} (pts {pts:.3} s, {} bytes) is not one sent after \
                     sent packet {next}",
                    payload.len()
                )
            });
        matched.push(next + found);
        next += found + 1;
    }
    let window = &sent[first..next];
    let missing = window.len() - recorded.len();
    // The sent audio packets the relay dropped, and how many of them the recording holds
    // nonetheless (retransmitted on the server's NACK).
    let dropped: HashSet<u16> = publisher
        .relay
        .uplink_rtp_dropped()
        .into_iter()
        .filter(|&(pt, _)| pt == OPUS_PT)
        .map(|(_, seq)| seq)
        .collect();
    let dropped_in_window = window
        .iter()
        .filter(|p| dropped.contains(&p.header.sequence_number))
        .count();
    let recovered = matched
        .iter()
        .filter(|&&i| dropped.contains(&sent[i].header.sequence_number))
        .count();

    // DTX: the sent RTP timestamps jump over the frames the encoder left empty; the packet
    // after a jump is a comfort-noise update (no voice activity) or the tone's return.
    let dtx_after = |i: usize| {
        i > 0
            && sent[i]
                .header
                .timestamp
                .wrapping_sub(sent[i - 1].header.timestamp)
                > FRAME
    };
    let dtx_sent = (first + 1..next).filter(|&i| dtx_after(i)).count();
    let dtx_recorded = matched.iter().filter(|&&i| dtx_after(i)).count();
    let comfort_noise_recorded = matched
        .iter()
        .filter(|&&i| dtx_after(i) && silk_flags(&sent[i].payload).is_some_and(|(vad, _)| !vad))
        .count();
    let tiny_recorded = recorded.iter().filter(|(_, p)| p.len() <= 3).count();
    let lbrr_sent = window.iter().filter(|p| has_lbrr(&p.payload)).count();
    let lbrr_recorded = recorded.iter().filter(|(_, p)| has_lbrr(p)).count();

    // Decoded, the recording has no gap over 60 ms but where the publisher sent nothing: a
    // gap between two decoded frames (one per packet) is allowed only when their packets are
    // consecutive sent packets with a DTX jump between them, and it is as long as the jump.
    let decoded = decoded_frame_times(&file, "audio");
    assert_eq!(
        decoded.len(),
        recorded.len(),
        "one decoded frame per packet"
    );
    let mut dtx_gaps = 0;
    let mut longest_dtx_gap: f64 = 0.0;
    let mut longest_other_gap: f64 = 0.0;
    for (i, w) in decoded.windows(2).enumerate() {
        let gap = w[1].0 - (w[0].0 + w[0].1);
        let (a, b) = (matched[i], matched[i + 1]);
        let step = sent[b]
            .header
            .timestamp
            .wrapping_sub(sent[a].header.timestamp);
        let skipped = step.saturating_sub(FRAME);
        if b == a + 1 && skipped > 0 {
            dtx_gaps += 1;
            longest_dtx_gap = longest_dtx_gap.max(gap);
            assert!(
                (gap - skipped as f64 / 48_000.0).abs() <= 0.005,
                "decoded gap {gap:.3} s at {:.3} s over a DTX jump of {skipped} samples",
                w[0].0
            );
        } else {
            longest_other_gap = longest_other_gap.max(gap);
        }
    }

    println!(
        "uplink dropped {} of {} packets ({:.1} %); audio sent while recording: {} packets, \
         {dropped_in_window} of them dropped by the relay; recorded: {}, each byte-identical \
         to a sent one, {recovered} of the dropped ones among them, {missing} sent ones \
         missing ({lost} counted lost by the recorder); DTX: {dtx_sent} timestamp jumps sent, \
         {dtx_recorded} packets after them recorded ({comfort_noise_recorded} comfort-noise \
         updates), {tiny_recorded} packets of 3 bytes or less recorded; FEC: {lbrr_sent} sent \
         and {lbrr_recorded} recorded packets carry LBRR data; decoded: {dtx_gaps} DTX gaps \
         (longest {:.0} ms), longest other gap {:.0} ms",
        up.dropped(),
        up.sent,
        100.0 * up.dropped() as f64 / up.sent as f64,
        window.len(),
        recorded.len(),
        1000.0 * longest_dtx_gap,
        1000.0 * longest_other_gap,
    );
    assert!(dropped_in_window > 0, "the relay dropped no audio: {up:?}");
    assert!(
        missing as u64 <= lost,
        "{missing} sent packets are not in the recording, the recorder counted {lost} lost"
    );
    assert!(
        comfort_noise_recorded >= 5,
        "{comfort_noise_recorded} comfort-noise updates recorded"
    );
    assert!(
        lbrr_recorded >= recorded.len() / 4,
        "{lbrr_recorded} of {} recorded packets carry FEC",
        recorded.len()
    );
    assert!(
        longest_other_gap <= 0.06,
        "a {:.0} ms gap outside DTX",
        1000.0 * longest_other_gap
    );
    assert_decodes_cleanly(&file);
    server.assert_clean_log();
}
