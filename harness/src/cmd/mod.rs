//! One module per subcommand.

pub mod datasets;
pub mod run;
pub mod show;
pub mod sim;
pub mod validate;
