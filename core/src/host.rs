//! Host metrics sampled while experiments run (the `host_samples` table), and
//! their per-window percentiles.
//!
//! The harness samples the machine that serves (the instance, when an agent
//! runs there) or, for a local run, the machine the harness runs on: CPU
//! utilisation, memory, and per GPU utilisation, memory and power through
//! NVML. Each sample belongs to one experiment and one *load window* of it:
//!
//! - `warmup`: before the measurement window starts;
//! - `measured`: inside the measurement window, the same one the throughput
//!   figures use ([`crate::summary::measurement_window`]: the earliest
//!   scheduled send of a measured request to the latest end of one);
//! - `drain`: after it (the last responses of warm-up or cut-short requests).
//!
//! FMBench reports quantiles over a whole run, which mixes idle start-up with
//! full load; here every percentile is over one experiment's one window.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The load window a sample at `t_ns` (ns since the experiment's start)
/// falls in, given the experiment's measurement window (`None`: it had no
/// measured request, so everything is `warmup`).
pub fn window_of(t_ns: i64, measured: Option<(i64, i64)>) -> &'static str {
    match measured {
        Some((start, _)) if t_ns < start => "warmup",
        Some((_, end)) if t_ns <= end => "measured",
        Some(_) => "drain",
        None => "warmup",
    }
}

/// One row of `host_samples`: one sample of the host, and of one GPU when
/// there is one (a host with k GPUs gives k rows per sample, each with the
/// same CPU and memory figures; without a GPU one row with null GPU columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSampleRow {
    pub experiment_id: String,
    /// `warmup`, `measured` or `drain` ([`window_of`]).
    pub load_window: String,
    /// Nanoseconds since the experiment's start (the requests' clock).
    pub t_ns: i64,
    /// Utilisation of all CPUs, 0–100 %.
    pub cpu_util_pct: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    /// NVML's device index.
    pub gpu_index: Option<i64>,
    /// NVML's utilisation rate: % of the sample period a kernel ran, 0–100.
    pub gpu_util_pct: Option<f64>,
    pub gpu_mem_used_bytes: Option<i64>,
    pub gpu_mem_total_bytes: Option<i64>,
    /// Board power draw, watts.
    pub gpu_power_w: Option<f64>,
    /// Resident memory of the benchmarked process and all its descendants
    /// (command experiments; null for endpoint experiments).
    pub proc_rss_bytes: Option<i64>,
}

/// Nearest-rank p50, p95 and the maximum of one host figure in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values. Nearest rank, as [`crate::diff::quantile_sorted`].
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(Spread {
            p50: crate::diff::quantile_sorted(&values, 0.50),
            p95: crate::diff::quantile_sorted(&values, 0.95),
            max: *values.last().expect("not empty"),
        })
    }
}

/// The percentiles of one experiment's one window (and one GPU, when the
/// host has GPUs: the CPU and memory figures repeat on each GPU's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostWindow {
    pub experiment_id: String,
    pub load_window: String,
    pub gpu_index: Option<i64>,
    /// How many samples fell in the window.
    pub samples: usize,
    pub cpu_util_pct: Option<Spread>,
    /// GiB.
    pub mem_used_gib: Option<Spread>,
    pub gpu_util_pct: Option<Spread>,
    /// GiB.
    pub gpu_mem_used_gib: Option<Spread>,
    pub gpu_mem_total_gib: Option<f64>,
    pub gpu_power_w: Option<Spread>,
    /// GiB; command experiments only.
    pub proc_rss_gib: Option<Spread>,
}

const GIB: f64 = (1u64 << 30) as f64;

