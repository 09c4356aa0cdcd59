//! The bookkeeping of a chunked upload, I/O-free: which sequences arrived (with each one's
//! length and digest), what a new chunk means (store it, a harmless repeat, a conflict, a gap
//! too far ahead, over the size cap) and whether a `final` chunk completes the upload.
//!
//! Gap policy: a chunk may arrive out of order as long as its sequence is fewer than
//! [`Chunks::window`] ahead of the first missing one; it is held until the gap is filled. A
//! chunk further ahead is refused (the client sends what is missing first). A `final` chunk
//! fixes the last sequence; it completes the upload only when nothing below it is missing,
//! else it is stored and the answer lists the missing sequences (sending them, then the final
//! chunk again, completes it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A SHA-256 digest of a chunk's bytes.
pub type Digest = [u8; 32];

/// One chunk as the shell read it: its place, size and digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub sequence: u64,
    pub len: u64,
    pub digest: Digest,
    pub last: bool,
}

/// What the shell does with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New: write it, then [`Chunks::commit`] it.
    Store,
    /// The same bytes arrived before: nothing to do.
    Repeat,
    /// New, and the upload is complete once it is written and committed.
    StoreAndComplete,
    /// A repeat of the final chunk with nothing missing: commit it (no bytes to write); the
    /// upload is complete.
    Complete,
    /// The sequence arrived before with other bytes.
    Conflict { sequence: u64 },
    /// Too far ahead of the first missing sequence.
    TooFarAhead {
        sequence: u64,
        first_missing: u64,
        window: u64,
    },
    /// A final chunk while these sequences are missing: commit it (writing it first when
    /// `write`), and refuse to complete.
    Missing { missing: Vec<u64>, write: bool },
    /// After the final sequence, or a second, different final sequence.
    AfterFinal { sequence: u64, last: u64 },
    /// The upload would exceed its size cap.
    TooLarge { total: u64, cap: u64 },
}

/// What is known of one received chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub len: u64,
    #[serde(with = "hex_digest")]
    pub digest: Digest,
}

/// The received chunks of one upload and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunks {
    received: BTreeMap<u64, Received>,
    /// The sequence of the chunk sent with `final`, once one was.
    last: Option<u64>,
    /// How far ahead of the first missing sequence a chunk may be.
    pub window: u64,
    /// The most bytes the upload may hold.
    pub cap: u64,
}

impl Chunks {
    pub fn new(window: u64, cap: u64) -> Self {
        Self {
            received: BTreeMap::new(),
            last: None,
            window,
            cap,
        }
    }

    /// Decides what `chunk` means; nothing changes until [`Chunks::commit`].
    pub fn handle(&self, chunk: &Chunk) -> Outcome {
        if let Some(seen) = self.received.get(&chunk.sequence) {
            if seen.digest != chunk.digest || seen.len != chunk.len {
                return Outcome::Conflict {
                    sequence: chunk.sequence,
                };
            }
            if !chunk.last {
                return Outcome::Repeat;
            }
        }
        if let Some(last) = self.last {
            let other_final = chunk.last && chunk.sequence != last;
            if chunk.sequence > last || other_final {
                return Outcome::AfterFinal {
                    sequence: chunk.sequence,
                    last,
                };
            }
        }
        let new = !self.received.contains_key(&chunk.sequence);
        let first_missing = self.first_missing();
        if new && chunk.sequence >= first_missing + self.window {
            return Outcome::TooFarAhead {
                sequence: chunk.sequence,
                first_missing,
                window: self.window,
            };
        }
        let total = self.bytes() + chunk.len;
        if new && total > self.cap {
            return Outcome::TooLarge {
                total,
                cap: self.cap,
            };
        }
        if !chunk.last {
            return Outcome::Store;
        }
        let missing = self.missing_below(chunk.sequence);
        match (new, missing.is_empty()) {
            (true, true) => Outcome::StoreAndComplete,
            (false, true) => Outcome::Complete,
            (write, false) => Outcome::Missing { missing, write },
        }
    }

    /// Records a chunk [`Chunks::handle`] accepted (`Store`, `StoreAndComplete`, `Complete`,
    /// `Missing`), once its bytes are written.
    pub fn commit(&mut self, chunk: &Chunk) {
        self.received.insert(
            chunk.sequence,
            Received {
                len: chunk.len,
                digest: chunk.digest,
            },
        );
        if chunk.last {
            self.last = Some(chunk.sequence);
        }
    }

    /// The lowest sequence not received yet.
    pub fn first_missing(&self) -> u64 {
        let mut next = 0;
        for &s in self.received.keys() {
            if s != next {
                break;
            }
            next += 1;
        }
        next
    }

    /// Sequences below `end` not received.
    fn missing_below(&self, end: u64) -> Vec<u64> {
        (0..end)
            .filter(|s| !self.received.contains_key(s))
            .collect()
    }

