//! EC2 deployment without AWS: the plan (`harness run --dry-run`), its cost
//! bound, the `max_cost_usd` refusal, the config's checks, and that no
//! secret reaches the printed user data. `ec2_launch.rs` launches, against
//! moto.

use super::common::*;
use std::path::Path;

fn repo_config(name: &str) -> String {
    format!("{}/../configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

const TOKEN: &str = "hf_TestSecretToken0123456789";

/// `harness run -q EXTRA... CFG --out OUT` from the repository root (the
/// configs name `configs/pricing.yml`), for a test to add environment to.
fn run_in_repo(cfg: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = run_cmd(cfg, out, extra);
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c
}

fn dry_run(cfg: &Path, out: &Path) -> std::process::Output {
    run_in_repo(cfg, out, &["--dry-run"])
        .env("HF_TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn dry_run_plans_prices_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ec2.duckdb");
    let o = dry_run(Path::new(&repo_config("ec2.yml")), &out);
    let (so, se) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{so}\n{se}");
    assert!(!out.exists(), "a dry run wrote the bundle");
    // Each instance with its type, AMI source, image, experiments and price.
    for want in [
        "endpoint g5.2xlarge-vllm: launch 1 × g5.2xlarge (NVIDIA GPU, on-demand)",
        "endpoint p4d.24xlarge-vllm: launch 1 × p4d.24xlarge (NVIDIA GPU, on-demand)",
        "resolved at launch from the public SSM parameter /aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
        "vllm vllm/vllm-openai:v0.11.0 serving meta-llama/Llama-3.1-8B-Instruct",
        "g5.2xlarge-vllm · rag-2048-256 · c=64",
        "--max-model-len 8192 --data-parallel-size 8 --enable-prefix-caching",
        "shutdown -h +90",
        "-p 127.0.0.1:8000:8000",
        "container    docker run -d --name llm-harness-serving",
        "-e HF_TOKEN -e HUGGING_FACE_HUB_TOKEN vllm/vllm-openai:v0.11.0 --model meta-llama/Llama-3.1-8B-Instruct",
        "./harness agent --job '<presigned GET of the job, made at launch>'",
        "s3://llm-harness-<account id>-<region>/runs/<run id>/",
    ] {
        assert!(so.contains(want), "missing `{want}` in:\n{so}");
    }
    assert_eq!(so.matches("  experiments  8\n").count(), 3, "{so}");
    // The bound by hand: (1.212 + 2.24208 + 32.7726) $/h × 1 instance ×
    // (1.5 h + 10 min of boot).
    let bound: f64 = (1.212 + 2.24208 + 32.7726) * (1.5 + 10.0 / 60.0);
    assert!((bound - 60.3778).abs() < 1e-4, "{bound}");
    assert!(
        so.contains("cost bound: $60.38 for 3 instance(s), each shutting itself down 1h 30m after boot (priced with 10m of boot on top)"),
        "{so}"
    );
    assert!(
        so.contains("$54.62 = 1 × $32.7726/hour × (1h 30m + 10m boot)"),
        "{so}"
    );
    assert!(so.contains("within deploy.max_cost_usd $75.00"), "{so}");
    assert!(
        so.contains("IMDSv2 required; shutdown behaviour terminate"),
        "{so}"
    );
    assert!(so.contains("--data-parallel-size 8"), "{so}");
    assert!(!so.contains("NOTE"), "HF_TOKEN is set: {so}");
    assert!(!so.contains(TOKEN) && !se.contains(TOKEN));
}

#[test]
fn over_budget_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(repo_config("ec2.yml"))
        .unwrap()
        .replace("max_cost_usd: 75", "max_cost_usd: 20");
    let cfg = write_config(dir.path(), "ec2", &yaml);
    let out = dir.path().join("ec2.duckdb");
    let o = dry_run(&cfg, &out);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a dry run exits as the real run would"
    );
    assert!(
        stdout(&o).contains("REFUSED for a real run: the run can cost up to $60.38"),
        "{}",
        stdout(&o)
    );
    let o = run_in_repo(&cfg, &out, &[])
        .env("HF_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the run can cost up to $60.38 (instance $/hour × count × (deploy.max_duration 1h 30m + 10m boot)), over deploy.max_cost_usd $20.00"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "a refused run wrote the bundle");
}

#[test]
fn a_real_run_without_aws_credentials_stops_before_writing_or_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ec2.duckdb");
    let o = run_in_repo(Path::new(&repo_config("ec2-llama-cpp.yml")), &out, &[])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        // No instance metadata service to fall back on.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no AWS credentials for launching on EC2")
            && stderr(&o).contains("AWS_ACCESS_KEY_ID"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "the bundle was written");
}

