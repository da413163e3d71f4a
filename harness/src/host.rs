//! Facts about the machine that ran the client, recorded with each run, and
//! the sampler of its CPU, memory and GPUs while experiments run
//! (`host_samples`; the windows and percentiles are `harness_core::host`).

pub struct HostFacts {
    pub name: Option<String>,
    pub os: String,
    pub arch: String,
    pub cpus: i32,
    pub memory_bytes: Option<i64>,
}

pub fn facts() -> HostFacts {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<i64>().ok())
            .map(|kb| kb * 1024)
    });
    HostFacts {
        name,
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(1),
        memory_bytes,
    }
}

/// One sample of the host: CPU and memory, and each GPU NVML sees.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Nanoseconds since the experiment's start (its clock), when the
    /// sample was read; CPU utilisation is over the interval before it, NVML
    /// utilisation over the driver's own sample period (1/6 s to 1 s).
    pub t_ns: i64,
    pub cpu_util_pct: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    pub gpus: Vec<GpuSample>,
}

/// One GPU in one [`Sample`]; a figure the device does not report is `None`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GpuSample {
    pub index: i64,
    pub util_pct: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    pub power_w: Option<f64>,
}

/// What reads the host: sysinfo for CPU and memory, NVML (loaded at run
/// time from the driver's `libnvidia-ml.so.1`, when there is one) for GPUs.
struct Probe {
    sys: sysinfo::System,
    nvml: Option<nvml_wrapper::Nvml>,
}

impl Probe {
    fn read(&mut self, t_ns: i64) -> Sample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let cpu = self.sys.global_cpu_usage() as f64;
        let total = self.sys.total_memory();
        let gpus = match &self.nvml {
            None => vec![],
            Some(nvml) => (0..nvml.device_count().unwrap_or(0))
                .map(|i| {
                    let d = nvml.device_by_index(i).ok();
                    let mem = d.as_ref().and_then(|d| d.memory_info().ok());
                    GpuSample {
                        index: i as i64,
                        util_pct: d
                            .as_ref()
                            .and_then(|d| d.utilization_rates().ok())
                            .map(|u| u.gpu as f64),
                        mem_used_bytes: mem.as_ref().map(|m| m.used as i64),
                        mem_total_bytes: mem.as_ref().map(|m| m.total as i64),
                        power_w: d
                            .as_ref()
                            .and_then(|d| d.power_usage().ok())
                            .map(|mw| mw as f64 / 1e3),
                    }
                })
                .collect(),
        };
        Sample {
            t_ns,
            cpu_util_pct: cpu.is_finite().then_some(cpu),
            mem_used_bytes: (total > 0).then_some(self.sys.used_memory() as i64),
            mem_total_bytes: (total > 0).then_some(total as i64),
            gpus,
        }
    }
}

/// Samples the host every `interval` while an experiment runs. One per run:
/// NVML is loaded once.
pub struct Sampler {
    probe: std::sync::Arc<std::sync::Mutex<Probe>>,
    interval: std::time::Duration,
    gpus: String,
}

impl Sampler {
    /// Sampling every second, as the issue and FMBench's collector do.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    pub fn new(interval: std::time::Duration) -> Sampler {
        let (nvml, gpus) = match nvml_wrapper::Nvml::init() {
            Ok(n) => {
                let count = n.device_count().unwrap_or(0);
                let name = n
                    .device_by_index(0)
                    .and_then(|d| d.name())
                    .unwrap_or_else(|_| "unnamed".into());
                let driver = n.sys_driver_version().unwrap_or_default();
                let what = match count {
                    0 => "NVML found no GPU".to_string(),
                    1 => format!("1 GPU ({name}, driver {driver})"),
                    k => format!("{k} GPUs ({name}, ...; driver {driver})"),
                };
                (Some(n), what)
            }
            // No NVIDIA driver on this host: the common case, said briefly.
            Err(nvml_wrapper::error::NvmlError::LibloadingError(_)) => (
                None,
                "no GPU metrics (no NVIDIA driver: libnvidia-ml.so.1 not found)".to_string(),
            ),
            Err(e) => (None, format!("no GPU metrics: NVML failed ({e})")),
        };
        let mut sys = sysinfo::System::new();
        // CPU utilisation is the change between two refreshes: the first one
        // sets the baseline.
        sys.refresh_cpu_usage();
        Sampler {
            probe: std::sync::Arc::new(std::sync::Mutex::new(Probe { sys, nvml })),
            interval,
            gpus,
        }
    }

    /// What the GPU columns will hold, for the run's log: the GPUs found, or
    /// why there are none (then the GPU columns are null).
    pub fn gpus(&self) -> &str {
        &self.gpus
    }

    /// Starts sampling on `clock` until [`Sampling::finish`]: one sample per
    /// interval, the first one interval after the start. Each read runs on a
    /// blocking thread (NVML calls block), never on the request path.
    pub fn start(&self, clock: crate::clock::Clock) -> Sampling {
        let (probe, interval) = (self.probe.clone(), self.interval);
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut out = vec![];
            // CPU utilisation is over the time since the last refresh: reset
            // it here, so the first sample, one interval in, covers only
            // this experiment.
            let p = probe.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(mut p) = p.lock() {
                    p.sys.refresh_cpu_usage();
                }
            })
            .await;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stop_rx => break,
                }
                let p = probe.clone();
                let t_ns = clock.now_ns();
                let read = move || p.lock().ok().map(|mut p| p.read(t_ns));
                match tokio::task::spawn_blocking(read).await {
                    Ok(Some(s)) => out.push(s),
                    _ => break,
                }
            }
            out
        });
        Sampling {
            stop: stop_tx,
            task,
        }
    }
}

