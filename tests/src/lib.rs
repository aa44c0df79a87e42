//! End-to-end tests across the Portcullis crates live in `tests/`: stacks of
//! layers from different crates, in API Gateway's order, exercised through a
//! real axum router. This library is empty on purpose; it only gives the
//! tests a package.
