//! `harness run` on EC2 against moto on loopback (EC2, S3, SSM). moto
//! records API calls but runs no instance, so each test plays the instance:
//! it reads the launched instance's user data from moto, fetches the agent
//! through the presigned URL in it, and runs the agent the user data would
//! start, locally (`--stand-in`: the embedded simulator instead of the
//! container), talking to moto's S3 through the real presigned URLs.
//!
//! Every test ends with no instance left alive in moto.
//!
//! moto comes from `scripts/moto.sh` (`scripts/test.sh` runs it); set
//! `HARNESS_MOTO_SERVER` to use another `moto_server`.

use super::common::*;
use aws_sdk_ec2::types as ec2t;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// (instance id, type, state, user data, tags).
type Instance = (String, String, String, String, Vec<(String, String)>);
/// (endpoint, status, instance id, completed, missing, reason, agent log).
type Deployment = (
    String,
    String,
    Option<String>,
    i32,
    i32,
    Option<String>,
    Option<String>,
);

const TOKEN: &str = "hf_MotoTestSecret0123456789abcdef";
const REGION: &str = "us-east-1";

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("HARNESS_MOTO_SERVER") {
        return p.into();
    }
    let cache = std::env::var_os("HARNESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/llm-harness"));
    let p = cache.join("moto-5/bin/moto_server");
    assert!(
        p.exists(),
        "moto is not installed at {}: run scripts/moto.sh (scripts/test.sh does), or set HARNESS_MOTO_SERVER",
        p.display()
    );
    p
}

