//! The cache key: SHA-256 of a 900-byte token, sha2 against aws-lc-rs.
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::Digest;
use std::hint::black_box;
use std::time::Duration;

fn benches(c: &mut Criterion) {
    let token = "x".repeat(900);
    c.bench_function("sha2_900", |b| {
        b.iter(|| <[u8; 32]>::from(sha2::Sha256::digest(black_box(token.as_bytes()))))
    });
    c.bench_function("aws_lc_900", |b| {
        b.iter(|| {
            let d =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes()));
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        })
    });
}
criterion_group! { name = g; config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)); targets = benches }
criterion_main!(g);
