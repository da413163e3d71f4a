//! One module per subcommand.

pub mod datasets;
pub mod diff;
pub mod merge;
pub mod plan;
pub mod report;
pub mod run;
pub mod show;
pub mod sim;
pub mod validate;

use crate::cli::ConfigArgs;
use crate::config::{self, Loaded};
use crate::plan::Experiment;
use std::process::ExitCode;

/// Parse → validate → expand, shared by every command that takes a config.
/// Bad input (config errors, unreadable datasets or tokenizers) is printed
/// here and becomes exit status 2.
pub async fn load(a: &ConfigArgs) -> Result<(Loaded, Vec<Experiment>), ExitCode> {
    let loaded = config::load_file(&a.config, &a.set).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(crate::EXIT_BAD_INPUT)
    })?;
    let exps = crate::plan::expand(&loaded.config).await.map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(crate::EXIT_BAD_INPUT)
    })?;
    Ok((loaded, exps))
}