/// A moto server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    url: String,
    rt: tokio::runtime::Runtime,
    conf: aws_config::SdkConfig,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto with `env`; its files (the call recording) go in `dir`.
    fn start(env: &[(&str, &str)], dir: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .env("MOTO_RECORDER_FILEPATH", dir.join("moto-recording"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conf = rt.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(harness::aws::http_client())
                .endpoint_url(&url)
                .region(aws_config::Region::new(REGION))
                .credentials_provider(aws_credential_types::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .load(),
        );
        let m = Moto {
            child,
            url,
            rt,
            conf,
        };
        m.rt.block_on(m.s3().create_bucket().bucket("bench").send())
            .unwrap();
        m
    }

    fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.conf)
    }

    fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.conf)
                .force_path_style(true)
                .build(),
        )
    }

    /// (instance id, type, state, user data, tags) of every instance.
    fn instances(&self) -> Vec<Instance> {
        self.rt.block_on(async {
            let ec2 = self.ec2();
            let r = ec2.describe_instances().send().await.unwrap();
            let mut v = vec![];
            for i in r.reservations().iter().flat_map(|r| r.instances()) {
                let id = i.instance_id().unwrap().to_string();
                let ud = ec2
                    .describe_instance_attribute()
                    .instance_id(&id)
                    .attribute(ec2t::InstanceAttributeName::UserData)
                    .send()
                    .await
                    .unwrap();
                use base64::Engine as _;
                let ud = ud
                    .user_data()
                    .and_then(|u| u.value())
                    .map(|b| {
                        String::from_utf8(
                            base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                        )
                        .unwrap()
                    })
                    .unwrap_or_default();
                v.push((
                    id,
                    i.instance_type().unwrap().as_str().to_string(),
                    i.state().unwrap().name().unwrap().as_str().to_string(),
                    ud,
                    i.tags()
                        .iter()
                        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                        .collect(),
                ));
            }
            v
        })
    }

    /// The agent commands SSM Run Command was given (bring-your-own
    /// instances): (command id, instance id, endpoint, script).
    fn agent_commands(&self) -> Vec<(String, String, String, String)> {
        self.rt.block_on(async {
            let ssm = aws_sdk_ssm::Client::new(&self.conf);
            let r = ssm.list_commands().send().await.unwrap();
            r.commands()
                .iter()
                .filter_map(|c| {
                    let endpoint = c
                        .comment()?
                        .strip_prefix("llm-harness run ")?
                        .split(" endpoint ")
                        .nth(1)?
                        .to_string();
                    Some((
                        c.command_id()?.to_string(),
                        c.instance_ids().first()?.clone(),
                        endpoint,
                        c.parameters()?.get("commands")?.join("\n"),
                    ))
                })
                .collect()
        })
    }

    /// Launches an instance of `instance_type` outside the harness (yours).
    fn own_instance(&self, instance_type: &str) -> String {
        self.rt.block_on(async {
            self.ec2()
                .run_instances()
                .image_id("ami-0a0b0c0d")
                .instance_type(ec2t::InstanceType::from(instance_type))
                .min_count(1)
                .max_count(1)
                .send()
                .await
                .unwrap()
                .instances()[0]
                .instance_id()
                .unwrap()
                .to_string()
        })
    }

    fn alive(&self) -> Vec<String> {
        self.instances()
            .into_iter()
            .filter(|i| i.2 != "terminated")
            .map(|i| format!("{} ({})", i.0, i.2))
            .collect()
    }

    fn security_groups(&self) -> Vec<String> {
        self.rt.block_on(async {
            self.ec2()
                .describe_security_groups()
                .send()
                .await
                .unwrap()
                .security_groups()
                .iter()
                .map(|g| g.group_name().unwrap().to_string())
                .filter(|n| n != "default")
                .collect()
        })
    }

    /// Rewrites the job at `job_url` (presigned, path style) so that its
    /// bundle uploads go to a closed port.
    fn break_job_bundle_url(&self, job_url: &str) {
        let url = reqwest::Url::parse(job_url).unwrap();
        let key = url.path().strip_prefix("/bench/").unwrap().to_string();
        self.rt.block_on(async {
            let s3 = self.s3();
            let o = s3
                .get_object()
                .bucket("bench")
                .key(&key)
                .send()
                .await
                .unwrap();
            let mut job: serde_json::Value =
                serde_json::from_slice(&o.body.collect().await.unwrap().to_vec()).unwrap();
            job["put"]["bundle"] = "http://127.0.0.1:9/refused".into();
            s3.put_object()
                .bucket("bench")
                .key(&key)
                .body(serde_json::to_vec(&job).unwrap().into())
                .send()
                .await
                .unwrap();
        });
    }

    /// Every object in the bucket: key → bytes.
    fn objects(&self) -> Vec<(String, Vec<u8>)> {
        self.rt.block_on(async {
            let s3 = self.s3();
            let l = s3.list_objects_v2().bucket("bench").send().await.unwrap();
            let mut v = vec![];
            for o in l.contents() {
                let k = o.key().unwrap().to_string();
                // Gone since the listing (the token object is deleted early).
                let Ok(b) = s3.get_object().bucket("bench").key(&k).send().await else {
                    continue;
                };
                v.push((k, b.body.collect().await.unwrap().to_vec()));
            }
            v
        })
    }

    /// The API calls moto recorded: `METHOD URL BODY` per call, the body
    /// decoded (EC2's are form-encoded `Action=…&…`).
    fn calls(&self) -> Vec<String> {
        use base64::Engine as _;
        let rec = self.recording("download-recording");
        serde_json::Deserializer::from_str(&rec)
            .into_iter::<serde_json::Value>()
            .map(|v| {
                let v = v.unwrap();
                let body = v["body"].as_str().unwrap_or("");
                let body = if v["body_encoded"].as_bool() == Some(true) {
                    String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(body)
                            .unwrap(),
                    )
                    .into_owned()
                } else {
                    body.to_string()
                };
                format!(
                    "{} {} {body}",
                    v["method"].as_str().unwrap(),
                    v["url"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn recording(&self, what: &str) -> String {
        let url = format!("{}/moto-api/recorder/{what}", self.url);
        self.rt.block_on(async {
            let c = reqwest::Client::new();
            let r = if what == "download-recording" {
                c.get(&url).send().await
            } else {
                c.post(&url).send().await
            };
            r.unwrap().text().await.unwrap()
        })
    }
}

/// A test's folder, config and environment.
struct Case {
    dir: tempfile::TempDir,
    moto: Moto,
}

impl Case {
    fn new(moto_env: &[(&str, &str)]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agent-binary"),
            b"#!/bin/sh\necho stand-in agent\n",
        )
        .unwrap();
        let moto = Moto::start(moto_env, dir.path());
        Case { dir, moto }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `harness ARGS` in the case's folder, with moto's endpoint and fake
    /// credentials, a private state folder and a short polling tick.
    fn harness(&self, args: &[&str]) -> Command {
        let mut c = harness();
        c.args(args)
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", &self.moto.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("HARNESS_STATE_DIR", self.path("state"))
            .env("HARNESS_DEPLOY_TICK_MS", "200")
            .env("HF_TOKEN", TOKEN);
        c
    }

    /// Writes the config: one `ec2:` endpoint per (name, instance type, ami).
    fn config(
        &self,
        endpoints: &[(&str, &str, &str)],
        extra: &str,
        requests: u32,
        out_tokens: u32,
    ) -> PathBuf {
        let mut y = format!(
            "name: moto\ndeploy:\n  region: {REGION}\n  bucket: s3://bench/llm\n  max_duration: 10m\n  agent_binary: agent-binary\n{extra}endpoints:\n"
        );
        for (name, t, ami) in endpoints {
            y.push_str(&format!(
                "  - name: {name}\n    provider: openai\n    model: org/model-{name}\n    instance_type: {t}\n    serving_stack: vllm\n    ec2: {{ ami: {ami}, hf_token_env: HF_TOKEN }}\n"
            ));
        }
        y.push_str(&format!(
            "datasets:\n  - name: chat\n    synthetic: {{ prompt_tokens: 64, output_tokens: {out_tokens} }}\nload:\n  concurrency: [1, 2]\n  requests: {requests}\n"
        ));
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/pricing.yml"),
            self.path("pricing.yml"),
        )
        .unwrap();
        y.push_str(&format!(
            "pricing:\n  file: pricing.yml\n  region: {REGION}\n"
        ));
        write_config(self.dir.path(), "moto", &y)
    }

    fn start_run(&self, cfg: &Path) -> Child {
        self.harness(&["run", cfg.to_str().unwrap(), "--out", "run.duckdb"])
            .stdout(std::fs::File::create(self.path("run.out")).unwrap())
            .stderr(std::fs::File::create(self.path("run.err")).unwrap())
            .spawn()
            .unwrap()
    }

    fn run_log(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            std::fs::read_to_string(self.path("run.out")).unwrap_or_default(),
            std::fs::read_to_string(self.path("run.err")).unwrap_or_default()
        )
    }
}

/// What the test does for a launched instance, as its boot script would.
#[derive(Clone, Copy)]
enum Play {
    /// Run the agent against the embedded simulator.
    Sim,
    /// Run the agent against a server that never answers.
    DeadServer,
    /// Run the agent, then kill it (-9) once its first result is uploaded.
    KillAgentAfterFirstUpload,
    /// Run the agent with a job whose bundle upload URL refuses connections
    /// (the job object is rewritten in S3 before the agent reads it).
    BundleUploadFails,
    /// Never boot (the test does something else meanwhile).
    Nothing,
}

/// The presigned URLs in a boot script: (agent bundle, job).
fn urls_in(user_data: &str) -> (String, String) {
    let quoted = |after: &str| {
        let i = user_data
            .find(after)
            .unwrap_or_else(|| panic!("no `{after}` in:\n{user_data}"))
            + after.len();
        let rest = &user_data[i..];
        let rest = rest.strip_prefix('\'').unwrap();
        rest[..rest.find('\'').unwrap()].to_string()
    };
    (quoted("-o agent.tar.gz "), quoted("--job "))
}

/// Plays every instance the run launches, until `run` exits; returns its
/// exit status and the agents' logs.
fn play(
    case: &Case,
    run: &mut Child,
    how: impl Fn(&str) -> Play,
) -> (std::process::ExitStatus, String) {
    let mut played: Vec<String> = vec![];
    let mut agents: Vec<(Child, PathBuf, Play, String)> = vec![];
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end:\n{}",
            case.run_log()
        );
        // Launched instances run their user data; bring-your-own ones the
        // script SSM Run Command was given.
        let launched = case
            .moto
            .instances()
            .into_iter()
            .filter(|i| i.2 != "terminated")
            .filter_map(|(id, _, _, ud, tags)| {
                let endpoint = tags
                    .iter()
                    .find(|(k, _)| k == "llm-harness:endpoint")
                    .map(|(_, v)| v.clone())?;
                Some((id, endpoint, ud))
            });
        let commanded = case
            .moto
            .agent_commands()
            .into_iter()
            .map(|(c, _, endpoint, script)| (c, endpoint, script));
        for (id, endpoint, ud) in launched.chain(commanded).collect::<Vec<_>>() {
            if played.contains(&id) {
                continue;
            }
            played.push(id.clone());
            let p = how(&endpoint);
            if matches!(p, Play::Nothing) {
                continue;
            }
            let (agent_url, job_url) = urls_in(&ud);
            // The boot script's download works: a gzip'd tar holding the
            // configured binary as `harness`.
            let got = case.moto.rt.block_on(async {
                reqwest::get(&agent_url)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            });
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&got[..]));
            let names: Vec<(String, Vec<u8>)> = tar
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let mut b = vec![];
                    std::io::Read::read_to_end(&mut e, &mut b).unwrap();
                    (e.path().unwrap().display().to_string(), b)
                })
                .collect();
            assert_eq!(
                names,
                [(
                    "harness".to_string(),
                    std::fs::read(case.path("agent-binary")).unwrap()
                )]
            );
            if matches!(p, Play::BundleUploadFails) {
                case.moto.break_job_bundle_url(&job_url);
            }
            let log = case.path(&format!("agent-{id}.log"));
            let mut c = harness();
            // The instance's role, when the run gives it an instance profile.
            c.env("AWS_ENDPOINT_URL", &case.moto.url)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_CONFIG_FILE", case.path("no-aws-config"))
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    case.path("no-aws-credentials"),
                )
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_REGION");
            c.args(["agent", "--job", &job_url, "--log"])
                .arg(&log)
                .arg("--workdir")
                .arg(case.path(&format!("instance-{id}")))
                .args(match p {
                    Play::DeadServer => ["--stand-in", "http://127.0.0.1:9/v1"],
                    _ => ["--stand-in", "sim"],
                })
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(Stdio::from(
                    std::fs::File::options().append(true).open(&log).unwrap(),
                ));
            agents.push((c.spawn().unwrap(), log, p, endpoint));
        }
        for (child, _, p, endpoint) in agents.iter_mut() {
            if matches!(p, Play::KillAgentAfterFirstUpload) {
                let uploaded = case
                    .moto
                    .objects()
                    .iter()
                    .any(|(k, _)| k.ends_with(&format!("out/{endpoint}/bundle.duckdb")));
                if uploaded {
                    child.kill().unwrap(); // SIGKILL
                    *p = Play::Nothing;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut logs = String::new();
    for (mut child, log, _, _) in agents {
        let _ = child.kill();
        let _ = child.wait();
        logs.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    }
    (status, logs)
}

/// (endpoint, status, instance id, completed, missing, reason, agent log) per deployment.
fn deployments(bundle: &Path) -> Vec<Deployment> {
    let c = duckdb::Connection::open(bundle).unwrap();
    let mut st = c
        .prepare("SELECT endpoint, status, instance_id, experiments_completed, experiments_missing, status_reason, agent_log FROM deployments ORDER BY endpoint")
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// Every EC2 action the run called (moto's recording also holds the test's
/// own reads) is one the README's IAM policy (docs/iam-policy.json) allows.
fn assert_policy_allows(calls: &[String]) {
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/iam-policy.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let allowed: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|st| match &st["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            v => v
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
        })
        .collect();
    for c in calls {
        // EC2's query API (STS and IAM calls are the tests' own).
        if !c.contains("Version=2016-11-15") {
            continue;
        }
        let Some(i) = c.find("Action=") else { continue };
        let action = c[i + 7..].split('&').next().unwrap();
        // The test's own call, reading the user data as an instance would.
        if action == "DescribeInstanceAttribute" {
            continue;
        }
        assert!(
            allowed.contains(&format!("ec2:{action}")),
            "docs/iam-policy.json does not allow ec2:{action}"
        );
        // Giving an instance a role is passing that role.
        if c.contains("IamInstanceProfile.Name=") {
            assert!(
                allowed.iter().any(|a| a == "iam:PassRole"),
                "docs/iam-policy.json does not allow iam:PassRole"
            );
        }
    }
}

fn assert_nothing_left(case: &Case) {
    assert!(
        case.moto.alive().is_empty(),
        "instances left: {:?}\n{}",
        case.moto.alive(),
        case.run_log()
    );
    assert!(
        case.moto.security_groups().is_empty(),
        "security groups left: {:?}",
        case.moto.security_groups()
    );
    assert!(
        !case
            .moto
            .objects()
            .iter()
            .any(|(k, _)| k.contains("/secret/")),
        "a token object was left"
    );
}

#[test]
fn two_instance_types_one_bundle_nothing_left_and_no_secret_anywhere() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let cfg = case.config(
        &[
            ("g5", "g5.2xlarge", "ami-0a0b0c0d"),
            // Into a capacity reservation (the AMI slot carries the key).
            (
                "g6e",
                "g6e.2xlarge",
                "ami-0a0b0c0d, capacity_reservation: cr-0123456789abcdef0",
            ),
        ],
        "",
        6,
        8,
    );
    let mut run = case.start_run(&cfg);
    let (status, agent_logs) = play(&case, &mut run, |_| Play::Sim);
    assert!(status.success(), "{}\n{agent_logs}", case.run_log());
    assert_nothing_left(&case);

    // One bundle: both endpoints' experiments, complete, from their agents' runs.
    let bundle = case.path("run.duckdb");
    let exps = experiments(&bundle);
    assert_eq!(exps.len(), 4, "{exps:?}");
    assert!(exps.iter().all(|e| e.status == "complete"), "{exps:?}");
    let d = deployments(&bundle);
    assert_eq!(d.len(), 2);
    for (ep, status, id, done, missing, _, _) in &d {
        assert_eq!(
            (status.as_str(), *done, *missing),
            ("complete", 2, 0),
            "{ep}: {d:?}"
        );
        assert!(id.as_deref().is_some_and(|i| i.starts_with("i-")));
    }
    // The per-instance provenance and phase times.
    let c = duckdb::Connection::open(&bundle).unwrap();
    let (ami, image, timed, cost): (String, String, bool, f64) = c
        .query_row(
            "SELECT ami, image, launched_at <= ready_at AND ready_at <= benchmarked_at AND benchmarked_at <= collected_at AND collected_at <= terminated_at, cost_usd FROM deployments WHERE endpoint = 'g5'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (ami.as_str(), image.as_str(), timed),
        ("ami-0a0b0c0d", "vllm/vllm-openai:v0.11.0", true)
    );
    assert!(cost > 0.0 && cost < 0.1, "{cost}");
    let runs: i64 = c
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'complete'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(runs, 3, "the harness's run and each agent's");
    // Each agent sampled its instance; the harness, which ran nothing
    // itself, did not sample its own host.
    let sampled: Vec<Option<String>> = c
        .prepare("SELECT host_gpus FROM runs ORDER BY started_at")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(sampled[0], None, "{sampled:?}");
    assert!(sampled[1..].iter().all(|g| g.is_some()), "{sampled:?}");

    // How the instances were launched: IMDSv2, terminate on shutdown, tagged,
    // no key pair; the security group has no inbound rule.
    let calls = case.moto.calls();
    let launches: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains("Action=RunInstances"))
        .collect();
    assert_eq!(launches.len(), 2, "{} calls", calls.len());
    for l in &launches {
        for want in [
            "InstanceInitiatedShutdownBehavior=terminate",
            "MetadataOptions.HttpTokens=required",
            "ClientToken=",
            "llm-harness%3Arun-id",
        ] {
            assert!(l.contains(want), "RunInstances without {want}: {l}");
        }
        assert!(!l.contains("KeyName"), "{l}");
    }
    assert_policy_allows(&calls);
    let reserved = "CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId=cr-0123456789abcdef0";
    assert_eq!(
        launches.iter().filter(|l| l.contains(reserved)).count(),
        1,
        "{launches:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("AuthorizeSecurityGroupIngress")),
        "an inbound rule was added"
    );

    // The token is nowhere: user data, tags, objects left, the bundle, the
    // logs, the state file.
    for (id, _, _, ud, tags) in case.moto.instances() {
        assert!(!ud.contains(TOKEN), "{id} user data");
        assert!(!format!("{tags:?}").contains(TOKEN), "{id} tags");
        assert!(ud.contains("shutdown -h +10"), "{ud}");
    }
    // Results, logs and manifests stay; the agent binary and jobs go.
    let objects = case.moto.objects();
    assert!(objects
        .iter()
        .any(|(k, _)| k.ends_with("out/g5/manifest.json")));
    assert!(objects
        .iter()
        .any(|(k, _)| k.ends_with("out/g6e/bundle.duckdb")));
    assert!(
        objects.iter().all(|(k, _)| k.contains("/out/")),
        "{:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    for (k, b) in &objects {
        assert!(!String::from_utf8_lossy(b).contains(TOKEN), "s3 object {k}");
    }
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(
        !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "bundle"
    );
    assert!(!case.run_log().contains(TOKEN) && !agent_logs.contains(TOKEN));
    for e in std::fs::read_dir(case.path("state")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            assert!(
                !std::fs::read_to_string(&p).unwrap().contains(TOKEN),
                "{}",
                p.display()
            );
        }
    }
    // The agent did read it (from its short-lived object).
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("PUT") && c.contains("secret/g5/hf-token")),
        "no token object was written"
    );

    // `harness status` has nothing in flight.
    let o = case.harness(&["status"]).output().unwrap();
    assert!(
        stdout(&o).contains("no EC2 run in flight"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_launch_error_on_the_second_instance_still_collects_the_first_and_leaves_nothing() {
    let case = Case::new(&[("MOTO_ENABLE_AMI_VALIDATION", "true")]);
    let good = case.moto.rt.block_on(async {
        case.moto
            .ec2()
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .unwrap()
            .images()[0]
            .image_id()
            .unwrap()
            .to_string()
    });
    let cfg = case.config(
        &[
            ("first", "g5.2xlarge", &good),
            ("second", "g6e.2xlarge", "ami-00000000"),
        ],
        "  parallel: 1\n",
        6,
        8,
    );
    let mut run = case.start_run(&cfg);
    let (status, logs) = play(&case, &mut run, |_| Play::Sim);
    assert_eq!(status.code(), Some(3), "{}\n{logs}", case.run_log());
    assert_nothing_left(&case);
    let d = deployments(&case.path("run.duckdb"));
    assert_eq!(d[0].0, "first");
    assert_eq!((d[0].1.as_str(), d[0].3), ("complete", 2), "{d:?}");
    assert_eq!(
        (d[1].0.as_str(), d[1].1.as_str(), d[1].2.as_deref(), d[1].4),
        ("second", "failed", None, 2)
    );
    assert!(d[1].5.as_deref().unwrap().contains("InvalidAMIID"), "{d:?}");
    let exps = experiments(&case.path("run.duckdb"));
    let skipped: Vec<_> = exps.iter().filter(|e| e.status == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{exps:?}");
    assert!(skipped
        .iter()
        .all(|e| e.status_reason.as_deref().unwrap().contains("InvalidAMIID")));
    assert!(
        case.run_log().contains("FAILED: endpoint `second` on EC2"),
        "{}",
        case.run_log()
    );
}

#[test]
fn a_health_check_that_never_passes_fails_the_endpoint_and_collects_its_log() {
    let case = Case::new(&[]);
    let cfg = case.config(
        &[("dead", "g5.2xlarge", "ami-0a0b0c0d")],
        "  startup_timeout: 2s\n",
        6,
        8,
    );
    let mut run = case.start_run(&cfg);
    let (status, logs) = play(&case, &mut run, |_| Play::DeadServer);
    assert_eq!(status.code(), Some(3), "{}\n{logs}", case.run_log());
    assert_nothing_left(&case);
    let d = deployments(&case.path("run.duckdb"));
    assert_eq!((d[0].1.as_str(), d[0].3, d[0].4), ("failed", 0, 2), "{d:?}");
    let reason = d[0].5.as_deref().unwrap();
    assert!(
        reason.contains("did not answer GET http://127.0.0.1:9/v1/models within 2s"),
        "{reason}"
    );
    // The agent's log came back with it.
    assert!(
        d[0].6.as_deref().unwrap_or("").contains("agent: failed"),
        "{d:?}"
    );
}

#[test]
fn an_agent_that_cannot_upload_its_bundle_is_reported_and_nothing_is_left() {
    let case = Case::new(&[]);
    let cfg = case.config(&[("noup", "g5.2xlarge", "ami-0a0b0c0d")], "", 6, 8);
    let mut run = case.start_run(&cfg);
    let (status, logs) = play(&case, &mut run, |_| Play::BundleUploadFails);
    assert_eq!(status.code(), Some(3), "{}\n{logs}", case.run_log());
    assert_nothing_left(&case);
    // The agent ran both experiments, but no bundle came back: the manifest
    // says why, both experiments are recorded as not collected, with it.
    let d = deployments(&case.path("run.duckdb"));
    assert_eq!((d[0].1.as_str(), d[0].3, d[0].4), ("failed", 0, 2), "{d:?}");
    let reason = d[0].5.as_deref().unwrap();
    assert!(reason.contains("uploading the bundle failed"), "{reason}");
    assert!(
        d[0].6
            .as_deref()
            .unwrap_or("")
            .contains("agent: uploading the bundle"),
        "the agent's log came back: {d:?}"
    );
    let exps = experiments(&case.path("run.duckdb"));
    assert_eq!(exps.len(), 2);
    for e in &exps {
        assert_eq!(e.status, "skipped", "{exps:?}");
        let why = e.status_reason.as_deref().unwrap();
        assert!(why.contains("uploading the bundle failed"), "{why}");
    }
    assert!(
        case.run_log().contains("FAILED: endpoint `noup` on EC2"),
        "{}",
        case.run_log()
    );
}

#[test]
fn an_agent_killed_mid_run_is_noticed_and_its_uploaded_results_are_kept() {
    let case = Case::new(&[]);
    // Long enough experiments that the kill lands inside the run.
    let cfg = case.config(&[("crash", "g5.2xlarge", "ami-0a0b0c0d")], "", 60, 48);
    let mut run = case.start_run(&cfg);
    let (status, logs) = play(&case, &mut run, |_| Play::KillAgentAfterFirstUpload);
    assert_eq!(status.code(), Some(3), "{}\n{logs}", case.run_log());
    assert_nothing_left(&case);
    let d = deployments(&case.path("run.duckdb"));
    assert_eq!(d[0].1, "failed");
    assert!(
        d[0].5
            .as_deref()
            .unwrap()
            .contains("stopped sending heartbeats"),
        "{d:?}"
    );
    assert!(d[0].3 >= 1 && d[0].3 + d[0].4 == 2, "{d:?}");
    let exps = experiments(&case.path("run.duckdb"));
    assert_eq!(
        exps.iter().filter(|e| e.status == "complete").count() as i32,
        d[0].3
    );
    // The agent's run is marked lost, not left `running`.
    let c = duckdb::Connection::open(case.path("run.duckdb")).unwrap();
    let lost: i64 = c
        .query_row("SELECT count(*) FROM runs WHERE status = 'lost'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let running: i64 = c
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((lost, running), (1, 0));
}

/// Waits until moto has an instance that is not terminated.
fn wait_for_launch(case: &Case, run: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while case.moto.alive().is_empty() {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended first:\n{}",
            case.run_log()
        );
        assert!(
            Instant::now() < deadline,
            "nothing launched:\n{}",
            case.run_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_of_the_harness_then_gc_leaves_nothing() {
    let case = Case::new(&[]);
    let cfg = case.config(&[("orphan", "g5.2xlarge", "ami-0a0b0c0d")], "", 6, 8);
    let mut run = case.start_run(&cfg);
    wait_for_launch(&case, &mut run);
    run.kill().unwrap(); // SIGKILL: no teardown can run
    run.wait().unwrap();
    assert_eq!(case.moto.alive().len(), 1);
    // status shows the run in flight, with its instance.
    let o = case.harness(&["status"]).output().unwrap();
    assert!(
        stdout(&o).contains("instance") && stdout(&o).contains("i-"),
        "{}",
        stdout(&o)
    );
    let o = case.harness(&["gc", "--dry-run"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 instance(s), 1 security group(s)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        case.moto.alive().len(),
        1,
        "gc --dry-run terminated something"
    );
    // Seen from a machine without this run's state file, the run has not
    // expired yet, so it may be in flight there: gc leaves it unless --force.
    let states = case.path("state");
    let away = case.path("state-away");
    std::fs::rename(&states, &away).unwrap();
    let o = case.harness(&["gc", "--region", REGION]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("0 instance(s), 0 security group(s)")
            && stdout(&o).contains("not known on this machine and not expired"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        case.moto.alive().len(),
        1,
        "gc swept an unexpired unknown run"
    );
    std::fs::rename(&away, &states).unwrap();
    let o = case.harness(&["gc", "--region", REGION]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("terminated 1 instance(s)"),
        "{}",
        stdout(&o)
    );
    assert_nothing_left(&case);
    let o = case.harness(&["status"]).output().unwrap();
    assert!(
        stdout(&o).contains("no EC2 run in flight"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn sigint_during_a_run_terminates_everything() {
    let case = Case::new(&[]);
    let cfg = case.config(
        &[
            ("a", "g5.2xlarge", "ami-0a0b0c0d"),
            ("b", "g6e.2xlarge", "ami-0a0b0c0d"),
        ],
        "",
        6,
        8,
    );
    // No deploy.bucket: the account's own bucket is made.
    let yaml = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  bucket: s3://bench/llm\n", "");
    std::fs::write(&cfg, yaml).unwrap();
    let mut run = case.start_run(&cfg);
    wait_for_launch(&case, &mut run);
    // gc from another shell leaves a run in flight to its own teardown.
    let o = case.harness(&["gc", "--region", REGION]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("0 instance(s), 0 security group(s)")
            && stdout(&o).contains("in flight on this machine"),
        "{}",
        stdout(&o)
    );
    assert!(
        !case.moto.alive().is_empty(),
        "gc terminated a run in flight"
    );
    // The instances never boot; Ctrl-C while the harness waits on them.
    let pid = run.id() as i32;
    assert_eq!(unsafe_kill(pid, "INT"), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGINT:\n{}",
            case.run_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "{}", case.run_log());
    assert_nothing_left(&case);
    let d = deployments(&case.path("run.duckdb"));
    assert!(d.iter().all(|r| r.1 == "interrupted"), "{d:?}");
    let buckets = case
        .moto
        .rt
        .block_on(async { case.moto.s3().list_buckets().send().await.unwrap() });
    assert!(
        buckets
            .buckets()
            .iter()
            .any(|b| b.name() == Some("llm-harness-123456789012-us-east-1")),
        "{buckets:?}"
    );
}

/// `kill -SIG pid` through the system's kill (the tests forbid unsafe code).
fn unsafe_kill(pid: i32, sig: &str) -> i32 {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap()
}

#[test]
fn dry_run_and_budget_refusal_make_no_aws_call() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    case.moto.recording("reset-recording");
    let cfg = case.config(
        &[("g5", "g5.2xlarge", "ami-0a0b0c0d")],
        "  max_cost_usd: 0.5\n",
        6,
        8,
    );
    let o = case
        .harness(&["run", cfg.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // By hand: $1.212/hour × 1 × (10 min + 10 min of boot).
    assert!(
        stdout(&o).contains(&format!("cost bound: ${:.2}", 1.212 * (20.0 / 60.0))),
        "{}",
        stdout(&o)
    );
    let budget = case.config(
        &[("g5", "g5.2xlarge", "ami-0a0b0c0d")],
        "  max_cost_usd: 0.1\n",
        6,
        8,
    );
    let o = case
        .harness(&["run", budget.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("over deploy.max_cost_usd $0.10"),
        "{}",
        stderr(&o)
    );
    let calls = case.moto.calls();
    assert!(
        calls.is_empty(),
        "AWS calls were made:\n{}",
        calls.join("\n")
    );
    assert!(case.moto.instances().is_empty());
}

#[test]
fn client_local_opens_the_port_to_the_cidr_only_and_benchmarks_from_here_with_a_per_run_key() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let cfg = case.config(
        &[
            ("g5", "g5.2xlarge", "ami-0a0b0c0d"),
            ("g6e", "g6e.2xlarge", "ami-0a0b0c0d"),
        ],
        "  client: local\n  allowed_cidr: 203.0.113.7/32\n",
        // Long enough for the serving host, sampled once a second, to be
        // sampled during each experiment: at the stand-in's 1 ms per token,
        // 12 requests of 400 tokens take about 2 s at concurrency 2 (6 took
        // 0.97 s, and one CI run's experiment fell between two samples).
        12,
        400,
    );
    // The dry run says where the client runs and what is opened.
    let o = case
        .harness(&["run", cfg.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the security group opens TCP 8000 to 203.0.113.7/32 only")
            && stdout(&o).contains("-e VLLM_API_KEY"),
        "{}",
        stdout(&o)
    );
    let mut run = case.start_run(&cfg);
    let (status, agent_logs) = play(&case, &mut run, |_| Play::Sim);
    assert!(status.success(), "{}\n{agent_logs}", case.run_log());
    assert_nothing_left(&case);

    // Every experiment ran here (one run in the bundle: the harness's),
    // against the agents' servers, and is complete.
    let bundle = case.path("run.duckdb");
    let exps = experiments(&bundle);
    assert_eq!(exps.len(), 4, "{exps:?}");
    assert!(exps.iter().all(|e| e.status == "complete"), "{exps:?}");
    let c = duckdb::Connection::open(&bundle).unwrap();
    let runs: i64 = c
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1);
    let d = deployments(&bundle);
    for (ep, status, _, done, missing, _, log) in &d {
        assert_eq!(
            (status.as_str(), *done, *missing),
            ("complete", 2, 0),
            "{ep}: {d:?}"
        );
        // The released agent's log came back.
        assert!(
            log.as_deref()
                .unwrap_or("")
                .contains("released by the harness"),
            "{ep}: {log:?}"
        );
    }
    // Its preflight passed against a server that requires the key.
    let ok: i64 = c
        .query_row(
            "SELECT count(*) FROM preflights WHERE ok AND url LIKE 'http://127.0.0.1:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ok, 2);
    // The serving host (the agent's) was sampled while this machine
    // benchmarked it, and each sample sits on its experiment's clock; this
    // machine did not sample itself.
    let per_exp: Vec<(String, i64, i64, i64)> = c
        .prepare(
            "SELECT e.experiment_id, count(h.t_ns), coalesce(min(h.t_ns), -1), \
             coalesce(max(h.t_ns) - max(epoch_ns(e.ended_at) - epoch_ns(e.started_at)), 0) \
             FROM experiments e LEFT JOIN host_samples h USING (experiment_id) \
             GROUP BY e.experiment_id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(per_exp.len(), 4);
    for (id, n, first, past_end) in &per_exp {
        assert!(
            *n >= 1 && *first >= 0 && *past_end <= 0,
            "{id}: {per_exp:?}"
        );
    }
    let own: Option<String> = c
        .query_row("SELECT host_gpus FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(own, None);

    // One inbound rule: the serving port, from the CIDR only.
    let calls = case.moto.calls();
    assert_policy_allows(&calls);
    let ingress: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains("Action=AuthorizeSecurityGroupIngress"))
        .collect();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    for want in [
        "IpPermissions.1.FromPort=8000",
        "IpPermissions.1.ToPort=8000",
        "IpPermissions.1.IpProtocol=tcp",
        "IpPermissions.1.IpRanges.1.CidrIp=203.0.113.7%2F32",
    ] {
        assert!(ingress[0].contains(want), "no {want}: {}", ingress[0]);
    }
    assert!(!ingress[0].contains("IpPermissions.2"), "{}", ingress[0]);

    // The per-run keys (one per endpoint, as written to their objects) are
    // in no user data, object left, bundle, log or state file.
    let keys: Vec<String> = calls
        .iter()
        .filter(|c| {
            c.starts_with("PUT")
                && c.split(' ')
                    .nth(1)
                    .is_some_and(|u| u.contains("/secret/") && u.contains("/api-key"))
        })
        .map(|c| c.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1]);
    for key in &keys {
        assert_eq!(key.len(), 64, "{key}");
        for (id, _, _, ud, tags) in case.moto.instances() {
            assert!(!ud.contains(key.as_str()), "{id} user data");
            assert!(!format!("{tags:?}").contains(key.as_str()), "{id} tags");
        }
        for (k, b) in case.moto.objects() {
            assert!(!String::from_utf8_lossy(&b).contains(key.as_str()), "{k}");
        }
        let bytes = std::fs::read(&bundle).unwrap();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
        assert!(!case.run_log().contains(key.as_str()));
        assert!(!agent_logs.contains(key.as_str()));
        for e in std::fs::read_dir(case.path("state")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                assert!(!std::fs::read_to_string(&p).unwrap().contains(key.as_str()));
            }
        }
    }
}

#[test]
fn a_bring_your_own_instance_is_benchmarked_through_ssm_and_left_running() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let mine = case.moto.own_instance("g5.2xlarge");
    case.moto.recording("reset-recording");
    let cfg = case.config(
        &[("mine", "g5.2xlarge", &format!("auto, instance_id: {mine}"))],
        "",
        6,
        8,
    );
    // The dry run says it is yours and bounds nothing for it.
    let o = case
        .harness(&["run", cfg.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains(&format!(
            "your instance {mine} (g5.2xlarge, NVIDIA GPU): not launched, not terminated"
        )) && plan.contains("SSM Run Command script (secrets masked)")
            && plan.contains("cost bound: $0.00"),
        "{plan}"
    );
    let mut run = case.start_run(&cfg);
    let (status, agent_logs) = play(&case, &mut run, |_| Play::Sim);
    assert!(status.success(), "{}\n{agent_logs}", case.run_log());

    // The instance still runs; nothing was launched, terminated or opened.
    let states: Vec<(String, String)> = case
        .moto
        .instances()
        .into_iter()
        .map(|i| (i.0, i.2))
        .collect();
    assert_eq!(states, [(mine.clone(), "running".to_string())]);
    let calls = case.moto.calls();
    for action in [
        "RunInstances",
        "TerminateInstances",
        "CreateSecurityGroup",
        "CreateTags",
    ] {
        assert!(
            !calls
                .iter()
                .any(|c| c.contains(&format!("Action={action}"))),
            "{action} was called"
        );
    }
    assert!(case.moto.security_groups().is_empty());

    // The agent ran the experiments on it, from the script it was sent:
    // bounded by `timeout`, never shutting the instance down, removing its
    // container at the end; and the run ended the command, removing the
    // container again.
    let exps = experiments(&case.path("run.duckdb"));
    assert_eq!(exps.len(), 2);
    assert!(exps.iter().all(|e| e.status == "complete"), "{exps:?}");
    let d = deployments(&case.path("run.duckdb"));
    assert_eq!(
        (d[0].1.as_str(), d[0].2.as_deref(), d[0].3),
        ("complete", Some(mine.as_str()), 2),
        "{d:?}"
    );
    let c = duckdb::Connection::open(case.path("run.duckdb")).unwrap();
    let (market, terminated): (String, Option<String>) = c
        .query_row(
            "SELECT market, CAST(terminated_at AS VARCHAR) FROM deployments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((market.as_str(), terminated), ("existing", None));
    let cmds = case.moto.agent_commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let script = &cmds[0].3;
    assert_eq!(cmds[0].1, mine);
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    assert!(
        script.contains("timeout 600 ./harness agent")
            || script.contains("timeout 600 env LD_LIBRARY_PATH"),
        "{script}"
    );
    assert!(!script.contains("shutdown"), "{script}");
    assert!(
        script
            .trim_end()
            .ends_with("docker rm -f llm-harness-serving >/dev/null 2>&1; true"),
        "{script}"
    );
    assert!(!script.contains(TOKEN));
    let ended = calls
        .iter()
        .filter(|c| c.contains("llm-harness: end of") && c.contains(&mine))
        .count();
    assert_eq!(ended, 1, "the run did not remove the container");
    assert_policy_allows(&calls);
    // The state file has nothing live.
    for e in std::fs::read_dir(case.path("state")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let st: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            assert_eq!(st["status"], "done", "{st}");
        }
    }
}

#[test]
fn a_bring_your_own_instance_of_another_type_is_refused_and_left_alone() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let mine = case.moto.own_instance("g6e.2xlarge");
    case.moto.recording("reset-recording");
    let cfg = case.config(
        &[("mine", "g5.2xlarge", &format!("auto, instance_id: {mine}"))],
        "",
        6,
        8,
    );
    let mut run = case.start_run(&cfg);
    let (status, logs) = play(&case, &mut run, |_| Play::Sim);
    assert_eq!(status.code(), Some(3), "{}\n{logs}", case.run_log());
    let d = deployments(&case.path("run.duckdb"));
    let reason = d[0].5.as_deref().unwrap();
    assert!(
        reason.contains(&format!("your instance {mine} is a g6e.2xlarge, but endpoint `mine` says instance_type: g5.2xlarge")),
        "{reason}"
    );
    assert!(case.moto.agent_commands().is_empty());
    assert_eq!(case.moto.alive().len(), 1);
}

#[test]
fn gc_ends_an_agent_command_a_dead_run_left_on_a_bring_your_own_instance() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let mine = case.moto.own_instance("g5.2xlarge");
    case.moto.recording("reset-recording");
    // What a run killed with -9 leaves: its state file, the command live.
    std::fs::create_dir_all(case.path("state")).unwrap();
    let now = chrono::Utc::now();
    let state = serde_json::json!({
        "run_id": "deadbeef00000000",
        "region": REGION,
        "config_file": "moto.yml",
        "started_at": now.to_rfc3339(),
        "expires_at": (now + chrono::Duration::minutes(20)).to_rfc3339(),
        "status": "running",
        "resources": [{
            "kind": "command",
            "endpoint": "mine",
            "client_token": "ssm:deadbeef00000000/mine",
            "id": "c0ffee00-0000-4000-8000-000000000000",
            "phase": "created",
            "instance_type": "g5.2xlarge",
            "usd_per_hour": null,
            "requested_at": now.to_rfc3339(),
            "deleted_at": null,
            "target": mine,
        }],
    });
    std::fs::write(
        case.path("state/deadbeef00000000.json"),
        serde_json::to_vec_pretty(&state).unwrap(),
    )
    .unwrap();
    let o = case.harness(&["gc"]).output().unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "agent command c0ffee00-0000-4000-8000-000000000000 on your instance {mine}"
        )) && stdout(&o).contains("ended 1 agent command(s)"),
        "{}",
        stdout(&o)
    );
    let calls = case.moto.calls();
    assert!(calls
        .iter()
        .any(|c| c.contains("llm-harness: end of c0ffee00") && c.contains(&mine)));
    assert!(!calls
        .iter()
        .any(|c| c.contains("Action=TerminateInstances")));
    assert_eq!(case.moto.alive().len(), 1);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.path("state/deadbeef00000000.json")).unwrap())
            .unwrap();
    assert_eq!(st["status"], "done", "{st}");
}

/// Credentials that expire in an hour, from moto's STS (a web identity
/// role, as in CI or EKS): `harness` with those instead of keys.
fn with_expiring_credentials(case: &Case, args: &[&str]) -> Command {
    std::fs::write(case.path("web-identity-token"), "test-token").unwrap();
    let mut c = case.harness(args);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            case.path("web-identity-token"),
        )
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci")
        .env("AWS_ROLE_SESSION_NAME", "ci");
    c
}

#[test]
fn credentials_that_expire_first_need_an_instance_profile_and_the_dry_run_says_so() {
    let case = Case::new(&[("MOTO_ENABLE_RECORDING", "true")]);
    let long = case.config(&[("g5", "g5.2xlarge", "ami-0a0b0c0d")], "", 6, 8);
    let long = {
        let y = std::fs::read_to_string(&long)
            .unwrap()
            .replace("max_duration: 10m", "max_duration: 3h");
        std::fs::write(&long, y).unwrap();
        long
    };
    let o = with_expiring_credentials(&case, &["run", long.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let so = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{so}{}", stderr(&o));
    assert!(
        so.contains("credentials: REFUSED for a real run: the AWS credentials expire in")
            && so.contains("before the instances' longest life (3h 10m)")
            && so.contains("set deploy.instance_profile"),
        "{so}"
    );
    let o = with_expiring_credentials(&case, &["run", long.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("set deploy.instance_profile"),
        "{}",
        stderr(&o)
    );
    assert!(case.moto.instances().is_empty());

    // With an instance profile: start-up is presigned, the rest goes
    // through the instance's role; the whole run works.
    let y = std::fs::read_to_string(&long).unwrap().replace(
        "deploy:\n",
        "deploy:\n  instance_profile: llm-harness-instance\n",
    );
    std::fs::write(&long, y).unwrap();
    // The profile exists (moto checks), made through IAM's query API (the
    // harness has no IAM client: it only names the profile).
    case.moto.rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&case.moto.url)
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("Action=CreateInstanceProfile&InstanceProfileName=llm-harness-instance&Version=2010-05-08")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text().await);
    });
    let o = with_expiring_credentials(&case, &["run", long.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("then the instances use instance profile `llm-harness-instance`"),
        "{}",
        stdout(&o)
    );
    let mut run = with_expiring_credentials(
        &case,
        &["run", long.to_str().unwrap(), "--out", "run.duckdb"],
    )
    .stdout(std::fs::File::create(case.path("run.out")).unwrap())
    .stderr(std::fs::File::create(case.path("run.err")).unwrap())
    .spawn()
    .unwrap();
    let (status, logs) = play(&case, &mut run, |_| Play::Sim);
    assert!(status.success(), "{}\n{logs}", case.run_log());
    assert_nothing_left(&case);
    let exps = experiments(&case.path("run.duckdb"));
    assert!(
        exps.len() == 2 && exps.iter().all(|e| e.status == "complete"),
        "{exps:?}"
    );
    let calls = case.moto.calls();
    let launch = calls
        .iter()
        .find(|c| c.contains("Action=RunInstances"))
        .unwrap();
    assert!(
        launch.contains("IamInstanceProfile.Name=llm-harness-instance"),
        "{launch}"
    );
    // The job named plain s3:// addresses for what comes after start-up.
    let job = calls
        .iter()
        .find(|c| c.starts_with("PUT") && c.contains("/job/g5.json"))
        .unwrap();
    assert!(
        job.contains("\"heartbeat\": \"s3://bench/llm/runs/")
            && job.contains("\"bundle\": \"s3://bench/llm/runs/"),
        "{job}"
    );
    assert_policy_allows(&calls);
}
