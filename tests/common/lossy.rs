//! Publishers and viewers behind the impaired-link relay (`impair.rs`), and what a recording
//! of them holds.

use super::check::{assert_decodes_cleanly, decoded_frame_times};
use super::impair::{
    candidates_via, media_address, without_candidates, ImpairedRelay, Link, LinkConfig,
};
use super::media::Pipeline;
use super::peer::{client_factory, publish_test_media, MediaOptions};
use super::TestServer;
use capstan::auth::Role;
use capstan::sfu::peer::Peer;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The test publishers' video frame rate.
pub const FPS: f64 = 15.0;

/// One way of a 50 ms round trip.
pub const ONE_WAY: Duration = Duration::from_millis(25);

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
}

/// Checks that `file` decodes without an error and measures its frames.
pub fn content(file: &Path) -> Content {
    assert_decodes_cleanly(file);
    let video = decoded_frame_times(file, "video");
    let audio = decoded_frame_times(file, "audio");
    assert!(
        video.len() > 1 && audio.len() > 1,
        "{}: no media",
        file.display()
    );
    let span = video.last().unwrap().0 - video.first().unwrap().0;
    Content {
        frames: video.len(),
        expected: (span * FPS).round() as usize + 1,
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