/// Groups `rows` by experiment, window (in the order warmup, measured,
/// drain) and GPU, and gives each group's [`Spread`]s. Experiments keep the
/// order of their first row.
pub fn windows(rows: &[HostSampleRow]) -> Vec<HostWindow> {
    let rank = |w: &str| match w {
        "warmup" => 0,
        "measured" => 1,
        _ => 2,
    };
    let mut order: Vec<&str> = vec![];
    let mut groups: BTreeMap<(usize, u8, Option<i64>), Vec<&HostSampleRow>> = BTreeMap::new();
    for r in rows {
        let e = match order.iter().position(|id| *id == r.experiment_id) {
            Some(i) => i,
            None => {
                order.push(&r.experiment_id);
                order.len() - 1
            }
        };
        groups
            .entry((e, rank(&r.load_window), r.gpu_index))
            .or_default()
            .push(r);
    }
    groups
        .into_values()
        .map(|g| {
            let f = |pick: &dyn Fn(&HostSampleRow) -> Option<f64>| {
                Spread::of(g.iter().filter_map(|r| pick(r)).collect())
            };
            HostWindow {
                experiment_id: g[0].experiment_id.clone(),
                load_window: g[0].load_window.clone(),
                gpu_index: g[0].gpu_index,
                samples: g.len(),
                cpu_util_pct: f(&|r| r.cpu_util_pct),
                mem_used_gib: f(&|r| r.mem_used_bytes.map(|b| b as f64 / GIB)),
                gpu_util_pct: f(&|r| r.gpu_util_pct),
                gpu_mem_used_gib: f(&|r| r.gpu_mem_used_bytes.map(|b| b as f64 / GIB)),
                gpu_mem_total_gib: g
                    .iter()
                    .filter_map(|r| r.gpu_mem_total_bytes)
                    .max()
                    .map(|b| b as f64 / GIB),
                gpu_power_w: f(&|r| r.gpu_power_w),
                proc_rss_gib: f(&|r| r.proc_rss_bytes.map(|b| b as f64 / GIB)),
            }
        })
        .collect()
}

/// GPU memory one run used, calibrated as the fine-tuning benchmark this
/// replaces does: per device, the peak memory used while the run lasted less
/// what other processes held on that device just before it started; then
/// the average over the devices sampled. A device whose peak is under its
/// baseline counts as 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMemoryPeak {
    /// (NVML index, calibrated peak bytes), by index.
    pub per_device: Vec<(i64, i64)>,
    /// Mean of `per_device`, bytes.
    pub mean_bytes: f64,
}

