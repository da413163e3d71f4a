//! `harness validate CONFIG [--show-settings] [--shard K/N …]`: every config
//! error with its file, line and field (exit 2), including API keys that are
//! not set and header values HTTP cannot carry; with `--show-settings`, the
//! resolved config, the exact request each endpoint is sent, and the
//! experiments; with `--shard`, what a shard's run would refuse
//! (`shard::check`) and each experiment's part.

use crate::cli::ValidateArgs;
use crate::config::ProviderKind;
use crate::workload::Workload;
use std::process::ExitCode;

pub async fn run(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (loaded, exps) = match super::load(&a.config).await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let (keys, secrets) = (loaded.credentials(), loaded.command_secrets());
    if keys.is_err() || secrets.is_err() {
        for errors in [keys.err(), secrets.err()].into_iter().flatten() {
            eprint!("{errors}");
        }
        return Ok(ExitCode::from(crate::exit::BAD_INPUT));
    }
    let searches = exps.iter().filter(|e| e.search.is_some()).count();
    let counted = if searches == 0 {
        format!("{} experiment(s)", exps.len())
    } else {
        format!(
            "{} experiment(s); {searches} of them capacity searches, whose probes are chosen as they run",
            exps.len()
        )
    };
    let cells = match crate::command::plan(&loaded.config) {
        Ok(c) => c,
        Err(e) => crate::bad_input!("{}: {e:#}", loaded.file),
    };
    let counted = if cells.is_empty() {
        counted
    } else {
        format!("{counted}, {} command cell(s)", cells.len())
    };
    // What a shard's run refuses before anything runs, and its part.
    let parts = match a.shard.shard {
        Some(shard) => {
            crate::shard::check(&exps, !cells.is_empty(), shard, a.shard.rule()?.as_ref())
                .map_err(crate::exit::bad_input)?;
            exps.iter()
                .map(|e| format!("  {}: shard {shard}: {}\n", e.label, shard.split(&e.plan)))
                .collect()
        }
        None => String::new(),
    };
    if !a.show_settings {
        println!("{}: OK, {counted}", loaded.file);
        print!("{parts}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("# Resolved config (defaults filled in, secrets masked)");
    print!("{}", loaded.effective_yaml);
    println!("\n# Request body per endpoint (exactly as sent; the prompt is its first request's, shortened here)");
    for (i, ep) in loaded.config.endpoints.iter().enumerate() {
        let Some(exp) = exps.iter().find(|e| e.endpoint.name == ep.name) else {
            continue;
        };
        let shape = crate::provider::request_shape(&loaded.config, ep, i);
        let url = match ep.provider {
            ProviderKind::Openai => crate::redact::url(&crate::provider::openai::join_url(
                ep.base_url.as_deref().unwrap_or(""),
                shape.path(),
            )),
            ProviderKind::Sim => format!(
                "http://127.0.0.1:<port>/v1/{} (embedded simulator)",
                shape.path()
            ),
            ProviderKind::Command => unreachable!("command endpoints are in `commands`"),
            ProviderKind::Sagemaker => {
                let s = ep.sagemaker.as_ref().expect("validated");
                format!(
                    "/endpoints/{}/{} (SageMaker runtime, {}; signed by the AWS SDK)",
                    s.endpoint_name,
                    if ep.stream {
                        "invocations-response-stream"
                    } else {
                        "invocations"
                    },
                    s.region.as_deref().unwrap_or("the run's region")
                )
            }
            ProviderKind::Bedrock => format!(
                "/model/{}/{} (Bedrock runtime, {}; signed by the AWS SDK)",
                ep.model,
                if ep.stream {
                    "converse-stream"
                } else {
                    "converse"
                },
                ep.bedrock
                    .as_ref()
                    .and_then(|b| b.region.as_deref())
                    .unwrap_or("the run's region")
            ),
        };
        let item = Workload::new(exp, loaded.config.sampling.max_tokens, 1).item(0);
        let chars = item.prompt.chars().count();
        let prompt = if chars > 60 {
            format!(
                "{}… ({} more characters)",
                item.prompt.chars().take(60).collect::<String>(),
                chars - 60
            )
        } else {
            item.prompt.to_string()
        };
        let sampling = &loaded.config.sampling;
        let mut body = match ep.provider {
            ProviderKind::Sagemaker => {
                let s = ep.sagemaker.as_ref().expect("validated");
                let bytes = crate::provider::sagemaker::request_body(
                    &s.format,
                    ep.stream,
                    sampling,
                    &shape,
                    &prompt,
                    item.max_tokens,
                );
                serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
                })
            }
            ProviderKind::Bedrock => crate::provider::bedrock::request_json(
                sampling,
                ep.bedrock.as_ref().expect("validated"),
                &prompt,
                item.max_tokens,
            ),
            _ => shape.body(&prompt, item.max_tokens),
        };
        crate::redact::value(&mut body);
        println!("\n## {}: POST {url}", ep.name);
        let mut headers = vec!["Content-Type: application/json".to_string()];
        if let Some(var) = &ep.api_key_env {
            headers.push(format!("Authorization: Bearer **** (from ${var})"));
        }
        headers.extend(ep.headers.keys().map(|k| format!("{k}: ****")));
        println!("{}", headers.join("\n"));
        println!("{}", serde_json::to_string_pretty(&body)?);
    }
    if !cells.is_empty() {
        println!("\n# Command cells (each: the command line as run; `{{run_dir}}` is the run's own directory)");
        for c in &cells {
            println!(
                "{}  {}: {}",
                c.id,
                c.label,
                crate::redact::text(
                    &shlex::try_join(c.argv.iter().map(String::as_str))
                        .unwrap_or_else(|_| c.argv.join(" "))
                )
            );
        }
    }
    println!("\n# Experiments ({counted})");
    for e in &exps {
        match &e.search {
            Some(s) => println!(
                "{}  {}: first probe of the {} (to {}%, at most {} probes)",
                e.id,
                e.label,
                s.label,
                s.settings.spec.precision * 100.0,
                s.settings.spec.max_probes
            ),
            None => println!("{}  {}", e.id, e.label),
        }
    }
    Ok(ExitCode::SUCCESS)
}
