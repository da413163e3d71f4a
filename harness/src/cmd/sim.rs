use crate::cli::SimArgs;
use crate::config::SimErrorKind;
use crate::sim::{profile, Engine, EngineOptions, SimServer};
use std::net::SocketAddr;
use std::process::ExitCode;

pub fn profile_for(
    name: &str,
    ttft_ms: Option<f64>,
    itl_ms: Option<f64>,
) -> Result<profile::Profile, String> {
    let mut p = profile::lookup(name)?;
    if let (Some(t), Some(i)) = (ttft_ms, itl_ms) {
        // Ground-truth mode: fixed timings and no capacity limit.
        let mut f = profile::Profile::fixed(t / 1e3, i / 1e3);
        f.name = format!("{}+{}", p.name, f.name);
        return Ok(f);
    }
    p.fixed_ttft_s = ttft_ms.map(|v| v / 1e3);
    p.fixed_itl_s = itl_ms.map(|v| v / 1e3);
    Ok(p)
}

pub async fn run(a: SimArgs) -> anyhow::Result<ExitCode> {
    if a.list_profiles {
        for n in profile::names() {
            println!("{n}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let addr: SocketAddr = a.listen.parse().map_err(|_| {
        crate::exit::bad_input(format!(
            "--listen `{}` is not an address like 127.0.0.1:8000",
            a.listen
        ))
    })?;
    if !addr.ip().is_loopback() {
        crate::bad_input!("--listen {addr}: the simulator only listens on loopback addresses (127.0.0.0/8 or ::1)");
    }
    let p = profile_for(&a.profile, a.ttft_ms, a.itl_ms)
        .map_err(|e| crate::exit::bad_input(format!("--profile: {e}")))?;
    let error_kind = SimErrorKind::parse(&a.error_kind).ok_or_else(|| {
        crate::exit::bad_input(format!(
            "--error-kind `{}`: expected one of {}",
            a.error_kind,
            SimErrorKind::NAMES.join(", ")
        ))
    })?;
    if !(0.0..=1.0).contains(&a.error_rate) {
        crate::bad_input!("--error-rate {} must be within 0..=1", a.error_rate);
    }
    let truth =
        match &a.truth_log {
            Some(path) => Some(crate::sim::truth::TruthLog::create(path).map_err(|e| {
                crate::exit::bad_input(format!("--truth-log {}: {e}", path.display()))
            })?),
            None => None,
        };
    let engine = Engine::new(
        p.clone(),
        EngineOptions {
            seed: a.seed,
            max_concurrency: a.max_concurrency,
            error_rate: a.error_rate,
            error_kind,
            prefix_cache: !a.no_prefix_cache,
            truth,
        },
    );
    let server = SimServer::start(addr, engine).await?;
    // A fixed TTFT and ITL (ground-truth mode) model no hardware.
    let what = if p.gpus == 0 {
        "fixed timing, no capacity limit".to_string()
    } else {
        format!("{} × {}, {} replica(s)", p.gpus, p.gpu, p.replicas)
    };
    eprintln!(
        "simulator `{}` ({what}) serving OpenAI-compatible API at {}",
        p.name,
        server.base_url()
    );
    eprintln!("press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}
