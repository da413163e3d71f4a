//! Simulator profiles: an instance type's accelerators and a model size,
//! turned into a performance model by a roofline estimate.
//!
//! The model (documented in `docs/simulator.md`) per replica of the model:
//! - prefill: `prefill_overhead + prompt_tokens × 2·P / (FLOPs·mfu)`;
//! - one decode step with `b` running sequences holding `C` context tokens:
//!   `step_overhead + W / BW + C·kv_bytes / BW + b·2·P / (FLOPs·mfu)`,
//!   so time per output token grows with the number of concurrent sequences;
//! - admission: a sequence needs `prompt + max_tokens` KV-cache tokens and one
//!   of `max_seqs` slots; requests that do not fit queue (FIFO);
//! - an instance holds `gpus / tp` replicas, `tp` being the smallest tensor
//!   parallel degree whose memory holds the weights with room for KV cache.
//!
//! W is the weights' bytes, BW the achieved memory bandwidth (80% of peak),
//! FLOPs the dense fp16/bf16 peak and mfu 50%.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Gpu {
    pub name: &'static str,
    pub mem_gib: f64,
    /// Peak memory bandwidth, GB/s.
    pub bw_gbs: f64,
    /// Dense fp16/bf16 peak, TFLOP/s.
    pub tflops: f64,
}

pub const A10G: Gpu = Gpu {
    name: "A10G",
    mem_gib: 24.0,
    bw_gbs: 600.0,
    tflops: 125.0,
};
pub const L4: Gpu = Gpu {
    name: "L4",
    mem_gib: 24.0,
    bw_gbs: 300.0,
    tflops: 121.0,
};
pub const L40S: Gpu = Gpu {
    name: "L40S",
    mem_gib: 48.0,
    bw_gbs: 864.0,
    tflops: 362.0,
};
pub const A100_40: Gpu = Gpu {
    name: "A100-40GB",
    mem_gib: 40.0,
    bw_gbs: 1555.0,
    tflops: 312.0,
};
pub const H100: Gpu = Gpu {
    name: "H100-80GB",
    mem_gib: 80.0,
    bw_gbs: 3350.0,
    tflops: 989.0,
};
pub const INF2: Gpu = Gpu {
    name: "Inferentia2",
    mem_gib: 32.0,
    bw_gbs: 820.0,
    tflops: 190.0,
};

/// Instance types the simulator knows: (name, accelerator count, accelerator).
pub const INSTANCES: &[(&str, u32, Gpu)] = &[
    ("g5.xlarge", 1, A10G),
    ("g5.2xlarge", 1, A10G),
    ("g5.12xlarge", 4, A10G),
    ("g5.48xlarge", 8, A10G),
    ("g6.xlarge", 1, L4),
    ("g6.2xlarge", 1, L4),
    ("g6.12xlarge", 4, L4),
    ("g6e.xlarge", 1, L40S),
    ("g6e.2xlarge", 1, L40S),
    ("g6e.12xlarge", 4, L40S),
    ("p4d.24xlarge", 8, A100_40),
    ("p5.48xlarge", 8, H100),
    ("inf2.xlarge", 1, INF2),
    ("inf2.48xlarge", 12, INF2),
];

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ModelSpec {
    pub size: &'static str,
    pub params: f64,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
}

impl ModelSpec {
    /// KV-cache bytes per token (fp16 K and V for every layer).
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * self.layers as f64 * self.kv_heads as f64 * self.head_dim as f64 * 2.0
    }
    pub fn weight_bytes(&self) -> f64 {
        self.params * 2.0
    }
}

/// Llama-shaped model sizes.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        size: "135m",
        params: 0.135e9,
        layers: 30,
        kv_heads: 3,
        head_dim: 64,
    },
    ModelSpec {
        size: "1b",
        params: 1.24e9,
        layers: 16,
        kv_heads: 8,
        head_dim: 64,
    },
    ModelSpec {
        size: "3b",
        params: 3.21e9,
        layers: 28,
        kv_heads: 8,
        head_dim: 128,
    },
    ModelSpec {
        size: "8b",
        params: 8.03e9,
        layers: 32,
        kv_heads: 8,
        head_dim: 128,
    },
    ModelSpec {
        size: "70b",
        params: 70.6e9,
        layers: 80,
        kv_heads: 8,
        head_dim: 128,
    },
];