#[test]
fn cpu_instances_get_ubuntu_and_the_cpu_image() {
    let dir = tempfile::tempdir().unwrap();
    let o = dry_run(
        Path::new(&repo_config("ec2-llama-cpp.yml")),
        &dir.path().join("x.duckdb"),
    );
    let so = stdout(&o);
    assert!(o.status.success(), "{so}{}", stderr(&o));
    for want in [
        "launch 1 × c7i.2xlarge (CPU, on-demand)",
        "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
        "ghcr.io/ggml-org/llama.cpp:server-b9014",
        "--ctx-size 2048",
        "apt-get install -y -qq docker.io",
        "cost bound: $0.24 for 1 instance(s)",
    ] {
        assert!(so.contains(want), "missing `{want}` in:\n{so}");
    }
    assert!(
        !so.contains("--gpus all") && !so.contains("HF_TOKEN"),
        "{so}"
    );
}

#[test]
fn a_secret_on_the_server_command_line_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "leak",
        &format!(
            "endpoints:\n  - name: e\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: {{ extra_args: [--api-key, x, \"--hf-token={TOKEN}\", {TOKEN}] }}\n  - name: f\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: custom\n    ec2: {{ image: i, command: \"serve --token abc\", hf_token_env: {TOKEN} }}\npricing: {{ instance_hourly: {{ g5.2xlarge: 1.0 }} }}\n"
        ),
    );
    let o = dry_run(&cfg, &dir.path().join("x.duckdb"));
    let (so, se) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{so}{se}");
    for want in [
        "endpoints[0].ec2.extra_args[0]: `--api-key` passes a secret on the server's command line",
        "endpoints[0].ec2.extra_args[2]: `--hf-token` passes a secret",
        "endpoints[0].ec2.extra_args[3]: looks like a token",
        "endpoints[1].ec2.command: `--token` passes a secret",
        "endpoints[1].ec2.hf_token_env: holds what looks like a token",
    ] {
        assert!(se.contains(want), "missing `{want}` in:\n{se}");
    }
    assert!(!so.contains(TOKEN) && !se.contains(TOKEN), "{so}{se}");
}

#[test]
fn a_missing_token_is_noted_in_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in_repo(
        Path::new(&repo_config("ec2.yml")),
        &dir.path().join("x.duckdb"),
        &["--dry-run"],
    )
    .env_remove("HF_TOKEN")
    .output()
    .unwrap();
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("NOTE         $HF_TOKEN is not set: the real run refuses to start"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_deploy_settings_are_named_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "bad",
        "deploy:\n  client: local\n  allowed_cidr: 0.0.0.0/0\n  max_cost_usd: -5\n  region: eu-west-1\n  max_duration: 400d\nendpoints:\n  - name: a\n    provider: openai\n    model: m\n    base_url: http://127.0.0.1:1/v1\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: {}\n  - name: b\n    provider: openai\n    model: m\n    instance_type: g5\n    serving_stack: triton\n    ec2: { ami: ubuntu, hf_token_env: hf_abc-123, market: cheap, capacity_reservation: cr-zz }\n  - name: c\n    provider: sim\n    ec2: {}\n  - name: d\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { market: spot, capacity_reservation: cr-0123456789abcdef0 }\n  - name: f\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { instance_id: i-xyz }\n  - name: g\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { instance_id: i-0123456789abcdef0, ami: ami-0a0b0c0d, volume_gib: 100 }\n  - name: h\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { instance_id: i-0123456789abcdef0 }\n  - name: i\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { instance_id: i-0123456789abcdef }\n  - name: j\n    provider: openai\n    model: m\n    instance_type: g6e.2xlarge\n    serving_stack: vllm\n    ec2: { instance_id: i-0123456789abcdef0 }\n",
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    let se = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    for want in [
        "bad.yml:3:17: deploy.allowed_cidr: `0.0.0.0/0` opens the port to everyone",
        "bad.yml:4:17: deploy.max_cost_usd: -5 is not a budget",
        "bad.yml:5:11: deploy.region: is `eu-west-1` but prices are looked up in `us-east-1` (pricing.region, by default)",
        "bad.yml:6:17: deploy.max_duration: is over 7 days",
        "bad.yml:11:15: endpoints[0].base_url: does not apply with `ec2:`",
        "bad.yml:18:20: endpoints[1].instance_type: `g5` is not an EC2 instance type",
        "bad.yml:19:20: endpoints[1].serving_stack: `triton` is not a stack the harness can launch: one of `vllm`, `tgi`, `sglang`, `llama-cpp`, `custom`",
        "endpoints[1].ec2.ami: `ubuntu` is not an AMI id",
        "endpoints[1].ec2.hf_token_env: `hf_abc-123` is not an environment variable name",
        "endpoints[1].ec2.market: `cheap` is not a market: `on-demand` or `spot`",
        "endpoints[2].ec2: only applies to provider `openai`",
        "endpoints[1].ec2.capacity_reservation: `cr-zz` is not a capacity reservation id; write e.g. `cr-0123456789abcdef0`",
        "endpoints[3].ec2.capacity_reservation: a capacity reservation holds on-demand capacity; remove `market: spot`",
        "endpoints[4].ec2.instance_id: `i-xyz` is not an EC2 instance id; write e.g. `i-0123456789abcdef0`",
        "endpoints[5].ec2.ami: applies to an instance the harness launches; with `instance_id` the instance exists already (remove `ami`)",
        "endpoints[5].ec2.volume_gib: applies to an instance the harness launches",
        "endpoints[8].ec2.instance_id: `i-0123456789abcdef0` is the instance of another endpoint too",
        "endpoints[7].ec2.instance_id: `i-0123456789abcdef` is not an EC2 instance id",
    ] {
        assert!(se.contains(want), "missing `{want}` in:\n{se}");
    }
}

