//! Launching the EC2 plan: for every `ec2:` endpoint, concurrently and at
//! most `deploy.parallel` at a time, launch → wait for the serving stack's
//! health check → benchmark (the agent, on the instance) → collect →
//! terminate; then a run-wide teardown that runs whatever happened.
//!
//! Lines of defence against an instance left running:
//! 1. every resource is tagged with the run id, owner and expiry;
//! 2. the run-state file ([`super::state`]) records each create before it is
//!    sent; RunInstances carries an idempotency client token;
//! 3. the instance shuts itself down (behaviour `terminate`) after
//!    `deploy.max_duration`, even if this process dies;
//! 4. [`teardown`](Fleet::teardown) runs on success, on an error in any
//!    phase, on a panic and on Ctrl-C or SIGTERM (a second signal skips the
//!    graceful wait, never the teardown);
//! 5. `harness gc` sweeps whatever remains, by tag.
//!
//! No open doors: no key pair, a security group with no inbound rule,
//! IMDSv2 required. The instance reads its inputs and writes its outputs
//! through presigned S3 URLs under `<bucket prefix>/runs/<run id>/`; the
//! Hugging Face token goes in its own object, deleted once the server is up.
//!
//! With `deploy.client: local` the agent only serves, and the harness
//! benchmarks from its own machine ([`BenchRequest`], one endpoint at a
//! time, so two benchmarks never share this machine's CPU and network). The
//! security group then has one inbound rule per serving port, from
//! `deploy.allowed_cidr` only, and the server requires a per-run API key
//! (random, 256 bits) that reaches the instance through its own
//! short-lived object, as the token does.

use super::ec2::{InstancePlan, Plan, BOOT_ALLOWANCE};
use super::job::{Heartbeat, Job, Manifest, Phase as AgentPhase, Puts, Serve};
use super::state::{self, Kind, Resource, RunState};
use crate::aws::why;
use crate::bundle::DeploymentRow;
use crate::config::{Deploy, Loaded};
use crate::plan::Experiment;
use anyhow::{Context, Result};
use aws_sdk_ec2::types as ec2t;
use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The tag keys every resource carries.
pub const TAG_RUN: &str = "llm-harness:run-id";
pub const TAG_OWNER: &str = "llm-harness:owner";
pub const TAG_EXPIRES: &str = "llm-harness:expires-at";
pub const TAG_ENDPOINT: &str = "llm-harness:endpoint";

/// How often the harness polls (heartbeats, manifests, instance state):
/// 5 s, or `HARNESS_DEPLOY_TICK_MS` (the tests use a short tick).
pub fn tick() -> Duration {
    std::env::var("HARNESS_DEPLOY_TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5))
}

/// The agent's heartbeat interval: three ticks.
pub fn heartbeat_every() -> Duration {
    tick() * 3
}

/// A benchmarking agent whose last heartbeat is older than this is lost.
pub fn stale_after() -> Duration {
    heartbeat_every() * 8
}

/// What the run passes to the fleet.
pub struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub run_id: &'a str,
    /// Set on the first Ctrl-C or SIGTERM: stop waiting, collect, tear down.
    pub stop: Arc<AtomicBool>,
    /// Set on the second: skip collecting and waiting, tear down at once.
    pub hurry: Arc<AtomicBool>,
    /// With `deploy.client: local`: where an endpoint that serves is sent to
    /// be benchmarked from this machine.
    pub bench: Option<tokio::sync::mpsc::Sender<BenchRequest>>,
}

/// `deploy.client: local`: an endpoint is up and answers at `url`; the
/// run benchmarks its experiments from this machine and answers on `done`.
pub struct BenchRequest {
    pub endpoint: String,
    /// The OpenAI base URL (`http://IP:PORT/v1`).
    pub url: String,
    /// The per-run API key the server requires.
    pub api_key: String,
    pub done: tokio::sync::oneshot::Sender<BenchReply>,
}

/// What benchmarking a served endpoint from this machine wrote.
#[derive(Debug, Default)]
pub struct BenchReply {
    /// Experiment ids written to the run's bundle (any status).
    pub written: Vec<String>,
    /// Of those, the ones complete.
    pub completed: Vec<String>,
}

/// One endpoint's outcome.
pub struct Collected {
    pub endpoint: String,
    /// The instance's bundle, downloaded (a temporary file beside the run's).
    pub bundle: Option<PathBuf>,
    /// Experiment ids complete in that bundle.
    pub completed: Vec<String>,
    /// Why the endpoint's other experiments have no result.
    pub missing_reason: String,
    pub row: DeploymentRow,
    /// `deploy.client: local`: the experiments this machine wrote into the
    /// run's bundle itself (any status), so not to be collected or skipped.
    pub written_here: Vec<String>,
    /// `deploy.client: local`: the serving host's samples while it served.
    pub host: Option<super::job::HostReport>,
}

