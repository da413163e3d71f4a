//! Exit statuses: one scheme for every command, documented in the README
//! ("Exit codes") so that a CI job can tell a finding from a failure.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a finding the command was asked to gate on: `diff --fail-on-regression` found a significant regression; `plan` found no configuration that holds the budget |
//! | 2 | bad input: a config, argument, pricing file or bundle the user must fix (clap's own usage errors also exit 2) |
//! | 3 | a runtime failure: an endpoint failed its preflight check, an experiment had no successful request, a run stopped on an error, a file could not be written |
//! | 130 | interrupted (Ctrl-C or SIGTERM); every finished experiment is kept |

use std::fmt;

pub const SUCCESS: u8 = 0;
pub const FINDING: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const RUNTIME_FAILURE: u8 = 3;
pub const INTERRUPTED: u8 = 130;

/// An error the user fixes by changing their input. Anywhere in an error's
/// chain it makes the exit status [`BAD_INPUT`]; every other error is a
/// [`RUNTIME_FAILURE`].
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `bad_input!("--rpm {r}: expected ...")`: return a [`BadInput`] error.
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::exit::BadInput(format!($($arg)*))))
    };
}

/// A [`BadInput`] error, for `map_err` and `ok_or_else`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// The exit status for an error that ended a command.
pub fn code_for(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<BadInput>()) {
        BAD_INPUT
    } else {
        RUNTIME_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_is_exit_2() {
        let e: anyhow::Error = Err::<(), _>(bad_input("no bundle at x"))
            .context("reading bundles")
            .unwrap_err();
        assert_eq!(code_for(&e), BAD_INPUT);
        assert_eq!(code_for(&anyhow::anyhow!("disk full")), RUNTIME_FAILURE);
    }
}
