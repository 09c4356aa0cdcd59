//! SDP munging for the fuzz tests: a browser-shaped offer and random edits of its lines.
//! Shared by `signaling/tests/fuzz.rs` and the server's `tests/fuzz.rs`.

use proptest::prelude::*;

/// An offer shaped like Chromium's for one microphone and one camera (BUNDLE, rtcp-mux, the
/// audio level extension, VP8/VP9/H264 and RTX), the starting point of the munging.
pub const CHROMIUM_OFFER: &str = include_str!("../../../fixtures/offer-browser.sdp");
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