/// Launches `plan`, runs `experiments` on the instances and tears every
/// resource down, whatever happens in between. Returns one [`Collected`]
/// per planned endpoint.
///
/// Errors: credentials that expire before the instances would, no bucket to
/// use, the run-state file cannot be written, or a run-wide resource (the
/// security group, the agent upload) cannot be created; the teardown has run
/// by then.
pub async fn run(
    cx: &Ctx<'_>,
    aws: &crate::aws::Aws,
    plan: &Plan,
    experiments: &[&Experiment],
) -> Result<Vec<Collected>> {
    let d = &cx.loaded.config.deploy;
    let (bucket, prefix) = match d.bucket.as_deref() {
        Some(url) => crate::s3::parse_url(url).map_err(crate::exit::bad_input)?,
        None => (default_bucket(aws).await?, String::new()),
    };
    let lifetime = super::ec2::lifetime(d);
    let left = aws.credentials_expire.map(|exp| {
        exp.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    });
    let byo = plan.instances.iter().any(|i| i.instance_id.is_some());
    match super::ec2::credentials_check(d, left, aws.temporary, byo) {
        Err(why) => return Err(crate::exit::bad_input(why)),
        Ok(words) if words.starts_with("WARNING") => eprintln!("{words}"),
        Ok(_) => {}
    }
    let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).expect("duration");
    let run_prefix = [prefix.as_str(), "runs", cx.run_id]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("/");
    let mut state = RunState::create(cx.run_id, &aws.region(), &cx.loaded.file, expires_at)?;
    state.objects = Some(format!("s3://{bucket}/{run_prefix}"));
    state.save()?;
    let fleet = Fleet {
        ec2: aws.ec2(),
        s3: aws.s3(),
        ssm: aws.ssm(),
        region: aws.region(),
        state: Mutex::new(state),
        bucket,
        run_prefix,
        run_id: cx.run_id.to_string(),
        deploy: d.clone(),
        agent: plan
            .agent
            .clone()
            .expect("a plan with instances has its agent"),
        expires_at,
        security_group: Mutex::new(None),
        stop: cx.stop.clone(),
        hurry: cx.hurry.clone(),
    };
    eprintln!(
        "launching {} instance(s) in {} (run {}; state file {}; objects under s3://{}/{}/)",
        plan.instances.len(),
        fleet.region,
        cx.run_id,
        fleet.state.lock().await.path.display(),
        fleet.bucket,
        fleet.run_prefix
    );
    use futures_util::FutureExt;
    let result = std::panic::AssertUnwindSafe(fleet.all(cx, plan, experiments))
        .catch_unwind()
        .await;
    fleet.teardown().await;
    match result {
        Ok(r) => r,
        Err(p) => Err(anyhow::anyhow!(
            "panic while the instances ran: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}

struct Fleet {
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    ssm: aws_sdk_ssm::Client,
    region: String,
    state: Mutex<RunState>,
    bucket: String,
    run_prefix: String,
    run_id: String,
    deploy: Deploy,
    /// The agent every instance gets (the plan's).
    agent: super::ec2::AgentBundle,
    expires_at: DateTime<Utc>,
    security_group: Mutex<Option<String>>,
    stop: Arc<AtomicBool>,
    hurry: Arc<AtomicBool>,
}

/// The most of a log kept in the bundle.
const LOG_TAIL: usize = 256 * 1024;

impl Fleet {
    fn key(&self, rel: &str) -> String {
        format!("{}/{rel}", self.run_prefix)
    }

    fn tags(&self, endpoint: Option<&str>) -> Vec<ec2t::Tag> {
        let owner = format!(
            "{}@{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            crate::host::facts().name.unwrap_or_default()
        );
        let mut v = vec![
            (TAG_RUN, self.run_id.clone()),
            (TAG_OWNER, owner),
            (TAG_EXPIRES, self.expires_at.to_rfc3339()),
            (
                "Name",
                format!("llm-harness {} {}", self.run_id, endpoint.unwrap_or("")),
            ),
        ];
        if let Some(e) = endpoint {
            v.push((TAG_ENDPOINT, e.to_string()));
        }
        v.into_iter()
            .map(|(k, val)| ec2t::Tag::builder().key(k).value(val).build())
            .collect()
    }

    fn tag_spec(&self, rt: ec2t::ResourceType, endpoint: Option<&str>) -> ec2t::TagSpecification {
        ec2t::TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(self.tags(endpoint)))
            .build()
    }

    /// Puts an object under the run's prefix.
    async fn put(
        &self,
        rel: &str,
        body: impl Into<aws_sdk_s3::primitives::ByteStream>,
    ) -> Result<()> {
        let key = self.key(rel);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("writing s3://{}/{key}: {}", self.bucket, why(&e)))?;
        Ok(())
    }

    /// Reads an object under the run's prefix; `None` when it does not exist.
    async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(rel);
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(
                o.body
                    .collect()
                    .await
                    .with_context(|| format!("reading s3://{}/{key}", self.bucket))?
                    .to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => anyhow::bail!("reading s3://{}/{key}: {}", self.bucket, why(&e)),
        }
    }

    async fn presign_get(&self, rel: &str, valid: Duration) -> Result<String> {
        let r = self.s3.get_object().bucket(&self.bucket).key(self.key(rel));
        presigned(r.presigned(PresigningConfig::expires_in(valid)?).await)
    }

    async fn presign_put(&self, rel: &str, valid: Duration) -> Result<String> {
        let r = self.s3.put_object().bucket(&self.bucket).key(self.key(rel));
        presigned(r.presigned(PresigningConfig::expires_in(valid)?).await)
    }

    /// How long presigned URLs stay valid: the instances' longest life, at
    /// most the 7 days SigV4 allows.
    fn url_lifetime(&self) -> Duration {
        (self.deploy.max_duration + BOOT_ALLOWANCE + Duration::from_secs(600))
            .min(Duration::from_secs(7 * 24 * 3600))
    }

    /// Run-wide resources: the agent binary in S3 and a security group with
    /// no inbound rule (with `client: local`, the serving ports from
    /// `deploy.allowed_cidr`).
    /// `ports`: the launched instances' serving ports; `None` when the run
    /// launches nothing (bring-your-own instances only), so needs no group.
    async fn prepare(&self, ports: Option<&[u16]>) -> Result<()> {
        let packed =
            super::state::dir().join(format!("{}.{}", self.run_id, super::ec2::AGENT_BUNDLE));
        let (a, p) = (self.agent.clone(), packed.clone());
        tokio::task::spawn_blocking(move || a.write(&p)).await??;
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&packed)
            .await
            .with_context(|| format!("reading {}", packed.display()));
        let sent = match body {
            Ok(b) => {
                self.put(&format!("agent/{}", super::ec2::AGENT_BUNDLE), b)
                    .await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&packed);
        sent?;
        let Some(ports) = ports else { return Ok(()) };
        let name = format!("llm-harness-{}", self.run_id);
        self.state
            .lock()
            .await
            .requested(Resource::requested(Kind::SecurityGroup, "", &name))?;
        let local = self.deploy.client == crate::config::ClientSite::Local;
        let sg = self
            .ec2
            .create_security_group()
            .group_name(&name)
            .description(if local {
                "llm-harness run: the serving port, from deploy.allowed_cidr only"
            } else {
                "llm-harness run: no inbound rule (the benchmark runs on the instance)"
            })
            .tag_specifications(self.tag_spec(ec2t::ResourceType::SecurityGroup, None))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("creating security group {name}: {}", why(&e)))?;
        let id = sg.group_id().unwrap_or_default().to_string();
        self.state.lock().await.created(&name, &id)?;
        *self.security_group.lock().await = Some(id.clone());
        if local {
            self.open_serving_ports(&id, ports).await?;
        }
        Ok(())
    }

    /// `deploy.client: local`: one inbound TCP rule per serving port, from
    /// `deploy.allowed_cidr` only.
    async fn open_serving_ports(&self, sg: &str, ports: &[u16]) -> Result<()> {
        let cidr = self
            .deploy
            .allowed_cidr
            .clone()
            .expect("validated: client local has allowed_cidr");
        let mut perms = ec2t::IpPermission::builder().ip_protocol("tcp");
        let mut all = vec![];
        for &port in ports {
            perms = perms.from_port(port as i32).to_port(port as i32);
            perms = if cidr.contains(':') {
                perms.ipv6_ranges(
                    ec2t::Ipv6Range::builder()
                        .cidr_ipv6(&cidr)
                        .description("llm-harness client (deploy.allowed_cidr)")
                        .build(),
                )
            } else {
                perms.ip_ranges(
                    ec2t::IpRange::builder()
                        .cidr_ip(&cidr)
                        .description("llm-harness client (deploy.allowed_cidr)")
                        .build(),
                )
            };
            all.push(perms.build());
            perms = ec2t::IpPermission::builder().ip_protocol("tcp");
        }
        self.ec2
            .authorize_security_group_ingress()
            .group_id(sg)
            .set_ip_permissions(Some(all))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "opening port(s) {ports:?} of security group {sg} to {cidr}: {}",
                    why(&e)
                )
            })?;
        Ok(())
    }

    async fn all(
        &self,
        cx: &Ctx<'_>,
        plan: &Plan,
        experiments: &[&Experiment],
    ) -> Result<Vec<Collected>> {
        let mut ports: Vec<u16> = cx
            .loaded
            .config
            .endpoints
            .iter()
            .filter(|e| {
                plan.instances
                    .iter()
                    .any(|i| i.endpoint == e.name && i.instance_id.is_none())
            })
            .filter_map(|e| e.ec2.as_ref().map(|s| s.port))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let launches = plan.instances.iter().any(|i| i.instance_id.is_none());
        self.prepare(launches.then_some(ports.as_slice())).await?;
        let permits = Arc::new(tokio::sync::Semaphore::new(self.deploy.parallel as usize));
        let jobs = plan.instances.iter().map(|ip| {
            let permits = permits.clone();
            async move {
                let _p = permits.acquire().await.expect("semaphore");
                let exps: Vec<&Experiment> = experiments
                    .iter()
                    .copied()
                    .filter(|e| e.endpoint.name == ip.endpoint)
                    .collect();
                self.one(cx, ip, &exps).await
            }
        });
        Ok(futures_util::future::join_all(jobs).await)
    }

    fn say(&self, ip: &InstancePlan, since: Option<DateTime<Utc>>, what: &str) {
        let elapsed = since
            .map(|t| (Utc::now() - t).num_seconds().max(0))
            .unwrap_or(0);
        let cost = ip
            .usd_per_hour
            .as_ref()
            .map(|(h, _)| format!(" · ${:.2} so far", h * elapsed as f64 / 3600.0))
            .unwrap_or_default();
        eprintln!(
            "[{}] {:02}:{:02} {what}{cost}",
            ip.endpoint,
            elapsed / 60,
            elapsed % 60
        );
    }

    /// One endpoint's whole life. Never fails: what went wrong is in the row.
    async fn one(&self, cx: &Ctx<'_>, ip: &InstancePlan, exps: &[&Experiment]) -> Collected {
        let mut row = DeploymentRow {
            run_id: self.run_id.clone(),
            endpoint: ip.endpoint.clone(),
            kind: "ec2".into(),
            region: Some(self.region.clone()),
            instance_type: Some(ip.instance_type.clone()),
            market: Some(if ip.spot { "spot" } else { "on-demand" }.into()),
            image: Some(ip.image.clone()),
            usd_per_hour: ip.usd_per_hour.as_ref().map(|(h, _)| *h),
            experiments_missing: exps.len() as i32,
            status: "failed".into(),
            ..Default::default()
        };
        let mut out = Collected {
            endpoint: ip.endpoint.clone(),
            bundle: None,
            completed: vec![],
            missing_reason: String::new(),
            row: DeploymentRow::default(),
            written_here: vec![],
            host: None,
        };
        let result = self.lifecycle(cx, ip, exps, &mut row, &mut out).await;
        if ip.instance_id.is_some() {
            // Yours: the agent's command ends and its container goes; the
            // instance stays.
            self.end_commands(Some(&ip.endpoint)).await;
        } else if let Some(id) = row.instance_id.clone() {
            // Terminate this instance now; the run-wide teardown checks again.
            match self.terminate(std::slice::from_ref(&id)).await {
                Ok(()) => {
                    row.terminated_at = Some(Utc::now());
                    self.say(ip, row.launched_at, &format!("terminated {id}"));
                }
                Err(e) => eprintln!(
                    "[{}] terminating {id}: {e:#} (the teardown retries)",
                    ip.endpoint
                ),
            }
        }
        match result {
            Ok(()) => {}
            Err(e) => {
                let why = crate::redact::text(&format!("{e:#}"));
                self.say(ip, row.launched_at, &format!("FAILED: {why}"));
                if row.status != "interrupted" {
                    row.status = "failed".into();
                }
                row.status_reason = Some(why.clone());
                out.missing_reason = why;
            }
        }
        row.experiments_completed = out.completed.len() as i32;
        row.experiments_missing = (exps.len() - out.completed.len().min(exps.len())) as i32;
        out.row = row;
        out
    }

    async fn lifecycle(
        &self,
        cx: &Ctx<'_>,
        ip: &InstancePlan,
        exps: &[&Experiment],
        row: &mut DeploymentRow,
        out: &mut Collected,
    ) -> Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            row.status = "interrupted".into();
            anyhow::bail!("not launched: the run was stopped first");
        }
        // Launch, or start the agent on the instance that exists.
        let (id, api_key) = if let Some(existing) = &ip.instance_id {
            row.ami = Some(self.check_existing(ip, existing).await?);
            row.market = Some("existing".into());
            let (script, api_key) = self.stage_job(cx, ip).await?;
            row.instance_id = Some(existing.clone());
            let command = self.send_agent_command(ip, existing, &script).await?;
            row.launched_at = Some(Utc::now());
            self.say(
                ip,
                row.launched_at,
                &format!("started the agent on your instance {existing} (SSM command {command})"),
            );
            (existing.clone(), api_key)
        } else {
            let ami = match &ip.ami {
                Ok(id) => id.clone(),
                Err(param) => self.resolve_ami(param).await?,
            };
            row.ami = Some(ami.clone());
            let (user_data, api_key) = self.stage_job(cx, ip).await?;
            let id = self.launch(ip, &ami, &user_data).await?;
            row.instance_id = Some(id.clone());
            row.launched_at = Some(Utc::now());
            self.say(
                ip,
                row.launched_at,
                &format!("launched {id} ({}, {ami})", ip.instance_type),
            );
            (id, api_key)
        };

        // Wait for the health check, then for the manifest; with
        // `client: local`, benchmark from here in between.
        let outcome = match self.follow(ip, &id, row, exps.len()).await {
            Ok(Followed::Done(m)) => Ok(m),
            Ok(Followed::Serving(url)) => {
                self.bench_here(cx, ip, row, out, &url, api_key.unwrap_or_default())
                    .await
            }
            Err(e) => Err(e),
        };
        if self.hurry.load(Ordering::SeqCst) {
            row.status = "interrupted".into();
            anyhow::bail!("stopped by a second signal before its results were collected");
        }
        // Collect whatever was uploaded, in every case.
        let collected = self.collect(ip, row, out).await;
        row.collected_at = Some(Utc::now());
        match (outcome, collected) {
            (Ok(m), Ok(())) => {
                row.benchmarked_at = row.benchmarked_at.or(Some(m.ended_at));
                row.image_digest = m.image_digest.clone();
                row.agent_run_id = m.agent_run_id.clone().or(row.agent_run_id.take());
                row.ready_at = m.ready_at.or(row.ready_at);
                if m.status == "complete" && m.not_completed.is_empty() {
                    row.status = "complete".into();
                    self.say(
                        ip,
                        row.launched_at,
                        &format!("collected {} experiment(s)", out.completed.len()),
                    );
                    Ok(())
                } else {
                    if m.status == "interrupted" {
                        row.status = "interrupted".into();
                    }
                    let detail = m
                        .not_completed
                        .iter()
                        .map(|(id, why)| format!("{}: {why}", &id[..12.min(id.len())]))
                        .collect::<Vec<_>>()
                        .join("; ");
                    anyhow::bail!(
                        "the agent ended {} (exit {}){}{}",
                        m.status,
                        m.exit_code,
                        m.reason.map(|r| format!(": {r}")).unwrap_or_default(),
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!("; {detail}")
                        }
                    )
                }
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.context("collecting the results")),
        }
    }

    /// A bring-your-own instance must be running and of the configured type
    /// (its price is the configured type's). Returns its AMI.
    async fn check_existing(&self, ip: &InstancePlan, id: &str) -> Result<String> {
        let r = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("looking up your instance {id}: {}", why(&e)))?;
        let i = r
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
            .ok_or_else(|| anyhow::anyhow!("instance {id} was not found in {}", self.region))?;
        let state = i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        if state != "running" {
            anyhow::bail!("your instance {id} is {state}; start it first (the harness neither starts nor stops instances it did not launch)");
        }
        let t = i.instance_type().map(|t| t.as_str()).unwrap_or_default();
        if t != ip.instance_type {
            anyhow::bail!(
                "your instance {id} is a {t}, but endpoint `{}` says instance_type: {}; set it to {t} (the cost per request is priced from it)",
                ip.endpoint,
                ip.instance_type
            );
        }
        Ok(i.image_id().unwrap_or_default().to_string())
    }

    /// Starts the agent on a bring-your-own instance: `script` through SSM
    /// Run Command (`AWS-RunShellScript`), recorded in the state file before
    /// it is sent. Returns the command id.
    async fn send_agent_command(
        &self,
        ip: &InstancePlan,
        id: &str,
        script: &str,
    ) -> Result<String> {
        let token = format!("ssm:{}/{}", self.run_id, ip.endpoint);
        self.state.lock().await.requested(Resource {
            instance_type: Some(ip.instance_type.clone()),
            target: Some(id.to_string()),
            ..Resource::requested(Kind::Command, &ip.endpoint, &token)
        })?;
        // Longer than the agent's own `timeout`, so that the script's last
        // line (removing the container) runs.
        let limit = (self.deploy.max_duration + BOOT_ALLOWANCE).as_secs();
        let r = self
            .ssm
            .send_command()
            .instance_ids(id)
            .document_name("AWS-RunShellScript")
            .comment(format!("llm-harness run {} endpoint {}", self.run_id, ip.endpoint))
            .parameters("commands", script.lines().map(String::from).collect())
            .parameters("executionTimeout", vec![limit.to_string()])
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting the agent on your instance {id} through SSM Run Command: {} (it needs the SSM agent, and an instance profile that lets it register)",
                    why(&e)
                )
            })?;
        let command = r
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| anyhow::anyhow!("SendCommand returned no command id"))?
            .to_string();
        self.state.lock().await.created(&token, &command)?;
        Ok(command)
    }

    /// Ends the live agent commands on bring-your-own instances (of
    /// `endpoint`, or all): cancelled, and their serving container removed.
    async fn end_commands(&self, endpoint: Option<&str>) -> bool {
        let live: Vec<Resource> = self
            .state
            .lock()
            .await
            .live()
            .filter(|r| r.kind == Kind::Command && endpoint.is_none_or(|e| r.endpoint == e))
            .cloned()
            .collect();
        let mut clean = true;
        for r in live {
            let (Some(command), Some(instance)) = (&r.id, &r.target) else {
                // Never answered: the script's own timeout ends it.
                let _ = self.state.lock().await.deleted(&r.client_token);
                continue;
            };
            match end_command(&self.ssm, command, instance).await {
                Ok(()) => {
                    let _ = self.state.lock().await.deleted(command);
                }
                Err(e) => {
                    clean = false;
                    eprintln!("teardown: ending the agent on your instance {instance}: {e}");
                }
            }
        }
        clean
    }

    async fn resolve_ami(&self, param: &str) -> Result<String> {
        let p = self
            .ssm
            .get_parameter()
            .name(param)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("resolving the AMI from SSM parameter {param}: {}", why(&e))
            })?;
        p.parameter()
            .and_then(|p| p.value())
            .map(String::from)
            .ok_or_else(|| anyhow::anyhow!("SSM parameter {param} has no value"))
    }

    /// Writes a secret into its own object under `secret/<endpoint>/`,
    /// recorded in the state file first, and returns a presigned GET of it
    /// that lasts long enough to boot and start the server (it is deleted
    /// once the server answers anyway).
    async fn put_secret(&self, endpoint: &str, name: &str, value: String) -> Result<String> {
        crate::redact::register(&value);
        let rel = format!("secret/{endpoint}/{name}");
        self.state.lock().await.requested(Resource {
            id: Some(format!("s3://{}/{}", self.bucket, self.key(&rel))),
            ..Resource::requested(Kind::SecretObject, endpoint, &self.key(&rel))
        })?;
        self.put(&rel, value.into_bytes()).await?;
        self.presign_get(&rel, self.deploy.startup_timeout + BOOT_ALLOWANCE)
            .await
    }

    /// Uploads the endpoint's job (and its secret objects), and returns the
    /// boot script that fetches the agent and runs it, and the per-run API
    /// key (`deploy.client: local`).
    async fn stage_job(&self, cx: &Ctx<'_>, ip: &InstancePlan) -> Result<(String, Option<String>)> {
        let valid = self.url_lifetime();
        let ep = cx
            .loaded
            .config
            .endpoints
            .iter()
            .find(|e| e.name == ip.endpoint)
            .expect("planned endpoint");
        let s = ep.ec2.as_ref().expect("ec2 endpoint");
        let mut secret_url = None;
        if let Some(var) = &s.hf_token_env {
            let token = std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    crate::exit::bad_input(format!(
                        "endpoint `{}`: ${var} (ec2.hf_token_env) is not set; the model needs the Hugging Face token it names",
                        ep.name
                    ))
                })?;
            secret_url = Some(self.put_secret(&ep.name, "hf-token", token).await?);
        }
        let out = |f: &str| format!("out/{}/{f}", ep.name);
        // After start-up: presigned, or, with an instance profile, plain
        // addresses the instance reaches with its role.
        let role = self.deploy.instance_profile.is_some() && ip.instance_id.is_none();
        let later_put = |rel: String| async move {
            match role {
                true => Ok(format!("s3://{}/{}", self.bucket, self.key(&rel))),
                false => self.presign_put(&rel, valid).await,
            }
        };
        let serve_only = self.deploy.client == crate::config::ClientSite::Local;
        let (api_key, api_key_url, release_url) = if serve_only {
            let key = new_api_key()?;
            let url = self.put_secret(&ep.name, "api-key", key.clone()).await?;
            let release = match role {
                true => format!("s3://{}/{}", self.bucket, self.key(&out("release.json"))),
                false => self.presign_get(&out("release.json"), valid).await?,
            };
            (Some(key), Some(url), Some(release))
        } else {
            (None, None, None)
        };
        let (key_env, key_flag) = super::ec2::api_key_delivery(&ip.stack);
        let job = Job {
            run_id: self.run_id.clone(),
            endpoint: ep.name.clone(),
            config_file: cx.loaded.file.clone(),
            config_yaml: std::fs::read_to_string(&cx.loaded.file)
                .with_context(|| format!("cannot read {}", cx.loaded.file))?,
            overrides: cx.loaded.overrides.clone(),
            files: referenced_files(cx.loaded)?,
            serve: Serve {
                image: ip.image.clone(),
                docker_flags: ip.docker_flags.clone(),
                args: ip.server_args.clone(),
                port: s.port,
                api_key_env: match (serve_only, key_env) {
                    (true, Some(v)) => vec![v.to_string()],
                    _ => vec![],
                },
                api_key_flag: key_flag.filter(|_| serve_only).map(String::from),
            },
            secret_url,
            serve_only,
            api_key_url,
            release_url,
            put: Puts {
                heartbeat: later_put(out("heartbeat.json")).await?,
                bundle: later_put(out("bundle.duckdb")).await?,
                manifest: later_put(out("manifest.json")).await?,
                agent_log: later_put(out("agent.log")).await?,
                serving_log: later_put(out("serving.log")).await?,
                host: match serve_only {
                    true => Some(later_put(out("host.json")).await?),
                    false => None,
                },
            },
            region: self.region.clone(),
            startup_timeout_s: self.deploy.startup_timeout.as_secs(),
            heartbeat_ms: heartbeat_every().as_millis() as u64,
        };
        let rel = format!("job/{}.json", ep.name);
        self.put(&rel, serde_json::to_vec_pretty(&job)?).await?;
        let agent_url = self
            .presign_get(&format!("agent/{}", super::ec2::AGENT_BUNDLE), valid)
            .await?;
        let job_url = self.presign_get(&rel, valid).await?;
        let user_data = super::ec2::user_data(
            &cx.loaded.config,
            ep,
            ip.accelerator,
            &self.run_id,
            &self.agent,
            &agent_url,
            &job_url,
        );
        Ok((user_data, api_key))
    }

    async fn launch(&self, ip: &InstancePlan, ami: &str, user_data: &str) -> Result<String> {
        use base64::Engine as _;
        // Idempotent per run and endpoint: a retried request launches nothing new.
        let token =
            harness_core::hash::sha256_hex(format!("{}/{}", self.run_id, ip.endpoint).as_bytes())
                [..32]
                .to_string();
        self.state.lock().await.requested(Resource {
            instance_type: Some(ip.instance_type.clone()),
            usd_per_hour: ip.usd_per_hour.as_ref().map(|(h, _)| *h),
            ..Resource::requested(Kind::Instance, &ip.endpoint, &token)
        })?;
        let sg = self.security_group.lock().await.clone();
        let mut req = self
            .ec2
            .run_instances()
            .image_id(ami)
            .instance_type(ec2t::InstanceType::from(ip.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&token)
            .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
            .instance_initiated_shutdown_behavior(ec2t::ShutdownBehavior::Terminate)
            .metadata_options(
                ec2t::InstanceMetadataOptionsRequest::builder()
                    .http_tokens(ec2t::HttpTokensState::Required)
                    .http_endpoint(ec2t::InstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .block_device_mappings(
                ec2t::BlockDeviceMapping::builder()
                    .device_name("/dev/sda1")
                    .ebs(
                        ec2t::EbsBlockDevice::builder()
                            .volume_size(ip.volume_gib as i32)
                            .volume_type(ec2t::VolumeType::Gp3)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .tag_specifications(self.tag_spec(ec2t::ResourceType::Instance, Some(&ip.endpoint)))
            .tag_specifications(self.tag_spec(ec2t::ResourceType::Volume, Some(&ip.endpoint)))
            .set_security_group_ids(sg.map(|g| vec![g]));
        if let Some(p) = &self.deploy.instance_profile {
            req = req.iam_instance_profile(
                ec2t::IamInstanceProfileSpecification::builder()
                    .name(p)
                    .build(),
            );
        }
        if let Some(cr) = &ip.capacity_reservation {
            req = req.capacity_reservation_specification(
                ec2t::CapacityReservationSpecification::builder()
                    .capacity_reservation_target(
                        ec2t::CapacityReservationTarget::builder()
                            .capacity_reservation_id(cr)
                            .build(),
                    )
                    .build(),
            );
        }
        if ip.spot {
            req = req.instance_market_options(
                ec2t::InstanceMarketOptionsRequest::builder()
                    .market_type(ec2t::MarketType::Spot)
                    .spot_options(
                        ec2t::SpotMarketOptions::builder()
                            .spot_instance_type(ec2t::SpotInstanceType::OneTime)
                            .instance_interruption_behavior(
                                ec2t::InstanceInterruptionBehavior::Terminate,
                            )
                            .build(),
                    )
                    .build(),
            );
        }
        let r = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "launching {} ({}): {}",
                ip.instance_type,
                ip.endpoint,
                why(&e)
            )
        })?;
        let id = r
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .ok_or_else(|| anyhow::anyhow!("RunInstances returned no instance"))?
            .to_string();
        self.state.lock().await.created(&token, &id)?;
        Ok(id)
    }

    /// `deploy.client: local`: the endpoint serves at `url`; has the run
    /// benchmark it from this machine (waiting for its turn), then releases
    /// the agent and waits a little for its manifest and logs.
    /// Errors: an experiment of the endpoint is not complete, or the run
    /// was stopped.
    async fn bench_here(
        &self,
        cx: &Ctx<'_>,
        ip: &InstancePlan,
        row: &mut DeploymentRow,
        out: &mut Collected,
        url: &str,
        api_key: String,
    ) -> Result<Manifest> {
        let bench = cx
            .bench
            .as_ref()
            .expect("a run with client: local passes a bench channel");
        self.say(
            ip,
            row.launched_at,
            &format!(
                "serving at {url}; benchmarking it from this machine (one endpoint at a time)"
            ),
        );
        let (done, reply) = tokio::sync::oneshot::channel();
        bench
            .send(BenchRequest {
                endpoint: ip.endpoint.clone(),
                url: url.to_string(),
                api_key,
                done,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the run stopped taking endpoints to benchmark"))?;
        let reply = reply.await.map_err(|_| {
            anyhow::anyhow!("the benchmark from this machine ended without a result")
        })?;
        row.benchmarked_at = Some(Utc::now());
        out.written_here = reply.written.clone();
        out.completed = reply.completed.clone();
        // Release the agent: it uploads its logs and manifest, then the
        // instance shuts down (and is terminated by the caller anyway).
        let mut manifest = None;
        if !self.hurry.load(Ordering::SeqCst) {
            self.put(&format!("out/{}/release.json", ip.endpoint), b"{}".to_vec())
                .await?;
            let until = std::time::Instant::now() + stale_after();
            let key = format!("out/{}/manifest.json", ip.endpoint);
            while manifest.is_none()
                && std::time::Instant::now() < until
                && !self.hurry.load(Ordering::SeqCst)
            {
                match self.get(&key).await? {
                    Some(b) => manifest = serde_json::from_slice::<Manifest>(&b).ok(),
                    None => tokio::time::sleep(tick()).await,
                }
            }
        }
        if let Some(m) = &manifest {
            row.image_digest = m.image_digest.clone();
            row.ready_at = m.ready_at.or(row.ready_at);
        } else if !self.hurry.load(Ordering::SeqCst) {
            self.say(
                ip,
                row.launched_at,
                "no manifest from the released agent (its logs may be missing)",
            );
        }
        if self.stop.load(Ordering::SeqCst) {
            row.status = "interrupted".into();
            anyhow::bail!("stopped by a signal while benchmarking from this machine");
        }
        let missing: Vec<String> = ip
            .experiments
            .iter()
            .filter(|(id, _)| !reply.completed.contains(id))
            .map(|(id, label)| {
                format!(
                    "{label}: {}",
                    if reply.written.contains(id) {
                        "not complete (see its status)"
                    } else {
                        "not run"
                    }
                )
            })
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "{} of {} experiment(s) not complete from this machine: {}",
                missing.len(),
                ip.experiments.len(),
                missing.join("; ")
            );
        }
        Ok(manifest.unwrap_or_else(|| Manifest {
            status: "complete".into(),
            exit_code: 0,
            agent_run_id: None,
            completed: vec![],
            not_completed: Default::default(),
            image_digest: None,
            ready_at: row.ready_at,
            ended_at: Utc::now(),
            reason: None,
        }))
    }

    /// Follows the agent through its heartbeats until its manifest appears,
    /// or, for a `serve_only` job, until it serves.
    /// Errors: the health check did not pass within `startup_timeout`, the
    /// heartbeats stopped, the instance ended, `max_duration` passed, or the
    /// run was stopped.
    async fn follow(
        &self,
        ip: &InstancePlan,
        id: &str,
        row: &mut DeploymentRow,
        planned: usize,
    ) -> Result<Followed> {
        let launched = Utc::now();
        let mut last_phase: Option<AgentPhase> = None;
        let mut last_beat = launched;
        let mut polls = 0u64;
        let out = |f: &str| format!("out/{}/{f}", ip.endpoint);
        // When a serving stack that never answers is given up on.
        let give_up = (launched
            + chrono::Duration::from_std(self.deploy.startup_timeout + BOOT_ALLOWANCE)
                .unwrap_or_default())
        .format("%H:%M UTC")
        .to_string();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                row.status = "interrupted".into();
                anyhow::bail!(
                    "stopped by a signal while {}",
                    match last_phase {
                        Some(AgentPhase::Benchmarking) => "benchmarking",
                        _ => "starting",
                    }
                );
            }
            if let Some(m) = self.get(&out("manifest.json")).await? {
                let m: Manifest =
                    serde_json::from_slice(&m).context("reading the agent's manifest")?;
                return Ok(Followed::Done(m));
            }
            if let Some(h) = self.get(&out("heartbeat.json")).await? {
                if let Ok(h) = serde_json::from_slice::<Heartbeat>(&h) {
                    if h.at > last_beat || last_phase.is_none() {
                        last_beat = h.at.max(last_beat);
                    }
                    if Some(h.phase) != last_phase {
                        if h.phase >= AgentPhase::Benchmarking && row.ready_at.is_none() {
                            row.ready_at = Some(h.at);
                            self.delete_secrets(&ip.endpoint).await;
                        }
                        self.say(ip, row.launched_at, phase_words(h.phase));
                        last_phase = Some(h.phase);
                    } else if h.phase < AgentPhase::Benchmarking && polls.is_multiple_of(12) {
                        self.say(
                            ip,
                            row.launched_at,
                            &format!("{} (gives up at {give_up})", phase_words(h.phase)),
                        );
                    } else if h.phase == AgentPhase::Benchmarking && polls.is_multiple_of(12) {
                        self.say(
                            ip,
                            row.launched_at,
                            &format!(
                                "benchmarking ({}/{planned} experiments done)",
                                h.experiments_done
                            ),
                        );
                    }
                    if let Some(agent_run) =
                        h.message.as_deref().and_then(|m| m.strip_prefix("run "))
                    {
                        row.agent_run_id = Some(agent_run.to_string());
                    }
                    if h.phase == AgentPhase::Serving {
                        if let Some(url) = h.url {
                            return Ok(Followed::Serving(url));
                        }
                    }
                }
            }
            if last_phase.is_none() && polls > 0 && polls.is_multiple_of(12) {
                self.say(
                    ip,
                    row.launched_at,
                    &format!("booting; no heartbeat from the agent yet (gives up at {give_up})"),
                );
            }
            let now = Utc::now();
            let waited = (now - launched).to_std().unwrap_or_default();
            let ready = last_phase.is_some_and(|p| p >= AgentPhase::Benchmarking);
            if !ready && waited > self.deploy.startup_timeout + BOOT_ALLOWANCE {
                anyhow::bail!(
                    "the serving stack did not pass its health check within deploy.startup_timeout ({}, plus {} to boot; last agent phase: {})",
                    humantime::format_duration(self.deploy.startup_timeout),
                    humantime::format_duration(BOOT_ALLOWANCE),
                    last_phase.map(phase_words).unwrap_or("no heartbeat yet")
                );
            }
            if ready && (now - last_beat).to_std().unwrap_or_default() > stale_after() {
                anyhow::bail!(
                    "the agent stopped sending heartbeats (the last at {}): it crashed or its instance stopped",
                    last_beat.format("%H:%M:%S")
                );
            }
            if waited > self.deploy.max_duration {
                anyhow::bail!(
                    "deploy.max_duration ({}) passed before the agent finished",
                    humantime::format_duration(self.deploy.max_duration)
                );
            }
            polls += 1;
            if polls.is_multiple_of(6) {
                if let Some(state) = self.instance_state(id).await {
                    if matches!(
                        state.as_str(),
                        "shutting-down" | "terminated" | "stopping" | "stopped"
                    ) {
                        anyhow::bail!("instance {id} is {state} (spot interruption, a failed boot script, or its own shutdown timer)");
                    }
                }
            }
            tokio::time::sleep(tick()).await;
        }
    }

    async fn instance_state(&self, id: &str) -> Option<String> {
        let r = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .ok()?;
        r.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
    }

    /// Downloads the instance's bundle and logs, whatever state it ended in.
    async fn collect(
        &self,
        ip: &InstancePlan,
        row: &mut DeploymentRow,
        out: &mut Collected,
    ) -> Result<()> {
        let o = |f: &str| format!("out/{}/{f}", ip.endpoint);
        let tail = |b: Vec<u8>| {
            let s = String::from_utf8_lossy(&b[b.len().saturating_sub(LOG_TAIL)..]).into_owned();
            crate::redact::text(&s)
        };
        row.agent_log = self.get(&o("agent.log")).await.ok().flatten().map(tail);
        row.serving_log = self.get(&o("serving.log")).await.ok().flatten().map(tail);
        if let Some(b) = self.get(&o("host.json")).await.ok().flatten() {
            out.host = serde_json::from_slice(&b).ok();
        }
        let Some(bytes) = self.get(&o("bundle.duckdb")).await? else {
            return Ok(());
        };
        let dir = out_dir_of(&self.run_id);
        let path = dir.join(format!("{}.duckdb", ip.endpoint.replace(['/', ' '], "_")));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        let conn = crate::bundle::read::open(&path)?;
        let mut st =
            conn.prepare("SELECT experiment_id FROM experiments WHERE status = 'complete'")?;
        out.completed = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        if row.agent_run_id.is_none() {
            row.agent_run_id = conn
                .query_row(
                    "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .ok();
        }
        out.bundle = Some(path);
        Ok(())
    }

    /// Deletes the endpoint's secret objects (the token, the API key): once
    /// its server answers, the agent has read them.
    async fn delete_secrets(&self, endpoint: &str) {
        let keys: Vec<String> = self
            .state
            .lock()
            .await
            .live()
            .filter(|r| r.kind == Kind::SecretObject && r.endpoint == endpoint)
            .map(|r| r.client_token.clone())
            .collect();
        for key in keys {
            match self
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(_) => {
                    let _ = self.state.lock().await.deleted(&key);
                }
                Err(e) => eprintln!(
                    "warning: deleting s3://{}/{key}: {} (the teardown retries)",
                    self.bucket,
                    why(&e)
                ),
            }
        }
    }

    async fn terminate(&self, ids: &[String]) -> Result<()> {
        self.ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", why(&e)))?;
        let mut st = self.state.lock().await;
        for id in ids {
            st.deleted(id)?;
        }
        Ok(())
    }

    /// Terminates every instance the state file knows (by id, or by client
    /// token for a launch whose answer never came), waits until they are
    /// gone, then deletes the security group and secret objects. Runs in
    /// every case; reports what it could not delete and where `harness gc`
    /// picks it up.
    async fn teardown(&self) {
        let live: Vec<Resource> = self.state.lock().await.live().cloned().collect();
        if !live.is_empty() {
            eprintln!(
                "teardown: {} resource(s) of run {}",
                live.len(),
                self.run_id
            );
        }
        {
            let mut st = self.state.lock().await;
            st.status = "tearing_down".into();
            let _ = st.save();
        }
        let mut ids: Vec<String> = live
            .iter()
            .filter(|r| r.kind == Kind::Instance)
            .filter_map(|r| r.id.clone())
            .collect();
        let tokens: Vec<String> = live
            .iter()
            .filter(|r| r.kind == Kind::Instance && r.id.is_none())
            .map(|r| r.client_token.clone())
            .collect();
        // Whatever else carries the run's tag and still lives: a launch whose
        // answer never came (its client token recorded, no id), or anything
        // the state file missed.
        match self
            .ec2
            .describe_instances()
            .filters(
                ec2t::Filter::builder()
                    .name(format!("tag:{TAG_RUN}"))
                    .values(&self.run_id)
                    .build(),
            )
            .filters(alive_filter())
            .send()
            .await
        {
            Ok(r) => {
                for i in r.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = i.instance_id() else { continue };
                    if let Some(t) = i.client_token().filter(|t| tokens.iter().any(|x| x == t)) {
                        let _ = self.state.lock().await.created(t, id);
                    }
                    if !ids.iter().any(|x| x == id) {
                        ids.push(id.to_string());
                    }
                }
                // A token with no tagged instance launched nothing.
                let mut st = self.state.lock().await;
                for t in &tokens {
                    if st
                        .resources
                        .iter()
                        .any(|r| &r.client_token == t && r.id.is_none())
                    {
                        let _ = st.deleted(t);
                    }
                }
            }
            Err(e) => eprintln!("teardown: listing the run's instances: {}", why(&e)),
        }
        let mut clean = true;
        if !ids.is_empty() {
            if let Err(e) = self.terminate(&ids).await {
                clean = false;
                eprintln!("teardown: terminating {}: {e:#}", ids.join(", "));
            }
        }
        if !self.end_commands(None).await {
            clean = false;
        }
        // The agent binary and the jobs (whose presigned URLs could still
        // write results) go too; results, logs and manifests stay.
        delete_agent_objects(&self.s3, &self.bucket, &self.run_prefix).await;
        for r in live.iter().filter(|r| r.kind == Kind::SecretObject) {
            if self
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(&r.client_token)
                .send()
                .await
                .is_ok()
            {
                let _ = self.state.lock().await.deleted(&r.client_token);
            } else {
                clean = false;
            }
        }
        if let Some(sg) = live
            .iter()
            .find(|r| r.kind == Kind::SecurityGroup)
            .and_then(|r| r.id.clone())
        {
            match delete_security_group(&self.ec2, &sg, &self.hurry).await {
                Ok(()) => {
                    let _ = self.state.lock().await.deleted(&sg);
                }
                Err(e) => {
                    clean = false;
                    eprintln!("teardown: deleting security group {sg}: {e}");
                }
            }
        }
        let mut st = self.state.lock().await;
        if clean && st.live().count() == 0 {
            st.status = "done".into();
            let _ = st.save();
            if !live.is_empty() {
                eprintln!("teardown: done, nothing of run {} is left", self.run_id);
            }
        } else {
            let _ = st.save();
            eprintln!(
                "teardown: INCOMPLETE; `harness gc --region {}` terminates what run {} left (state: {})",
                self.region,
                self.run_id,
                st.path.display()
            );
        }
    }
}

