//! `capstan serve`, `capstan token` and `capstan rewrap`.

use capstan::auth::{Role, TokenKeys, DEV_SECRET};
use capstan::config::{Config, ServeArgs};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "WebRTC SFU that records rooms server-side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print an access token signed with the configured secret.
    Token(TokenArgs),
    /// Seal every encrypted recording file with the current encryption key (after a key
    /// rotation), so the old keys can be dropped. Takes the same configuration as `serve`.
    Rewrap(Box<ServeArgs>),
}

#[derive(clap::Args)]
struct TokenArgs {
    #[arg(long)]
    room: String,
    #[arg(long)]
    identity: String,
    /// Display name (default: the identity).
    #[arg(long)]
    name: Option<String>,
    /// May control recordings.
    #[arg(long, conflicts_with = "admin")]
    host: bool,
    /// May do anything in any room.
    #[arg(long)]
    admin: bool,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Sign with the development secret.
    #[arg(long)]
    dev: bool,
    #[arg(long, env = "CAPSTAN_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

/// webrtc-rs modules that warn on every ICE check of a connection that never completes
/// (`pingAllCandidates called with no candidate pairs`) and on every DTLS start without a
/// server name (`conn.remote_addr is empty`): a few abandoned WHIP sessions flood the log.
/// They log at `error` only, unless `RUST_LOG` names their crate.
const NOISY_MODULES: &[&str] = &["rtc_ice::agent", "rtc_dtls::config"];

/// `RUST_LOG` (default `info`), with [`NOISY_MODULES`] at `error` unless it names their crate.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let mut directives: Vec<String> = NOISY_MODULES
        .iter()
        .filter(|module| !module.split("::").next().is_some_and(|c| spec.contains(c)))
        .map(|module| format!("{module}=error"))
        .collect();
    directives.insert(0, spec);
    tracing_subscriber::EnvFilter::new(directives.join(","))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args),
        Command::Token(args) => token(args),
        Command::Rewrap(args) => rewrap(*args),
    }
}

fn rewrap(args: ServeArgs) -> ExitCode {
    let config = match Config::resolve(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("capstan: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(keys) = &config.recording.encryption else {
        eprintln!("capstan: no encryption key is configured (CAPSTAN_ENCRYPTION_KEY)");
        return ExitCode::from(2);
    };
    let report = capstan::encryption::rewrap_dir(&config.recording.output_dir, keys);
    println!(
        "rewrapped {}, already on the current key {}, not encrypted {}, failed {}",
        report.rewrapped,
        report.current,
        report.plain,
        report.failed.len()
    );
    for failure in &report.failed {
        eprintln!("capstan: {failure}");
    }
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::resolve(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("capstan: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(capstan::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn token(args: TokenArgs) -> ExitCode {
    let secret = match (args.jwt_secret, args.dev) {
        (_, true) => DEV_SECRET.to_string(),
        (Some(secret), false) if !secret.is_empty() => secret,
        _ => {
            eprintln!("capstan: set CAPSTAN_JWT_SECRET (or pass --dev)");
            return ExitCode::from(2);
        }
    };
    let role = match (args.host, args.admin) {
        (_, true) => Role::Admin,
        (true, _) => Role::Host,
        _ => Role::Participant,
    };
    let name = args.name.unwrap_or_else(|| args.identity.clone());
    let token =
        TokenKeys::new(&secret).mint(&args.room, &args.identity, &name, role, args.ttl.into());
    println!("{token}");
    ExitCode::SUCCESS
}
