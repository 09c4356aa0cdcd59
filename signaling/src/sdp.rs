//! Small, I/O-free checks on SDP text: what the server needs before handing it to webrtc-rs.

/// RFC 6464 client-to-mixer audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Most media sections (m-lines) an offer may have: more than a participant can publish.
pub const MAX_MEDIA_SECTIONS: usize = 16;

/// Which way media goes on the connection an offer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferRoute {
    /// The client sends (WHIP, the WebSocket publish connection): no `recvonly` section.
    Publish,
    /// The client receives (WHEP): no `sendonly` section.
    Subscribe,
}

/// Why an offer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferProblem {
    /// Not SDP at all (no `v=` line, no media section, ...), too many sections, or a `mid`
    /// used twice.
    Malformed(String),
    /// A media section whose direction does not fit the route.
    WrongDirection(String),
    /// A media section offers no codec this server forwards (VP8 video, Opus audio).
    UnsupportedCodecs(String),
}

impl std::fmt::Display for OfferProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfferProblem::Malformed(m)
            | OfferProblem::WrongDirection(m)
            | OfferProblem::UnsupportedCodecs(m) => f.write_str(m),
        }
    }
}

/// Checks that `sdp` is an SDP body with at most [`MAX_MEDIA_SECTIONS`] sections, each `mid`
/// once, whose audio and video sections go the `route`'s way and offer Opus and VP8. Other
/// sections (e.g. `application`) are counted but not checked further; at least one audio or
/// video section is needed.
pub fn check_media_offer(sdp: &str, route: OfferRoute) -> Result<(), OfferProblem> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(OfferProblem::Malformed("SDP must start with `v=0`".into()));
    }
    let sections = media_sections(sdp);
    if sections.len() > MAX_MEDIA_SECTIONS {
        return Err(OfferProblem::Malformed(format!(
            "SDP has {} m-lines; the limit is {MAX_MEDIA_SECTIONS}",
            sections.len()
        )));
    }
    let mut mids = std::collections::HashSet::new();
    if let Some(mid) = sections
        .iter()
        .filter_map(|s| s.mid.as_deref())
        .find(|mid| !mids.insert(*mid))
    {
        return Err(OfferProblem::Malformed(format!(
            "mid `{mid}` names two media sections"
        )));
    }
    let session_direction = session_direction(sdp);
    let refused = match route {
        OfferRoute::Publish => "recvonly",
        OfferRoute::Subscribe => "sendonly",
    };
    let media: Vec<_> = sections
        .iter()
        .filter(|s| s.kind == "audio" || s.kind == "video")
        .collect();
    if media.is_empty() {
        return Err(OfferProblem::Malformed(
            "SDP has no audio or video media section".into(),
        ));
    }
    for (i, section) in media.iter().enumerate() {
        let direction = section
            .direction
            .or(session_direction)
            .unwrap_or("sendrecv");
        if direction == refused {
            return Err(OfferProblem::WrongDirection(format!(
                "{} section {i} is {refused}; a {} offer cannot be",
                section.kind,
                match route {
                    OfferRoute::Publish => "publish (WHIP)",
                    OfferRoute::Subscribe => "subscribe (WHEP)",
                }
            )));
        }
    }
    for section in media {
        let wanted = if section.kind == "audio" {
            "opus"
        } else {
            "VP8"
        };
        if !section
            .encodings
            .iter()
            .any(|e| e.eq_ignore_ascii_case(wanted))
        {
            return Err(OfferProblem::UnsupportedCodecs(format!(
                "{} section offers {:?}; this server needs {wanted}",
                section.kind, section.encodings
            )));
        }
    }
    Ok(())
}

/// The id an `a=extmap` line gives `uri`, if any (BUNDLE keeps ids the same across sections).
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, ext_uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse().ok()?;
        (ext_uri.split_whitespace().next()? == uri).then_some(id)
    })
}

/// Rewrites the connection address of every `a=candidate` line to `ip` (1:1 NAT: the host's
/// public address forwards to the bound one), dropping lines that become duplicates.
pub fn announce_address(sdp: &str, ip: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") else {
            out.push_str(line);
            continue;
        };
        let mut fields: Vec<&str> = candidate.split(' ').collect();
        if fields.len() > 5 {
            fields[4] = ip;
        }
        let rewritten = format!("a=candidate:{}", fields.join(" "));
        if seen.insert(rewritten.clone()) {
            out.push_str(&rewritten);
            out.push_str(&line[line.trim_end().len()..]);
        }
    }
    out
}

struct MediaSection {
    kind: String,
    encodings: Vec<String>,
    mid: Option<String>,
    direction: Option<&'static str>,
}

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// The direction attribute of a line (`a=sendonly`, ...), if it is one.
fn direction(line: &str) -> Option<&'static str> {
    let attribute = line.strip_prefix("a=")?;
    DIRECTIONS.into_iter().find(|d| *d == attribute)
}