/// Ends the agent's SSM command on a bring-your-own instance: cancels it
/// (harmless when it has finished) and removes the serving container with a
/// second command, so nothing of the run keeps serving there. The instance
/// itself is never stopped.
///
/// Errors: the cleanup command could not be sent (AWS's reason).
pub async fn end_command(
    ssm: &aws_sdk_ssm::Client,
    command: &str,
    instance: &str,
) -> std::result::Result<(), String> {
    let _ = ssm
        .cancel_command()
        .command_id(command)
        .instance_ids(instance)
        .send()
        .await;
    ssm.send_command()
        .instance_ids(instance)
        .document_name("AWS-RunShellScript")
        .comment(format!("llm-harness: end of {command}"))
        .parameters(
            "commands",
            vec![format!(
                "docker rm -f {} >/dev/null 2>&1; true",
                super::ec2::CONTAINER
            )],
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| why(&e))
}

/// Deletes a run's security group. A group cannot go while an instance
/// still uses it, so `DependencyViolation` is retried every tick for up to 5
/// minutes (while the instances terminate), unless `hurry` is set; a group
/// that no longer exists counts as deleted.
///
/// Errors: AWS's reason, once retrying stops.
pub async fn delete_security_group(
    ec2: &aws_sdk_ec2::Client,
    sg: &str,
    hurry: &AtomicBool,
) -> std::result::Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        match ec2.delete_security_group().group_id(sg).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let code = why(&e);
                if code.starts_with("InvalidGroup.NotFound") {
                    return Ok(());
                }
                if code.starts_with("DependencyViolation")
                    && std::time::Instant::now() < deadline
                    && !hurry.load(Ordering::SeqCst)
                {
                    tokio::time::sleep(tick()).await;
                    continue;
                }
                return Err(code);
            }
        }
    }
}

