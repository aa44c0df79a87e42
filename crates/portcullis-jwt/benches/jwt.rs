//! Placeholder: the benches land in the next commit.

fn main() {}