/// The direction given at session level (before the first m-line), if any.
fn session_direction(sdp: &str) -> Option<&'static str> {
    sdp.lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("m="))
        .find_map(direction)
}

fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut sections: Vec<MediaSection> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let kind = m.split_whitespace().next().unwrap_or_default().to_string();
            sections.push(MediaSection {
                kind,
                encodings: Vec::new(),
                mid: None,
                direction: None,
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            section.mid = Some(mid.to_string());
        } else if let Some(d) = direction(line) {
            section.direction = Some(d);
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            if let Some(name) = rtpmap
                .split_whitespace()
                .nth(1)
                .and_then(|e| e.split('/').next())
            {
                section.encodings.push(name.to_string());
            }
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:98 VP9/90000\r\n";

    use OfferRoute::{Publish, Subscribe};

    #[test]
    fn accepts_vp8_and_opus() {
        assert_eq!(check_media_offer(CHROME_LIKE, Publish), Ok(()));
        assert_eq!(check_media_offer(CHROME_LIKE, Subscribe), Ok(()));
    }

    fn audio_sections(n: usize, direction: &str) -> String {
        let mut sdp = String::from("v=0\r\ns=-\r\nt=0 0\r\n");
        for i in 0..n {
            sdp += &format!(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\na={direction}\r\n\
                 a=rtpmap:111 opus/48000/2\r\n"
            );
        }
        sdp
    }

    #[test]
    fn at_most_sixteen_sections() {
        let sixteen = audio_sections(MAX_MEDIA_SECTIONS, "sendonly");
        assert_eq!(check_media_offer(&sixteen, Publish), Ok(()));
        let seventeen = audio_sections(MAX_MEDIA_SECTIONS + 1, "sendonly");
        assert!(matches!(
            check_media_offer(&seventeen, Publish),
            Err(OfferProblem::Malformed(m)) if m.contains("17 m-lines")
        ));
    }

    #[test]
    fn each_mid_once() {
        let sdp = audio_sections(2, "sendonly").replace("a=mid:1", "a=mid:0");
        assert!(matches!(
            check_media_offer(&sdp, Publish),
            Err(OfferProblem::Malformed(m)) if m.contains("mid `0`")
        ));
    }

    #[test]
    fn directions_fit_the_route() {
        let recvonly = audio_sections(2, "recvonly");
        assert!(matches!(
            check_media_offer(&recvonly, Publish),
            Err(OfferProblem::WrongDirection(m)) if m.contains("recvonly")
        ));
        assert_eq!(check_media_offer(&recvonly, Subscribe), Ok(()));
        let sendonly = audio_sections(1, "sendonly");
        assert!(matches!(
            check_media_offer(&sendonly, Subscribe),
            Err(OfferProblem::WrongDirection(m)) if m.contains("sendonly")
        ));
        for fine in ["sendrecv", "inactive"] {
            let sdp = audio_sections(1, fine);
            assert_eq!(check_media_offer(&sdp, Publish), Ok(()));
            assert_eq!(check_media_offer(&sdp, Subscribe), Ok(()));
        }
        // A session-level direction holds for sections that give none.
        let session =
            "v=0\r\ns=-\r\na=recvonly\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(check_media_offer(session, Publish).is_err());
        assert_eq!(check_media_offer(session, Subscribe), Ok(()));
    }

    #[test]
    fn rejects_video_without_vp8() {
        let sdp = CHROME_LIKE.replace("a=rtpmap:96 VP8/90000\r\n", "");
        assert!(matches!(
            check_media_offer(&sdp, Publish),
            Err(OfferProblem::UnsupportedCodecs(m)) if m.contains("VP8")
        ));
    }

    #[test]
    fn rejects_garbage_and_sectionless_sdp() {
        assert!(matches!(
            check_media_offer("hello", Publish),
            Err(OfferProblem::Malformed(_))
        ));
        assert!(matches!(
            check_media_offer("v=0\r\ns=-\r\n", Publish),
            Err(OfferProblem::Malformed(_))
        ));
    }

    #[test]
    fn announces_the_public_address_in_candidates() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
            a=candidate:2 1 udp 2130706431 10.0.0.2 50000 typ host\r\na=end-of-candidates\r\n";
        let out = announce_address(sdp, "203.0.113.7");
        assert_eq!(
            out,
            "v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host\r\n\
            a=candidate:2 1 udp 2130706431 203.0.113.7 50000 typ host\r\na=end-of-candidates\r\n"
        );
        let same = "a=candidate:1 1 udp 1 127.0.0.1 5 typ host\r\na=candidate:1 1 udp 1 10.0.0.2 5 typ host\r\n";
        assert_eq!(
            announce_address(same, "203.0.113.7")
                .matches("a=candidate")
                .count(),
            1
        );
    }

    #[test]
    fn finds_audio_level_extension_id() {
        assert_eq!(extmap_id(CHROME_LIKE, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(CHROME_LIKE, "urn:x"), None);
        assert_eq!(extmap_id("a=extmap:7/recvonly urn:x\r\n", "urn:x"), Some(7));
    }
}
