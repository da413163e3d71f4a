//! The harness: parse → validate → run → export.
//!
//! `config` turns YAML into validated types; `plan` expands them into
//! experiments with content-hashed ids; `schedule` decides when requests are
//! sent (no HTTP); `provider` sends them (no statistics); `runner` joins the
//! two; `bundle` stores everything in DuckDB; `report` renders; `sim` is the
//! embedded simulated server. Metric and statistics definitions live in the
//! `harness-core` crate, shared with the viewer.

pub mod aws;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod command;
pub mod config;
pub mod dataset;
pub mod deploy;
pub mod exit;
pub mod host;
pub mod plan;
pub mod preflight;
pub mod pricing;
pub mod progress;
pub mod provider;
pub mod record;
pub mod redact;
pub mod report;
pub mod runner;
pub mod s3;
pub mod schedule;
pub mod scrape;
pub mod shard;
pub mod sim;
pub mod timer;
pub mod tls;
pub mod tokenizer;
pub mod tokens;
pub mod workload;

use cli::{Cli, Command};
use std::process::ExitCode;

pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(a) => runtime()?.block_on(cmd::validate::run(a)),
        Command::Datasets(a) => runtime()?.block_on(cmd::datasets::run(a)),
        Command::Show(a) => cmd::show::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Merge(a) => cmd::merge::run(a),
        Command::Publish(a) => cmd::publish::run(a),
        Command::Run(a) => runtime()?.block_on(cmd::run::run(a)),
        Command::Sim(a) => runtime()?.block_on(cmd::sim::run(a)),
        Command::Gc(a) => runtime()?.block_on(cmd::gc::run(a)),
        Command::Status(a) => cmd::gc::status(a),
        Command::Agent(a) => runtime()?.block_on(cmd::agent::run(a)),
        Command::Reindex(a) => cmd::merge::reindex(a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
