//! SDP munging for the fuzz tests: a browser-shaped offer and random edits of its lines.
//! Shared by `signaling/tests/fuzz.rs` and the server's `tests/fuzz.rs`.

use proptest::prelude::*;

/// An offer shaped like Chromium's for one microphone and one camera (BUNDLE, rtcp-mux, the
/// audio level extension, VP8/VP9/H264 and RTX), the starting point of the munging.
pub const CHROMIUM_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:yx7Q\r
a=ice-pwd:GbUe0Gz4s0A7l3Gq+zD3Pj4k\r
a=ice-options:trickle\r
a=fingerprint:sha-256 4F:2C:6A:0B:9C:1E:8D:77:21:3A:55:90:AB:CD:EF:01:23:45:67:89:9A:BC:DE:F0:11:22:33:44:55:66:77:88\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendonly\r
a=msid:stream audio0\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:1001 cname:abc\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:yx7Q\r
a=ice-pwd:GbUe0Gz4s0A7l3Gq+zD3Pj4k\r
a=ice-options:trickle\r
a=fingerprint:sha-256 4F:2C:6A:0B:9C:1E:8D:77:21:3A:55:90:AB:CD:EF:01:23:45:67:89:9A:BC:DE:F0:11:22:33:44:55:66:77:88\r
a=setup:actpass\r
a=mid:1\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendonly\r
a=msid:stream video0\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:98 VP9/90000\r
a=fmtp:98 profile-id=0\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=rtpmap:102 H264/90000\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=ssrc-group:FID 2001 2002\r
a=ssrc:2001 cname:abc\r
a=ssrc:2002 cname:abc\r
";

/// One edit of an SDP's lines.
#[derive(Debug, Clone)]
pub enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Replace(usize, String),
    Truncate(usize, usize),
    Insert(usize, String),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let line = prop_oneof![
        "[a-z]=[ -~]{0,40}",
        "m=(audio|video|application) [0-9]{1,5} [A-Z/]{3,20}( [0-9]{1,3}){0,4}",
        "a=rtpmap:[0-9]{1,3} (VP8|opus|H264|rtx|red)/[0-9]{1,6}(/[0-9])?",
        "a=(sendonly|recvonly|sendrecv|inactive|mid:[0-9a-z]{0,3}|rid:[a-z] send)",
        "\\PC{0,30}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (any::<usize>(), line.clone()).prop_map(|(i, l)| Edit::Replace(i, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Truncate(i, n)),
        (any::<usize>(), line).prop_map(|(i, l)| Edit::Insert(i, l)),
    ]
}

/// The Chromium offer with `edits` applied to its lines.
pub fn munge(edits: &[Edit]) -> String {
    let mut lines: Vec<String> = CHROMIUM_OFFER.lines().map(str::to_owned).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Replace(i, l) if !lines.is_empty() => lines[i % n] = l.clone(),
            Edit::Truncate(i, len) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                let cut = (0..=len % (line.len() + 1))
                    .rev()
                    .find(|c| line.is_char_boundary(*c))
                    .unwrap_or(0);
                line.truncate(cut);
            }
            Edit::Insert(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
            _ => {}
        }
    }
    lines.join("\r\n")
}