/// A sampler running over one experiment.
pub struct Sampling {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampling {
    /// Stops sampling and gives what was sampled, oldest first.
    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// `samples` as `host_samples` rows of `experiment_id`, each in its load
/// window of `measured` (`harness_core::summary::measurement_window`).
pub fn rows(
    experiment_id: &str,
    samples: &[Sample],
    measured: Option<(i64, i64)>,
) -> Vec<harness_core::host::HostSampleRow> {
    let mut out = vec![];
    for s in samples {
        let row = |g: Option<&GpuSample>| harness_core::host::HostSampleRow {
            experiment_id: experiment_id.to_string(),
            load_window: harness_core::host::window_of(s.t_ns, measured).to_string(),
            t_ns: s.t_ns,
            cpu_util_pct: s.cpu_util_pct,
            mem_used_bytes: s.mem_used_bytes,
            mem_total_bytes: s.mem_total_bytes,
            gpu_index: g.map(|g| g.index),
            gpu_util_pct: g.and_then(|g| g.util_pct),
            gpu_mem_used_bytes: g.and_then(|g| g.mem_used_bytes),
            gpu_mem_total_bytes: g.and_then(|g| g.mem_total_bytes),
            gpu_power_w: g.and_then(|g| g.power_w),
        };
        if s.gpus.is_empty() {
            out.push(row(None));
        }
        out.extend(s.gpus.iter().map(|g| row(Some(g))));
    }
    out
}

/// `samples` taken on a clock that started at `sampled_from` (wall time),
/// moved onto the clock of an experiment that ran from `started_at` to
/// `ended_at` (wall time), keeping those inside it: how the serving host's
/// samples, taken by the agent on its own clock, meet an experiment run from
/// another machine (`client: local`). Both machines' wall clocks are
/// assumed in step (NTP keeps EC2 instances within milliseconds, well under
/// the one-second sampling interval).
pub fn shifted(
    samples: &[Sample],
    sampled_from: chrono::DateTime<chrono::Utc>,
    started_at: chrono::DateTime<chrono::Utc>,
    ended_at: chrono::DateTime<chrono::Utc>,
) -> Vec<Sample> {
    let offset = (started_at - sampled_from).num_nanoseconds().unwrap_or(0);
    let span = (ended_at - started_at).num_nanoseconds().unwrap_or(0);
    samples
        .iter()
        .filter_map(|s| {
            let t = s.t_ns - offset;
            (0..=span).contains(&t).then(|| Sample {
                t_ns: t,
                ..s.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_move_onto_the_experiments_clock_and_outside_ones_drop() {
        let t0 = chrono::Utc::now();
        let s = |t_ns: i64| Sample {
            t_ns,
            cpu_util_pct: Some(1.0),
            mem_used_bytes: None,
            mem_total_bytes: None,
            gpus: vec![],
        };
        let samples: Vec<Sample> = (1..=10).map(|i| s(i * 1_000_000_000)).collect();
        // An experiment from 2.5 s to 6 s after the sampling started.
        let started = t0 + chrono::Duration::milliseconds(2500);
        let ended = t0 + chrono::Duration::seconds(6);
        let got: Vec<i64> = shifted(&samples, t0, started, ended)
            .iter()
            .map(|s| s.t_ns)
            .collect();
        assert_eq!(
            got,
            [500_000_000, 1_500_000_000, 2_500_000_000, 3_500_000_000]
        );
    }
}
