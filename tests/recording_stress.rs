//! Start-up stress: 30 composite recordings (webm, mkv, mp4 at low and medium), each started
//! as soon as its two publishers have joined, so every input arrives in the pipeline's first
//! second. None may fail, and every file must have increasing video timestamps, the right
//! codecs and size, and decode cleanly.

mod common;

use common::check::{assert_decodes_cleanly, assert_pts_increasing, probe};
use common::peer::Participant;
use common::recording::Host;
use common::TestServer;
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

const RECORDINGS: usize = 30;
const LENGTH: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_composites_started_with_their_publishers_all_succeed() {
    let server = TestServer::start().await;
    let formats = [
        ("webm", ["video:vp8", "audio:opus"]),
        ("mkv", ["video:h264", "audio:opus"]),
        ("mp4", ["video:h264", "audio:aac"]),
    ];
    let qualities = [("low", (854, 480)), ("medium", (1280, 720))];
    let mut failures = Vec::new();
    for i in 0..RECORDINGS {
        let (format, codecs) = formats[i % formats.len()];
        let (quality, size) = qualities[(i / formats.len()) % qualities.len()];
        let room = format!("stress{i}");
        let _a = Participant::join(&server, &room, "a").await;
        let _b = Participant::join(&server, &room, "b").await;
        let host = Host::new(&server, &room);
        let query = format!("recording_format={format}&quality={quality}&mode=composite");
        let started = host.start(&query).await.expect(StatusCode::CREATED);
        let id = started["recording_id"].as_str().unwrap().to_string();
        tokio::time::sleep(LENGTH).await;
        let stopped = host.act(&id, "stop").await;
        if stopped.body["status"] != "completed" {
            failures.push(format!("{i} ({format} {quality}): {}", stopped.body));
            continue;
        }
        let file = stopped.body["files"][0]["local_path"].as_str().unwrap();
        let file = Path::new(file);
        let p = probe(file);
        p.assert_codecs(&codecs);
        let video = p.stream("video").unwrap();
        assert_eq!((video.width, video.height), size, "{i}: {format} {quality}");
        assert!(
            (p.duration - LENGTH.as_secs_f64()).abs() <= 0.5,
            "{i}: {format} {quality} lasts {} s",
            p.duration
        );
        assert_pts_increasing(file, "video");
        assert_decodes_cleanly(file);
    }
    assert!(failures.is_empty(), "failed recordings: {failures:#?}");
    server.assert_clean_log();
}
