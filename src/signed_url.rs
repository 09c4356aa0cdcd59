//! Signed download URLs: an HMAC-SHA256 over recording id, file index and expiry, so a link
//! can be followed (a browser download, `curl`) without an access token in it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// Why a download URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("download URL has expired; ask for a new one")]
    Expired,
    #[error("download URL signature is missing or not valid for this recording and file")]
    BadSignature,
    #[error(
        "access tokens are not accepted in download URLs; send `Authorization: Bearer` or use \
         a signed URL from `POST /api/webrtc/recordings/{{id}}/download-url`"
    )]
    TokenInUrl,
}

/// The query parameters that authorize one download: `expires` (Unix seconds) and `sig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub expires: u64,
    pub sig: String,
}

/// Signs and verifies download URLs. The key is derived from the token secret, so a download
/// signature is never a valid MAC of anything else made with that secret.
#[derive(Clone)]
pub struct DownloadSigner {
    key: [u8; 32],
    ttl: Duration,
}

impl DownloadSigner {
    /// A signer keyed from `secret` whose signatures are valid for `ttl` (whole seconds).
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(b"capstan download url");
        Self {
            key: mac.finalize().into_bytes().into(),
            ttl,
        }
    }

    /// Signs file `file` of recording `id`; valid from `now` (Unix seconds) for the TTL.
    pub fn sign(&self, id: &str, file: usize, now: u64) -> Signature {
        let expires = now + self.ttl.as_secs();
        let sig = hex::encode(self.mac(id, file, expires).finalize().into_bytes());
        Signature { expires, sig }
    }

    /// Accepts `sig` only if it was made for exactly `id`, `file` and `expires`, and `now`
    /// (Unix seconds) is before `expires`. The MAC is compared in constant time.
    pub fn verify(
        &self,
        id: &str,
        file: usize,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), UrlError> {
        let sig = hex::decode(sig).map_err(|_| UrlError::BadSignature)?;
        self.mac(id, file, expires)
            .verify_slice(&sig)
            .map_err(|_| UrlError::BadSignature)?;
        if now >= expires {
            return Err(UrlError::Expired);
        }
        Ok(())
    }

    fn mac(&self, id: &str, file: usize, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        // The id is length-prefixed and the numbers fixed-width: no two inputs share a message.
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id.as_bytes());
        mac.update(&(file as u64).to_be_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn signer() -> DownloadSigner {
        DownloadSigner::new("s", Duration::from_secs(300))
    }

    #[test]
    fn round_trip() {
        let s = signer().sign("rec", 1, NOW);
        assert_eq!(s.expires, NOW + 300);
        assert_eq!(s.sig.len(), 64);
        assert_eq!(signer().verify("rec", 1, s.expires, &s.sig, NOW), Ok(()));
    }

    #[test]
    fn valid_until_the_second_it_expires() {
        let s = signer().sign("rec", 0, NOW);
        let at = |now| signer().verify("rec", 0, s.expires, &s.sig, now);
        assert_eq!(at(s.expires - 1), Ok(()));
        assert_eq!(at(s.expires), Err(UrlError::Expired));
        assert_eq!(at(s.expires + 1), Err(UrlError::Expired));
    }

    #[test]
    fn bound_to_id_file_expiry_and_secret() {
        let s = signer().sign("rec", 0, NOW);
        let bad = Err(UrlError::BadSignature);
        assert_eq!(signer().verify("other", 0, s.expires, &s.sig, NOW), bad);
        assert_eq!(signer().verify("rec", 1, s.expires, &s.sig, NOW), bad);
        assert_eq!(signer().verify("rec", 0, s.expires + 60, &s.sig, NOW), bad);
        let other_secret = DownloadSigner::new("t", Duration::from_secs(300));
        assert_eq!(other_secret.verify("rec", 0, s.expires, &s.sig, NOW), bad);
    }

    #[test]
    fn tampered_or_malformed_signatures_are_refused() {
        let s = signer().sign("rec", 0, NOW);
        let mut flipped = s.sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for sig in [flipped.as_str(), &s.sig[..62], "", "not hex"] {
            assert_eq!(
                signer().verify("rec", 0, s.expires, sig, NOW),
                Err(UrlError::BadSignature),
                "{sig}"
            );
        }
    }

    #[test]
    fn an_expired_tampered_url_is_a_bad_signature() {
        let s = signer().sign("rec", 0, NOW);
        assert_eq!(
            signer().verify("rec", 1, s.expires, &s.sig, s.expires + 10),
            Err(UrlError::BadSignature)
        );
    }
}
