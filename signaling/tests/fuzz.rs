//! Property-based fuzzing of what the signaling crate parses from clients: WebSocket messages
//! and SDP offers. The property: no panic, and either a value or a precise error.
//!
//! CI runs proptest's default 256 cases per property; a longer local run:
//! `PROPTEST_CASES=100000 cargo test -p signaling --test fuzz`.

mod support;

use proptest::prelude::*;
use signaling::protocol::{decode_client_message, ClientMessage, ErrorCode, MAX_MESSAGE_BYTES};
use signaling::sdp::{
    announce_address, check_media_offer, extmap_id, OfferProblem, OfferRoute, AUDIO_LEVEL_URI,
};
use support::munge::{edit, munge, CHROMIUM_OFFER};

/// A JSON value of bounded depth and size.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message with a real or near-real `type` and arbitrary fields.
fn message_like() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("publish_offer".to_string()),
        Just("subscribe_answer".to_string()),
        Just("candidate".to_string()),
        Just("mute".to_string()),
        Just("leave".to_string()),
        "[a-z_]{0,16}",
    ];
    let fields = prop::collection::btree_map(
        prop_oneof![
            Just("sdp".to_string()),
            Just("pc".to_string()),
            Just("candidate".to_string()),
            Just("kind".to_string()),
            Just("muted".to_string()),
            "[a-zA-Z]{1,8}",
        ],
        json(),
        0..4,
    );
    (kind, fields).prop_map(|(kind, fields)| {
        let mut object: serde_json::Map<_, _> = fields.into_iter().collect();
        object.insert("type".into(), kind.into());
        serde_json::Value::Object(object).to_string()
    })
}

proptest! {
    #[test]
    fn any_text_frame_decodes_or_gets_a_precise_code(text in "\\PC{0,200}") {
        if let Err(e) = decode_client_message(&text) {
            prop_assert!(matches!(
                e.code,
                ErrorCode::MalformedMessage | ErrorCode::UnknownMessageType
            ), "{e:?}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn message_shaped_json_decodes_or_gets_a_precise_code(text in message_like()) {
        match decode_client_message(&text) {
            Ok(message) => {
                // What decodes re-encodes to an equal message.
                let again = serde_json::to_string(&message).unwrap();
                prop_assert_eq!(decode_client_message(&again).unwrap(), message);
            }
            Err(e) => prop_assert!(matches!(
                e.code,
                ErrorCode::MalformedMessage | ErrorCode::UnknownMessageType
            ), "{:?}", e),
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing(extra in 1usize..4096) {
        let text = format!(r#"{{"type":"leave","pad":"{}"}}"#, "x".repeat(MAX_MESSAGE_BYTES + extra));
        prop_assert_eq!(decode_client_message(&text).unwrap_err().code, ErrorCode::MessageTooLarge);
    }

    #[test]
    fn munged_offers_are_accepted_or_refused_with_a_reason(edits in prop::collection::vec(edit(), 1..8)) {
        let sdp = munge(&edits);
        for route in [OfferRoute::Publish, OfferRoute::Subscribe] {
            match check_media_offer(&sdp, route) {
                Ok(()) => prop_assert!(sdp.contains("m=audio") || sdp.contains("m=video")),
                Err(
                    OfferProblem::Malformed(m)
                    | OfferProblem::WrongDirection(m)
                    | OfferProblem::UnsupportedCodecs(m),
                ) => prop_assert!(!m.is_empty()),
            }
        }
        let _ = extmap_id(&sdp, AUDIO_LEVEL_URI);
        let announced = announce_address(&sdp, "203.0.113.7");
        prop_assert!(announced.lines().count() <= sdp.lines().count());
    }

    #[test]
    fn arbitrary_text_is_never_a_valid_offer_unless_it_is_sdp(text in "\\PC{0,300}") {
        if check_media_offer(&text, OfferRoute::Publish).is_ok() {
            prop_assert!(text.trim_start().starts_with("v=0"));
        }
    }
}

#[test]
fn the_unmunged_offer_is_accepted() {
    check_media_offer(CHROMIUM_OFFER, OfferRoute::Publish).unwrap();
    assert_eq!(extmap_id(CHROMIUM_OFFER, AUDIO_LEVEL_URI), Some(1));
    assert!(matches!(
        decode_client_message(r#"{"type":"leave"}"#),
        Ok(ClientMessage::Leave)
    ));
}
