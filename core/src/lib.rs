//! Pure definitions shared by the harness and the viewer.
//!
//! Everything a number in a report depends on lives here, once: what each metric
//! means ([`metrics`]), how a distribution is summarised ([`stats`]), how an
//! experiment's identity is hashed ([`hash`]), and the deterministic random
//! numbers that make plans and prompts reproducible ([`rng`]). The crate does no
//! I/O and has no async runtime, so it compiles to `wasm32-unknown-unknown` and
//! the viewer recomputes exactly what the harness printed.

pub mod analysis;
pub mod capacity;
pub mod command;
pub mod cost;
pub mod diff;
pub mod hash;
pub mod host;
pub mod metrics;
pub mod outcome;
pub mod recommend;
pub mod rng;
pub mod sample;
pub mod search;
pub mod server;
pub mod slo;
pub mod stats;
pub mod summary;

pub use metrics::Metric;
pub use sample::RequestSample;
pub use stats::Distribution;
pub use summary::ExperimentSummary;
