//! The EC2 deployment plan: what `harness run` launches for the endpoints
//! with an `ec2:` section, shown by `harness run --dry-run` before anything is
//! created. Per endpoint: instance type and count, region, AMI (an id, or the
//! public SSM parameter it is resolved from at launch), serving stack, image
//! and model, the experiments it runs, the user data (which never holds a
//! secret, and is masked all the same), its price and its share of the cost
//! bound. The bound is what the run can cost at most: Σ over endpoints of
//! $/hour × instance count × (`deploy.max_duration` + [`BOOT_ALLOWANCE`]),
//! since every instance shuts itself down (and so terminates: launched with
//! instance-initiated shutdown behaviour `terminate`) `max_duration` after
//! its boot script starts; the allowance covers billing from launch to then.
//!
//! [`super::fleet`] launches the plan; [`super::job`] is what the harness and
//! its agent on the instance say to each other.

use crate::config::{ClientSite, Config, Deploy, Ec2Settings, Endpoint};
use crate::plan::Experiment;
use crate::pricing::Pricer;
use harness_core::cost::Rate;
use std::fmt::Write as _;

/// The SSM parameter of the AWS Deep Learning Base OSS Nvidia Driver GPU AMI
/// (Ubuntu 22.04), x86_64; public in every commercial region.
pub const DLAMI_GPU_X86: &str =
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id";
/// The same AMI for Graviton GPU instances (g5g).
pub const DLAMI_GPU_ARM: &str =
    "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id";
/// The AWS Neuron multi-framework DLAMI (Ubuntu 22.04), for inf2 and trn.
pub const DLAMI_NEURON: &str =
    "/aws/service/neuron/dlami/multi-framework/ubuntu-22.04/latest/image_id";
/// Canonical's Ubuntu 22.04 for CPU instances (Docker is installed at boot).
pub const UBUNTU_X86: &str =
    "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id";
pub const UBUNTU_ARM: &str =
    "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id";

/// Billed time from launch until the boot script starts its shutdown timer,
/// counted into the cost bound (EC2 bills from the `pending` → `running`
/// transition; DLAMI boots take one to three minutes).
pub const BOOT_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The hours the bound prices each instance for: `max_duration` plus
/// [`BOOT_ALLOWANCE`].
pub fn billable_hours(d: &Deploy) -> f64 {
    (d.max_duration + BOOT_ALLOWANCE).as_secs_f64() / 3600.0
}

/// The longest any launched instance lives: `max_duration` plus
/// [`BOOT_ALLOWANCE`].
pub fn lifetime(d: &Deploy) -> std::time::Duration {
    d.max_duration + BOOT_ALLOWANCE
}

/// Whether credentials valid for `left` more (`None`: keys that do not
/// expire) can start this run, in words: `Ok(why they can)`, or
/// `Err(why the run must not start, and the fix)`.
///
/// Presigned URLs stop working when the credentials that signed them
/// expire. The instances use them for the whole run (heartbeats, results),
/// so by default the credentials must outlive the instances ([`lifetime`]).
/// With `deploy.instance_profile` the launched instances use their role
/// after start-up, and only start-up (boot and `startup_timeout`: fetching
/// the agent, the job and the secrets) is presigned. A bring-your-own
/// instance (`byo`) always uses presigned URLs. Temporary credentials
/// (`temporary`: with a session token) whose expiry is not known pass with
/// a warning (the words start with `WARNING`).
pub fn credentials_check(
    d: &Deploy,
    left: Option<std::time::Duration>,
    temporary: bool,
    byo: bool,
) -> Result<String, String> {
    let f = |t: std::time::Duration| {
        humantime::format_duration(std::time::Duration::from_secs(t.as_secs())).to_string()
    };
    let life = lifetime(d);
    let startup = BOOT_ALLOWANCE + d.startup_timeout;
    let profile = d.instance_profile.as_deref().filter(|_| !byo);
    match (left, profile) {
        (None, None) if temporary => Ok(format!(
            "WARNING: temporary credentials (a session token) that do not say when they expire; the presigned URLs the instances use stop working when they do, and whatever is not uploaded by then is lost: they must last the instances' longest life ({}){}",
            f(life),
            if byo { "" } else { ", or set deploy.instance_profile" }
        )),
        (None, Some(p)) if temporary => Ok(format!(
            "WARNING: temporary credentials (a session token) that do not say when they expire: they must last start-up ({}), after which the instances use instance profile `{p}`",
            f(startup)
        )),
        (None, None) => Ok("keys that do not expire: the presigned URLs the instances use last the run".into()),
        (None, Some(p)) => Ok(format!("keys that do not expire; after start-up the instances use instance profile `{p}`")),
        (Some(l), None) if l >= life => Ok(format!("they expire in {}, after the instances' longest life ({}): the presigned URLs the instances use last the run", f(l), f(life))),
        (Some(l), None) => Err(format!(
            "the AWS credentials expire in {}, before the instances' longest life ({}); presigned URLs stop working when the credentials that signed them expire: {}use credentials that last longer, or shorten deploy.max_duration",
            f(l),
            f(life),
            if byo { "" } else { "set deploy.instance_profile (a role that can read and write the run's objects), " }
        )),
        (Some(l), Some(p)) if l >= startup => Ok(format!("they expire in {}: start-up ({}) is presigned, then the instances use instance profile `{p}`", f(l), f(startup))),
        (Some(l), Some(_)) => Err(format!(
            "the AWS credentials expire in {}, before start-up ends ({}: boot and deploy.startup_timeout), which is presigned even with deploy.instance_profile; use credentials that last longer, or shorten deploy.startup_timeout",
            f(l),
            f(startup)
        )),
    }
}

