//! Server configuration: defaults < `capstan.toml` < environment < command-line flags.

use crate::encryption::EncryptionArgs;
use crate::limits::{parse_net, Rate};
use crate::recording::config::{RecordingArgs, RecordingConfig};
use crate::setting::{self, ConfigError};
pub use crate::sfu::RtcConfig;
use clap::Args;
use ipnet::IpNet;
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
    /// A WHIP/WHEP session whose ICE has not connected after this long ends (default 10s).
    #[arg(long, env = "CAPSTAN_ICE_CONNECT_TIMEOUT")]
    pub ice_connect_timeout: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// How often the signaling WebSocket pings each client (default 20s); a client silent for
    /// two intervals is dropped.
    #[arg(long, env = "CAPSTAN_WS_PING_INTERVAL")]
    pub ws_ping_interval: Option<String>,
    #[command(flatten)]
    pub recording: RecordingArgs,
    #[command(flatten)]
    pub encryption: EncryptionArgs,
}

/// Timeouts, limits and browser security flags; the `[limits]` table of `capstan.toml`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitArgs {
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open (default 10s).
    #[arg(long, env = "CAPSTAN_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// Time a client has to send a request's body, else 408 (default 10s).
    #[arg(long, env = "CAPSTAN_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<String>,
    /// Open HTTP connections per client IP; more are closed at once (default 128).
    #[arg(long, env = "CAPSTAN_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Requests and WebSocket messages per client IP: `RATE/s,BURST` or `off` (default 100/s,400).
    #[arg(long, env = "CAPSTAN_RATE_LIMIT_IP")]
    pub rate_limit_ip: Option<String>,
    /// Requests and WebSocket messages per token identity (default 30/s,150).
    #[arg(long, env = "CAPSTAN_RATE_LIMIT_TOKEN")]
    pub rate_limit_token: Option<String>,
    /// WHIP/WHEP sessions not yet ICE-connected per client IP (default 16).
    #[arg(long, env = "CAPSTAN_MAX_PENDING_PER_IP")]
    pub max_pending_per_ip: Option<usize>,
    /// WHIP/WHEP sessions not yet ICE-connected per token identity (default 4).
    #[arg(long, env = "CAPSTAN_MAX_PENDING_PER_TOKEN")]
    pub max_pending_per_token: Option<usize>,
    /// Comma-separated proxy IPs or networks whose `X-Forwarded-For` names the client.
    #[arg(long, env = "CAPSTAN_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Comma-separated origins allowed to call the API from a browser (CORS); default none.
    #[arg(long, env = "CAPSTAN_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// CSP `frame-ancestors` of the UI pages (default `'none'`: no framing).
    #[arg(long, env = "CAPSTAN_FRAME_ANCESTORS")]
    pub frame_ancestors: Option<String>,
    /// Largest decoded chunk of `POST /video-calls/chunks/upload` (default 8MiB).
    #[arg(long, env = "CAPSTAN_UPLOAD_MAX_CHUNK")]
    pub upload_max_chunk: Option<String>,
    /// Largest client upload, chunked or tus (default 4GiB).
    #[arg(long, env = "CAPSTAN_UPLOAD_MAX_SIZE")]
    pub upload_max_size: Option<String>,
    /// Unfinished uploads one user (room + `sub`) may have at once (default 4).
    #[arg(long, env = "CAPSTAN_UPLOAD_MAX_PER_USER")]
    pub upload_max_per_user: Option<usize>,
    /// An upload without a request for this long is removed (default 24h).
    #[arg(long, env = "CAPSTAN_UPLOAD_TTL")]
    pub upload_ttl: Option<String>,
}

/// Resolved [`LimitArgs`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub rate_per_ip: Option<Rate>,
    pub rate_per_token: Option<Rate>,
    pub max_pending_per_ip: usize,
    pub max_pending_per_token: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_origins: Vec<String>,
    pub frame_ancestors: String,
    pub upload_max_chunk: u64,
    pub upload_max_size: u64,
    pub upload_max_per_user: usize,
    pub upload_ttl: Duration,
}

