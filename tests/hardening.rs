//! Regression tests for what a probe from outside found: forged identities, path tricks,
//! malformed requests and concurrent transitions each get one precise, consistent answer.

mod common;

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use common::peer::{MediaOptions, Participant};
use common::recording::{call, Host};
use common::TestServer;
use reqwest::{Method, StatusCode};
use std::time::Duration;

const TRACKS: &str = "recording_format=webm&mode=tracks";

fn token(room: &str, identity: &str, role: Role) -> String {
    TokenKeys::new(DEV_SECRET).mint(room, identity, identity, role, Duration::from_secs(600))
}

/// A member who publishes nothing (keeps the room open cheaply).
async fn member(server: &TestServer, room: &str, identity: &str) -> Participant {
    Participant::join_with(server, room, identity, false, MediaOptions::default()).await
}

fn id_of(v: &serde_json::Value) -> String {
    v["recording_id"]
        .as_str()
        .expect("recording_id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_recordings_are_scoped_to_the_tokens_room() {
    let server = TestServer::start().await;
    let _m = member(&server, "a", "m").await;
    let mut boss = Host::new(&server, "a");
    boss.token = token("a", "boss", Role::Host);
    let id = id_of(&boss.start(TRACKS).await.expect(StatusCode::CREATED));
    let list = |t: String| {
        let url = format!("{}/api/webrtc/recordings", server.base);
        async move {
            let listed = call(Method::GET, &url, Some(&t))
                .await
                .expect(StatusCode::OK);
            listed
                .as_array()
                .expect("a list")
                .iter()
                .map(id_of)
                .collect::<Vec<_>>()
        }
    };
    // The same identity in another room is someone else.
    for role in [Role::Participant, Role::Host] {
        assert_eq!(
            list(token("elsewhere", "boss", role)).await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        list(token("a", "boss", Role::Participant)).await,
        vec![id.as_str()]
    );
    assert_eq!(
        list(token("any", "root", Role::Admin)).await,
        vec![id.as_str()]
    );
    let url = format!("{}/api/webrtc/rooms/a/recording/{id}", server.base);
    call(Method::DELETE, &url, Some(&boss.token))
        .await
        .expect(StatusCode::OK);
}
