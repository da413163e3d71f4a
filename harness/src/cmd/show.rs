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
    for r in read::runs(&conn)? {
        println!(
            "run {} · {} · harness {} ({}) · {} · {}",
            r.run_id, r.started_at, r.harness_version, r.git_revision, r.config_file, r.status
        );
    }
    let exps = read::experiments(&conn)?;
    println!();
    print!("{}", table::render(&exps, &|_| None));
    println!("bundle: {}", a.bundle.display());
    Ok(ExitCode::SUCCESS)
}
