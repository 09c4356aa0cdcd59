//! Garbage input is counted and dropped; the recording is unharmed and nothing panics.

mod common;

use common::*;
use pipelines::*;

/// A small deterministic generator (no extra crates).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Every third valid packet is accompanied by one garbage packet of each kind.
fn pollute(track: RtpTrack, seed: u64) -> (RtpTrack, u64) {
    let mut rng = Lcg(seed);
    let mut packets = Vec::new();
    let mut rounds = 0;
    for (i, p) in track.packets.iter().enumerate() {
        packets.push(p.clone());
        if i % 3 != 0 {
            continue;
        }
        rounds += 1;
        let len = 1 + (rng.next() % 1400) as usize;
        let mut random = rng.bytes(len);
        random[0] &= 0x3f; // never version 2: always malformed
        let truncated = p.data[..(rng.next() % 12) as usize].to_vec();
        let mut wrong_pt = p.data.clone();
        wrong_pt[1] = (wrong_pt[1] & 0x80) | 0x21;
        let mut wrong_ssrc = p.data.clone();
        wrong_ssrc[8..12].copy_from_slice(&0x0bad_55c0_u32.to_be_bytes());
        for data in [random, truncated, wrong_pt, wrong_ssrc] {
            packets.push(Packet { at: p.at, data });
        }
    }
    (RtpTrack { packets, ..track }, rounds)
}

async fn garbage(mode: Mode, format: Format) {
    let dir = tempfile::tempdir().unwrap();
    let (video, v_rounds) = pollute(vp8(320, 240, 4.0, "smpte").with_ssrc(21), 1);
    let (audio, a_rounds) = pollute(opus(4.0, 440).with_ssrc(22), 2);
    let (rec, _events) = start(spec(dir.path(), mode, format, false)).await;
    let (v, a) = add_av(&rec, "p0", "").await;
    for junk in [&[][..], &[0x80][..], &[0xff; 3][..]] {
        assert_eq!(v.push_rtp(junk), Err(Dropped::Malformed));
    }
    wait(vec![feed(v, video), feed(a, audio)]).await;
    let outcome = stop(&rec).await;
    for (id, rounds) in [("v", v_rounds), ("a", a_rounds)] {
        let s = outcome.inputs.iter().find(|i| i.id == id).unwrap();
        println!("{id}: {s:?}");
        let extra = if id == "v" { 3 } else { 0 };
        assert_eq!(s.dropped_malformed, 2 * rounds + extra, "{s:?}");
        assert_eq!(s.dropped_payload_type, rounds, "{s:?}");
        assert_eq!(s.dropped_ssrc, rounds, "{s:?}");
        assert!(s.packets > 0 && s.dropped_full == 0, "{s:?}");
    }
    let path = &outcome.files[0].path;
    assert_decodes_cleanly(path);
    let p = probe(path);
    assert_eq!(p.streams.len(), 2, "{p:?}");
    p.assert_duration(4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_is_counted_and_dropped_tracks_webm() {
    garbage(Mode::Tracks, Format::Webm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_is_counted_and_dropped_composite_mp4() {
    garbage(Mode::Composite, Format::Mp4).await;
}
