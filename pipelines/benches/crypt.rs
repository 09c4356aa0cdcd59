//! Encryption at rest, measured: how fast a muxer-like writer seals a file and a download
//! reads it back, against the same work on a plain file. Prints figures and ratios.
//!
//! `cargo bench -p pipelines --bench crypt` (64 MiB in the temp dir; `CAPSTAN_BENCH_MIB=N`
//! for another size).

use pipelines::crypt::{EncryptedWriter, Keyring, MediaFile};
use std::io::Write;
use std::time::{Duration, Instant};

/// Write sizes cycled through, like a muxer's: block headers, frames, cluster headers.
const WRITES: [usize; 6] = [12, 180, 1_400, 4_000, 9, 700];
const PIECE: usize = 256 * 1024;

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}

fn main() {
    let mib: u64 = std::env::var("CAPSTAN_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let total = mib * 1024 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..*WRITES.iter().max().unwrap())
        .map(|i| i as u8)
        .collect();
    let keys = Keyring::new(&[9; 32], &[]);

    let plain_path = dir.path().join("plain.webm");
    let sealed_path = dir.path().join("sealed.webm");
    let (mut plain, mut sealed) = (
        std::fs::File::create(&plain_path).unwrap(),
        EncryptedWriter::create(&sealed_path, &keys).unwrap(),
    );
    let (mut plain_took, mut sealed_took, mut written, mut writes) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
    for size in WRITES.iter().cycle() {
        if written >= total {
            break;
        }
        let chunk = &data[..*size];
        let t = Instant::now();
        plain.write_all(chunk).unwrap();
        plain_took += t.elapsed();
        let t = Instant::now();
        sealed.write(chunk).unwrap();
        sealed_took += t.elapsed();
        written += *size as u64;
        writes += 1;
    }
    println!("writes of {WRITES:?} bytes in turn, {mib} MiB, unbuffered like the recorder's sink:");
    println!(
        "  plain file    {:8.1} MiB/s  {:6.2} µs per write",
        mib_per_s(written, plain_took),
        plain_took.as_secs_f64() * 1e6 / writes as f64
    );
    println!(
        "  encrypted     {:8.1} MiB/s  {:6.2} µs per write  ({:.1}x the plain time)",
        mib_per_s(written, sealed_took),
        sealed_took.as_secs_f64() * 1e6 / writes as f64,
        sealed_took.as_secs_f64() / plain_took.as_secs_f64()
    );
    let on_disk = std::fs::metadata(&sealed_path).unwrap().len();
    println!(
        "  size on disk  {on_disk} bytes for {written} of media (+{:.2} %)",
        (on_disk - written) as f64 * 100.0 / written as f64
    );

    let read = |path: &std::path::Path, keys: Option<&Keyring>| {
        let mut file = MediaFile::open(path, keys).unwrap();
        let t = Instant::now();
        let mut at = 0;
        while at < file.len() {
            at += file.read_range(at, PIECE).unwrap().len() as u64;
        }
        (at, t.elapsed())
    };
    let (plain_bytes, plain_read) = read(&plain_path, None);
    let (sealed_bytes, sealed_read) = read(&sealed_path, Some(&keys));
    assert_eq!(plain_bytes, sealed_bytes);
    println!("reads of 256 KiB, as a download does:");
    println!(
        "  plain file    {:8.1} MiB/s",
        mib_per_s(plain_bytes, plain_read)
    );
    println!(
        "  encrypted     {:8.1} MiB/s  ({:.1}x the plain time)",
        mib_per_s(sealed_bytes, sealed_read),
        sealed_read.as_secs_f64() / plain_read.as_secs_f64()
    );
}
