//! Upload throughput to each object store's local server (prints figures, asserts nothing):
//! moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob) on 127.0.0.1, as installed by
//! `scripts/install-deps.sh`. Each upload goes through the store's real client with its default
//! part size and parallelism, including the size check after it.
//!
//! ```text
//! cargo bench --bench uploads                         # 64 MiB, best of 3
//! CAPSTAN_BENCH_UPLOAD_MIB=256 cargo bench --bench uploads
//! ```
//!
//! The emulators keep everything in memory and run on the same cores as the client, so the
//! figures compare the clients' upload paths on this machine, not the cloud services.

#[path = "../tests/common/mod.rs"]
mod common;

use capstan::storage::s3::{S3Config, S3Store};
use capstan::storage::{LocalMedia, ObjectStore};
use common::moto::Moto;
use common::stores::{Emulator, Provider, Tune, BUCKET};
use rand::{RngCore, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};

/// Uploads per store; the best is printed with the slowest.
const RUNS: usize = 3;

fn main() {
    let mib: u64 = std::env::var("CAPSTAN_BENCH_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    println!(
        "machine: {}; the storage servers run on the same machine",
        common::procfs::cores_and_cpu()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("upload.bin");
    let mut bytes = vec![0; (mib * 1024 * 1024) as usize];
    rand::rngs::StdRng::seed_from_u64(mib).fill_bytes(&mut bytes);
    std::fs::write(&path, &bytes).expect("write the file");
    drop(bytes);

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!("| store (server) | file | best | slowest |");
    println!("|---|---|---|---|");
    runtime.block_on(async {
        let moto = Moto::start().await;
        moto.create_bucket(BUCKET).await;
        let s3 = S3Store::new(S3Config {
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            endpoint: Some(moto.endpoint.clone()),
            ..S3Config::new(BUCKET)
        })
        .expect("valid S3 config");
        row("S3 (moto)", &ObjectStore::S3(s3), &path, mib).await;
        drop(moto);
        for (name, provider) in [
            ("GCS (fake-gcs-server)", Provider::Gcs),
            ("Azure (Azurite)", Provider::Azure),
        ] {
            let emulator = Emulator::start(provider).await;
            row(name, &emulator.store(Tune::default()), &path, mib).await;
        }
    });
}

/// Uploads the file `RUNS` times and prints the best and the slowest throughput.
async fn row(name: &str, store: &ObjectStore, path: &Path, mib: u64) {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let key = store.key_for(&format!("bench/{run}.bin"));
        let started = Instant::now();
        store
            .upload(LocalMedia::new(path, None), &key, |_| {})
            .await
            .expect("upload");
        times.push(started.elapsed());
    }
    let rate = |t: &Duration| format!("{:.0} MB/s", mib as f64 * 1.048_576 / t.as_secs_f64());
    let (best, slowest) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    println!(
        "| {name} | {mib} MiB | {} | {} |",
        rate(best),
        rate(slowest)
    );
}
