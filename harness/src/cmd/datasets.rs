use crate::cli::DatasetsCommand;
use std::process::ExitCode;

pub async fn run(c: DatasetsCommand) -> anyhow::Result<ExitCode> {
    let DatasetsCommand::Inspect(args) = c;
    let a = &args.config;
    let (loaded, exps) = match super::load(a).await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let mut seen = std::collections::HashSet::new();
    for e in &exps {
        let card = e.card();
        if seen.insert((card.dataset.clone(), card.tokenizer_sha256.clone())) {
            println!("{}", card.render());
        }
        if args.samples > 0
            && seen.insert((
                format!("{}#{}", card.dataset, e.bucket),
                card.tokenizer_sha256.clone(),
            ))
        {
            let w = crate::workload::Workload::new(e, loaded.config.sampling.max_tokens, 0);
            for i in 0..args.samples {
                let it = w.item(i);
                println!(
                    "  [{}] #{i} prompt tokens {} (as the server counts: {}), max_tokens {}: {}",
                    e.bucket_name(),
                    e.tokenizer.count(&it.prompt),
                    it.prompt_tokens_client,
                    it.max_tokens,
                    serde_json::to_string(&*it.prompt).expect("string")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