const BW_EFFICIENCY: f64 = 0.8;
const MFU: f64 = 0.5;
const TP_EFFICIENCY: f64 = 0.85;
const GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// A resolved profile: everything the engine needs, in seconds and tokens.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub instance_type: String,
    pub gpu: &'static str,
    pub gpus: u32,
    pub model_size: &'static str,
    pub tp: u32,
    pub replicas: u32,
    pub max_seqs: u32,
    pub kv_capacity_tokens: u64,
    pub prefill_overhead_s: f64,
    pub prefill_s_per_token: f64,
    pub step_overhead_s: f64,
    pub weights_read_s: f64,
    pub kv_read_s_per_token: f64,
    pub compute_s_per_seq: f64,
    /// When set, a fixed TTFT replaces the prefill model (ground-truth mode).
    pub fixed_ttft_s: Option<f64>,
    /// When set, a fixed inter-token gap replaces the decode model.
    pub fixed_itl_s: Option<f64>,
}

impl Profile {
    /// Seconds for prefilling `prompt_tokens`.
    pub fn prefill_s(&self, prompt_tokens: u64) -> f64 {
        self.fixed_ttft_s
            .unwrap_or(self.prefill_overhead_s + prompt_tokens as f64 * self.prefill_s_per_token)
    }
    /// Seconds for one decode step with `running` sequences holding `context`
    /// tokens in total on one replica.
    pub fn step_s(&self, running: u64, context: u64) -> f64 {
        self.fixed_itl_s.unwrap_or(
            self.step_overhead_s
                + self.weights_read_s
                + context as f64 * self.kv_read_s_per_token
                + running as f64 * self.compute_s_per_seq,
        )
    }

    /// Every model time multiplied by `k` (a slower server build).
    pub fn slowed(mut self, k: f64) -> Profile {
        self.prefill_overhead_s *= k;
        self.prefill_s_per_token *= k;
        self.step_overhead_s *= k;
        self.weights_read_s *= k;
        self.kv_read_s_per_token *= k;
        self.compute_s_per_seq *= k;
        self.fixed_ttft_s = self.fixed_ttft_s.map(|t| t * k);
        self.fixed_itl_s = self.fixed_itl_s.map(|t| t * k);
        self
    }

    /// A profile with fixed timing and no capacity limit: for measuring the
    /// client against known truth.
    pub fn fixed(ttft_s: f64, itl_s: f64) -> Profile {
        Profile {
            name: format!("fixed:ttft={}ms,itl={}ms", ttft_s * 1e3, itl_s * 1e3),
            instance_type: "none".into(),
            gpu: "none",
            gpus: 0,
            model_size: "none",
            tp: 1,
            replicas: 1,
            max_seqs: u32::MAX,
            kv_capacity_tokens: u64::MAX,
            prefill_overhead_s: 0.0,
            prefill_s_per_token: 0.0,
            step_overhead_s: 0.0,
            weights_read_s: 0.0,
            kv_read_s_per_token: 0.0,
            compute_s_per_seq: 0.0,
            fixed_ttft_s: Some(ttft_s),
            fixed_itl_s: Some(itl_s),
        }
    }
}

fn derive(instance: &str, gpus: u32, gpu: Gpu, m: ModelSpec) -> Result<Profile, String> {
    let mem_bytes = gpu.mem_gib * 1024f64.powi(3) * GPU_MEMORY_UTILIZATION;
    let mut tp = 1;
    // The weights may use at most 80% of the usable memory of the TP group.
    while m.weight_bytes() > tp as f64 * mem_bytes * 0.8 {
        tp *= 2;
        if tp > gpus {
            return Err(format!(
                "a {} model ({:.0} GB of weights) does not fit on {instance} ({gpus} × {} with {} GiB)",
                m.size,
                m.weight_bytes() / 1e9,
                gpu.name,
                gpu.mem_gib
            ));
        }
    }
    let eff = if tp > 1 { TP_EFFICIENCY } else { 1.0 };
    let bw = tp as f64 * gpu.bw_gbs * 1e9 * BW_EFFICIENCY * eff;
    let flops = tp as f64 * gpu.tflops * 1e12 * MFU * eff;
    let kv_free = tp as f64 * mem_bytes - m.weight_bytes();
    Ok(Profile {
        name: format!("{instance}:{}", m.size),
        instance_type: instance.to_string(),
        gpu: gpu.name,
        gpus,
        model_size: m.size,
        tp,
        replicas: gpus / tp,
        max_seqs: 256,
        kv_capacity_tokens: (kv_free / m.kv_bytes_per_token()) as u64,
        prefill_overhead_s: 0.010,
        prefill_s_per_token: 2.0 * m.params / flops,
        step_overhead_s: 0.002,
        weights_read_s: m.weight_bytes() / bw,
        kv_read_s_per_token: m.kv_bytes_per_token() / bw,
        compute_s_per_seq: 2.0 * m.params / flops,
        fixed_ttft_s: None,
        fixed_itl_s: None,
    })
}

