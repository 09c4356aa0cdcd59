//! Property-based fuzzing of what the server parses from clients, against a real server:
//! access tokens, recording API query strings, and munged SDP offers over WHIP (parsed by
//! webrtc-rs behind the server's own checks). The property: no panic, and a precise 4xx
//! answer or success; never a 5xx from client input, and the server log stays clean.
//!
//! CI runs a bounded number of cases; a longer local run:
//! `PROPTEST_CASES=5000 cargo test --test fuzz`.

mod common;
#[path = "../signaling/tests/support/munge.rs"]
mod munge;

use capstan::auth::{AuthError, Role, TokenKeys};
use common::TestServer;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;

/// `PROPTEST_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// `n` values of `strategy` (generated up front, so the cases can run on the test's runtime).
fn sample<S: Strategy>(strategy: S, n: u32) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_text_is_never_a_token(text in "\\PC{0,300}") {
        let keys = TokenKeys::new("fuzz");
        prop_assert!(keys.verify(&text).is_err());
    }

    #[test]
    fn signed_tokens_with_arbitrary_claims_verify_only_when_well_formed(
        claims in prop::collection::btree_map(
            prop_oneof![
                Just("sub".to_string()), Just("name".to_string()), Just("room".to_string()),
                Just("role".to_string()), Just("exp".to_string()), "[a-z]{1,6}",
            ],
            prop_oneof![
                "\\PC{0,16}".prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::from(u64::MAX)),
                Just(serde_json::Value::from("host")),
                Just(serde_json::Value::Null),
            ],
            0..7,
        )
    ) {
        let keys = TokenKeys::new("fuzz");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"fuzz"),
        )
        .unwrap();
        match keys.verify(&token) {
            Ok(verified) => {
                prop_assert!(!verified.sub.trim().is_empty());
                prop_assert_eq!(Some(&serde_json::Value::from(verified.sub)), claims.get("sub"));
            }
            Err(e) => prop_assert!(matches!(
                e,
                AuthError::Invalid
                    | AuthError::Expired
                    | AuthError::EmptyIdentity
                    | AuthError::InvalidClaim { .. }
            ), "{e:?}"),
        }
    }
}

/// A query string of recording parameters: known keys with near-valid values, arbitrary keys,
/// repeated keys and stray encoding.
fn start_query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("recording_format".to_string()),
        Just("quality".to_string()),
        Just("mode".to_string()),
        Just("layout".to_string()),
        "[a-z_%]{0,12}",
    ];
    let value = prop_oneof![
        Just("webm".to_string()),
        Just("mp4".to_string()),
        Just("tracks".to_string()),
        Just("ultra".to_string()),
        Just("speaker".to_string()),
        "[ -~]{0,16}",
        "%[0-9A-Fa-f]{0,2}[a-z]{0,3}",
    ];
    prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(['#', ' '], "+")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_query_strings_get_a_precise_answer() {
    // Hundreds of requests a second from one token: the rate limits are not under test.
    let server = TestServer::start_with(&[
        ("CAPSTAN_RATE_LIMIT_IP", "off"),
        ("CAPSTAN_RATE_LIMIT_TOKEN", "off"),
    ])
    .await;
    let host = server.token("nobody-here", "h", Role::Host);
    let client = reqwest::Client::new();
    for query in sample(start_query(), cases(200)) {
        let url = format!(
            "{}/api/webrtc/rooms/nobody-here/recording/start?{query}",
            server.base
        );
        let response = client.post(&url).bearer_auth(&host).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        // Valid parameters reach the room check (nobody is in the room); the rest are 400.
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "?{query}: {status} {body}"
        );
        for list in [
            "/api/webrtc/recordings",
            "/api/webrtc/rooms/nobody-here/recordings",
        ] {
            let url = format!("{}{list}?{query}", server.base);
            let status = client
                .get(&url)
                .bearer_auth(&host)
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{list}?{query}: {status}"
            );
        }
    }
    server.assert_clean_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn munged_offers_over_whip_are_answered_or_refused_precisely() {
    let server = TestServer::start_with(&[
        ("CAPSTAN_RATE_LIMIT_IP", "off"),
        ("CAPSTAN_RATE_LIMIT_TOKEN", "off"),
    ])
    .await;
    let edits = prop::collection::vec(munge::edit(), 1..6);
    let (mut answered, mut refused) = (0, 0);
    for (i, edits) in sample(edits, cases(60)).into_iter().enumerate() {
        let sdp = munge::munge(&edits);
        let identity = format!("fuzz-{i}");
        let token = server.token("fuzz", &identity, Role::Participant);
        let reply = server
            .post_sdp("/whip/fuzz", Some(&token), "application/sdp", sdp.clone())
            .await;
        match reply.status {
            StatusCode::CREATED => {
                answered += 1;
                let location = reply.location.expect("a 201 names its resource");
                let deleted = reqwest::Client::new()
                    .delete(format!("{}{location}", server.base))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert!(deleted.status().is_success(), "DELETE {location}");
            }
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                refused += 1;
                let body: serde_json::Value = serde_json::from_str(&reply.body)
                    .unwrap_or_else(|e| panic!("JSON error body ({e}): {}", reply.body));
                assert!(body["error"].is_string(), "{body}");
            }
            other => panic!("{other} for\n{sdp}\n{}", reply.body),
        }
    }
    println!("munged offers: {answered} answered, {refused} refused");
    assert!(refused > 0, "the munging refuses some offers");
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.assert_clean_log();
}
