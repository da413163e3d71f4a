//! The embedded simulated LLM server: OpenAI-compatible, streaming, on loopback.
//! `profile.rs` is the performance model, `engine.rs` runs sequences against
//! it, `server.rs` speaks HTTP, and `aws.rs` the SageMaker and Bedrock
//! runtime APIs (event streams included). `truth.rs` logs what the simulator
//! did, for benchmarks that measure a client's error against it.

pub mod aws;
pub mod engine;
pub mod profile;
pub mod server;
pub mod truth;

pub use engine::{Engine, EngineOptions};
pub use server::SimServer;