macro_rules! merge_limits {
    ($a:expr, $b:expr, $($f:ident),+) => { LimitArgs { $($f: $a.$f.or($b.$f)),+ } };
}

impl LimitArgs {
    /// Fields set here win over `file`.
    fn or(self, file: LimitArgs) -> LimitArgs {
        merge_limits!(
            self,
            file,
            http_header_timeout,
            http_body_timeout,
            max_connections_per_ip,
            rate_limit_ip,
            rate_limit_token,
            max_pending_per_ip,
            max_pending_per_token,
            trusted_proxies,
            allowed_origins,
            frame_ancestors,
            upload_max_chunk,
            upload_max_size,
            upload_max_per_user,
            upload_ttl
        )
    }

    fn resolve(self) -> Result<Limits, ConfigError> {
        let rate = |v: Option<String>, name: &'static str, default: &str| {
            let text = v.as_deref().unwrap_or(default);
            Rate::parse(text)
                .map_err(|_| ConfigError::invalid(name, text, "a rate such as 50/s,200, or off"))
        };
        let count = |v: Option<usize>, name: &'static str, default: usize| {
            setting::at_least_one(v, default, name)
        };
        let frame_ancestors = self.frame_ancestors.unwrap_or_else(|| "'none'".into());
        if frame_ancestors.is_empty() || frame_ancestors.contains([';', ',', '\r', '\n']) {
            return Err(ConfigError::invalid(
                "CAPSTAN_FRAME_ANCESTORS",
                frame_ancestors,
                "a CSP source list such as 'none' or 'self' https://app.example.com",
            ));
        }
        Ok(Limits {
            header_timeout: duration(
                self.http_header_timeout,
                "CAPSTAN_HTTP_HEADER_TIMEOUT",
                Duration::from_secs(10),
            )?,
            body_timeout: duration(
                self.http_body_timeout,
                "CAPSTAN_HTTP_BODY_TIMEOUT",
                Duration::from_secs(10),
            )?,
            max_connections_per_ip: count(
                self.max_connections_per_ip,
                "CAPSTAN_MAX_CONNECTIONS_PER_IP",
                128,
            )?,
            rate_per_ip: rate(self.rate_limit_ip, "CAPSTAN_RATE_LIMIT_IP", "100/s,400")?,
            rate_per_token: rate(
                self.rate_limit_token,
                "CAPSTAN_RATE_LIMIT_TOKEN",
                "30/s,150",
            )?,
            max_pending_per_ip: count(self.max_pending_per_ip, "CAPSTAN_MAX_PENDING_PER_IP", 16)?,
            max_pending_per_token: count(
                self.max_pending_per_token,
                "CAPSTAN_MAX_PENDING_PER_TOKEN",
                4,
            )?,
            trusted_proxies: match self.trusted_proxies {
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        parse_net(s).map_err(|_| {
                            ConfigError::invalid(
                                "CAPSTAN_TRUSTED_PROXIES",
                                s,
                                "IPs or networks such as 10.0.0.0/8",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
            allowed_origins: match self.allowed_origins {
                Some(list) => parse_origins(&list)?,
                None => Vec::new(),
            },
            frame_ancestors,
            upload_max_chunk: size(self.upload_max_chunk, "CAPSTAN_UPLOAD_MAX_CHUNK", 8 << 20)?,
            upload_max_size: size(self.upload_max_size, "CAPSTAN_UPLOAD_MAX_SIZE", 4 << 30)?,
            upload_max_per_user: count(self.upload_max_per_user, "CAPSTAN_UPLOAD_MAX_PER_USER", 4)?,
            upload_ttl: duration(
                self.upload_ttl,
                "CAPSTAN_UPLOAD_TTL",
                Duration::from_secs(24 * 3600),
            )?,
        })
    }
}

/// A byte size (`8388608`, `512KiB`, `8MiB`, `4GiB`) of at least one byte, or `default`.
fn size(text: Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let bad = || ConfigError::invalid(name, t, "a size such as 8MiB");
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).filter(|&n| n > 0).ok_or_else(bad)
}

/// A duration of at least 1 ms, or `default`.
fn duration(
    text: Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let min = (Duration::from_millis(1), "1ms");
    setting::duration(text.as_deref(), name, default, min)
}

/// `https://app.example.com,http://localhost:3000`: scheme, host and optional port, nothing
/// else (a trailing `/` is dropped).
fn parse_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|origin| {
            let origin = origin.trim_end_matches('/');
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '*', ' ']) => {
                    Ok(origin.to_string())
                }
                _ => Err(ConfigError::invalid(
                    "CAPSTAN_ALLOWED_ORIGINS",
                    origin,
                    "origins such as https://app.example.com",
                )),
            }
        })
        .collect()
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
    ice_connect_timeout: Option<String>,
    /// The `[limits]` table.
    limits: Option<LimitArgs>,
    ws_ping_interval: Option<String>,
    /// The `[recording]` table.
    recording: Option<RecordingArgs>,
    /// The `[encryption]` table.
    encryption: Option<EncryptionArgs>,
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
    pub limits: Limits,
    pub ws_ping_interval: Duration,
    pub recording: RecordingConfig,
}

