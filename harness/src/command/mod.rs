//! Command experiments: a program (offline inference, fine-tuning, anything)
//! benchmarked over a scenario matrix, with its own metrics and the host's.
//!
//! An endpoint with provider `command` expands into cells
//! (`harness_core::command::expand`), each identified by SHA-256 over its
//! canonical inputs ([`plan`]); each cell runs `warmup_runs` unmeasured and
//! `runs` measured times ([`run`]), its metrics read from what the program
//! writes ([`metrics`]) while the host and the program's process tree are
//! sampled (`crate::host::Sampler`).

pub mod metrics;
pub mod run;

use crate::config::{CommandEndpoint, Config};
use anyhow::{Context, Result};
use harness_core::command::Cell;
use harness_core::hash::{experiment_id, HASH_SCHEMA_VERSION};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One cell of a command endpoint's matrix, with its id.
#[derive(Debug, Clone)]
pub struct CommandCell {
    /// SHA-256 over [`CommandCell::hash_inputs`].
    pub id: String,
    /// Its place among all the config's cells, from 0.
    pub ordinal: usize,
    /// `endpoint · scenario · k=v, ...`.
    pub label: String,
    pub endpoint: Arc<CommandEndpoint>,
    pub cell: Cell,
    /// The argument vector with `{run_dir}` and `{run}` still unfilled.
    pub argv: Vec<String>,
    /// What defines the cell (docs/experiment-id.md, "Command cells"): the
    /// endpoint's name, instance type and count; the scenario and every
    /// argument; the command line as written and as rendered; the SHA-256
    /// of each named input file; `env` (values) and `secret_env` (names
    /// only); warm-up runs, runs and timeout; the declared metrics. Not
    /// hashed: the sample interval, prices, the output location.
    pub hash_inputs: Value,
}

/// The builtins left unfilled in [`CommandCell::argv`].
fn unfilled() -> BTreeMap<String, String> {
    harness_core::command::BUILTINS
        .iter()
        .map(|b| (b.to_string(), format!("{{{b}}}")))
        .collect()
}

/// Expands every command endpoint of `cfg` into cells and computes their
/// ids. Errors: an input file that cannot be read, named with its endpoint.
pub fn plan(cfg: &Config) -> Result<Vec<CommandCell>> {
    let mut out = vec![];
    for ep in &cfg.commands {
        let ep = Arc::new(ep.clone());
        let mut inputs = BTreeMap::new();
        for path in &ep.inputs {
            let bytes = std::fs::read(path).with_context(|| {
                format!(
                    "endpoint `{}`: reading its input `{path}` (paths are relative to the directory the harness runs in)",
                    ep.name
                )
            })?;
            inputs.insert(path.clone(), harness_core::hash::sha256_hex(&bytes));
        }
        let cells = harness_core::command::expand(&ep.defaults, &ep.scenarios, &ep.matrix)
            .map_err(|e| anyhow::anyhow!("endpoint `{}`: {e}", ep.name))?;
        for cell in cells {
            let argv = harness_core::command::render(&ep.template, &cell.args, &unfilled())
                .map_err(|e| anyhow::anyhow!("endpoint `{}`: {e}", ep.name))?;
            let hash_inputs = json!({
                "kind": "command",
                "hash_schema": HASH_SCHEMA_VERSION,
                "endpoint": {
                    "name": ep.name,
                    "instance_type": ep.instance_type,
                    "instance_count": ep.instance_count,
                },
                "run": ep.run,
                "scenario": cell.scenario,
                "args": cell.args,
                "argv": argv,
                "inputs": inputs,
                "env": ep.env,
                "secret_env": ep.secret_env,
                "warmup_runs": ep.warmup_runs,
                "runs": ep.runs,
                "timeout_s": ep.timeout.as_secs_f64(),
                "metrics": serde_json::to_value(&ep.metrics).expect("serialisable"),
            });
            out.push(CommandCell {
                id: experiment_id(&hash_inputs),
                ordinal: out.len(),
                label: format!("{} · {}", ep.name, cell.label()),
                endpoint: ep.clone(),
                cell,
                argv,
                hash_inputs,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::load_str(yaml, "c.yml", "c", &[])
            .map_err(|e| e.to_string())
            .unwrap()
            .config
    }

    const BASE: &str = r#"
name: t
endpoints:
  - name: train
    provider: command
    command:
      run: python3 train.py --gpus {num_gpus} {args}
      defaults: { lr: 0.001, epochs: 1 }
      scenarios:
        - name: full
          arguments: { model: [a, b] }
        - name: lora
          arguments: { model: a, r: 8 }
      matrix: { num_gpus: [1, 2] }
      metrics: { train_runtime: { unit: s } }
"#;

    #[test]
    fn the_same_config_gives_the_same_cells_and_an_argument_changes_only_its_cells() {
        let a = plan(&config(BASE)).unwrap();
        let again = plan(&config(BASE)).unwrap();
        let ids = |cells: &[CommandCell]| cells.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(a.len(), 6);
        assert_eq!(ids(&a), ids(&again));
        assert_eq!(
            a[0].argv,
            [
                "python3", "train.py", "--gpus", "1", "--epochs", "1", "--lr", "0.001", "--model",
                "a"
            ]
        );
        // The lora scenario's r changes the lora cells only.
        let b = plan(&config(&BASE.replace("r: 8", "r: 16"))).unwrap();
        let changed: Vec<&str> = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.id != y.id)
            .map(|(x, _)| x.label.as_str())
            .collect();
        assert_eq!(
            changed,
            ["train · lora · num_gpus=1", "train · lora · num_gpus=2"]
        );
        // A default changes every cell; the run count too.
        let c = plan(&config(&BASE.replace("epochs: 1", "epochs: 2"))).unwrap();
        assert!(a.iter().zip(&c).all(|(x, y)| x.id != y.id));
        // A new matrix value adds cells and keeps the old ones' ids.
        let d = plan(&config(&BASE.replace("[1, 2]", "[1, 2, 4]"))).unwrap();
        assert_eq!(d.len(), 9);
        assert!(ids(&a).iter().all(|id| ids(&d).contains(id)));
    }

    #[test]
    fn an_input_files_content_is_part_of_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("train.py");
        std::fs::write(&script, "print(1)").unwrap();
        let yaml = BASE.replace(
            "      defaults:",
            &format!("      inputs: [{}]\n      defaults:", script.display()),
        );
        let a = plan(&config(&yaml)).unwrap();
        std::fs::write(&script, "print(2)").unwrap();
        let b = plan(&config(&yaml)).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.id != y.id));
        // A missing input is a config error, with its line and field.
        let cfg = config(&yaml);
        std::fs::remove_file(&script).unwrap();
        let e = crate::config::load_str(&yaml, "c.yml", "c", &[])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("endpoints[0].command.inputs[0]") && e.contains("cannot be read"),
            "{e}"
        );
        // Removed between validation and planning: the plan names it.
        let e = plan(&cfg).unwrap_err();
        assert!(
            format!("{e:#}").contains("endpoint `train`: reading its input"),
            "{e:#}"
        );
    }
}
