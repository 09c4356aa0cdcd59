//! Publishers and viewers behind the impaired-link relay (`impair.rs`), and what a recording
//! of them holds.

use super::check::{assert_decodes_cleanly, decoded_frame_times};
use super::impair::{
    candidates_via, media_address, without_candidates, GilbertElliott, ImpairedRelay, Link,
    LinkConfig,
};
use super::media::Pipeline;
use super::peer::{client_factory, publish_test_media, MediaOptions};
use super::{wait_for, TestServer};
use capstan::auth::Role;
use capstan::sfu::peer::Peer;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The test publishers' video frame rate.
const FPS: f64 = 15.0;

/// One way of a 50 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(25);

/// A link that only delays by [`ONE_WAY`].
pub fn clean() -> LinkConfig {
    LinkConfig {
        delay: ONE_WAY,
        ..Default::default()
    }
}

/// [`clean`] with `loss` random loss.
pub fn random_loss(loss: f64) -> LinkConfig {
    LinkConfig { loss, ..clean() }
}

/// A WHIP publisher of test media whose media goes through a relay.
pub struct RelayedPublisher {
    pub peer: Peer,
    pub relay: ImpairedRelay,
    _media: Vec<(Pipeline, JoinHandle<()>)>,
}

/// Publishes test media over WHIP as `identity` in `room`, its media through a relay with
/// `uplink` (towards the server) and `downlink`, seeded with `seed` and `seed + 1`.
pub async fn publish_through(
    server: &TestServer,
    room: &str,
    identity: &str,
    (uplink, downlink): (LinkConfig, LinkConfig),
    seed: u64,
    options: MediaOptions,
) -> RelayedPublisher {
    let token = server.token(room, identity, Role::Participant);
    let (peer, _events) = client_factory().create().await.unwrap();
    let media = publish_test_media(&peer, identity, options).await;
    let offer = without_candidates(&peer.offer().await.unwrap());
    let reply = server
        .post_sdp(
            &format!("/whip/{room}"),
            Some(&token),
            "application/sdp",
            offer,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let relay = ImpairedRelay::start(
        media_address(&reply.body),
        Link::new(uplink, seed),
        Link::new(downlink, seed + 1),
    )
    .await;
    peer.accept_answer(candidates_via(&reply.body, relay.addr))
        .await
        .unwrap();
    RelayedPublisher {
        peer,
        relay,
        _media: media,
    }
}

/// What a recorded file holds, measured on its decoded frames.
#[derive(Debug)]
pub struct Content {
    /// Decoded video frames.
    pub frames: usize,
    /// Decoded audio frames.
    pub audio_frames: usize,
    /// Frames the publisher sent between the first and the last decoded one.
    pub expected: usize,
    /// Longest time between two decoded video frames, s.
    pub longest_freeze: f64,
    /// Longest stretch of time no decoded audio covers, s.
    pub longest_audio_gap: f64,
}

impl Content {
    /// Decoded frames per frame sent.
    pub fn completeness(&self) -> f64 {
        self.frames as f64 / self.expected as f64
    }

    /// Measures the decoded frames of `file` (nothing decoded measures zero).
    pub fn of(file: &Path) -> Self {
        let video = decoded_frame_times(file, "video");
        let audio = decoded_frame_times(file, "audio");
        let span = video.last().zip(video.first()).map(|(l, f)| l.0 - f.0);
        Content {
            frames: video.len(),
            audio_frames: audio.len(),
            expected: span.map_or(0, |span| (span * FPS).round() as usize + 1),
            longest_freeze: video
                .windows(2)
                .map(|w| w[1].0 - w[0].0)
                .fold(0.0, f64::max),
            longest_audio_gap: audio
                .windows(2)
                .map(|w| w[1].0 - (w[0].0 + w[0].1))
                .fold(0.0, f64::max),
        }
    }
}

/// Checks that `file` decodes without an error and holds video and audio, and measures it.
pub fn content(file: &Path) -> Content {
    assert_decodes_cleanly(file);
    let content = Content::of(file);
    assert!(
        content.frames > 1 && content.audio_frames > 1,
        "{}: no media",
        file.display()
    );
    content
}

/// Waits until the server publishes `tracks` tracks.
pub async fn published(server: &TestServer, tracks: usize) {
    wait_for("the tracks published", Duration::from_secs(30), || async {
        server.metric("capstan_published_tracks").await >= tracks as f64
    })
    .await;
}

/// 2 % loss in bursts: the bad state holds 1.96 % of the time and lasts 4 packets on average.
pub fn burst_loss() -> LinkConfig {
    LinkConfig {
        burst: Some(GilbertElliott {
            p_good_to_bad: 0.005,
            p_bad_to_good: 0.25,
            loss_in_bad: 1.0,
        }),
        ..clean()
    }
}

/// Packets lost after recovery by the inputs of one pipeline view ([`pipeline_of`]), of media
/// `kind` (`"audio"`, `"video"`) or all.
pub fn packets_lost(pipeline: &Value, kind: Option<&str>) -> u64 {
    pipeline["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|input| kind.is_none_or(|kind| input["kind"] == kind))
        .map(|input| input["packets_lost"].as_u64().unwrap())
        .sum()
}

/// The pipelines view of one recording.
pub async fn pipeline_of(server: &TestServer, id: &str) -> Value {
    let pipelines = super::recording::call(
        reqwest::Method::GET,
        &format!("{}/api/webrtc/pipelines", server.base),
        Some(&server.token("any", "ops", Role::Admin)),
    )
    .await
    .expect(StatusCode::OK);
    pipelines["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["recording_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no pipeline {id}: {pipelines}"))
}