/// What an instance type computes with, from its family (the part before
/// the dot): decides the default AMI, image and `--gpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    NvidiaGpu { arm: bool },
    Neuron,
    Cpu { arm: bool },
}

impl Accelerator {
    pub fn of(instance_type: &str) -> Accelerator {
        let family = instance_type.split('.').next().unwrap_or("");
        let gpu = [
            "g4dn",
            "g5",
            "g5g",
            "g6",
            "g6e",
            "gr6",
            "g7",
            "g7e",
            "p3",
            "p3dn",
            "p4d",
            "p4de",
            "p5",
            "p5e",
            "p5en",
            "p6-b200",
            "p6-b300",
            "p6e-gb200",
        ];
        let neuron = ["inf1", "inf2", "trn1", "trn1n", "trn2", "trn2u"];
        // Graviton: the letter after the generation digit includes `g`
        // (c7g, m7gd, r8g, c7gn, g5g).
        let arm = family
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .starts_with('g');
        if gpu.contains(&family) {
            Accelerator::NvidiaGpu { arm }
        } else if neuron.contains(&family) {
            Accelerator::Neuron
        } else {
            Accelerator::Cpu { arm }
        }
    }

    /// The SSM parameter the AMI is resolved from when `ec2.ami` is `auto`.
    pub fn ami_parameter(self) -> &'static str {
        match self {
            Accelerator::NvidiaGpu { arm: false } => DLAMI_GPU_X86,
            Accelerator::NvidiaGpu { arm: true } => DLAMI_GPU_ARM,
            Accelerator::Neuron => DLAMI_NEURON,
            Accelerator::Cpu { arm: false } => UBUNTU_X86,
            Accelerator::Cpu { arm: true } => UBUNTU_ARM,
        }
    }

    /// In words: `NVIDIA GPU`, `AWS Neuron` or `CPU`.
    pub fn words(self) -> &'static str {
        match self {
            Accelerator::NvidiaGpu { .. } => "NVIDIA GPU",
            Accelerator::Neuron => "AWS Neuron",
            Accelerator::Cpu { .. } => "CPU",
        }
    }
}

/// The pinned image of each serving stack, by accelerator; `None` where the
/// stack has no pinned image for it (then `ec2.image` is required).
pub fn default_image(stack: &str, acc: Accelerator) -> Option<&'static str> {
    use Accelerator::*;
    match (stack, acc) {
        ("vllm", NvidiaGpu { arm: false }) => Some("vllm/vllm-openai:v0.11.0"),
        ("tgi", NvidiaGpu { arm: false }) => {
            Some("ghcr.io/huggingface/text-generation-inference:3.3.4")
        }
        ("sglang", NvidiaGpu { arm: false }) => Some("lmsysorg/sglang:v0.5.5"),
        ("llama-cpp", NvidiaGpu { arm: false }) => {
            Some("ghcr.io/ggml-org/llama.cpp:server-cuda-b9014")
        }
        ("llama-cpp", Cpu { .. }) => Some("ghcr.io/ggml-org/llama.cpp:server-b9014"),
        _ => None,
    }
}

/// The image `ep` is served with: `ec2.image`, else its stack's pinned image
/// for the instance's accelerator (`None` only for a config that validation
/// refuses). One definition for the plan and the experiment id.
pub fn image(ep: &Endpoint, s: &Ec2Settings) -> Option<String> {
    let acc = Accelerator::of(ep.instance_type.as_deref().unwrap_or(""));
    s.image
        .clone()
        .or_else(|| default_image(ep.serving_stack.as_deref().unwrap_or(""), acc).map(String::from))
}

