//! Access tokens: HS256 JWTs with `sub`, `name`, `room`, `role`, `exp`.

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Secret used by `serve --dev` and `token --dev`; never use it in production.
pub const DEV_SECRET: &str = "capstan-development-secret-do-not-use-in-production";

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Participant,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Participant => "participant",
            Role::Admin => "admin",
        }
    }
}

/// The claims of a Capstan access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Identity, unique within a room.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// The only room this token may join.
    pub room: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// Whether this token grants `room` (admins may enter any room).
    pub fn enter(&self, room: &str) -> Result<(), AuthError> {
        if self.room != room && self.role != Role::Admin {
            return Err(AuthError::WrongRoom {
                token_room: self.room.clone(),
                room: room.into(),
            });
        }
        Ok(())
    }

    /// Whether this token may control `room`'s recordings: its host, or an admin.
    pub fn hosts(&self, room: &str) -> bool {
        (self.role == Role::Host && self.room == room) || self.role == Role::Admin
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing access token")]
    Missing,
    #[error("access token has expired")]
    Expired,
    /// Forged, malformed, or signed another way; the detail is logged at debug level only, so
    /// that clients learn nothing about the verifier.
    #[error("invalid access token")]
    Invalid,
    #[error("token is for room `{token_room}`, not `{room}`")]
    WrongRoom { token_room: String, room: String },
    #[error("access token has an empty `sub` (identity)")]
    EmptyIdentity,
    #[error("access token claim `{claim}` {problem}")]
    InvalidClaim {
        claim: &'static str,
        problem: String,
    },
}

/// Longest identity (`sub`) and room name, in characters.
pub const MAX_IDENTITY_CHARS: usize = 128;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// What is wrong with a claim, if anything. Identities and rooms end up in URLs, logs, file
/// names and every participant list, so they must be printable, bounded, and name one path
/// segment (`path_segment`: not `.` or `..`, which URL clients resolve away).
fn claim_problem(value: &str, max_chars: usize, path_segment: bool) -> Option<String> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Some(format!(
            "is {chars} characters long; the limit is {max_chars}"
        ));
    }
    if let Some(c) = value.chars().find(|&c| !printable(c)) {
        return Some(format!(
            "contains the unprintable character U+{:04X}",
            u32::from(c)
        ));
    }
    if path_segment && matches!(value, "." | "..") {
        return Some(format!("cannot be `{value}`"));
    }
    None
}

/// Not a control character, nor an invisible one that changes how text around it reads
/// (zero-width, bidirectional overrides and isolates, byte-order mark).
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(secret: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// Mints a token valid for `ttl` from now.
    pub fn mint(
        &self,
        room: &str,
        identity: &str,
        name: &str,
        role: Role,
        ttl: Duration,
    ) -> String {
        self.sign(&Claims {
            sub: identity.into(),
            name: name.into(),
            room: room.into(),
            role,
            exp: (unix_now() + ttl).as_secs(),
        })
    }

    /// Signs arbitrary claims (tests use it for already-expired tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        encode(&Header::default(), claims, &self.encoding).expect("HS256 encoding cannot fail")
    }

    /// Verifies signature and expiry (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => {
                    tracing::debug!("access token refused: {e}");
                    AuthError::Invalid
                }
            })?;
        // Identities key room membership: an empty one would be nobody, and its holder would
        // miss every announcement addressed to the room's participants.
        if claims.sub.trim().is_empty() {
            return Err(AuthError::EmptyIdentity);
        }
        let checks = [
            ("sub", &claims.sub, MAX_IDENTITY_CHARS, true),
            ("room", &claims.room, MAX_IDENTITY_CHARS, true),
            ("name", &claims.name, MAX_NAME_CHARS, false),
        ];
        for (claim, value, max, segment) in checks {
            if let Some(problem) = claim_problem(value, max, segment) {
                return Err(AuthError::InvalidClaim { claim, problem });
            }
        }
        Ok(claims)
    }

    /// Verifies the token and that it grants `room` (admins may enter any room).
    pub fn verify_for_room(&self, token: &str, room: &str) -> Result<Claims, AuthError> {
        let claims = self.verify(token)?;
        claims.enter(room)?;
        Ok(claims)
    }
}

