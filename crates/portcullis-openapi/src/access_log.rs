//! Access logs.
