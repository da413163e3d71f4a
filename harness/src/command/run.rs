//! Running command cells: warm-up runs, then measured runs, each one the
//! program in its own process group with its own empty directory, under a
//! timeout, while the host and the program's process tree are sampled.
//! Each finished run is written at once; a cell is `complete` when at least
//! one measured run succeeded.

use super::metrics;
use super::CommandCell;
use crate::bundle::{Bundle, CellRow, CommandRunRow};
use crate::host::Sampler;
use anyhow::Result;
use harness_core::command::{MetricValue, TOKENS_UNIT};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the cells need from the run that holds them.
pub struct Context<'a> {
    pub run_id: &'a str,
    /// Rerun cells the bundle has complete.
    pub force: bool,
    /// Set by Ctrl-C or SIGTERM: the program is killed and its cell left
    /// incomplete.
    pub stop: Arc<AtomicBool>,
    pub quiet: bool,
    pub pricing: &'a mut crate::pricing::Pricer,
}

/// What happened to the cells.
#[derive(Debug, Default)]
pub struct Tally {
    pub ran: usize,
    pub already_complete: usize,
    /// One line per failed cell.
    pub failures: Vec<String>,
}

/// Kept of each stream for the bundle (the end, where errors are).
const TAIL_BYTES: usize = 4096;

/// Runs `cells` (those not complete in `bundle`, unless `force`), writing
/// each run as it ends.
pub async fn run_cells(
    bundle: &mut Bundle,
    cells: &[CommandCell],
    cx: &mut Context<'_>,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let done = bundle.completed_cells()?;
    let mut samplers: BTreeMap<u128, Sampler> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if cx.stop.load(Ordering::SeqCst) {
            break;
        }
        if done.contains(&c.id) && !cx.force {
            tally.already_complete += 1;
            continue;
        }
        let interval = c.endpoint.sample_interval;
        let sampler = samplers
            .entry(interval.as_nanos())
            .or_insert_with(|| Sampler::new(interval));
        if !cx.quiet {
            eprintln!(
                "[{}/{}] {} ({} warm-up + {} measured run(s))",
                i + 1,
                cells.len(),
                c.label,
                c.endpoint.warmup_runs,
                c.endpoint.runs
            );
        }
        let (status, reason) = run_cell(bundle, c, sampler, cx).await?;
        tally.ran += 1;
        if status == "failed" {
            tally.failures.push(format!(
                "{}: {}",
                c.label,
                reason.as_deref().unwrap_or("failed")
            ));
        }
    }
    Ok(tally)
}

/// Runs one cell; gives its status and reason as written.
async fn run_cell(
    bundle: &mut Bundle,
    c: &CommandCell,
    sampler: &Sampler,
    cx: &mut Context<'_>,
) -> Result<(&'static str, Option<String>)> {
    let ep = &c.endpoint;
    let price = ep
        .instance_type
        .as_deref()
        .and_then(|t| hourly_price(cx.pricing, t));
    let args = serde_json::to_string(&c.cell.args)?;
    let argv = serde_json::to_string(&c.argv)?;
    let hash_inputs = harness_core::hash::canonical_json(&c.hash_inputs);
    bundle.begin_cell(&CellRow {
        cell_id: &c.id,
        run_id: cx.run_id,
        ordinal: c.ordinal,
        label: &c.label,
        endpoint: &ep.name,
        scenario: &c.cell.scenario,
        args: &args,
        argv: &argv,
        hash_inputs: &hash_inputs,
        instance_type: ep.instance_type.as_deref(),
        instance_count: ep.instance_count,
        warmup_runs: ep.warmup_runs,
        runs: ep.runs,
        usd_per_hour: price.as_ref().map(|p| p.0),
        price_source: price.as_ref().map(|p| p.1.as_str()),
        started_at: chrono::Utc::now(),
    })?;
    let clock = crate::clock::Clock::new();
    let mut ok = 0;
    let mut last_problem = None;
    let total = ep.warmup_runs + ep.runs;
    for run in 0..total {
        if cx.stop.load(Ordering::SeqCst) {
            break;
        }
        let warmup = run < ep.warmup_runs;
        let r = run_once(
            c,
            run,
            warmup,
            sampler,
            &clock,
            &cx.stop,
            price.as_ref().map(|p| p.0),
        )
        .await?;
        if !cx.quiet {
            let what = if warmup { "warm-up run" } else { "run" };
            match &r.row.error {
                None => eprintln!(
                    "  {what} {}: ok in {:.2} s",
                    run,
                    (r.row.ended_ns - r.row.started_ns) as f64 / 1e9
                ),
                Some(e) => eprintln!("  {what} {}: {} ({e})", run, r.row.status),
            }
        }
        if r.row.status == "ok" && !warmup {
            ok += 1;
        }
        if r.row.status != "ok" {
            last_problem = r.row.error.clone();
        }
        bundle.write_cell_run(&c.id, &r.row, &r.metrics, &r.samples, &r.gpu)?;
        if r.row.status == "interrupted" {
            break;
        }
    }
    let (status, reason) = if cx.stop.load(Ordering::SeqCst) {
        (
            "incomplete",
            Some("stopped by a signal; the runs it finished are kept".to_string()),
        )
    } else if ok == 0 {
        (
            "failed",
            Some(format!(
                "no measured run succeeded; the last error: {}",
                last_problem.unwrap_or_else(|| "none recorded".into())
            )),
        )
    } else if ok < ep.runs {
        (
            "complete",
            Some(format!(
                "{} of {} measured runs failed",
                ep.runs - ok,
                ep.runs
            )),
        )
    } else {
        ("complete", None)
    };
    bundle.finish_cell(&c.id, status, reason.as_deref())?;
    Ok((status, reason))
}