/// A presigned request's URL, registered for masking (it carries a
/// signature that grants access until it expires).
fn presigned<E, R>(
    r: std::result::Result<
        aws_sdk_s3::presigning::PresignedRequest,
        aws_sdk_s3::error::SdkError<E, R>,
    >,
) -> Result<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let u = r
        .map_err(|e| anyhow::anyhow!("presigning: {}", why(&e)))?
        .uri()
        .to_string();
    crate::redact::register_url(&u);
    Ok(u)
}

/// Instances not (being) terminated: `pending`, `running`, `stopping`,
/// `stopped`.
pub fn alive_filter() -> ec2t::Filter {
    ec2t::Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped"]
                .map(String::from)
                .to_vec(),
        ))
        .build()
}

/// The keys of the agent bundle and the jobs under a run's prefix (listing
/// errors count as none).
pub async fn agent_objects(s3: &aws_sdk_s3::Client, bucket: &str, run_prefix: &str) -> Vec<String> {
    let mut keys = vec![];
    for dir in ["agent/", "job/"] {
        if let Ok(l) = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(format!("{run_prefix}/{dir}"))
            .send()
            .await
        {
            keys.extend(
                l.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(String::from),
            );
        }
    }
    keys
}

/// Deletes the agent bundle and the jobs (whose presigned URLs could still
/// write results) under a run's prefix; results, logs and manifests stay.
/// Returns how many objects went; failures are left for a later sweep.
pub async fn delete_agent_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    run_prefix: &str,
) -> usize {
    let mut n = 0;
    for k in agent_objects(s3, bucket, run_prefix).await {
        if s3
            .delete_object()
            .bucket(bucket)
            .key(&k)
            .send()
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Where following an agent ended.
enum Followed {
    /// Its manifest.
    Done(Manifest),
    /// `serve_only`: it serves at this URL.
    Serving(String),
}

fn phase_words(p: AgentPhase) -> &'static str {
    match p {
        AgentPhase::Starting => "agent started; starting the serving stack",
        AgentPhase::WaitingForServer => "waiting for the serving stack's health check",
        AgentPhase::Benchmarking => "serving stack healthy; benchmarking",
        AgentPhase::Serving => "serving stack healthy",
        AgentPhase::Done => "agent done; writing its manifest",
    }
}

/// The account's own bucket for runs without `deploy.bucket`:
/// `llm-harness-<account id>-<region>`, created (private, as every new bucket
/// is) when missing.
async fn default_bucket(aws: &crate::aws::Aws) -> Result<String> {
    let name = default_bucket_name(&aws.account().await?, &aws.region());
    let s3 = aws.s3();
    if s3.head_bucket().bucket(&name).send().await.is_ok() {
        return Ok(name);
    }
    let mut req = s3.create_bucket().bucket(&name);
    if aws.region() != "us-east-1" {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    aws.region().as_str(),
                ))
                .build(),
        );
    }
    req.send().await.map_err(|e| {
        anyhow::anyhow!(
            "creating the run bucket s3://{name} (deploy.bucket is not set): {}; set deploy.bucket to a bucket you can write",
            why(&e)
        )
    })?;
    eprintln!(
        "created s3://{name} for the runs' objects (set deploy.bucket to use another bucket)"
    );
    Ok(name)
}