#[test]
fn a_stack_without_a_pinned_image_for_the_instance_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "noimage",
        "endpoints:\n  - name: cpu-vllm\n    provider: openai\n    model: m\n    instance_type: c7i.2xlarge\n    serving_stack: vllm\n    ec2: {}\n",
    );
    let o = dry_run(&cfg, &dir.path().join("x.duckdb"));
    assert_eq!(o.status.code(), Some(2));
    let want = "noimage.yml:7:10: endpoints[0].ec2.image: is required here: the harness pins no `vllm` image for c7i.2xlarge (CPU)";
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
    // `validate` says the same as the run.
    let o = output(&["validate", cfg.to_str().unwrap()]);
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
}

#[test]
fn what_is_launched_is_part_of_the_experiment_id() {
    let dir = tempfile::tempdir().unwrap();
    let base = "endpoints:\n  - name: e\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: {EC2}\nload: { concurrency: [1], requests: 4 }\n";
    let id = |ec2: &str| {
        let cfg = write_config(dir.path(), "h", &base.replace("{EC2}", ec2));
        let o = output(&["validate", cfg.to_str().unwrap(), "--show-settings"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let so = stdout(&o);
        let line = so
            .lines()
            .find(|l| l.contains("e · "))
            .unwrap_or_else(|| panic!("{so}"))
            .to_string();
        line
    };
    let plain = id("{}");
    assert_ne!(plain, id("{ max_model_len: 4096 }"));
    assert_ne!(plain, id("{ image: \"vllm/vllm-openai:v0.10.2\" }"));
    // Market, volume and the token variable do not change what is measured.
    assert_eq!(
        plain,
        id("{ market: spot, volume_gib: 300, hf_token_env: HF_TOKEN }")
    );
}

#[test]
fn a_broken_ec2_section_is_not_also_called_missing_and_cidrs_must_be_narrow() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "c",
        "deploy: { max_cost_usd: 5, client: local, allowed_cidr: 10.0.0.0/4 }\nendpoints:\n  - name: e\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: custom\n    ec2: {}\n",
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    let se = stderr(&o);
    assert!(
        se.contains("`serving_stack: custom` needs both `ec2.image` and `ec2.command`"),
        "{se}"
    );
    assert!(!se.contains("no endpoint has an `ec2:` section"), "{se}");
    assert!(
        se.contains("`10.0.0.0/4` opens the port to 2^28 addresses"),
        "{se}"
    );
    let cfg = write_config(
        dir.path(),
        "h",
        "deploy: { client: local, allowed_cidr: 203.0.113.7/24 }\nendpoints:\n  - name: e\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: {}\n",
    );
    let se = stderr(&output(&["validate", cfg.to_str().unwrap()]));
    assert!(
        se.contains("`203.0.113.7/24` has host bits set: the network it names is `203.0.113.0/24`"),
        "{se}"
    );
    // --show-settings shows the config's words: `auto`, `market`.
    let cfg = write_config(
        dir.path(),
        "d",
        "endpoints:\n  - name: e\n    provider: openai\n    model: m\n    instance_type: g5.2xlarge\n    serving_stack: vllm\n    ec2: { market: spot }\n",
    );
    let o = output(&["validate", cfg.to_str().unwrap(), "--show-settings"]);
    let so = stdout(&o);
    assert!(
        so.contains("ami: \"auto\"") && so.contains("market: \"spot\""),
        "{so}"
    );
}

/// The highest `GLIBC_x.y` symbol version an ELF file needs, from
/// `objdump -T` (binutils).
fn max_glibc(path: &Path) -> (u32, u32) {
    let o = std::process::Command::new("objdump")
        .arg("-T")
        .arg(path)
        .output()
        .expect("objdump (binutils)");
    assert!(o.status.success(), "objdump -T {}", path.display());
    String::from_utf8_lossy(&o.stdout)
        .split("GLIBC_")
        .skip(1)
        .filter_map(|v| {
            let v: String = v
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut p = v.split('.').map(|x| x.parse::<u32>().ok());
            Some((p.next()??, p.next().flatten().unwrap_or(0)))
        })
        .max()
        .unwrap_or((0, 0))
}

/// The agent is delivered as this binary with every shared library it loads
/// and the dynamic loader (`AgentBundle`), and the boot script starts it
/// through that loader: it then needs nothing of the AMI's glibc. Checked
/// here from the unpacked bundle: the loader resolves every library inside
/// it, the shipped libc provides every GLIBC version the binaries ask for,
/// and a run through the loader, with an empty environment, works.
#[test]
fn the_agent_bundle_runs_on_its_own_loader_and_libraries() {
    use harness::deploy::ec2::AgentBundle;
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_harness"));
    // This test process loads the same libraries as the harness (both link
    // the harness crate).
    let bundle = AgentBundle::of_process(exe);
    let loader = bundle.loader.clone().expect("the loader is shipped");
    let packed = dir.path().join("agent.tar.gz");
    bundle.write(&packed).unwrap();
    let opt = dir.path().join("opt");
    std::fs::create_dir(&opt).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&packed).unwrap(),
    ))
    .unpack(&opt)
    .unwrap();
    for want in [
        "harness",
        "libduckdb.so",
        "libc.so.6",
        "libstdc++.so.6",
        "librt.so.1",
        loader.as_str(),
    ] {
        assert!(
            opt.join(want).exists(),
            "{want} is not in the bundle: {bundle:?}"
        );
    }
    assert!(
        !bundle.files.iter().any(|(n, _)| n.starts_with("libnvidia")),
        "driver libraries must come from the instance"
    );

    // The loader finds every library in the bundle, none on this host.
    let ld = opt.join(&loader);
    let list = std::process::Command::new(&ld)
        .arg("--library-path")
        .arg(&opt)
        .arg("--list")
        .arg(opt.join("harness"))
        .env_clear()
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{listed}");
    for l in listed.lines().filter(|l| l.contains("=>")) {
        let to = l.split("=>").nth(1).unwrap().trim();
        assert!(
            to.starts_with(opt.to_str().unwrap()),
            "resolved outside the bundle: {l}\n{listed}"
        );
    }

    // The shipped libc provides what the binaries need.
    let libc = max_glibc(&opt.join("libc.so.6"));
    for f in ["harness", "libduckdb.so", "libstdc++.so.6"] {
        let v = max_glibc(&opt.join(f));
        assert!(v > (2, 0), "{f}: no GLIBC symbol versions read");
        assert!(
            v <= libc,
            "{f} needs GLIBC_{}.{}, the shipped libc has {}.{}",
            v.0,
            v.1,
            libc.0,
            libc.1
        );
    }

    // A short run through the loader, as the boot script starts the agent.
    let cfg = write_config(
        dir.path(),
        "tiny",
        "endpoints:\n  - name: s\n    provider: sim\n    sim: { ttft_ms: 5, itl_ms: 1 }\ndatasets:\n  - name: d\n    synthetic: { prompt_tokens: 8, output_tokens: 4 }\nload: { concurrency: [1], requests: 3 }\n",
    );
    let run = std::process::Command::new(&ld)
        .arg("--library-path")
        .arg(&opt)
        .arg(opt.join("harness"))
        .args(["run", "-q", cfg.to_str().unwrap(), "--out"])
        .arg(dir.path().join("tiny.duckdb"))
        .env_clear()
        .current_dir(&opt)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(dir.path().join("tiny.duckdb").exists());
}

/// A file the config names by absolute path could not reach the instance:
/// the dry run already says so (and exits as the real run would), before a
/// real run creates anything.
#[test]
fn a_file_named_by_absolute_path_is_refused_before_launch() {
    let dir = tempfile::tempdir().unwrap();
    let pricing = format!("{}/../configs/pricing.yml", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(repo_config("ec2-llama-cpp.yml"))
        .unwrap()
        .replace("file: configs/pricing.yml", &format!("file: {pricing}"));
    let cfg = write_config(dir.path(), "abs", &yaml);
    let o = dry_run(&cfg, &dir.path().join("abs.duckdb"));
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("REFUSED for a real run")
            && stdout(&o).contains("absolute path")
            && stdout(&o).contains(&pricing),
        "{}",
        stdout(&o)
    );
}