impl Config {
    /// Merges flags/environment over the config file over defaults and validates the result.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = load_file(args.config.as_deref())?;
        let jwt_secret = match (args.jwt_secret.or(file.jwt_secret), args.dev) {
            (Some(secret), _) if !secret.is_empty() => secret,
            (_, true) => crate::auth::DEV_SECRET.to_string(),
            _ => {
                return Err(ConfigError::Required {
                    name: "CAPSTAN_JWT_SECRET",
                    when: "unless --dev is given",
                })
            }
        };
        let download_url_ttl = setting::duration(
            args.download_url_ttl.or(file.download_url_ttl).as_deref(),
            "CAPSTAN_DOWNLOAD_URL_TTL",
            Duration::from_secs(300),
            (Duration::from_secs(1), "1s"),
        )?;
        let ws_ping_interval = setting::duration(
            args.ws_ping_interval.or(file.ws_ping_interval).as_deref(),
            "CAPSTAN_WS_PING_INTERVAL",
            Duration::from_secs(20),
            (Duration::from_millis(100), "100ms"),
        )?;
        let defaults = RtcConfig::default();
        let rtc = RtcConfig {
            udp_ports: args
                .rtc_udp_ports
                .or(file.rtc_udp_ports)
                .map(|r| parse_port_range(&r))
                .transpose()?,
            bind_ips: match args.rtc_bind_ips.or(file.rtc_bind_ips) {
                Some(list) => setting::list(&list, "CAPSTAN_RTC_BIND_IPS", "IP addresses")?,
                None => defaults.bind_ips,
            },
            public_ip: args.public_ip.or(file.public_ip),
            ice_servers: args
                .ice_servers
                .or(file.ice_servers)
                .map(|l| setting::list(&l, "CAPSTAN_ICE_SERVERS", "stun: or turn: URLs"))
                .transpose()?
                .unwrap_or_default(),
            connect_timeout: duration(
                args.ice_connect_timeout.or(file.ice_connect_timeout),
                "CAPSTAN_ICE_CONNECT_TIMEOUT",
                defaults.connect_timeout,
            )?,
        };
        let max_participants = setting::at_least_one(
            args.max_participants.or(file.max_participants),
            16,
            "CAPSTAN_MAX_PARTICIPANTS",
        )?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "data".into());
        let limits = args.limits.or(file.limits.unwrap_or_default()).resolve()?;
        let encryption = args
            .encryption
            .or(file.encryption.unwrap_or_default())
            .resolve()?;
        let recording = args
            .recording
            .or(file.recording.unwrap_or_default())
            .resolve(&data_dir)?
            .encrypted_with(encryption);
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
            limits,
            ws_ping_interval,
            recording,
        })
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("capstan.toml").exists() => "capstan.toml".into(),
        None => return Ok(FileConfig::default()),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|source| ConfigError::File {
        path,
        source: Box::new(source),
    })
}

