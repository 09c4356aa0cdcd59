//! Loss and retransmission at the recorder's input: a packet that arrives late but within the
//! jitter buffer's latency (a retransmission) is recorded; one that never arrives, or arrives
//! after it, is counted as lost.

mod common;

use common::*;
use pipelines::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_retransmissions_are_recorded_and_what_stays_missing_is_counted_lost() {
    let latency = Duration::from_millis(u64::from(plan::JITTER_LATENCY_MS));
    let mut audio = opus(5.0, 440).with_ssrc(31);
    let sent = audio.packets.len();
    // From 0.5 s to 3 s (packets 25..150, 20 ms apart): of every 25 packets, one never
    // arrives, one arrives 300 ms late (a retransmission after one NACK round), one arrives
    // after the jitter buffer's latency (a retransmission too late to use).
    let (mut never, mut too_late) = (0, 0);
    audio.packets = audio
        .packets
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut p)| {
            if (25..150).contains(&i) {
                match i % 25 {
                    3 => {
                        never += 1;
                        return None;
                    }
                    7 => p.at += Duration::from_millis(300),
                    11 => {
                        too_late += 1;
                        p.at += latency + Duration::from_millis(300);
                    }
                    _ => {}
                }
            }
            Some(p)
        })
        .collect();
    audio.packets.sort_by_key(|p| p.at);

    let dir = tempfile::tempdir().unwrap();
    let (rec, _events) = start(spec(dir.path(), Mode::Tracks, Format::Webm, true)).await;
    let input = rec
        .add_input(track_spec("a", "p0", TrackKind::Audio))
        .await
        .unwrap();
    feed(input, audio).join().unwrap();
    let outcome = stop(&rec).await;
    let stats = &outcome.inputs[0];
    println!("{stats:?}");
    assert_eq!((never, too_late), (5, 5));
    assert_eq!(stats.lost, never + too_late, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");

    let path = file_of(&outcome, Some("p0"));
    assert_decodes_cleanly(path);
    let frames = decoded_frame_times(path, "audio");
    assert_eq!(frames.len() as u64, sent as u64 - stats.lost);
}