/// All known profile names.
pub fn names() -> Vec<String> {
    let mut v = vec![];
    for (inst, gpus, gpu) in INSTANCES {
        for m in MODELS {
            if derive(inst, *gpus, *gpu, *m).is_ok() {
                v.push(format!("{inst}:{}", m.size));
            }
        }
    }
    v
}

/// Resolves `<instance type>:<model size>` (e.g. `g5.xlarge:8b`).
pub fn lookup(name: &str) -> Result<Profile, String> {
    let Some((inst, size)) = name.split_once(':') else {
        return Err(format!(
            "`{name}` is not a simulator profile; profiles are `<instance type>:<model size>`, e.g. `g5.xlarge:8b` (run `harness sim --list-profiles`)"
        ));
    };
    let Some((_, gpus, gpu)) = INSTANCES.iter().find(|(n, _, _)| *n == inst) else {
        let known: Vec<&str> = INSTANCES.iter().map(|i| i.0).collect();
        return Err(format!(
            "the simulator does not know instance type `{inst}`; known: {}",
            known.join(", ")
        ));
    };
    let Some(m) = MODELS.iter().find(|m| m.size == size) else {
        let known: Vec<&str> = MODELS.iter().map(|m| m.size).collect();
        return Err(format!(
            "the simulator does not know model size `{size}`; known: {}",
            known.join(", ")
        ));
    };
    derive(inst, *gpus, *gpu, *m)
}

/// The model size named in a model id: `llama-3.1-8b-instruct` → `8b`.
/// Falls back to `8b`.
pub fn model_size_of(model: &str) -> &'static str {
    let lower = model.to_ascii_lowercase();
    for part in lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '.') {
        for m in MODELS {
            if part == m.size {
                return m.size;
            }
        }
    }
    "8b"
}

/// The profile used when an endpoint names no `sim.profile`.
pub fn default_profile_name(instance_type: Option<&str>, model: &str) -> String {
    format!(
        "{}:{}",
        instance_type.unwrap_or("g5.xlarge"),
        model_size_of(model)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g5_xlarge_8b_is_memory_bound_at_low_batch() {
        let p = lookup("g5.xlarge:8b").unwrap();
        assert_eq!((p.tp, p.replicas), (1, 1));
        // 16 GB of weights at 480 GB/s achieved: ~33 ms per token at batch 1.
        let t1 = p.step_s(1, 300);
        assert!((0.033..0.040).contains(&t1), "{t1}");
        // Time per token grows with running sequences.
        assert!(p.step_s(64, 64 * 300) > 1.4 * t1);
        // Prefill grows with prompt length.
        assert!(p.prefill_s(2000) > 4.0 * p.prefill_s(200));
    }

    #[test]
    fn big_instances_hold_replicas_and_70b_needs_tp() {
        let p4d = lookup("p4d.24xlarge:8b").unwrap();
        assert_eq!((p4d.tp, p4d.replicas), (1, 8));
        let p70 = lookup("p4d.24xlarge:70b").unwrap();
        assert_eq!((p70.tp, p70.replicas), (8, 1));
        assert!(lookup("g5.xlarge:70b")
            .unwrap_err()
            .contains("does not fit"));
    }

    #[test]
    fn faster_gpus_are_faster() {
        let g5 = lookup("g5.xlarge:8b").unwrap();
        let g6e = lookup("g6e.2xlarge:8b").unwrap();
        assert!(g6e.step_s(16, 16 * 300) < g5.step_s(16, 16 * 300));
    }

    #[test]
    fn names_and_errors() {
        assert_eq!(model_size_of("meta-llama/Llama-3.1-8B-Instruct"), "8b");
        assert_eq!(model_size_of("smollm2-135m"), "135m");
        assert_eq!(
            default_profile_name(Some("g6e.2xlarge"), "llama-3.1-8b"),
            "g6e.2xlarge:8b"
        );
        assert!(lookup("g5.xlarge")
            .unwrap_err()
            .contains("<instance type>:<model size>"));
        assert!(lookup("x1.large:8b")
            .unwrap_err()
            .contains("known: g5.xlarge"));
        assert!(names().contains(&"p5.48xlarge:70b".to_string()));
    }
}
