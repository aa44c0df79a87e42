//! Criterion benches of the SigV4 layer (filled in below).

fn main() {}
