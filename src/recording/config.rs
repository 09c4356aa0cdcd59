//! Recording, storage, retention and webhook settings. Storage uses the variable names existing
//! deployments have (`RECORDING_*`); everything else is `CAPSTAN_*`. The same fields can be set
//! in the `[recording]` table of `capstan.toml`; the environment and flags win.

use crate::setting::{self, at_least_one, ConfigError};
use crate::storage::azure::AzureConfig;
use crate::storage::gcs::GcsConfig;
use crate::storage::s3::S3Config;
use crate::storage::{Retry, StorageConfig};
use crate::webhooks::WebhookConfig;
use clap::Args;
use pipelines::crypt::Keyring;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WHEN_S3: &str = "when RECORDING_STORAGE_PROVIDER=s3";
const WHEN_GCS: &str = "when RECORDING_STORAGE_PROVIDER=gcs";
const WHEN_AZURE: &str = "when RECORDING_STORAGE_PROVIDER=azure";

/// Recording flags; each also reads its environment variable.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingArgs {
    /// Allow recordings at all (default true).
    #[arg(long = "recording-enabled", env = "CAPSTAN_RECORDING_ENABLED")]
    pub enabled: Option<bool>,
    /// `local` (default), `s3`, `gcs` or `azure`.
    #[arg(long = "recording-storage", env = "RECORDING_STORAGE_PROVIDER")]
    pub storage_provider: Option<String>,
    /// Spool and local storage directory (default: <data dir>/recordings).
    #[arg(long = "recording-output-dir", env = "RECORDING_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,
    /// Recordings running at once on this server (default 10).
    #[arg(long = "max-recordings", env = "CAPSTAN_MAX_RECORDINGS")]
    pub max_concurrent: Option<usize>,
    /// Recordings one user may run at once (default 3).
    #[arg(
        long = "max-recordings-per-user",
        env = "CAPSTAN_MAX_RECORDINGS_PER_USER"
    )]
    pub max_per_user: Option<usize>,
    /// CPU, in cores, that running recordings may need together (default 0.8 x the cores
    /// available); a start that does not fit is refused with 503.
    #[arg(long = "recording-cpu-budget", env = "CAPSTAN_RECORDING_CPU_BUDGET")]
    pub cpu_budget: Option<f64>,
    /// Longest recording before it is stopped automatically (default 2h).
    #[arg(
        long = "recording-max-duration",
        env = "CAPSTAN_RECORDING_MAX_DURATION"
    )]
    pub max_duration: Option<String>,
    /// Stop when the room has been empty this long (default 30s).
    #[arg(
        long = "recording-empty-timeout",
        env = "CAPSTAN_RECORDING_EMPTY_TIMEOUT"
    )]
    pub empty_timeout: Option<String>,
    /// Stop when no media arrived for this long (default 5m).
    #[arg(
        long = "recording-no-media-timeout",
        env = "CAPSTAN_RECORDING_NO_MEDIA_TIMEOUT"
    )]
    pub no_media_timeout: Option<String>,
    /// Delete recordings (files and objects) older than this many days (default: keep).
    #[arg(long = "retention-days", env = "CAPSTAN_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// S3 bucket.
    #[arg(long = "s3-bucket", env = "RECORDING_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 region (default us-east-1).
    #[arg(long = "s3-region", env = "RECORDING_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long = "s3-access-key-id", env = "RECORDING_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(
        long = "s3-secret-access-key",
        env = "RECORDING_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// Custom S3 endpoint (MinIO, Ceph, ...); path-style addressing is used with it.
    #[arg(long = "s3-endpoint", env = "RECORDING_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Object key prefix (default `recordings/`).
    #[arg(long = "s3-prefix", env = "CAPSTAN_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`.
    #[arg(long = "s3-sse", env = "CAPSTAN_S3_SSE")]
    pub s3_sse: Option<String>,
    /// GCS bucket.
    #[arg(long = "gcs-bucket", env = "RECORDING_GCS_BUCKET")]
    pub gcs_bucket: Option<String>,
    /// GCS project id (logged; bucket names are global).
    #[arg(long = "gcs-project-id", env = "RECORDING_GCS_PROJECT_ID")]
    pub gcs_project_id: Option<String>,
    /// File with the GCS service-account key (JSON).
    #[arg(long = "gcs-key-filename", env = "RECORDING_GCS_KEY_FILENAME")]
    pub gcs_key_filename: Option<PathBuf>,
    /// The GCS service-account key itself (JSON).
    #[arg(
        long = "gcs-credentials",
        env = "RECORDING_GCS_CREDENTIALS",
        hide_env_values = true
    )]
    pub gcs_credentials: Option<String>,
    /// Another server speaking the GCS API (an emulator); needs a service-account key.
    #[arg(long = "gcs-endpoint", env = "RECORDING_GCS_ENDPOINT")]
    pub gcs_endpoint: Option<String>,
    /// Azure storage account.
    #[arg(long = "azure-account", env = "RECORDING_AZURE_ACCOUNT")]
    pub azure_account: Option<String>,
    /// Azure storage account access key.
    #[arg(
        long = "azure-access-key",
        env = "RECORDING_AZURE_ACCESS_KEY",
        hide_env_values = true
    )]
    pub azure_access_key: Option<String>,
    /// Azure blob container.
    #[arg(long = "azure-container", env = "RECORDING_AZURE_CONTAINER")]
    pub azure_container: Option<String>,
    /// The account's blob URL when not https://<account>.blob.core.windows.net (an emulator).
    #[arg(long = "azure-endpoint", env = "RECORDING_AZURE_ENDPOINT")]
    pub azure_endpoint: Option<String>,
    /// Upload attempts before a recording's upload is marked failed (default 5).
    #[arg(long = "upload-attempts", env = "CAPSTAN_UPLOAD_ATTEMPTS")]
    pub upload_attempts: Option<u32>,
    /// First retry delay of an upload, doubling up to 30 s (default 1s).
    #[arg(long = "upload-backoff", env = "CAPSTAN_UPLOAD_BACKOFF")]
    pub upload_backoff: Option<String>,
    /// Comma-separated URLs that receive recording events as signed JSON POSTs.
    #[arg(long = "webhook-urls", env = "CAPSTAN_WEBHOOK_URLS")]
    pub webhook_urls: Option<String>,
    /// HMAC-SHA256 key for the `X-Capstan-Signature` header of webhooks.
    #[arg(
        long = "webhook-secret",
        env = "CAPSTAN_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
}