/// One run's rows.
struct RunResult {
    row: CommandRunRow,
    metrics: Vec<MetricValue>,
    samples: Vec<harness_core::host::HostSampleRow>,
    gpu: Vec<(i64, i64, i64)>,
}

/// Runs the program once: spawns it in its own process group (so a timeout
/// or Ctrl-C kills everything it started), reads its stdout and stderr,
/// samples the host and its process tree while it lasts, then reads its
/// metrics.
#[allow(clippy::too_many_arguments)]
async fn run_once(
    c: &CommandCell,
    run: u32,
    warmup: bool,
    sampler: &Sampler,
    clock: &crate::clock::Clock,
    stop: &AtomicBool,
    usd_per_hour: Option<f64>,
) -> Result<RunResult> {
    let ep = &c.endpoint;
    let dir = RunDir::new(&c.id, run)?;
    let builtins = BTreeMap::from([
        ("run_dir".to_string(), dir.path().display().to_string()),
        ("run".to_string(), run.to_string()),
    ]);
    // From the template, once: an argument's value is put in verbatim,
    // braces and all (rendering `c.argv` again would read them as placeholders).
    let argv = harness_core::command::render(&ep.template, &c.cell.args, &builtins)
        .map_err(anyhow::Error::msg)?;
    let baseline = sampler.gpu_memory_now().await;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(&ep.env)
        .env("HARNESS_RUN_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let sampling = sampler.start(*clock);
    let started_ns = clock.now_ns();
    let mut row = CommandRunRow {
        run,
        warmup,
        started_ns,
        ended_ns: started_ns,
        exit_code: None,
        status: "ok",
        error: None,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        peak_rss_bytes: None,
        gpu_mem_peak_bytes: None,
        usd: None,
        tokens: None,
        usd_per_1m_tokens: None,
    };
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            let _ = sampling.finish().await;
            row.status = "not_started";
            row.error = Some(format!("`{}` could not be started: {e}", argv[0]));
            return Ok(RunResult {
                row,
                metrics: vec![],
                samples: vec![],
                gpu: vec![],
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    sampler.watched().store(pid, Ordering::Relaxed);
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let deadline = tokio::time::Instant::now() + ep.timeout;
    let waited = async {
        loop {
            tokio::select! {
                s = child.wait() => return Ok(s),
                _ = tokio::time::sleep_until(deadline) => return Err("timeout"),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::SeqCst) {
                        return Err("interrupted");
                    }
                }
            }
        }
    };
    let (status, stdout, stderr) = tokio::join!(
        async {
            let s = waited.await;
            if s.is_err() {
                kill_group(pid);
            }
            s
        },
        out,
        err
    );
    row.ended_ns = clock.now_ns();
    sampler.watched().store(0, Ordering::Relaxed);
    let samples = sampling.finish().await;
    row.stdout_tail = tail(&stdout);
    row.stderr_tail = tail(&stderr);
    match status {
        Err("timeout") => {
            row.status = "timeout";
            row.error = Some(format!(
                "killed after its timeout of {} (its process group)",
                humantime::format_duration(ep.timeout)
            ));
        }
        Err(_) => {
            row.status = "interrupted";
            row.error = Some("killed by Ctrl-C or SIGTERM".into());
        }
        Ok(Ok(st)) if st.success() => row.exit_code = Some(0),
        Ok(Ok(st)) => {
            row.exit_code = st.code();
            row.status = "failed";
            use std::os::unix::process::ExitStatusExt;
            row.error = Some(match (st.code(), st.signal()) {
                (Some(code), _) => format!(
                    "exited with status {code}{}",
                    last_line(&row.stderr_tail)
                        .map(|l| format!("; stderr ends: {l}"))
                        .unwrap_or_default()
                ),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => "ended without a status".into(),
            });
        }
        Ok(Err(e)) => {
            row.status = "failed";
            row.error = Some(format!("waiting for it failed: {e}"));
        }
    }
    // Samples onto the cell's clock are already there; rows per GPU.
    let mut rows = crate::host::rows(&c.id, &samples, Some((started_ns, row.ended_ns)));
    for r in &mut rows {
        r.load_window = if warmup { "warmup" } else { "measured" }.to_string();
    }
    row.peak_rss_bytes = samples.iter().filter_map(|s| s.proc_rss_bytes).max();
    let peak = harness_core::host::gpu_memory_peak(&baseline, &rows);
    let gpu: Vec<(i64, i64, i64)> = peak
        .as_ref()
        .map(|p| {
            p.per_device
                .iter()
                .map(|(i, b)| (*i, baseline.get(i).copied().unwrap_or(0), *b))
                .collect()
        })
        .unwrap_or_default();
    row.gpu_mem_peak_bytes = peak.map(|p| p.mean_bytes);

    let mut values = vec![];
    if row.status == "ok" {
        let got = metrics::extract(&ep.metrics, &stdout, &builtins);
        if got.problems.is_empty() {
            for (name, vs) in &got.values {
                let unit = &ep.metrics[name].unit;
                values.extend(vs.iter().enumerate().map(|(idx, v)| MetricValue {
                    run: run as i64,
                    metric: name.clone(),
                    unit: unit.clone(),
                    idx: idx as i64,
                    value: *v,
                }));
            }
        } else {
            row.status = "no_metrics";
            row.error = Some(format!(
                "declared metric(s) missing or malformed: {}",
                got.problems.join("; ")
            ));
        }
    }
    let tokens: f64 = values
        .iter()
        .filter(|v| v.unit == TOKENS_UNIT)
        .map(|v| v.value)
        .sum();
    let has_tokens = values.iter().any(|v| v.unit == TOKENS_UNIT);
    row.tokens = has_tokens.then_some(tokens);
    if let Some(usd_h) = usd_per_hour {
        let seconds = (row.ended_ns - row.started_ns) as f64 / 1e9;
        let (usd, per_1m) =
            harness_core::command::run_cost(usd_h, ep.instance_count, seconds, row.tokens);
        row.usd = Some(usd);
        row.usd_per_1m_tokens = per_1m;
    }
    Ok(RunResult {
        row,
        metrics: values,
        samples: rows,
        gpu,
    })
}

/// Reads a pipe to its end (lossy UTF-8).
async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: Option<R>) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![];
    if let Some(mut r) = r {
        let _ = r.read_to_end(&mut buf).await;
    }
    crate::redact::text(&String::from_utf8_lossy(&buf))
}

