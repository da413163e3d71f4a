use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = harness::cli::Cli::parse();
    match harness::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", harness::redact::text(&format!("{e:#}")));
            ExitCode::from(harness::exit::code_for(&e))
        }
    }
}