/// Resolved recording settings.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub enabled: bool,
    pub output_dir: PathBuf,
    pub storage: StorageConfig,
    pub max_concurrent: usize,
    pub max_per_user: usize,
    /// Cores the running recordings may need together (see `recording::cost`).
    pub cpu_budget: f64,
    pub max_duration: Duration,
    pub empty_timeout: Duration,
    pub no_media_timeout: Duration,
    pub retention: Option<Duration>,
    pub webhooks: WebhookConfig,
    /// The keys local files are encrypted with; `None` writes them in the clear.
    pub encryption: Option<Keyring>,
}

impl RecordingConfig {
    /// The same settings, with local files encrypted with `keys` when there are keys.
    pub fn encrypted_with(self, keys: Option<Keyring>) -> Self {
        RecordingConfig {
            encryption: keys,
            ..self
        }
    }
}

macro_rules! merge {
    ($a:expr, $b:expr, $($f:ident),+) => { RecordingArgs { $($f: $a.$f.or($b.$f)),+ } };
}

impl RecordingArgs {
    /// Fields set here win over `file`.
    pub fn or(self, file: RecordingArgs) -> RecordingArgs {
        merge!(
            self,
            file,
            enabled,
            storage_provider,
            output_dir,
            max_concurrent,
            max_per_user,
            cpu_budget,
            max_duration,
            empty_timeout,
            no_media_timeout,
            retention_days,
            s3_bucket,
            s3_region,
            s3_access_key_id,
            s3_secret_access_key,
            s3_endpoint,
            s3_prefix,
            s3_sse,
            gcs_bucket,
            gcs_project_id,
            gcs_key_filename,
            gcs_credentials,
            gcs_endpoint,
            azure_account,
            azure_access_key,
            azure_container,
            azure_endpoint,
            upload_attempts,
            upload_backoff,
            webhook_urls,
            webhook_secret
        )
    }

