//! One configuration setting's value: parsers and [`ConfigError`], the reason a value is
//! refused. A leaf module, shared by the server's configuration (`config`), the recording's
//! (`recording::config`) and the limits.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Why the configuration was refused (the process exits with code 2 and this message).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{name}: invalid duration `{value}`: {source}")]
    Duration {
        name: &'static str,
        value: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("{name}: invalid value `{value}`; expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name} must be at least {min}")]
    TooSmall {
        name: &'static str,
        min: &'static str,
    },
    #[error("{names} cannot both be set")]
    Conflict { names: &'static str },
    #[error("{name} is required {when}")]
    Required {
        name: &'static str,
        when: &'static str,
    },
}

impl ConfigError {
    pub fn invalid(name: &'static str, value: impl Into<String>, expected: &'static str) -> Self {
        ConfigError::Invalid {
            name,
            value: value.into(),
            expected,
        }
    }
}

/// A duration (`humantime`: `10s`, `2h`, `500ms`) of at least `min`, or `default`.
pub fn duration(
    text: Option<&str>,
    name: &'static str,
    default: Duration,
    min: (Duration, &'static str),
) -> Result<Duration, ConfigError> {
    let value = match text {
        Some(text) => humantime::parse_duration(text).map_err(|source| ConfigError::Duration {
            name,
            value: text.into(),
            source,
        })?,
        None => default,
    };
    if value < min.0 {
        return Err(ConfigError::TooSmall { name, min: min.1 });
    }
    Ok(value)
}

/// A count of at least 1, or `default`.
pub fn at_least_one(
    value: Option<usize>,
    default: usize,
    name: &'static str,
) -> Result<usize, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::TooSmall { name, min: "1" }),
        n => Ok(n),
    }
}

/// A comma-separated list; empty entries are skipped.
pub fn list<T: FromStr>(
    text: &str,
    name: &'static str,
    expected: &'static str,
) -> Result<Vec<T>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| ConfigError::invalid(name, s, expected))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_default_parse_and_have_a_floor() {
        let min = (Duration::from_millis(1), "1ms");
        assert_eq!(
            duration(None, "D", Duration::from_secs(3), min).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(
            duration(Some("250ms"), "D", Duration::ZERO, min).unwrap(),
            Duration::from_millis(250)
        );
        let bad = duration(Some("soon"), "D", Duration::ZERO, min).unwrap_err();
        assert!(
            bad.to_string().starts_with("D: invalid duration `soon`"),
            "{bad}"
        );
        assert!(std::error::Error::source(&bad).is_some());
        let zero = duration(Some("0s"), "D", Duration::ZERO, min).unwrap_err();
        assert_eq!(zero.to_string(), "D must be at least 1ms");
    }

    #[test]
    fn lists_and_counts() {
        let ips: Vec<std::net::IpAddr> = list("127.0.0.1, ::1,", "L", "IPs").unwrap();
        assert_eq!(ips.len(), 2);
        let bad = list::<std::net::IpAddr>("x", "L", "IPs").unwrap_err();
        assert_eq!(bad.to_string(), "L: invalid value `x`; expected IPs");
        assert_eq!(at_least_one(None, 3, "N").unwrap(), 3);
        assert_eq!(
            at_least_one(Some(0), 3, "N").unwrap_err().to_string(),
            "N must be at least 1"
        );
    }
}
