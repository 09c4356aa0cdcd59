//! The GCS and Azure emulators behind one face, for tests that run once per provider: start
//! with the bucket (container) made, stop, restart, a tuned store, and the server's
//! configuration for it.

use super::azurite::{self, Azurite};
use super::fake_gcs::{self, FakeGcs};
use capstan::storage::azure::{AzureConfig, AzureStore};
use capstan::storage::gcs::{GcsConfig, GcsStore};
use capstan::storage::{ObjectStore, Retry};
use std::time::Duration;

/// The bucket (GCS) or container (Azure) recordings go to.
pub const BUCKET: &str = "recordings";
pub const MIB: u64 = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Provider {
    Gcs,
    Azure,
}

/// A running emulator of either provider.
pub enum Emulator {
    Gcs(FakeGcs),
    Azure(Azurite),
}

/// How a store is tuned for a test.
pub struct Tune {
    pub part_size: u64,
    pub retry: Retry,
    pub bucket: &'static str,
}

impl Default for Tune {
    fn default() -> Self {
        Tune {
            part_size: 8 * MIB,
            retry: Retry {
                max_attempts: 5,
                backoff: Duration::from_secs(1),
            },
            bucket: BUCKET,
        }
    }
}

impl Emulator {
    /// The emulator with `BUCKET` (a container for Azure) created.
    pub async fn start(provider: Provider) -> Self {
        let emulator = match provider {
            Provider::Gcs => Emulator::Gcs(FakeGcs::start().await),
            Provider::Azure => Emulator::Azure(Azurite::start().await),
        };
        emulator.create_bucket().await;
        emulator
    }

    pub async fn create_bucket(&self) {
        match self {
            Emulator::Gcs(gcs) => gcs.create_bucket(BUCKET).await,
            Emulator::Azure(azurite) => azurite.create_container(BUCKET).await,
        }
    }

    pub fn stop(&mut self) {
        match self {
            Emulator::Gcs(gcs) => gcs.stop(),
            Emulator::Azure(azurite) => azurite.stop(),
        }
    }

    /// Restarts the (empty) emulator and creates `BUCKET` again.
    pub async fn restart(&mut self) {
        match self {
            Emulator::Gcs(gcs) => gcs.restart().await,
            Emulator::Azure(azurite) => azurite.restart().await,
        }
        self.create_bucket().await;
    }

    /// A store on this emulator, tuned by `tune`.
    pub fn store(&self, tune: Tune) -> ObjectStore {
        match self {
            Emulator::Gcs(gcs) => ObjectStore::Gcs(
                GcsStore::new(GcsConfig {
                    credentials: Some(fake_gcs::service_account_key().into()),
                    endpoint: Some(gcs.endpoint.clone()),
                    chunk_size: tune.part_size,
                    retry: tune.retry,
                    ..GcsConfig::new(tune.bucket)
                })
                .expect("valid GCS config"),
            ),
            Emulator::Azure(azurite) => ObjectStore::Azure(
                AzureStore::new(AzureConfig {
                    endpoint: Some(azurite.endpoint.clone()),
                    block_size: tune.part_size,
                    parallel_blocks: 2,
                    retry: tune.retry,
                    ..AzureConfig::new(azurite::ACCOUNT, azurite::KEY, tune.bucket)
                })
                .expect("valid Azure config"),
            ),
        }
    }

    /// The store's URL of `key` in `BUCKET`, as its errors name it.
    pub fn location(&self, key: &str) -> String {
        match self {
            Emulator::Gcs(_) => format!("gs://{BUCKET}/{key}"),
            Emulator::Azure(_) => format!("azure://{}/{BUCKET}/{key}", azurite::ACCOUNT),
        }
    }
}

impl Provider {
    /// How the store names itself in errors.
    pub fn store_name(self) -> &'static str {
        match self {
            Provider::Gcs => "GCS",
            Provider::Azure => "Azure",
        }
    }

    /// `RECORDING_STORAGE_PROVIDER` and `storage_backend`.
    pub fn backend(self) -> &'static str {
        match self {
            Provider::Gcs => "gcs",
            Provider::Azure => "azure",
        }
    }
}

impl Emulator {
    /// The server's storage configuration for this emulator.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        match self {
            Emulator::Gcs(gcs) => vec![
                ("RECORDING_STORAGE_PROVIDER", "gcs".into()),
                ("RECORDING_GCS_BUCKET", BUCKET.into()),
                ("RECORDING_GCS_PROJECT_ID", "capstan-test".into()),
                (
                    "RECORDING_GCS_CREDENTIALS",
                    fake_gcs::service_account_key().into(),
                ),
                ("RECORDING_GCS_ENDPOINT", gcs.endpoint.clone()),
            ],
            Emulator::Azure(azurite) => vec![
                ("RECORDING_STORAGE_PROVIDER", "azure".into()),
                ("RECORDING_AZURE_ACCOUNT", azurite::ACCOUNT.into()),
                ("RECORDING_AZURE_ACCESS_KEY", azurite::KEY.into()),
                ("RECORDING_AZURE_CONTAINER", BUCKET.into()),
                ("RECORDING_AZURE_ENDPOINT", azurite.endpoint.clone()),
            ],
        }
    }
}
