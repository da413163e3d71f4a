use crate::cli::ValidateArgs;
use std::process::ExitCode;

pub async fn run(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (loaded, exps) = match super::load(&a.config).await {
        Ok(x) => x,
        Err(code) => return Ok(code),
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