/// `llm-harness-<account id>-<region>`.
pub fn default_bucket_name(account: &str, region: &str) -> String {
    format!("llm-harness-{account}-{region}")
}

/// Where collected bundles are kept until they are merged into the run's.
fn out_dir_of(run_id: &str) -> PathBuf {
    state::dir().join(format!("{run_id}.collected"))
}

/// The files the config names by relative path, which the agent needs: the
/// pricing file, JSONL datasets, and traces with their JSONL prompts.
///
/// Errors: a named file is absolute or unreadable (the agent could not have
/// it at the same path).
pub fn referenced_files(loaded: &Loaded) -> Result<BTreeMap<String, String>> {
    let cfg = &loaded.config;
    let mut paths: Vec<&str> = vec![];
    if let Some(p) = &cfg.pricing.file {
        paths.push(p);
    }
    for d in &cfg.datasets {
        match &d.source {
            crate::config::DatasetSource::Jsonl { path, .. } => paths.push(path),
            crate::config::DatasetSource::Trace { path, prompts, .. } => {
                paths.push(path);
                if let crate::config::TracePrompts::Jsonl { path, .. } = prompts {
                    paths.push(path);
                }
            }
            crate::config::DatasetSource::Synthetic { .. } => {}
        }
    }
    let mut out = BTreeMap::new();
    for p in paths {
        if Path::new(p).is_absolute() || p.split('/').any(|s| s == "..") {
            crate::bad_input!(
                "`{p}` is named by an absolute path or one outside the working folder; the instances get the config's files at the same relative path, so name it relative to the folder you run from (e.g. configs/pricing.yml)"
            );
        }
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {p}"))?;
        out.insert(p.to_string(), text);
    }
    Ok(out)
}

/// A per-run API key: 256 random bits from the operating system, in hex.
///
/// Errors: the system's random source fails.
fn new_api_key() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)
        .map_err(|e| anyhow::anyhow!("no random bytes for the API key: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