    /// Validates and fills in defaults.
    pub fn resolve(self, data_dir: &Path) -> Result<RecordingConfig, ConfigError> {
        let duration = |v: &Option<String>, name: &'static str, default: Duration| {
            setting::duration(v.as_deref(), name, default, (Duration::ZERO, "0s"))
        };
        let max_concurrent = at_least_one(self.max_concurrent, 10, "CAPSTAN_MAX_RECORDINGS")?;
        let max_per_user = at_least_one(self.max_per_user, 3, "CAPSTAN_MAX_RECORDINGS_PER_USER")?;
        let cpu_budget = match self.cpu_budget {
            Some(cores) if cores.is_finite() && cores > 0.0 => cores,
            Some(cores) => {
                return Err(ConfigError::invalid(
                    "CAPSTAN_RECORDING_CPU_BUDGET",
                    cores.to_string(),
                    "a positive number of cores",
                ))
            }
            None => default_cpu_budget(),
        };
        Ok(RecordingConfig {
            enabled: self.enabled.unwrap_or(true),
            output_dir: self
                .output_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("recordings")),
            storage: self.storage()?,
            max_concurrent,
            max_per_user,
            cpu_budget,
            max_duration: duration(
                &self.max_duration,
                "CAPSTAN_RECORDING_MAX_DURATION",
                Duration::from_secs(2 * 3600),
            )?,
            empty_timeout: duration(
                &self.empty_timeout,
                "CAPSTAN_RECORDING_EMPTY_TIMEOUT",
                Duration::from_secs(30),
            )?,
            no_media_timeout: duration(
                &self.no_media_timeout,
                "CAPSTAN_RECORDING_NO_MEDIA_TIMEOUT",
                Duration::from_secs(300),
            )?,
            retention: self
                .retention_days
                .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
            webhooks: WebhookConfig::new(
                self.webhook_urls.as_deref().unwrap_or(""),
                self.webhook_secret.clone(),
            ),
            encryption: None,
        })
    }

    fn storage(&self) -> Result<StorageConfig, ConfigError> {
        match self.storage_provider.as_deref().unwrap_or("local") {
            "local" => Ok(StorageConfig::Local),
            "s3" => self.s3().map(|c| StorageConfig::S3(Box::new(c))),
            "gcs" => self.gcs().map(|c| StorageConfig::Gcs(Box::new(c))),
            "azure" => self.azure().map(|c| StorageConfig::Azure(Box::new(c))),
            "vercel-blob" => Err(ConfigError::invalid(
                "RECORDING_STORAGE_PROVIDER",
                "vercel-blob",
                "local, s3, gcs or azure: Vercel Blob is not supported, as it has no local \
                 server or emulator that uploads could be tested against",
            )),
            other => Err(ConfigError::invalid(
                "RECORDING_STORAGE_PROVIDER",
                other,
                "local, s3, gcs or azure",
            )),
        }
    }

    /// `CAPSTAN_UPLOAD_ATTEMPTS` and `CAPSTAN_UPLOAD_BACKOFF`, shared by every object store.
    fn retry(&self) -> Result<Retry, ConfigError> {
        let backoff = setting::duration(
            self.upload_backoff.as_deref(),
            "CAPSTAN_UPLOAD_BACKOFF",
            Duration::from_secs(1),
            (Duration::ZERO, "0s"),
        )?;
        let attempts = self.upload_attempts.map(|a| a as usize);
        Ok(Retry {
            max_attempts: at_least_one(attempts, 5, "CAPSTAN_UPLOAD_ATTEMPTS")? as u32,
            backoff,
        })
    }

    fn gcs(&self) -> Result<GcsConfig, ConfigError> {
        let bucket = required(&self.gcs_bucket, "RECORDING_GCS_BUCKET", WHEN_GCS)?;
        let credentials = match (&self.gcs_key_filename, &self.gcs_credentials) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "RECORDING_GCS_CREDENTIALS",
                    "<hidden>",
                    "unset when RECORDING_GCS_KEY_FILENAME is set (one key, not two)",
                ))
            }
            (Some(path), None) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            (None, json) => json.clone().filter(|j| !j.is_empty()),
        };
        Ok(GcsConfig {
            project_id: self.gcs_project_id.clone().filter(|p| !p.is_empty()),
            credentials,
            endpoint: self.gcs_endpoint.clone().filter(|e| !e.is_empty()),
            retry: self.retry()?,
            ..GcsConfig::new(bucket)
        })
    }

    fn azure(&self) -> Result<AzureConfig, ConfigError> {
        let account = required(&self.azure_account, "RECORDING_AZURE_ACCOUNT", WHEN_AZURE)?;
        let key = required(
            &self.azure_access_key,
            "RECORDING_AZURE_ACCESS_KEY",
            WHEN_AZURE,
        )?;
        let container = required(
            &self.azure_container,
            "RECORDING_AZURE_CONTAINER",
            WHEN_AZURE,
        )?;
        Ok(AzureConfig {
            endpoint: self.azure_endpoint.clone().filter(|e| !e.is_empty()),
            retry: self.retry()?,
            ..AzureConfig::new(account, key, container)
        })
    }

    fn s3(&self) -> Result<S3Config, ConfigError> {
        let bucket = required(&self.s3_bucket, "RECORDING_S3_BUCKET", WHEN_S3)?;
        let defaults = S3Config::new(bucket);
        let retry = self.retry()?;
        Ok(S3Config {
            region: self.s3_region.clone().unwrap_or(defaults.region.clone()),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            endpoint: self.s3_endpoint.clone().filter(|e| !e.is_empty()),
            prefix: self.s3_prefix.clone().unwrap_or("recordings/".into()),
            sse: self.s3_sse.clone().filter(|s| !s.is_empty()),
            max_attempts: retry.max_attempts,
            backoff: retry.backoff,
            ..defaults
        })
    }
}