/// [`GpuMemoryPeak`] of the `samples` taken during one run, against
/// `baseline` (NVML index → bytes used before the run). `None` without GPU
/// samples. A device missing from `baseline` is taken as starting from 0.
pub fn gpu_memory_peak(
    baseline: &BTreeMap<i64, i64>,
    samples: &[HostSampleRow],
) -> Option<GpuMemoryPeak> {
    let mut peak: BTreeMap<i64, i64> = BTreeMap::new();
    for r in samples {
        if let (Some(i), Some(b)) = (r.gpu_index, r.gpu_mem_used_bytes) {
            let e = peak.entry(i).or_insert(b);
            *e = (*e).max(b);
        }
    }
    if peak.is_empty() {
        return None;
    }
    let per_device: Vec<(i64, i64)> = peak
        .into_iter()
        .map(|(i, p)| (i, (p - baseline.get(&i).copied().unwrap_or(0)).max(0)))
        .collect();
    let mean_bytes = per_device.iter().map(|d| d.1 as f64).sum::<f64>() / per_device.len() as f64;
    Some(GpuMemoryPeak {
        per_device,
        mean_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(e: &str, t_s: i64, cpu: f64, gpu: Option<(i64, f64)>) -> HostSampleRow {
        HostSampleRow {
            experiment_id: e.into(),
            load_window: window_of(t_s * 1_000_000_000, Some((2_000_000_000, 5_000_000_000)))
                .into(),
            t_ns: t_s * 1_000_000_000,
            cpu_util_pct: Some(cpu),
            mem_used_bytes: Some(2 << 30),
            mem_total_bytes: Some(8 << 30),
            gpu_index: gpu.map(|g| g.0),
            gpu_util_pct: gpu.map(|g| g.1),
            gpu_mem_used_bytes: gpu.map(|_| 40 << 30),
            gpu_mem_total_bytes: gpu.map(|_| 80 << 30),
            gpu_power_w: gpu.map(|g| 100.0 + g.1),
            proc_rss_bytes: None,
        }
    }

    #[test]
    fn a_sample_falls_in_the_window_of_its_time() {
        let m = Some((10, 20));
        assert_eq!(window_of(9, m), "warmup");
        assert_eq!(window_of(10, m), "measured");
        assert_eq!(window_of(20, m), "measured");
        assert_eq!(window_of(21, m), "drain");
        assert_eq!(window_of(21, None), "warmup");
    }

    #[test]
    fn percentiles_are_per_experiment_window_and_gpu() {
        // Seconds 0..=7; measured is 2..=5. Idle warm-up (5%), loaded
        // measured window (50..80%), a drain at 10%.
        let mut rows = vec![];
        for t in 0..=7 {
            let cpu = match t {
                0 | 1 => 5.0,
                2..=5 => 50.0 + 10.0 * (t - 2) as f64,
                _ => 10.0,
            };
            for g in 0..2 {
                rows.push(row("b", t, cpu, Some((g, cpu + g as f64))));
            }
        }
        rows.push(row("a", 3, 99.0, None));
        let w = windows(&rows);
        let names: Vec<_> = w
            .iter()
            .map(|w| {
                (
                    w.experiment_id.as_str(),
                    w.load_window.as_str(),
                    w.gpu_index,
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("b", "warmup", Some(0)),
                ("b", "warmup", Some(1)),
                ("b", "measured", Some(0)),
                ("b", "measured", Some(1)),
                ("b", "drain", Some(0)),
                ("b", "drain", Some(1)),
                ("a", "measured", None),
            ]
        );
        let m = &w[3];
        assert_eq!(m.samples, 4);
        // 50, 60, 70, 80: nearest rank p50 = 60, p95 = 80.
        let cpu = m.cpu_util_pct.unwrap();
        assert_eq!((cpu.p50, cpu.p95, cpu.max), (60.0, 80.0, 80.0));
        let gpu = m.gpu_util_pct.unwrap();
        assert_eq!((gpu.p50, gpu.max), (61.0, 81.0));
        assert_eq!(m.gpu_power_w.unwrap().p95, 181.0);
        assert_eq!(m.gpu_mem_total_gib, Some(80.0));
        assert_eq!(m.mem_used_gib.unwrap().p50, 2.0);
        // Without a GPU the GPU figures are absent, not zero.
        assert_eq!(w[6].gpu_util_pct, None);
        assert_eq!(w[6].gpu_power_w, None);
        assert_eq!(w[6].cpu_util_pct.unwrap().p50, 99.0);
        assert!(Spread::of(vec![]).is_none());
        assert!(Spread::of(vec![f64::NAN]).is_none());
    }

    #[test]
    fn gpu_memory_peak_subtracts_the_baseline_per_device_and_averages() {
        let r = |i: i64, used: i64| HostSampleRow {
            gpu_index: Some(i),
            gpu_mem_used_bytes: Some(used),
            ..row("e", 3, 1.0, Some((i, 1.0)))
        };
        let baseline = BTreeMap::from([(0, 1000), (1, 4000)]);
        let p =
            gpu_memory_peak(&baseline, &[r(0, 1500), r(0, 3000), r(1, 5000), r(1, 4500)]).unwrap();
        assert_eq!(p.per_device, [(0, 2000), (1, 1000)]);
        assert_eq!(p.mean_bytes, 1500.0);
        // Below its baseline (another process freed memory): 0, not negative.
        let p = gpu_memory_peak(&baseline, &[r(1, 3000)]).unwrap();
        assert_eq!(p.per_device, [(1, 0)]);
        assert_eq!(gpu_memory_peak(&baseline, &[row("e", 3, 1.0, None)]), None);
    }
}
