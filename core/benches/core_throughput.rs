//! Core throughput benchmark (written with the engine tests).
fn main() {}