/// The last [`TAIL_BYTES`] of `s`, from a character boundary.
fn tail(s: &str) -> String {
    if s.len() <= TAIL_BYTES {
        return s.to_string();
    }
    let mut i = s.len() - TAIL_BYTES;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}

fn last_line(s: &str) -> Option<&str> {
    s.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// SIGKILL to the process group the program leads (it and everything it
/// started that did not leave the group).
fn kill_group(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
}

/// A run's own empty directory (`{run_dir}`), removed when the run's
/// metrics have been read.
struct RunDir(std::path::PathBuf);

impl RunDir {
    fn new(cell_id: &str, run: u32) -> Result<RunDir> {
        let p = std::env::temp_dir().join(format!(
            "harness-run-{}-{}-{run}",
            std::process::id(),
            &cell_id[..12.min(cell_id.len())]
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .map_err(|e| anyhow::anyhow!("cannot create the run directory {}: {e}", p.display()))?;
        Ok(RunDir(p))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The instance price of a command endpoint's `instance_type`: (USD per
/// hour, where the price came from), or `None` (warned about once).
pub fn hourly_price(
    pricing: &mut crate::pricing::Pricer,
    instance_type: &str,
) -> Option<(f64, String)> {
    pricing
        .price(Some(instance_type), "", true)
        .and_then(|p| match p.rate {
            harness_core::cost::Rate::InstanceHour(usd) => Some((usd, p.source)),
            _ => None,
        })
}
