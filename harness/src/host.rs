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
    /// Resident memory of the watched process and its descendants
    /// ([`Sampler::watched`]); `None` when no process is watched.
    #[serde(default)]
    pub proc_rss_bytes: Option<i64>,
}

/// One GPU in one [`Sample`]; a figure the device does not report is `None`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GpuSample {
    pub index: i64,
    pub util_pct: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    pub power_w: Option<f64>,
}

/// What reads the GPUs: NVML on a host with the NVIDIA driver ([`Nvml`]),
/// a fake in tests. Reads block (NVML calls do); the sampler makes them on a
/// blocking thread.
pub trait Gpus: Send {
    /// One reading of every device, by index.
    fn read(&self) -> Vec<GpuSample>;
    /// What was found, for the run's log.
    fn describe(&self) -> String;
}

/// The GPUs through NVML, loaded at run time from the driver's
/// `libnvidia-ml.so.1`.
pub struct Nvml(nvml_wrapper::Nvml);

impl Nvml {
    /// NVML, or why there are no GPU metrics on this host.
    pub fn init() -> Result<Nvml, String> {
        match nvml_wrapper::Nvml::init() {
            Ok(n) => Ok(Nvml(n)),
            // No NVIDIA driver on this host: the common case, said briefly.
            Err(nvml_wrapper::error::NvmlError::LibloadingError(_)) => {
                Err("no GPU metrics (no NVIDIA driver: libnvidia-ml.so.1 not found)".to_string())
            }
            Err(e) => Err(format!("no GPU metrics: NVML failed ({e})")),
        }
    }
}

impl Gpus for Nvml {
    fn read(&self) -> Vec<GpuSample> {
        let nvml = &self.0;
        (0..nvml.device_count().unwrap_or(0))
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
            .collect()
    }

    fn describe(&self) -> String {
        let n = &self.0;
        let count = n.device_count().unwrap_or(0);
        let name = n
            .device_by_index(0)
            .and_then(|d| d.name())
            .unwrap_or_else(|_| "unnamed".into());
        let driver = n.sys_driver_version().unwrap_or_default();
        match count {
            0 => "NVML found no GPU".to_string(),
            1 => format!("1 GPU ({name}, driver {driver})"),
            k => format!("{k} GPUs ({name}, ...; driver {driver})"),
        }
    }
}

/// What reads the host: sysinfo for CPU, memory and the watched process
/// tree, a [`Gpus`] for the GPUs.
struct Probe {
    sys: sysinfo::System,
    gpus: Option<Box<dyn Gpus>>,
}

impl Probe {
    fn read(&mut self, t_ns: i64, watched: u32) -> Sample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let cpu = self.sys.global_cpu_usage() as f64;
        let total = self.sys.total_memory();
        let gpus = self.gpus.as_ref().map(|g| g.read()).unwrap_or_default();
        let proc_rss_bytes = (watched != 0).then(|| self.tree_rss(watched));
        Sample {
            t_ns,
            cpu_util_pct: cpu.is_finite().then_some(cpu),
            mem_used_bytes: (total > 0).then_some(self.sys.used_memory() as i64),
            mem_total_bytes: (total > 0).then_some(total as i64),
            gpus,
            proc_rss_bytes,
        }
    }

    /// The resident memory of `root` and every process descended from it,
    /// bytes (0 once they have all exited).
    fn tree_rss(&mut self, root: u32) -> i64 {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate};
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let root = Pid::from_u32(root);
        let procs = self.sys.processes();
        procs
            .iter()
            .filter(|(pid, _)| {
                // Walk up to the root (bounded: a pid cycle cannot loop).
                let mut at = Some(**pid);
                for _ in 0..64 {
                    match at {
                        Some(p) if p == root => return true,
                        Some(p) => at = procs.get(&p).and_then(|x| x.parent()),
                        None => return false,
                    }
                }
                false
            })
            .map(|(_, p)| p.memory() as i64)
            .sum()
    }
}

