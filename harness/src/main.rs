use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `harness show x | head`: a closed pipe ends the output quietly (as
    // SIGPIPE would), instead of a panic about failing to print.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = harness::cli::Cli::parse();
    match harness::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", harness::redact::text(&format!("{e:#}")));
            ExitCode::from(harness::exit::code_for(&e))
        }
    }
}