    /// Missing sequences: below the final one when it is known, else below the highest one.
    pub fn missing(&self) -> Vec<u64> {
        let end = self
            .last
            .or_else(|| self.received.keys().next_back().copied())
            .unwrap_or(0);
        self.missing_below(end)
    }

    pub fn count(&self) -> usize {
        self.received.len()
    }

    pub fn bytes(&self) -> u64 {
        self.received.values().map(|r| r.len).sum()
    }

    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// The received sequences, in order (the order of the assembled file).
    pub fn sequences(&self) -> impl Iterator<Item = u64> + '_ {
        self.received.keys().copied()
    }
}

mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &super::Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Digest, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a digest is 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(sequence: u64, byte: u8, last: bool) -> Chunk {
        Chunk {
            sequence,
            len: 10,
            digest: [byte; 32],
            last,
        }
    }

    fn stored(chunks: &mut Chunks, c: Chunk) {
        assert!(
            matches!(
                chunks.handle(&c),
                Outcome::Store | Outcome::StoreAndComplete
            ),
            "{:?}",
            chunks.handle(&c)
        );
        chunks.commit(&c);
    }

    #[test]
    fn in_order_chunks_then_final_complete() {
        let mut c = Chunks::new(4, 1000);
        stored(&mut c, chunk(0, 1, false));
        stored(&mut c, chunk(1, 2, false));
        assert_eq!(c.handle(&chunk(2, 3, true)), Outcome::StoreAndComplete);
        c.commit(&chunk(2, 3, true));
        assert_eq!(c.count(), 3);
        assert_eq!(c.bytes(), 30);
        assert_eq!(c.last(), Some(2));
        assert_eq!(c.handle(&chunk(2, 3, true)), Outcome::Complete);
    }

    #[test]
    fn a_repeat_with_the_same_bytes_is_harmless_and_other_bytes_conflict() {
        let mut c = Chunks::new(4, 1000);
        stored(&mut c, chunk(0, 1, false));
        assert_eq!(c.handle(&chunk(0, 1, false)), Outcome::Repeat);
        assert_eq!(
            c.handle(&chunk(0, 9, false)),
            Outcome::Conflict { sequence: 0 }
        );
        let longer = Chunk {
            len: 11,
            ..chunk(0, 1, false)
        };
        assert_eq!(c.handle(&longer), Outcome::Conflict { sequence: 0 });
    }

    #[test]
    fn a_gap_is_held_within_the_window_and_refused_beyond() {
        let mut c = Chunks::new(4, 1000);
        stored(&mut c, chunk(0, 1, false));
        stored(&mut c, chunk(2, 1, false));
        stored(&mut c, chunk(4, 1, false));
        assert_eq!(c.missing(), vec![1, 3]);
        assert_eq!(
            c.handle(&chunk(5, 1, false)),
            Outcome::TooFarAhead {
                sequence: 5,
                first_missing: 1,
                window: 4
            }
        );
        stored(&mut c, chunk(1, 1, false));
        assert_eq!(c.first_missing(), 3);
        stored(&mut c, chunk(5, 1, false));
    }

    #[test]
    fn a_final_with_missing_sequences_lists_them_and_a_later_final_completes() {
        let mut c = Chunks::new(8, 1000);
        stored(&mut c, chunk(0, 1, false));
        stored(&mut c, chunk(3, 1, false));
        let last = chunk(4, 1, true);
        assert_eq!(
            c.handle(&last),
            Outcome::Missing {
                missing: vec![1, 2],
                write: true
            }
        );
        c.commit(&last);
        assert_eq!(c.missing(), vec![1, 2]);
        assert_eq!(
            c.handle(&chunk(5, 1, false)),
            Outcome::AfterFinal {
                sequence: 5,
                last: 4
            }
        );
        assert_eq!(
            c.handle(&chunk(3, 1, true)),
            Outcome::AfterFinal {
                sequence: 3,
                last: 4
            }
        );
        stored(&mut c, chunk(1, 1, false));
        stored(&mut c, chunk(2, 1, false));
        assert_eq!(c.handle(&last), Outcome::Complete);
    }

    #[test]
    fn the_size_cap_counts_every_chunk() {
        let mut c = Chunks::new(8, 25);
        stored(&mut c, chunk(0, 1, false));
        stored(&mut c, chunk(1, 1, false));
        assert_eq!(
            c.handle(&chunk(2, 1, false)),
            Outcome::TooLarge { total: 30, cap: 25 }
        );
        assert_eq!(c.handle(&chunk(1, 1, false)), Outcome::Repeat);
    }

    #[test]
    fn the_bookkeeping_survives_a_json_round_trip() {
        let mut c = Chunks::new(8, 1000);
        stored(&mut c, chunk(0, 7, false));
        let last = chunk(2, 1, true);
        c.commit(&last);
        let back: Chunks = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.handle(&chunk(0, 7, false)), Outcome::Repeat);
        assert_eq!(back.missing(), vec![1]);
    }
}
