//! Benchmarks (placeholder until the criterion bench lands).
fn main() {}
