use crate::cli::ValidateArgs;
use crate::config;
use crate::plan;
use std::process::ExitCode;

pub async fn run(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    let loaded = match config::load_file(&a.config.config, &a.config.set) {
        Ok(l) => l,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::from(crate::EXIT_BAD_INPUT));
        }
    };
    let exps = match plan::expand(&loaded.config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(crate::EXIT_BAD_INPUT));
        }
    };
    if a.show_settings {
        println!("# Resolved config (defaults filled in, secrets masked)");
        print!("{}", loaded.effective_yaml);
        println!("\n# Experiments ({})", exps.len());
        for e in &exps {
            println!("{}  {}", e.id, e.label);
        }
    } else {
        println!("{}: OK, {} experiments", loaded.file, exps.len());
    }
    Ok(ExitCode::SUCCESS)
}
