use crate::cli::DatasetsCommand;
use crate::{config, plan};
use std::process::ExitCode;

pub async fn run(c: DatasetsCommand) -> anyhow::Result<ExitCode> {
    let DatasetsCommand::Inspect(a) = c;
    let loaded = match config::load_file(&a.config, &a.set) {
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
    let mut seen = std::collections::HashSet::new();
    for e in &exps {
        let card = e.card();
        if seen.insert((card.dataset.clone(), card.tokenizer_sha256.clone())) {
            println!("{}", card.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}