/// The container's arguments (after the image) that serve `ep`'s model on
/// `s.port`, per stack; `custom` runs `ec2.command` through `sh -c`.
pub fn server_args(ep: &Endpoint, s: &Ec2Settings, acc: Accelerator) -> Vec<String> {
    let stack = ep.serving_stack.as_deref().unwrap_or("custom");
    let port = s.port.to_string();
    let tp = s.tensor_parallel.to_string();
    let mut a: Vec<String> = match stack {
        "vllm" => vec![
            "--model".into(),
            ep.model.clone(),
            "--port".into(),
            port,
            "--tensor-parallel-size".into(),
            tp,
        ],
        "tgi" => vec![
            "--model-id".into(),
            ep.model.clone(),
            "--port".into(),
            port,
            "--num-shard".into(),
            tp,
        ],
        "sglang" => vec![
            "python3".into(),
            "-m".into(),
            "sglang.launch_server".into(),
            "--model-path".into(),
            ep.model.clone(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            port,
            "--tp".into(),
            tp,
        ],
        "llama-cpp" => {
            let mut v = vec![
                "-hf".into(),
                ep.model.clone(),
                "--host".into(),
                "0.0.0.0".into(),
                "--port".into(),
                port,
            ];
            if matches!(acc, Accelerator::NvidiaGpu { .. }) {
                v.extend(["-ngl".into(), "999".into()]);
            }
            v
        }
        _ => vec![
            "sh".into(),
            "-c".into(),
            s.command.clone().unwrap_or_default(),
        ],
    };
    if let Some(len) = s.max_model_len {
        let flag = match stack {
            "vllm" => Some("--max-model-len"),
            "tgi" => Some("--max-total-tokens"),
            "sglang" => Some("--context-length"),
            "llama-cpp" => Some("--ctx-size"),
            _ => None,
        };
        if let Some(f) = flag {
            a.extend([f.to_string(), len.to_string()]);
        }
    }
    a.extend(s.extra_args.iter().cloned());
    a
}

/// One endpoint's launch, as planned.
#[derive(Debug, Clone)]
pub struct InstancePlan {
    pub endpoint: String,
    pub instance_type: String,
    pub count: u32,
    pub spot: bool,
    /// The capacity reservation to launch into.
    pub capacity_reservation: Option<String>,
    /// Bring your own instance: this one, not launched and not terminated.
    pub instance_id: Option<String>,
    /// The serving port.
    pub port: u16,
    pub accelerator: Accelerator,
    /// `Ok(ami id)` as configured, or `Err(SSM parameter)` to resolve at launch.
    pub ami: Result<String, &'static str>,
    pub stack: String,
    pub image: String,
    pub model: String,
    pub server_args: Vec<String>,
    /// `docker run` flags before the image.
    pub docker_flags: Vec<String>,
    pub volume_gib: u32,
    /// (experiment id, label) in run order.
    pub experiments: Vec<(String, String)>,
    /// The boot script, with every registered secret masked.
    pub user_data: String,
    /// $/hour of one instance, and where the price comes from.
    pub usd_per_hour: Option<(f64, String)>,
    /// What the real run would stop on, or the user should know.
    pub notes: Vec<String>,
}

impl InstancePlan {
    /// This endpoint's share of the bound: $/hour × count × hours; nothing
    /// for a bring-your-own instance, which the run does not launch.
    pub fn bound_usd(&self, d: &Deploy) -> Option<f64> {
        if self.instance_id.is_some() {
            return Some(0.0);
        }
        self.usd_per_hour
            .as_ref()
            .map(|(h, _)| h * self.count as f64 * billable_hours(d))
    }
}

/// The run's launches and cost bound.
#[derive(Debug, Clone)]
pub struct Plan {
    pub region: Option<String>,
    pub instances: Vec<InstancePlan>,
    /// What the instances get to run the agent (`None` when nothing is
    /// launched): read once per run, since it scans the loaded libraries.
    pub agent: Option<AgentBundle>,
}

impl Plan {
    /// The most the run's instances can cost, in $; `None` when an instance
    /// type has no price (then no bound can be given).
    pub fn bound_usd(&self, d: &Deploy) -> Option<f64> {
        self.instances.iter().map(|i| i.bound_usd(d)).sum()
    }

    /// Why the real run must not start: the bound is over `max_cost_usd`, or
    /// cannot be computed while a budget is set. `None`: within budget, or no
    /// budget.
    pub fn refusal(&self, d: &Deploy) -> Option<String> {
        let budget = d.max_cost_usd?;
        match self.bound_usd(d) {
            Some(b) if b > budget => Some(format!(
                "the run can cost up to ${b:.2} (instance $/hour × count × (deploy.max_duration {} + {} boot)), over deploy.max_cost_usd ${budget:.2}: lower the instance counts or max_duration, or raise the budget",
                humantime::format_duration(d.max_duration),
                humantime::format_duration(BOOT_ALLOWANCE)
            )),
            Some(_) => None,
            None => Some(format!(
                "deploy.max_cost_usd is ${budget:.2} but {} has no price, so the run's cost cannot be bounded: add it under pricing.instance_hourly",
                self.instances
                    .iter()
                    .filter(|i| i.usd_per_hour.is_none())
                    .map(|i| i.instance_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Plans the launch of every endpoint of `cfg` that has an `ec2:` section.
/// Secret values read here (the HF token) are registered for masking first.
/// `cfg` must be validated (which refuses a stack with no image to launch).
pub fn plan(cfg: &Config, experiments: &[Experiment], pricer: &mut Pricer, run_id: &str) -> Plan {
    let region = cfg
        .deploy
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty());
    let mut instances = vec![];
    let mut agent: Option<AgentBundle> = None;
    for ep in &cfg.endpoints {
        let Some(s) = &ep.ec2 else { continue };
        let mut notes = vec![];
        if let Some(var) = &s.hf_token_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => crate::redact::register(&v),
                _ => notes.push(format!("${var} is not set: the real run refuses to start without the Hugging Face token it names")),
            }
        }
        let instance_type = ep.instance_type.clone().expect("validated");
        let stack = ep.serving_stack.clone().expect("validated");
        let acc = Accelerator::of(&instance_type);
        let image =
            image(ep, s).expect("validated: a stack without a pinned image needs ec2.image");
        let args = server_args(ep, s, acc);
        let usd_per_hour = pricer
            .price(Some(&instance_type), &ep.model, true)
            .and_then(|p| match p.rate {
                Rate::InstanceHour(h) => Some((
                    h,
                    format!("{}, {}, {}", p.source, p.region, p.mode.as_str()),
                )),
                Rate::Tokens(_) => None,
            });
        let agent = agent.get_or_insert_with(|| AgentBundle::of(&cfg.deploy));
        let user_data = crate::redact::text(&user_data(
            cfg,
            ep,
            acc,
            run_id,
            agent,
            &format!("<presigned GET of {AGENT_BUNDLE}, made at launch>"),
            "<presigned GET of the job, made at launch>",
        ));
        let flags = docker_flags(cfg, &stack, s, acc);
        if let Some(id) = &s.instance_id {
            notes.push(format!("{id} is yours: it must be running, be a {instance_type}, run the SSM agent with an instance profile that lets it register (AmazonSSMManagedInstanceCore), and have Docker{}", if matches!(acc, Accelerator::NvidiaGpu { .. }) { " with the NVIDIA container toolkit" } else { "" }));
            if cfg.deploy.client == ClientSite::Local {
                notes.push(format!("with client: local, {id}'s own security groups must admit TCP {} from {}: the harness does not change them", s.port, cfg.deploy.allowed_cidr.as_deref().unwrap_or("?")));
            }
        }
        if matches!(
            acc,
            Accelerator::NvidiaGpu { arm: true } | Accelerator::Cpu { arm: true }
        ) && cfg.deploy.agent_binary.is_none()
            && std::env::consts::ARCH != "aarch64"
        {
            notes.push(format!("{instance_type} is an Arm (Graviton) instance and this harness is an {} binary: set deploy.agent_binary to an aarch64 build", std::env::consts::ARCH));
        }
        instances.push(InstancePlan {
            endpoint: ep.name.clone(),
            instance_type,
            count: ep.instance_count,
            spot: s.spot,
            capacity_reservation: s.capacity_reservation.clone(),
            instance_id: s.instance_id.clone(),
            port: s.port,
            accelerator: acc,
            ami: s.ami.clone().ok_or(acc.ami_parameter()),
            stack,
            image,
            model: ep.model.clone(),
            server_args: args,
            docker_flags: flags,
            volume_gib: s.volume_gib,
            experiments: experiments
                .iter()
                .filter(|e| e.endpoint.name == ep.name)
                .map(|e| (e.id.clone(), e.label.clone()))
                .collect(),
            user_data,
            usd_per_hour,
            notes,
        });
    }
    Plan {
        region,
        instances,
        agent,
    }
}

use super::job::sh_quote;

/// `docker run` flags before the image: detached, named, the devices of the
/// accelerator, the port published on loopback only (`client: instance`) or
/// on all interfaces (`client: local`, where the security group admits
/// `deploy.allowed_cidr` only), and the token's variable names (their values
/// come from the agent's environment, never the command line).
pub fn docker_flags(cfg: &Config, stack: &str, s: &Ec2Settings, acc: Accelerator) -> Vec<String> {
    let mut f: Vec<String> = ["-d", "--name", CONTAINER, "--restart", "no", "--ipc=host"]
        .map(String::from)
        .to_vec();
    match acc {
        Accelerator::NvidiaGpu { .. } => f.extend(["--gpus".into(), "all".into()]),
        Accelerator::Neuron => f.push("--device=/dev/neuron0".into()),
        Accelerator::Cpu { .. } => {}
    }
    f.push("-p".into());
    f.push(match cfg.deploy.client {
        ClientSite::Instance => format!("127.0.0.1:{0}:{0}", s.port),
        ClientSite::Local => format!("{0}:{0}", s.port),
    });
    f.push("-v".into());
    f.push("/opt/llm-harness/cache:/root/.cache".into());
    if s.hf_token_env.is_some() {
        f.extend(["-e", "HF_TOKEN", "-e", "HUGGING_FACE_HUB_TOKEN"].map(String::from));
    }
    if cfg.deploy.client == ClientSite::Local {
        if let (Some(var), _) = api_key_delivery(stack) {
            f.extend(["-e".to_string(), var.to_string()]);
        }
    }
    f
}

/// How the per-run API key of `deploy.client: local` reaches each serving
/// stack: (the variable it reads the key from, the flag it takes it by).
/// vLLM reads `VLLM_API_KEY`, TGI `API_KEY`, llama.cpp's server
/// `LLAMA_API_KEY`; SGLang takes `--api-key`; a custom command gets
/// `HARNESS_API_KEY` and must require it itself (`ec2.command` runs under
/// `sh -c`, so it can pass `--api-key "$HARNESS_API_KEY"`).
pub fn api_key_delivery(stack: &str) -> (Option<&'static str>, Option<&'static str>) {
    match stack {
        "vllm" => (Some("VLLM_API_KEY"), None),
        "tgi" => (Some("API_KEY"), None),
        "llama-cpp" => (Some("LLAMA_API_KEY"), None),
        "sglang" => (None, Some("--api-key")),
        _ => (Some("HARNESS_API_KEY"), None),
    }
}

/// The agent as delivered to the instance: one gzip'd tar, `agent.tar.gz`,
/// unpacked into `/opt/llm-harness`.
///
/// By default it holds this `harness` binary with every shared library the
/// process has loaded (`libduckdb.so`, the C and C++ runtimes) and the
/// dynamic loader itself, and the boot script starts the agent through that
/// loader (`./ld-linux-x86-64.so.2 --library-path /opt/llm-harness ./harness`).
/// So the agent never uses the AMI's glibc: it runs on any x86_64 Linux AMI,
/// whatever glibc it has, and a Nix-built harness (whose loader path is in
/// /nix/store) runs there too. GPU driver libraries (NVML, CUDA) are left
/// out: they must come from the instance's own driver, and load into the
/// shipped glibc (checked on Ubuntu 24.04 with an H200: NVML 580 loads and
/// reads the GPU from a bundle built on Debian 12's glibc 2.36).
///
/// With `deploy.agent_binary` it holds that file alone, started with
/// `LD_LIBRARY_PATH=/opt/llm-harness` (for an aarch64 build, say).
#[derive(Debug, Clone)]
pub struct AgentBundle {
    /// Regular files: name in the bundle → local path.
    pub files: Vec<(String, std::path::PathBuf)>,
    /// Symbolic links: name → target name (a library's soname → its file).
    pub links: Vec<(String, String)>,
    /// The loader's name in the bundle, when the agent starts through it.
    pub loader: Option<String>,
}

/// The object name of the bundle, under the run's `agent/` prefix.
pub const AGENT_BUNDLE: &str = "agent.tar.gz";

impl AgentBundle {
    /// The bundle for `d`: `deploy.agent_binary`, or this process.
    pub fn of(d: &Deploy) -> AgentBundle {
        match &d.agent_binary {
            Some(p) => AgentBundle {
                files: vec![("harness".into(), p.into())],
                links: vec![],
                loader: None,
            },
            None => AgentBundle::of_process(
                &std::env::current_exe().unwrap_or_else(|_| "harness".into()),
            ),
        }
    }

    /// `exe` as `harness`, with the shared libraries and loader this process
    /// has mapped (`/proc/self/maps`), each under its own file name and, as
    /// links, under the names of the links beside it that point to it (so
    /// that `libstdc++.so.6`, the name the binary asks for, finds
    /// `libstdc++.so.6.0.30`).
    pub fn of_process(exe: &std::path::Path) -> AgentBundle {
        let mut b = AgentBundle {
            files: vec![("harness".into(), exe.to_path_buf())],
            links: vec![],
            loader: None,
        };
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
            let path = std::path::Path::new(path);
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let driver = ["libnvidia", "libcuda", "libnvcuvid"]
                .iter()
                .any(|p| name.starts_with(p));
            if !name.contains(".so") || driver || !seen.insert(name.to_string()) {
                continue;
            }
            if name.starts_with("ld-linux") {
                b.loader = Some(name.to_string());
            }
            b.files.push((name.to_string(), path.to_path_buf()));
            if let (Some(dir), Ok(real)) = (path.parent(), std::fs::canonicalize(path)) {
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let link = e.file_name().to_string_lossy().into_owned();
                    let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
                    if is_link
                        && link != name
                        && link.starts_with(name.split(".so").next().unwrap_or(name))
                        && std::fs::canonicalize(e.path()).is_ok_and(|t| t == real)
                        && seen.insert(link.clone())
                    {
                        b.links.push((link, name.to_string()));
                    }
                }
            }
        }
        // glibc's own librt, which NVML (loaded later, from the instance's
        // driver) asks for: from this libc, not the AMI's.
        let libc_dir = b
            .files
            .iter()
            .find(|(n, _)| n == "libc.so.6")
            .and_then(|(_, p)| p.parent().map(|d| d.to_path_buf()));
        if let Some(dir) = libc_dir {
            for extra in ["librt.so.1"] {
                if dir.join(extra).exists() && seen.insert(extra.to_string()) {
                    b.files.push((extra.to_string(), dir.join(extra)));
                }
            }
        }
        b
    }

    /// Writes the bundle as a gzip'd tar (fast compression: the binary is
    /// large and this runs at every launch) to `out`.
    ///
    /// Errors: a file that cannot be read, or `out` that cannot be written.
    pub fn write(&self, out: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let f = std::fs::File::create(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        t.follow_symlinks(true);
        for (name, path) in &self.files {
            let mut src = std::fs::File::open(path)
                .with_context(|| format!("cannot read the agent's {name} at {}", path.display()))?;
            t.append_file(name, &mut src)
                .with_context(|| format!("packing {name}"))?;
        }
        for (name, target) in &self.links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            t.append_link(&mut h, name, target)?;
        }
        t.into_inner()?.finish()?;
        Ok(())
    }

    /// The boot script's line that starts the agent with `args`.
    fn start(&self, args: &str) -> String {
        match &self.loader {
            Some(l) => format!("./{l} --library-path /opt/llm-harness ./harness {args}"),
            None => format!("env LD_LIBRARY_PATH=/opt/llm-harness ./harness {args}"),
        }
    }
}

/// The instance's boot script. It holds no secret: it fetches the agent
/// (`agent`, through the presigned URL `agent_url`; a placeholder in a dry
/// run) and its job (`job`), and the agent reads the Hugging Face token from
/// its own short-lived object. For a bring-your-own instance
/// (`ec2.instance_id`) it is the POSIX `sh` script SSM Run Command runs
/// instead ([`byo_script`]).
pub fn user_data(
    cfg: &Config,
    ep: &Endpoint,
    acc: Accelerator,
    run_id: &str,
    agent: &AgentBundle,
    agent_url: &str,
    job: &str,
) -> String {
    let d = &cfg.deploy;
    if let Some(id) = ep.ec2.as_ref().and_then(|s| s.instance_id.as_deref()) {
        return byo_script(cfg, ep, acc, run_id, id, agent, agent_url, job);
    }
    let minutes = d.max_duration.as_secs().div_ceil(60);
    let mut u = String::new();
    let _ = writeln!(u, "#!/bin/bash");
    let _ = writeln!(
        u,
        "# llm-harness {}: run {run_id}, endpoint {}. No secret is written in this script.",
        env!("CARGO_PKG_VERSION"),
        ep.name
    );
    let _ = writeln!(u, "set -uo pipefail");
    let _ = writeln!(
        u,
        "# 1. Stop (and so terminate) after deploy.max_duration even if the harness is gone."
    );
    let _ = writeln!(u, "shutdown -h +{minutes}");
    if matches!(acc, Accelerator::Cpu { .. }) {
        let _ = writeln!(u, "command -v docker >/dev/null || (apt-get update -qq && apt-get install -y -qq docker.io)");
    }
    let _ = writeln!(u, "# 2. The harness agent, from the run's S3 prefix.");
    let _ = writeln!(u, "mkdir -p /opt/llm-harness/cache && cd /opt/llm-harness");
    let _ = writeln!(
        u,
        "curl -fsS --retry 5 -o {AGENT_BUNDLE} {} && tar -xzf {AGENT_BUNDLE} && rm {AGENT_BUNDLE}",
        sh_quote(agent_url)
    );
    let _ = writeln!(
        u,
        "{}",
        match d.client {
            ClientSite::Instance => "# 3. It starts the serving stack, waits for its health check, benchmarks over loopback and uploads each result.",
            ClientSite::Local => "# 3. It starts the serving stack and waits for its health check; the harness benchmarks it from its own machine, then releases the agent.",
        }
    );
    let _ = writeln!(
        u,
        "{} > agent.log 2>&1",
        agent.start(&format!("agent --job {} --log agent.log", sh_quote(job)))
    );
    let _ = writeln!(u, "# 4. Done: stop now (and so terminate).");
    let _ = writeln!(u, "shutdown -h now");
    u
}

/// The name of the serving container on an instance.
pub const CONTAINER: &str = "llm-harness-serving";

/// The script SSM Run Command runs on a bring-your-own instance: as the boot
/// script, but with no shutdown (the instance is yours): the agent is
/// stopped by `timeout` after `deploy.max_duration`, and the serving
/// container is removed when the agent ends, however it ends (the run's
/// teardown removes it too when it cancels the command).
#[allow(clippy::too_many_arguments)]
fn byo_script(
    cfg: &Config,
    ep: &Endpoint,
    acc: Accelerator,
    run_id: &str,
    instance: &str,
    agent: &AgentBundle,
    agent_url: &str,
    job: &str,
) -> String {
    let secs = cfg.deploy.max_duration.as_secs();
    let mut u = String::new();
    let _ = writeln!(u, "#!/bin/sh");
    let _ = writeln!(
        u,
        "# llm-harness {}: run {run_id}, endpoint {}, on your instance {instance} (not shut down). No secret is written in this script.",
        env!("CARGO_PKG_VERSION"),
        ep.name
    );
    let _ = writeln!(u, "set -u");
    if matches!(acc, Accelerator::Cpu { .. }) {
        let _ = writeln!(u, "command -v docker >/dev/null || (apt-get update -qq && apt-get install -y -qq docker.io)");
    }
    let _ = writeln!(u, "docker rm -f {CONTAINER} >/dev/null 2>&1");
    let _ = writeln!(u, "# 1. The harness agent, from the run's S3 prefix.");
    let _ = writeln!(u, "mkdir -p /opt/llm-harness/cache && cd /opt/llm-harness");
    let _ = writeln!(
        u,
        "curl -fsS --retry 5 -o {AGENT_BUNDLE} {} && tar -xzf {AGENT_BUNDLE} && rm {AGENT_BUNDLE}",
        sh_quote(agent_url)
    );
    let _ = writeln!(
        u,
        "# 2. It serves{}; deploy.max_duration bounds it.",
        match cfg.deploy.client {
            ClientSite::Instance => " and benchmarks over loopback",
            ClientSite::Local => " (the harness benchmarks from its own machine)",
        }
    );
    let _ = writeln!(
        u,
        "timeout {secs} {} > agent.log 2>&1",
        agent.start(&format!("agent --job {} --log agent.log", sh_quote(job)))
    );
    let _ = writeln!(
        u,
        "# 3. Done: remove the serving container; the instance keeps running."
    );
    let _ = writeln!(u, "docker rm -f {CONTAINER} >/dev/null 2>&1; true");
    u
}

/// The plan in words, for `harness run --dry-run`.
pub fn render(p: &Plan, d: &Deploy) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "region: {}",
        p.region.as_deref().unwrap_or(
            "not set (deploy.region, AWS_REGION or AWS_DEFAULT_REGION); the real run needs one"
        )
    );
    for i in &p.instances {
        if let Some(id) = &i.instance_id {
            let _ = writeln!(
                o,
                "\nendpoint {}: your instance {id} ({}, {}): not launched, not terminated",
                i.endpoint,
                i.instance_type,
                i.accelerator.words()
            );
            let _ = writeln!(o, "  start        the agent, through SSM Run Command (AWS-RunShellScript); it stops after deploy.max_duration, and the serving container is removed when it ends or the run stops");
        } else {
            let _ = writeln!(
                o,
                "\nendpoint {}: launch {} × {} ({}, {})",
                i.endpoint,
                i.count,
                i.instance_type,
                i.accelerator.words(),
                match (&i.capacity_reservation, i.spot) {
                    (Some(cr), _) => format!("on-demand, in capacity reservation {cr}"),
                    (None, true) => "spot".into(),
                    (None, false) => "on-demand".into(),
                }
            );
            let _ = writeln!(
                o,
                "  launch       IMDSv2 required; shutdown behaviour terminate; no key pair, no SSH; tagged with the run id{}",
                d.instance_profile
                    .as_deref()
                    .map(|p| format!("; instance profile `{p}`"))
                    .unwrap_or_default()
            );
        }
        for n in &i.notes {
            let _ = writeln!(o, "  NOTE         {n}");
        }
        if i.instance_id.is_none() {
            let _ = writeln!(
                o,
                "  AMI          {}",
                match &i.ami {
                    Ok(id) => id.clone(),
                    Err(param) => {
                        format!("resolved at launch from the public SSM parameter {param}")
                    }
                }
            );
        }
        let _ = writeln!(
            o,
            "  serving      {} {} serving {}",
            i.stack, i.image, i.model
        );
        let serve = super::job::Serve {
            image: i.image.clone(),
            docker_flags: i.docker_flags.clone(),
            args: i.server_args.clone(),
            port: 0,
            api_key_env: vec![],
            api_key_flag: match d.client {
                ClientSite::Local => api_key_delivery(&i.stack).1.map(String::from),
                ClientSite::Instance => None,
            },
        };
        let _ = writeln!(
            o,
            "  container    {} (started by the agent)",
            serve.command_line()
        );
        let _ = writeln!(
            o,
            "  client       {}",
            match (d.client, &i.instance_id) {
                (ClientSite::Instance, _) =>
                    "on the instance, over loopback (no inbound rule)".to_string(),
                (ClientSite::Local, None) => format!(
                    "this machine, over the network (plain HTTP): the security group opens TCP {} to {} only, and the server requires a per-run API key (made at launch, delivered through its own short-lived object)",
                    i.port,
                    d.allowed_cidr.as_deref().unwrap_or("?")
                ),
                (ClientSite::Local, Some(id)) => format!(
                    "this machine, over the network (plain HTTP): {id}'s own security groups must admit TCP {} from {} (the harness changes nothing there), and the server requires a per-run API key (delivered through its own short-lived object)",
                    i.port,
                    d.allowed_cidr.as_deref().unwrap_or("?")
                ),
            }
        );
        let _ = writeln!(
            o,
            "  objects      {} (agent, job, heartbeats, results; read and written by the instance through presigned URLs{})",
            match &d.bucket {
                Some(b) => format!("{}/runs/<run id>/", b.trim_end_matches('/')),
                None => "s3://llm-harness-<account id>-<region>/runs/<run id>/ (deploy.bucket not set: the account's own bucket, created if missing)".into(),
            },
            match (&d.instance_profile, &i.instance_id) {
                (Some(p), None) => format!(
                    " for start-up, then with the role of instance profile `{p}`"
                ),
                _ => String::new(),
            }
        );
        let _ = writeln!(o, "  experiments  {}", i.experiments.len());
        for (id, label) in &i.experiments {
            let _ = writeln!(o, "    {}  {label}", &id[..12.min(id.len())]);
        }
        let _ = match (&i.usd_per_hour, i.bound_usd(d)) {
            (_, _) if i.instance_id.is_some() => writeln!(
                o,
                "  cost bound   $0.00: the run launches nothing here (your instance is priced per request as {})",
                i.instance_type
            ),
            (Some((h, from)), Some(b)) => writeln!(
                o,
                "  cost bound   ${b:.2} = {} × ${h:.4}/hour × ({} + {} boot) ({from}{})",
                i.count,
                humantime::format_duration(d.max_duration),
                humantime::format_duration(BOOT_ALLOWANCE),
                if i.spot {
                    "; spot costs at most this"
                } else {
                    ""
                }
            ),
            _ => writeln!(
                o,
                "  cost bound   unknown: no price for {}",
                i.instance_type
            ),
        };
        let _ = writeln!(
            o,
            "  {} (secrets masked):",
            if i.instance_id.is_some() {
                "SSM Run Command script"
            } else {
                "user data"
            }
        );
        for l in i.user_data.lines() {
            let _ = writeln!(o, "    | {l}");
        }
    }
    let n: u32 = p
        .instances
        .iter()
        .filter(|i| i.instance_id.is_none())
        .map(|i| i.count)
        .sum();
    let _ = write!(
        o,
                "\ncost bound: {} for {n} instance(s), each shutting itself down {} after boot (priced with {} of boot on top); EBS and data transfer not included",
        match p.bound_usd(d) {
            Some(b) => format!("${b:.2}"),
            None => "unknown".into(),
        },
        humantime::format_duration(d.max_duration),
        humantime::format_duration(BOOT_ALLOWANCE)
    );
    let _ = match (d.max_cost_usd, p.refusal(d)) {
        (None, _) => writeln!(o, "; no deploy.max_cost_usd set"),
        (Some(b), None) => writeln!(o, "; within deploy.max_cost_usd ${b:.2}"),
        (Some(_), Some(why)) => writeln!(o, "\nREFUSED for a real run: {why}"),
    };
    o
}
