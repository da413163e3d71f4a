//! Integration tests: the real `harness` binary against the embedded simulator.
//! One test binary (ripgrep's layout); modules by feature.

mod accuracy;
mod aws_providers;
mod command;
mod common;
mod datasets;
mod diff;
mod ec2;
mod ec2_launch;
mod exit_codes;
mod fake;
mod faults;
mod hashing;
mod host;
mod llama;
mod merge;
mod plan;
mod preflight;
mod publish;
mod report;
mod rerun;
mod search;
mod secrets;
mod server_metrics;
mod shard;
mod stream;
mod tokenizers;
mod trace;
mod validate;