/// Parses `50000-50199` (inclusive).
pub fn parse_port_range(text: &str) -> Result<(u16, u16), ConfigError> {
    let err = || ConfigError::invalid("CAPSTAN_RTC_UDP_PORTS", text, "a range such as 50000-50199");
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
        assert_eq!(c.ws_ping_interval, Duration::from_secs(20));
    }

    #[test]
    fn upload_sizes() {
        let max_chunk = |text: &str| size(Some(text.into()), "CAPSTAN_UPLOAD_MAX_CHUNK", 1);
        assert_eq!(max_chunk("8MiB").unwrap(), 8 << 20);
        assert_eq!(max_chunk("512 KiB").unwrap(), 512 << 10);
        assert_eq!(max_chunk("1000").unwrap(), 1000);
        assert_eq!(max_chunk("4GiB").unwrap(), 4 << 30);
        for bad in ["0", "8MB", "-1", "MiB", "99999999999999999GiB"] {
            assert!(max_chunk(bad).is_err(), "{bad}");
        }
        assert_eq!(size(None, "CAPSTAN_UPLOAD_MAX_CHUNK", 7).unwrap(), 7);
    }

    #[test]
    fn ws_ping_interval() {
        let every = |text: &str| {
            Config::resolve(ServeArgs {
                dev: true,
                ws_ping_interval: Some(text.into()),
                ..Default::default()
            })
            .map(|c| c.ws_ping_interval)
        };
        assert_eq!(every("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(every("1m").unwrap(), Duration::from_secs(60));
        for bad in ["0s", "50ms", "often"] {
            assert!(every(bad).is_err(), "{bad}");
        }
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
        assert_eq!(ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(ttl("1m").unwrap(), Duration::from_secs(60));
        for bad in ["0s", "500ms", "soon"] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        let resolve = |limits: LimitArgs| {
            Config::resolve(ServeArgs {
                dev: true,
                limits,
                ..Default::default()
            })
            .map(|c| c.limits)
        };
        let defaults = resolve(LimitArgs::default()).unwrap();
        assert_eq!(defaults.header_timeout, Duration::from_secs(10));
        assert_eq!(defaults.body_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_connections_per_ip, 128);
        assert_eq!(
            defaults.rate_per_token,
            Some(Rate {
                per_second: 30.0,
                burst: 150
            })
        );
        assert!(defaults.allowed_origins.is_empty() && defaults.trusted_proxies.is_empty());
        assert_eq!(defaults.frame_ancestors, "'none'");
        let set = resolve(LimitArgs {
            http_header_timeout: Some("1s".into()),
            rate_limit_ip: Some("off".into()),
            trusted_proxies: Some("10.0.0.0/8, 192.0.2.1".into()),
            allowed_origins: Some("https://a.example/,http://localhost:3000".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(set.header_timeout, Duration::from_secs(1));
        assert_eq!(set.rate_per_ip, None);
        assert_eq!(set.trusted_proxies.len(), 2);
        assert_eq!(
            set.allowed_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        let bad = [
            LimitArgs {
                http_body_timeout: Some("0s".into()),
                ..Default::default()
            },
            LimitArgs {
                max_pending_per_ip: Some(0),
                ..Default::default()
            },
            LimitArgs {
                rate_limit_token: Some("fast".into()),
                ..Default::default()
            },
            LimitArgs {
                trusted_proxies: Some("proxy.local".into()),
                ..Default::default()
            },
            LimitArgs {
                allowed_origins: Some("*".into()),
                ..Default::default()
            },
            LimitArgs {
                allowed_origins: Some("https://a.example/path".into()),
                ..Default::default()
            },
            LimitArgs {
                frame_ancestors: Some("'self'; script-src *".into()),
                ..Default::default()
            },
        ];
        for args in bad {
            let shown = format!("{args:?}");
            assert!(resolve(args).is_err(), "{shown}");
        }
    }

    #[test]
    fn secret_required_outside_dev() {
        assert!(Config::resolve(ServeArgs::default()).is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50199").unwrap(), (50000, 50199));
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
             download_url_ttl = \"2m\"\n[limits]\nmax_pending_per_ip = 5\n\
             allowed_origins = \"https://a.example\"\n",
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
        assert_eq!(c.limits.max_pending_per_ip, 5);
        assert_eq!(c.limits.allowed_origins, ["https://a.example"]);
    }
}
