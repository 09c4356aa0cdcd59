//! Server configuration: defaults < `capstan.toml` < environment < command-line flags.

use crate::recording::config::{RecordingArgs, RecordingConfig};
pub use crate::sfu::RtcConfig;
use clap::Args;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `capstan serve` flags; each also reads its environment variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Development mode: fixed token secret and `GET /api/dev/token`.
    #[arg(long, env = "CAPSTAN_DEV")]
    pub dev: bool,
    /// Call UI test hooks: pages expose `window.capstan` (state, stats) for browser tests.
    #[arg(long, env = "CAPSTAN_UI_TEST_HOOKS")]
    pub ui_test_hooks: bool,
    /// Configuration file (default: ./capstan.toml when it exists).
    #[arg(long, env = "CAPSTAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, env = "CAPSTAN_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Directory for the catalog and recordings.
    #[arg(long, env = "CAPSTAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HS256 secret for access tokens (required unless --dev).
    #[arg(long, env = "CAPSTAN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long a signed download URL stays valid (default 5m).
    #[arg(long, env = "CAPSTAN_DOWNLOAD_URL_TTL")]
    pub download_url_ttl: Option<String>,
    /// UDP port range for media, e.g. 50000-50199 (default: ephemeral ports).
    #[arg(long, env = "CAPSTAN_RTC_UDP_PORTS")]
    pub rtc_udp_ports: Option<String>,
    /// Comma-separated local IPs to bind media sockets on; 0.0.0.0 means every non-loopback
    /// interface.
    #[arg(long, env = "CAPSTAN_RTC_BIND_IPS")]
    pub rtc_bind_ips: Option<String>,
    /// Public IP announced instead of the local one (1:1 NAT, e.g. a cloud VM's elastic IP).
    #[arg(long, env = "CAPSTAN_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// Comma-separated STUN/TURN URLs handed to clients.
    #[arg(long, env = "CAPSTAN_ICE_SERVERS")]
    pub ice_servers: Option<String>,
    /// Participants allowed in one room.
    #[arg(long, env = "CAPSTAN_MAX_PARTICIPANTS")]
    pub max_participants: Option<usize>,
    #[command(flatten)]
    pub recording: RecordingArgs,
}

/// The same settings as read from `capstan.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http_addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    jwt_secret: Option<String>,
    download_url_ttl: Option<String>,
    rtc_udp_ports: Option<String>,
    rtc_bind_ips: Option<String>,
    public_ip: Option<IpAddr>,
    ice_servers: Option<String>,
    max_participants: Option<usize>,
    /// The `[recording]` table.
    recording: Option<RecordingArgs>,
}

/// Resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dev: bool,
    pub ui_test_hooks: bool,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub jwt_secret: String,
    pub download_url_ttl: Duration,
    pub rtc: RtcConfig,
    pub max_participants: usize,
    pub recording: RecordingConfig,
}

impl Config {
    /// Merges flags/environment over the config file over defaults and validates the result.
    pub fn resolve(args: ServeArgs) -> Result<Self, String> {
        let file = load_file(args.config.as_deref())?;
        let jwt_secret = match (args.jwt_secret.or(file.jwt_secret), args.dev) {
            (Some(secret), _) if !secret.is_empty() => secret,
            (_, true) => crate::auth::DEV_SECRET.to_string(),
            _ => return Err("CAPSTAN_JWT_SECRET is required unless --dev is given".into()),
        };
        let download_url_ttl = match args.download_url_ttl.or(file.download_url_ttl) {
            Some(text) => humantime::parse_duration(&text)
                .map_err(|e| format!("CAPSTAN_DOWNLOAD_URL_TTL: invalid duration `{text}`: {e}"))?,
            None => Duration::from_secs(300),
        };
        if download_url_ttl.as_secs() == 0 {
            return Err("CAPSTAN_DOWNLOAD_URL_TTL must be at least 1s".into());
        }
        let defaults = RtcConfig::default();
        let rtc = RtcConfig {
            udp_ports: args
                .rtc_udp_ports
                .or(file.rtc_udp_ports)
                .map(|r| parse_port_range(&r))
                .transpose()?,
            bind_ips: match args.rtc_bind_ips.or(file.rtc_bind_ips) {
                Some(list) => parse_list(&list, "CAPSTAN_RTC_BIND_IPS")?,
                None => defaults.bind_ips,
            },
            public_ip: args.public_ip.or(file.public_ip),
            ice_servers: args
                .ice_servers
                .or(file.ice_servers)
                .map(|l| parse_list(&l, "CAPSTAN_ICE_SERVERS"))
                .transpose()?
                .unwrap_or_default(),
        };
        let max_participants = args
            .max_participants
            .or(file.max_participants)
            .unwrap_or(16);
        if max_participants == 0 {
            return Err("CAPSTAN_MAX_PARTICIPANTS must be at least 1".into());
        }
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "data".into());
        let recording = args
            .recording
            .or(file.recording.unwrap_or_default())
            .resolve(&data_dir)?;
        Ok(Self {
            dev: args.dev,
            ui_test_hooks: args.ui_test_hooks,
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            jwt_secret,
            download_url_ttl,
            rtc,
            max_participants,
            recording,
        })
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("capstan.toml").exists() => "capstan.toml".into(),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid {}: {e}", path.display()))
}

/// Parses `50000-50199` (inclusive).
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let err = || format!("invalid port range `{text}`; expected e.g. 50000-50199");
    let (lo, hi) = text.split_once('-').ok_or_else(err)?;
    let (lo, hi): (u16, u16) = (
        lo.trim().parse().map_err(|_| err())?,
        hi.trim().parse().map_err(|_| err())?,
    );
    if lo == 0 || lo > hi {
        return Err(err());
    }
    Ok((lo, hi))
}

fn parse_list<T: std::str::FromStr>(text: &str, name: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{name}: invalid entry `{s}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_defaults() {
        let c = Config::resolve(ServeArgs {
            dev: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.jwt_secret, crate::auth::DEV_SECRET);
        assert_eq!(c.rtc, RtcConfig::default());
        assert_eq!(c.max_participants, 16);
        assert_eq!(c.download_url_ttl, Duration::from_secs(300));
    }

    #[test]
    fn download_url_ttl() {
        let ttl = |text: &str| {
            Config::resolve(ServeArgs {
                dev: true,
                download_url_ttl: Some(text.into()),
                ..Default::default()
            })
            .map(|c| c.download_url_ttl)
        };
        assert_eq!(ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(ttl("1m"), Ok(Duration::from_secs(60)));
        for bad in ["0s", "500ms", "soon"] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_required_outside_dev() {
        assert!(Config::resolve(ServeArgs::default()).is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50199"), Ok((50000, 50199)));
        assert!(parse_port_range("50199-50000").is_err());
        assert!(parse_port_range("x").is_err());
    }

    #[test]
    fn file_is_overridden_by_flags() {
        let dir = std::env::temp_dir().join(format!("capstan-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("capstan.toml");
        std::fs::write(
            &path,
            "jwt_secret = \"s\"\nmax_participants = 4\nrtc_bind_ips = \"127.0.0.1\"\n\
             download_url_ttl = \"2m\"\n",
        )
        .unwrap();
        let c = Config::resolve(ServeArgs {
            config: Some(path),
            max_participants: Some(8),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.jwt_secret, "s");
        assert_eq!(c.max_participants, 8);
        assert!(c.rtc.loopback_only());
        assert_eq!(c.download_url_ttl, Duration::from_secs(120));
    }
}