/// Samples the host every `interval` while an experiment runs. One per run:
/// NVML is loaded once.
pub struct Sampler {
    probe: std::sync::Arc<std::sync::Mutex<Probe>>,
    interval: std::time::Duration,
    gpus: String,
    watched: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Sampler {
    /// Sampling every second, as the issue and FMBench's collector do.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Samples CPU and memory, and the GPUs through NVML where the driver is.
    pub fn new(interval: std::time::Duration) -> Sampler {
        match Nvml::init() {
            Ok(n) => Sampler::with_gpus(interval, Some(Box::new(n))),
            Err(why) => {
                let mut s = Sampler::with_gpus(interval, None);
                s.gpus = why;
                s
            }
        }
    }

    /// Samples with `gpus` reading the GPUs (`None`: no GPU columns).
    pub fn with_gpus(interval: std::time::Duration, gpus: Option<Box<dyn Gpus>>) -> Sampler {
        let what = gpus
            .as_ref()
            .map(|g| g.describe())
            .unwrap_or_else(|| "no GPU metrics".to_string());
        let mut sys = sysinfo::System::new();
        // CPU utilisation is the change between two refreshes: the first one
        // sets the baseline.
        sys.refresh_cpu_usage();
        Sampler {
            probe: std::sync::Arc::new(std::sync::Mutex::new(Probe { sys, gpus })),
            interval,
            gpus: what,
            watched: Default::default(),
        }
    }

    /// What the GPU columns will hold, for the run's log: the GPUs found, or
    /// why there are none (then the GPU columns are null).
    pub fn gpus(&self) -> &str {
        &self.gpus
    }

    /// The process whose tree's resident memory each sample takes (0: none).
    /// Set it when the process starts and back to 0 when it ends.
    pub fn watched(&self) -> &std::sync::atomic::AtomicU32 {
        &self.watched
    }

    /// One reading of the GPUs now, by index: memory used, bytes (a run's
    /// baseline, what other processes hold before it starts).
    pub async fn gpu_memory_now(&self) -> std::collections::BTreeMap<i64, i64> {
        let p = self.probe.clone();
        tokio::task::spawn_blocking(move || {
            p.lock()
                .ok()
                .and_then(|p| p.gpus.as_ref().map(|g| g.read()))
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| g.mem_used_bytes.map(|b| (g.index, b)))
        .collect()
    }

    /// Starts sampling on `clock` until [`Sampling::finish`]: one sample per
    /// interval, the first one interval after the start. Each read runs on a
    /// blocking thread (NVML calls block), never on the request path.
    pub fn start(&self, clock: crate::clock::Clock) -> Sampling {
        let (probe, interval) = (self.probe.clone(), self.interval);
        let watched = self.watched.clone();
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
                let pid = watched.load(std::sync::atomic::Ordering::Relaxed);
                let read = move || p.lock().ok().map(|mut p| p.read(t_ns, pid));
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
            proc_rss_bytes: s.proc_rss_bytes,
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
            proc_rss_bytes: None,
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

    /// Two GPUs whose memory used steps up by 1 GiB per read on device 1
    /// (a training run allocating), device 0 holding 5 GiB of another
    /// process's throughout.
    struct FakeGpus(std::sync::atomic::AtomicI64);

    impl Gpus for FakeGpus {
        fn read(&self) -> Vec<GpuSample> {
            let k = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let gib = 1i64 << 30;
            (0..2)
                .map(|i| GpuSample {
                    index: i,
                    util_pct: Some(50.0),
                    mem_used_bytes: Some(if i == 0 {
                        5 * gib
                    } else {
                        2 * gib + k.min(3) * gib
                    }),
                    mem_total_bytes: Some(48 * gib),
                    power_w: Some(300.0),
                })
                .collect()
        }
        fn describe(&self) -> String {
            "2 fake GPUs".into()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gpus_behind_the_trait_are_sampled_and_calibrated_against_their_baseline() {
        let s = Sampler::with_gpus(
            std::time::Duration::from_millis(50),
            Some(Box::new(FakeGpus(Default::default()))),
        );
        assert_eq!(s.gpus(), "2 fake GPUs");
        let gib = 1i64 << 30;
        // Read before the run: device 0 holds 5 GiB, device 1 2 GiB.
        let baseline = s.gpu_memory_now().await;
        assert_eq!(
            baseline,
            std::collections::BTreeMap::from([(0, 5 * gib), (1, 2 * gib)])
        );
        let sampling = s.start(crate::clock::Clock::new());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let samples = sampling.finish().await;
        assert!(samples.len() >= 3, "{}", samples.len());
        let rows = rows("e", &samples, None);
        assert_eq!(rows.len(), 2 * samples.len(), "one row per sample and GPU");
        assert!(rows
            .iter()
            .all(|r| r.gpu_power_w == Some(300.0) && r.proc_rss_bytes.is_none()));
        let peak = harness_core::host::gpu_memory_peak(&baseline, &rows).unwrap();
        // Device 1 peaked at 5 GiB over its 2 GiB baseline; device 0 at none.
        assert_eq!(peak.per_device, [(0, 0), (1, 3 * gib)]);
        assert_eq!(peak.mean_bytes, 1.5 * gib as f64);
    }

    /// The sampler against a child process that holds a known amount of
    /// memory: a shell whose child (a grandchild of the test) writes 200 MiB,
    /// so only a process-tree sum sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_process_trees_resident_memory_is_sampled() {
        let s = Sampler::with_gpus(std::time::Duration::from_millis(100), None);
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                "python3 -c 'import time; b = bytearray(b\"\\x01\") * (200 << 20); time.sleep(1.5)'",
            ])
            .spawn()
            .unwrap();
        s.watched()
            .store(child.id().unwrap(), std::sync::atomic::Ordering::Relaxed);
        let sampling = s.start(crate::clock::Clock::new());
        child.wait().await.unwrap();
        let samples = sampling.finish().await;
        let peak = samples
            .iter()
            .filter_map(|x| x.proc_rss_bytes)
            .max()
            .unwrap();
        let mib = (peak >> 20) as f64;
        eprintln!(
            "peak process-tree RSS {mib} MiB over {} samples",
            samples.len()
        );
        // 200 MiB written, plus the interpreter and the shell (~10-30 MiB).
        assert!((200.0..=260.0).contains(&mib), "{mib} MiB");
        assert!(samples.iter().all(|x| x.gpus.is_empty()));
    }
}
