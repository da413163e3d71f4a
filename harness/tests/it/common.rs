use harness::bundle::read::{self, StoredExperiment};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// Writes `yaml` to `dir/name.yml` and returns the path.
pub fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yml"));
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `harness run -q CONFIG --out DIR/NAME.duckdb [extra...]`; returns the bundle path.
pub fn run_into(dir: &Path, cfg: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.duckdb"));
    let mut args = vec![
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    out
}

/// `harness run -q EXTRA... CFG --out OUT`, for a test to add environment
/// variables to before `.output()`.
pub fn run_cmd(cfg: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = harness();
    c.args(["run", "-q"])
        .args(extra)
        .arg(cfg)
        .arg("--out")
        .arg(out);
    c
}

/// Starts `harness run CFG --out OUT` and returns once its stderr shows a
/// line starting with `prefix` (e.g. `done: [1/2]`), the run still going. Its
/// stderr keeps being read (and dropped) so that the run never blocks on,
/// or fails writing to, a full or closed pipe.
pub fn run_until(cfg: &Path, out: &Path, prefix: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = harness()
        .arg("run")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with(prefix) {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// `harness ARGS...`, whatever its exit status.
pub fn output(args: &[&str]) -> Output {
    harness().args(args).output().unwrap()
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = harness().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "harness {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn experiments(bundle: &Path) -> Vec<StoredExperiment> {
    let conn = read::open(bundle).unwrap();
    read::experiments(&conn).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Taken by tests that load the cores with several processes (the 3-shard
/// run) and by tests whose assertions need the cores quiet (a 30% slowdown
/// found at every percentile), so that the two never run at once on a
/// 2-core CI machine.
pub fn quiet_cores() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `harness sim` on a free loopback port with `args` (default profile when
/// empty), once it says where it serves; its stderr keeps being read.
/// Returns the process and the port.
pub fn start_sim(args: &[&str]) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = harness()
        .args(["sim", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stderr.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("serving"));
    std::thread::spawn(move || lines.for_each(drop));
    (sim, port)
}