/// The non-empty value of `name`, required `when` (e.g. `when RECORDING_STORAGE_PROVIDER=gcs`).
fn required(
    value: &Option<String>,
    name: &'static str,
    when: &'static str,
) -> Result<String, ConfigError> {
    let value = value.clone().filter(|v| !v.is_empty());
    value.ok_or(ConfigError::Required { name, when })
}

/// 0.8 x the cores this process may use.
fn default_cpu_budget() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    0.8 * cores as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = RecordingArgs::default().resolve(Path::new("/d")).unwrap();
        assert!(c.enabled);
        assert_eq!(c.output_dir, Path::new("/d/recordings"));
        assert!(matches!(c.storage, StorageConfig::Local));
        assert_eq!((c.max_concurrent, c.max_per_user), (10, 3));
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        assert!(
            (c.cpu_budget - 0.8 * cores).abs() < 1e-9,
            "{}",
            c.cpu_budget
        );
        assert_eq!(c.max_duration, Duration::from_secs(7200));
        assert_eq!(c.empty_timeout, Duration::from_secs(30));
        assert_eq!(c.no_media_timeout, Duration::from_secs(300));
        assert!(c.retention.is_none() && c.webhooks.urls.is_empty());
    }

    #[test]
    fn s3_needs_a_bucket() {
        let mut a = RecordingArgs {
            storage_provider: Some("s3".into()),
            ..Default::default()
        };
        assert!(a.clone().resolve(Path::new("/d")).is_err());
        a.s3_bucket = Some("b".into());
        a.s3_endpoint = Some("http://127.0.0.1:9000".into());
        let c = a.clone().resolve(Path::new("/d")).unwrap();
        let StorageConfig::S3(s3) = c.storage else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "b");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.prefix, "recordings/");
    }

    #[test]
    fn gcs_and_azure_name_what_they_miss() {
        let error = |a: RecordingArgs| a.resolve(Path::new("/d")).unwrap_err().to_string();
        let gcs = RecordingArgs {
            storage_provider: Some("gcs".into()),
            ..Default::default()
        };
        let missing = error(gcs.clone());
        assert!(missing.contains("RECORDING_GCS_BUCKET"), "{missing}");
        assert!(
            missing.contains("RECORDING_STORAGE_PROVIDER=gcs"),
            "{missing}"
        );
        let c = RecordingArgs {
            gcs_bucket: Some("b".into()),
            gcs_credentials: Some("{}".into()),
            gcs_endpoint: Some("http://127.0.0.1:4443".into()),
            upload_attempts: Some(2),
            ..gcs
        }
        .resolve(Path::new("/d"))
        .unwrap();
        let StorageConfig::Gcs(g) = c.storage else {
            panic!("not gcs")
        };
        assert_eq!(
            (g.bucket.as_str(), g.credentials.as_deref()),
            ("b", Some("{}"))
        );
        assert_eq!(g.retry.max_attempts, 2);

        let azure = RecordingArgs {
            storage_provider: Some("azure".into()),
            azure_account: Some("acct".into()),
            azure_container: Some("c".into()),
            ..Default::default()
        };
        let missing = error(azure.clone());
        assert!(missing.contains("RECORDING_AZURE_ACCESS_KEY"), "{missing}");
        assert!(
            missing.contains("RECORDING_STORAGE_PROVIDER=azure"),
            "{missing}"
        );
        let c = RecordingArgs {
            azure_access_key: Some("a2V5".into()),
            ..azure
        };
        assert!(matches!(
            c.resolve(Path::new("/d")).unwrap().storage,
            StorageConfig::Azure(_)
        ));

        let vercel = error(RecordingArgs {
            storage_provider: Some("vercel-blob".into()),
            ..Default::default()
        });
        assert!(vercel.contains("Vercel Blob is not supported"), "{vercel}");
    }

    #[test]
    fn flags_win_over_file_and_bad_values_are_named() {
        let flags = RecordingArgs {
            max_per_user: Some(1),
            ..Default::default()
        };
        let file: RecordingArgs =
            toml::from_str("max_per_user = 5\nmax_concurrent = 2\nempty_timeout = \"2s\"").unwrap();
        let c = flags.or(file).resolve(Path::new("/d")).unwrap();
        assert_eq!((c.max_concurrent, c.max_per_user), (2, 1));
        assert_eq!(c.empty_timeout, Duration::from_secs(2));
        let bad = RecordingArgs {
            max_duration: Some("forever".into()),
            ..Default::default()
        };
        let err = bad.resolve(Path::new("/d")).unwrap_err();
        assert!(
            err.to_string().contains("CAPSTAN_RECORDING_MAX_DURATION"),
            "{err}"
        );
    }

    #[test]
    fn cpu_budget_from_file_or_flag_and_validated() {
        let file: RecordingArgs = toml::from_str("cpu_budget = 3").unwrap();
        let c = RecordingArgs::default()
            .or(file.clone())
            .resolve(Path::new("/d"))
            .unwrap();
        assert_eq!(c.cpu_budget, 3.0);
        let env = RecordingArgs {
            cpu_budget: Some(0.3),
            ..Default::default()
        };
        assert_eq!(
            env.or(file).resolve(Path::new("/d")).unwrap().cpu_budget,
            0.3
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let args = RecordingArgs {
                cpu_budget: Some(bad),
                ..Default::default()
            };
            let err = args.resolve(Path::new("/d")).unwrap_err();
            assert!(
                err.to_string().contains("CAPSTAN_RECORDING_CPU_BUDGET"),
                "{err}"
            );
        }
    }
}
