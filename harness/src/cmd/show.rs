use crate::bundle::read;
use crate::cli::ShowArgs;
use crate::report::table;
use std::process::ExitCode;

pub fn run(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let conn = read::open(&a.bundle)?;
    if a.json {
        let doc = serde_json::json!({
            "bundle": a.bundle.display().to_string(),
            "runs": read::runs(&conn)?,
            "experiments": read::experiments(&conn)?,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runs = read::runs(&conn)?;
    for r in &runs {
        println!(
            "run {} · {} · harness {} ({}) · {} · {}{}",
            r.run_id,
            r.started_at,
            r.harness_version,
            r.git_revision,
            r.config_file,
            r.status,
            r.status_reason
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    let exps = read::experiments(&conn)?;
    let max_error_rate = crate::report::model::budgeted_error_rate(&runs);
    println!();
    print!(
        "{}",
        table::render(
            &exps,
            &|id| exps
                .iter()
                .find(|e| e.experiment_id == id)
                .filter(|e| e.status == "skipped") // failures show their error classes
                .and_then(|e| e.status_reason.as_deref())
                .map(|r| r.trim_start_matches("skipped: ").to_string()),
            max_error_rate
        )
    );
    println!("bundle: {}", a.bundle.display());
    Ok(ExitCode::SUCCESS)
}
