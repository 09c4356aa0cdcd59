//! The offset bookkeeping of a tus 1.0 upload, I/O-free: whether a `PATCH` may append (its
//! `Upload-Offset` must be the current offset; a deferred length may be set once), how many
//! bytes it may append, and when the upload is complete.

use serde::{Deserialize, Serialize};

/// One tus upload's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub offset: u64,
    /// `None` while the length is deferred (`Upload-Defer-Length: 1`).
    pub length: Option<u64>,
    /// The most bytes the upload may hold.
    pub cap: u64,
}

/// Why a `PATCH` may not append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Upload-Offset is {given}; the upload is at offset {at}")]
    OffsetMismatch { given: u64, at: u64 },
    #[error("Upload-Length is already {set}; it cannot become {given}")]
    LengthSet { set: u64, given: u64 },
    #[error("Upload-Length {given} is below the {at} bytes already received")]
    LengthBelowOffset { given: u64, at: u64 },
    #[error("Upload-Length {given} exceeds the upload size limit of {cap} bytes")]
    TooLarge { given: u64, cap: u64 },
    #[error("the upload is complete")]
    Complete,
}

impl Progress {
    /// A new upload of `length` bytes (`None`: deferred); refused above `cap`.
    pub fn new(length: Option<u64>, cap: u64) -> Result<Self, Refused> {
        if let Some(given) = length.filter(|&l| l > cap) {
            return Err(Refused::TooLarge { given, cap });
        }
        Ok(Self {
            offset: 0,
            length,
            cap,
        })
    }

    /// Checks a `PATCH` at `offset` that may set the deferred `length`; returns how many bytes
    /// it may append (the rest of the length, or up to the cap while it is deferred). The
    /// length is set on success.
    pub fn patch(&mut self, offset: u64, length: Option<u64>) -> Result<u64, Refused> {
        if offset != self.offset {
            return Err(Refused::OffsetMismatch {
                given: offset,
                at: self.offset,
            });
        }
        if self.is_complete() {
            return Err(Refused::Complete);
        }
        match (self.length, length) {
            (Some(set), Some(given)) if set != given => {
                return Err(Refused::LengthSet { set, given });
            }
            (None, Some(given)) if given < self.offset => {
                return Err(Refused::LengthBelowOffset {
                    given,
                    at: self.offset,
                });
            }
            (None, Some(given)) if given > self.cap => {
                return Err(Refused::TooLarge {
                    given,
                    cap: self.cap,
                });
            }
            (None, Some(given)) => self.length = Some(given),
            _ => {}
        }
        Ok(self.length.unwrap_or(self.cap) - self.offset)
    }

    /// Bytes appended by a `PATCH`.
    pub fn appended(&mut self, n: u64) {
        self.offset += n;
    }

    /// The offset reached the (known) length.
    pub fn is_complete(&self) -> bool {
        self.length == Some(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_append_at_the_current_offset_until_the_length() {
        let mut p = Progress::new(Some(10), 100).unwrap();
        assert_eq!(p.patch(0, None), Ok(10));
        p.appended(4);
        assert_eq!(
            p.patch(0, None),
            Err(Refused::OffsetMismatch { given: 0, at: 4 })
        );
        assert_eq!(p.patch(4, None), Ok(6));
        p.appended(6);
        assert!(p.is_complete());
        assert_eq!(p.patch(10, None), Err(Refused::Complete));
    }

    #[test]
    fn a_deferred_length_is_set_once_by_a_patch() {
        let mut p = Progress::new(None, 100).unwrap();
        assert_eq!(p.patch(0, None), Ok(100));
        p.appended(30);
        assert!(!p.is_complete());
        assert_eq!(
            p.patch(30, Some(20)),
            Err(Refused::LengthBelowOffset { given: 20, at: 30 })
        );
        assert_eq!(
            p.patch(30, Some(200)),
            Err(Refused::TooLarge {
                given: 200,
                cap: 100
            })
        );
        assert_eq!(p.patch(30, Some(50)), Ok(20));
        assert_eq!(
            p.patch(30, Some(60)),
            Err(Refused::LengthSet { set: 50, given: 60 })
        );
        p.appended(20);
        assert!(p.is_complete());
    }

    #[test]
    fn a_deferred_length_equal_to_the_offset_completes_at_once() {
        let mut p = Progress::new(None, 100).unwrap();
        p.appended(30);
        assert_eq!(p.patch(30, Some(30)), Ok(0));
        assert!(p.is_complete());
    }

    #[test]
    fn a_length_over_the_cap_is_refused_at_creation() {
        assert_eq!(
            Progress::new(Some(101), 100),
            Err(Refused::TooLarge {
                given: 101,
                cap: 100
            })
        );
    }
}