/// Time since the Unix epoch.
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = TokenKeys::new("s");
        let token = keys.mint("r", "alice", "Alice", Role::Host, Duration::from_secs(60));
        let claims = keys.verify_for_room(&token, "r").unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Host));
    }

    #[test]
    fn other_secret_is_invalid() {
        let token = TokenKeys::new("a").mint("r", "i", "n", Role::Host, Duration::from_secs(60));
        assert!(matches!(
            TokenKeys::new("b").verify(&token),
            Err(AuthError::Invalid)
        ));
    }

    #[test]
    fn invalid_tokens_say_nothing_about_the_verifier() {
        let keys = TokenKeys::new("s");
        let claims = Claims {
            sub: "i".into(),
            name: "n".into(),
            room: "r".into(),
            role: Role::Host,
            exp: unix_now().as_secs() + 60,
        };
        let other_algorithm = encode(
            &Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        let forged = TokenKeys::new("t").sign(&claims);
        for token in [other_algorithm, forged, "x.y.z".into(), "garbage".into()] {
            let e = keys.verify(&token).unwrap_err();
            assert_eq!(e, AuthError::Invalid);
            assert_eq!(e.to_string(), "invalid access token");
        }
    }

    #[test]
    fn expired_token_is_expired() {
        let keys = TokenKeys::new("s");
        let token = keys.sign(&Claims {
            sub: "i".into(),
            name: "n".into(),
            room: "r".into(),
            role: Role::Host,
            exp: unix_now().as_secs() - 5,
        });
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn empty_identity_is_refused() {
        let keys = TokenKeys::new("s");
        for sub in ["", "  "] {
            let token = keys.mint("r", sub, "n", Role::Host, Duration::from_secs(60));
            assert_eq!(keys.verify(&token), Err(AuthError::EmptyIdentity));
        }
    }

    #[test]
    fn unprintable_long_or_dot_claims_are_refused() {
        let keys = TokenKeys::new("s");
        let ttl = Duration::from_secs(60);
        let long = "x".repeat(MAX_IDENTITY_CHARS + 1);
        let long_name = "n".repeat(MAX_NAME_CHARS + 1);
        let cases = [
            (keys.mint("r", "a\nb", "n", Role::Host, ttl), "sub"),
            (keys.mint("r", "a\0", "n", Role::Host, ttl), "sub"),
            (keys.mint("r", "\u{202e}x", "n", Role::Host, ttl), "sub"),
            (keys.mint("r", "a\u{200b}", "n", Role::Host, ttl), "sub"),
            (keys.mint("r", &long, "n", Role::Host, ttl), "sub"),
            (keys.mint("r", "..", "n", Role::Host, ttl), "sub"),
            (keys.mint(".", "i", "n", Role::Host, ttl), "room"),
            (keys.mint("r\t", "i", "n", Role::Host, ttl), "room"),
            (keys.mint("r", "i", "a\u{7}", Role::Host, ttl), "name"),
            (keys.mint("r", "i", &long_name, Role::Host, ttl), "name"),
        ];
        for (token, which) in cases {
            match keys.verify(&token) {
                Err(AuthError::InvalidClaim { claim, .. }) => assert_eq!(claim, which),
                other => panic!("{which}: {other:?}"),
            }
        }
        let fine = [
            keys.mint("r", &"é".repeat(MAX_IDENTITY_CHARS), "..", Role::Host, ttl),
            keys.mint(
                "café",
                "a/b c",
                &"名".repeat(MAX_NAME_CHARS),
                Role::Host,
                ttl,
            ),
            keys.mint("r", "...", "Zoë 🎥", Role::Host, ttl),
        ];
        for token in fine {
            assert!(keys.verify(&token).is_ok());
        }
    }

    #[test]
    fn wrong_room_is_refused_except_for_admin() {
        let keys = TokenKeys::new("s");
        let t = keys.mint("a", "i", "n", Role::Participant, Duration::from_secs(60));
        assert!(matches!(
            keys.verify_for_room(&t, "b"),
            Err(AuthError::WrongRoom { .. })
        ));
        let t = keys.mint("a", "i", "n", Role::Admin, Duration::from_secs(60));
        assert!(keys.verify_for_room(&t, "b").is_ok());
    }
}
