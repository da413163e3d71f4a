//! `harness agent --job URL`: the harness on a launched instance. The boot
//! script starts it; it
//! 1. fetches its job (presigned GET) and the files the config names;
//! 2. reads the Hugging Face token from its short-lived object, if any, into
//!    its own environment (never a command line);
//! 3. starts the serving container (`docker run`, from the job) — or, in
//!    tests, a stand-in (`--stand-in sim` or a URL);
//! 4. waits for the server's health check (`GET /v1/models` on loopback);
//! 5. runs the endpoint's experiments over loopback with the same code as
//!    `harness run`, uploading the bundle after each one;
//! 6. writes its manifest: exit status and the experiments it completed.
//!
//! With `deploy.client: local` (a `serve_only` job) it reads the per-run API
//! key from its own object into the serving stack's environment, and after
//! step 4 its heartbeat says `serving` with the URL to benchmark (the
//! instance's public IPv4 address from IMDSv2, or the stand-in's URL); it
//! waits until the harness writes the release object, then goes to step 6
//! with no experiment of its own.
//!
//! A heartbeat object is rewritten every `heartbeat_ms` throughout, so the
//! harness can tell a slow start from a dead agent. Its exit status: 0 when
//! every experiment completed, 3 otherwise, 2 on a bad job.

use crate::cli::AgentArgs;
use crate::deploy::job::{Heartbeat, Job, Manifest, Phase};
use anyhow::{Context, Result};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the heartbeat says now.
struct Beat {
    phase: Phase,
    done: u32,
    message: Option<String>,
    url: Option<String>,
}

pub async fn run(mut a: AgentArgs) -> Result<ExitCode> {
    crate::redact::register_url(&a.job);
    // The log is named from where the agent started; it works elsewhere.
    if let Some(l) = &a.log {
        a.log = Some(std::path::absolute(l)?);
    }
    crate::tls::install_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let job: Job = serde_json::from_slice(&get(&http, &a.job).await.context("fetching the job")?)
        .context("reading the job")?;
    for u in [
        &job.put.heartbeat,
        &job.put.bundle,
        &job.put.manifest,
        &job.put.agent_log,
        &job.put.serving_log,
    ] {
        crate::redact::register_url(u);
    }
    for u in [&job.secret_url, &job.api_key_url, &job.release_url]
        .into_iter()
        .flatten()
    {
        crate::redact::register_url(u);
    }
    if !job.region.is_empty() {
        let _ = REGION.set(job.region.clone());
    }
    eprintln!("agent: run {}, endpoint {}", job.run_id, job.endpoint);
    let beat = Arc::new(Mutex::new(Beat {
        phase: Phase::Starting,
        done: 0,
        message: None,
        url: None,
    }));
    let beats = tokio::spawn(heartbeats(
        http.clone(),
        job.put.heartbeat.clone(),
        Duration::from_millis(job.heartbeat_ms.max(100)),
        beat.clone(),
    ));
    let outcome = serve_and_benchmark(&a, &job, &http, &beat).await;
    let (manifest, code) = match outcome {
        Ok((m, code)) => (m, code),
        Err(e) => (
            Manifest {
                status: "failed".into(),
                exit_code: crate::exit::code_for(&e) as i32,
                agent_run_id: None,
                completed: vec![],
                not_completed: BTreeMap::new(),
                image_digest: None,
                ready_at: None,
                ended_at: Utc::now(),
                reason: Some(crate::redact::text(&format!("{e:#}"))),
            },
            crate::exit::code_for(&e),
        ),
    };
    set(&beat, Phase::Done, None);
    eprintln!(
        "agent: {} ({} experiment(s) complete){}",
        manifest.status,
        manifest.completed.len(),
        manifest
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    // Logs first, then the manifest: the harness takes the manifest as the
    // end and collects right after.
    if a.stand_in.is_none() {
        if let Ok(o) = std::process::Command::new("docker")
            .args(["logs", "--tail", "5000", crate::deploy::ec2::CONTAINER])
            .output()
        {
            let mut log = o.stdout;
            log.extend(o.stderr);
            let _ = put(&http, &job.put.serving_log, log).await;
        }
    }
    if let Some(log) = &a.log {
        if let Ok(b) = std::fs::read(log) {
            let _ = put(
                &http,
                &job.put.agent_log,
                crate::redact::text(&String::from_utf8_lossy(&b)).into_bytes(),
            )
            .await;
        }
    }
    put(
        &http,
        &job.put.manifest,
        serde_json::to_vec_pretty(&manifest)?,
    )
    .await
    .context("uploading the manifest")?;
    beats.abort();
    Ok(ExitCode::from(code))
}

fn set(beat: &Mutex<Beat>, phase: Phase, message: Option<String>) {
    let mut b = beat.lock().expect("beat");
    b.phase = phase;
    if message.is_some() {
        b.message = message;
    }
}

async fn heartbeats(http: reqwest::Client, url: String, every: Duration, beat: Arc<Mutex<Beat>>) {
    loop {
        let hb = {
            let b = beat.lock().expect("beat");
            Heartbeat {
                phase: b.phase,
                at: Utc::now(),
                experiments_done: b.done,
                message: b.message.clone(),
                url: b.url.clone(),
            }
        };
        if let Err(e) = put(&http, &url, serde_json::to_vec(&hb).expect("json")).await {
            eprintln!("agent: heartbeat not written: {e:#}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The run's region, for `s3://` addresses (set from the job).
static REGION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The S3 client for `s3://` addresses: the instance profile's role, found
/// by the SDK's standard chain (IMDSv2 on an instance).
static S3: tokio::sync::OnceCell<aws_sdk_s3::Client> = tokio::sync::OnceCell::const_new();

async fn s3() -> Result<&'static aws_sdk_s3::Client> {
    S3.get_or_try_init(|| async {
        let aws = crate::aws::load(
            REGION.get().map(String::as_str),
            "the instance's own role (deploy.instance_profile)",
        )
        .await?;
        Ok::<_, anyhow::Error>(aws.s3())
    })
    .await
}

/// Reads `url`: a presigned URL, or `s3://bucket/key` with the instance's
/// role.
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    if url.starts_with("s3://") {
        let (bucket, key) = crate::s3::parse_url(url).map_err(anyhow::Error::msg)?;
        let o = s3()
            .await?
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {url}: {}", crate::aws::why(&e)))?;
        return Ok(o.body.collect().await?.to_vec());
    }
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::redact::text(&e.to_string())))?;
    let status = r.status();
    if !status.is_success() {
        anyhow::bail!("GET {} answered {status}", crate::redact::url(url));
    }
    Ok(r.bytes().await?.to_vec())
}

/// PUTs `body` (to a presigned URL, or `s3://bucket/key` with the
/// instance's role), retrying three times over 7 s.
async fn put(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<()> {
    let mut last = String::new();
    for wait in [0u64, 1, 2, 4] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        if url.starts_with("s3://") {
            let (bucket, key) = crate::s3::parse_url(url).map_err(anyhow::Error::msg)?;
            match s3()
                .await?
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body.clone().into())
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = crate::aws::why(&e),
            }
            continue;
        }
        match http.put(url).body(body.clone()).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = crate::redact::text(&e.to_string()),
        }
    }
    anyhow::bail!("PUT {}: {last}", crate::redact::url(url))
}

/// Steps 1 to 5; returns the manifest and the exit status.
async fn serve_and_benchmark(
    a: &AgentArgs,
    job: &Job,
    http: &reqwest::Client,
    beat: &Arc<Mutex<Beat>>,
) -> Result<(Manifest, u8)> {
    // The working folder: the config and the files it names, at their paths.
    let work = match &a.workdir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("llm-harness-agent-{}", job.run_id)),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let config_name = Path::new(&job.config_file)
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "config.yml".into());
    std::fs::write(work.join(&config_name), &job.config_yaml)?;
    for (rel, text) in &job.files {
        let p = work.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, text)?;
    }
    std::env::set_current_dir(&work).with_context(|| format!("cannot enter {}", work.display()))?;

    // The token, into this process's environment for `docker run -e`.
    if let Some(u) = &job.secret_url {
        let token = String::from_utf8(
            get(http, u)
                .await
                .context("fetching the Hugging Face token")?,
        )
        .context("the token object is not text")?;
        crate::redact::register(token.trim());
        std::env::set_var("HF_TOKEN", token.trim());
        std::env::set_var("HUGGING_FACE_HUB_TOKEN", token.trim());
    }
    // The per-run API key (`serve_only`), into the variables the serving
    // stack reads it from, or onto its arguments.
    let mut serve = job.serve.clone();
    let api_key = match &job.api_key_url {
        Some(u) => {
            let key = String::from_utf8(get(http, u).await.context("fetching the API key")?)
                .context("the API key object is not text")?
                .trim()
                .to_string();
            crate::redact::register(&key);
            for var in &serve.api_key_env {
                std::env::set_var(var, &key);
            }
            if let Some(flag) = &serve.api_key_flag {
                serve.args.extend([flag.clone(), key.clone()]);
            }
            Some(key)
        }
        None => None,
    };

    // The serving stack.
    let mut _sim = None;
    let mut image_digest = None;
    let base_url = match a.stand_in.as_deref() {
        Some("sim") => {
            let profile = crate::cmd::sim::profile_for("g5.xlarge:8b", Some(5.0), Some(1.0))
                .map_err(anyhow::Error::msg)?;
            let engine = crate::sim::Engine::new(profile, Default::default());
            let s = crate::sim::SimServer::start_with_key(
                "127.0.0.1:0".parse().expect("addr"),
                engine,
                api_key.clone(),
            )
            .await?;
            let url = s.base_url();
            _sim = Some(s);
            url
        }
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let cmd = job.serve.command_line();
            eprintln!("agent: {cmd}");
            let st = std::process::Command::new("docker")
                .arg("run")
                .args(&serve.docker_flags)
                .arg(&serve.image)
                .args(&serve.args)
                .status()
                .context("running docker")?;
            if !st.success() {
                anyhow::bail!("`{cmd}` failed ({st})");
            }
            image_digest = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "--format",
                    "{{index .RepoDigests 0}}",
                    &job.serve.image,
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|s| !s.is_empty());
            format!("http://127.0.0.1:{}/v1", job.serve.port)
        }
    };

    // The health check.
    set(beat, Phase::WaitingForServer, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(job.startup_timeout_s);
    let health = format!("{base_url}/models");
    loop {
        let mut req = http.get(&health).timeout(Duration::from_secs(5));
        if let Some(k) = &api_key {
            req = req.bearer_auth(k);
        }
        if let Ok(r) = req.send().await {
            if r.status().is_success() {
                break;
            }
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the serving stack did not answer GET {} within {}",
                crate::redact::url(&health),
                humantime::format_duration(Duration::from_secs(job.startup_timeout_s))
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready_at = Utc::now();
    eprintln!("agent: the serving stack answers at {base_url}");
    if job.serve_only {
        return serve_until_released(a, job, http, beat, &base_url, ready_at, image_digest).await;
    }

    // The experiments, through the run's own code.
    let bundle_path = work.join("bundle.duckdb");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let uploader = {
        let (http, url) = (http.clone(), job.put.bundle.clone());
        tokio::spawn(async move {
            let mut ok = true;
            while let Some(mut snap) = rx.recv().await {
                // Only the newest snapshot matters.
                while let Ok(newer) = rx.try_recv() {
                    let _ = std::fs::remove_file(&snap);
                    snap = newer;
                }
                let body = std::fs::read(&snap).unwrap_or_default();
                let _ = std::fs::remove_file(&snap);
                if let Err(e) = put(&http, &url, body).await {
                    eprintln!("agent: uploading the bundle: {e:#}");
                    ok = false;
                } else {
                    ok = true;
                }
            }
            ok
        })
    };
    let mut n = 0u32;
    let beat2 = beat.clone();
    let after_each = Box::new(move |p: &Path| {
        n += 1;
        // A copy taken right after the experiment's CHECKPOINT: complete.
        let snap = p.with_extension(format!("snap{n}"));
        if std::fs::copy(p, &snap).is_ok() {
            let _ = tx.send(snap);
        }
        beat2.lock().expect("beat").done = n;
    });
    set(beat, Phase::Benchmarking, None);
    let args = crate::cli::RunArgs {
        config: crate::cli::ConfigArgs {
            config: config_name,
            set: job.overrides.clone(),
        },
        out: Some(bundle_path.clone()),
        force: false,
        quiet: true,
        no_preflight: false,
        dry_run: false,
        profile: None,
        region: None,
        shard: Default::default(),
    };
    let finished = super::run::agent_run(&args, &job.endpoint, &base_url, after_each, |run_id| {
        set(beat, Phase::Benchmarking, Some(format!("run {run_id}")))
    })
    .await?;
    let upload_ok = uploader.await.unwrap_or(false);
    // The final bundle (the run's end row) once more.
    let final_upload = put(http, &job.put.bundle, std::fs::read(&bundle_path)?).await;
    let mut m = Manifest {
        status: finished.status.clone(),
        exit_code: finished.code as i32,
        agent_run_id: Some(finished.run_id.clone()),
        completed: finished.completed.clone(),
        not_completed: finished.not_completed.clone(),
        image_digest,
        ready_at: Some(ready_at),
        ended_at: Utc::now(),
        reason: finished.reason.clone(),
    };
    // The last upload holds everything; earlier ones only guard against a
    // crash in between.
    if let Err(e) = final_upload {
        m.status = "failed".into();
        m.reason = Some(format!(
            "uploading the bundle failed{}: {e:#}",
            if upload_ok {
                ""
            } else {
                " (after experiments, too)"
            }
        ));
        m.exit_code = crate::exit::RUNTIME_FAILURE as i32;
    }
    let code = m.exit_code as u8;
    Ok((m, code))
}

/// `serve_only`: reports the URL the harness benchmarks (the stand-in's, or
/// `http://<public IPv4>:<port>/v1` from IMDSv2), then waits for the release
/// object (the instance's own shutdown timer ends a wait the harness never
/// ends). The manifest lists no experiment: the harness ran them.
async fn serve_until_released(
    a: &AgentArgs,
    job: &Job,
    http: &reqwest::Client,
    beat: &Arc<Mutex<Beat>>,
    base_url: &str,
    ready_at: chrono::DateTime<Utc>,
    image_digest: Option<String>,
) -> Result<(Manifest, u8)> {
    let url = match a.stand_in {
        Some(_) => base_url.to_string(),
        None => format!("http://{}:{}/v1", public_ipv4(None).await?, job.serve.port),
    };
    eprintln!("agent: serving at {url}; the harness benchmarks from its own machine");
    {
        let mut b = beat.lock().expect("beat");
        b.url = Some(url);
        b.phase = Phase::Serving;
    }
    let release = job
        .release_url
        .as_deref()
        .ok_or_else(|| crate::exit::bad_input("a serve_only job without a release URL"))?;
    // The serving host, sampled while the harness benchmarks it.
    let sampler = crate::host::Sampler::new(crate::host::Sampler::INTERVAL);
    eprintln!("agent: host metrics every second; {}", sampler.gpus());
    let sampled_from = Utc::now();
    let sampling = sampler.start(crate::clock::Clock::new());
    let every = Duration::from_millis(job.heartbeat_ms.max(100));
    // Not there yet: 404 (presigned) or NoSuchKey (the role).
    while get(http, release).await.is_err() {
        tokio::time::sleep(every).await;
    }
    eprintln!("agent: released by the harness");
    let report = crate::deploy::job::HostReport {
        started_at: sampled_from,
        gpus: sampler.gpus().to_string(),
        samples: sampling.finish().await,
    };
    if let Some(u) = &job.put.host {
        if let Err(e) = put(http, u, serde_json::to_vec(&report)?).await {
            eprintln!("agent: uploading the host samples: {e:#}");
        }
    }
    Ok((
        Manifest {
            status: "complete".into(),
            exit_code: 0,
            agent_run_id: None,
            completed: vec![],
            not_completed: BTreeMap::new(),
            image_digest,
            ready_at: Some(ready_at),
            ended_at: Utc::now(),
            reason: None,
        },
        crate::exit::SUCCESS,
    ))
}

/// The instance's public IPv4 address, from the instance metadata service
/// (IMDSv2, through the AWS SDK's client) at its usual address, or at
/// `endpoint`.
///
/// Errors: no metadata service, or an instance without a public address
/// (`client: local` needs one: launch in a subnet that assigns them).
async fn public_ipv4(endpoint: Option<&str>) -> Result<String> {
    let conf = aws_config::provider_config::ProviderConfig::without_region()
        .with_http_client(crate::aws::http_client());
    let mut b = aws_config::imds::Client::builder().configure(&conf);
    if let Some(e) = endpoint {
        b = b.endpoint(e).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let imds = b.build();
    let ip = imds
        .get("/latest/meta-data/public-ipv4")
        .await
        .map_err(|e| anyhow::anyhow!("reading the instance's public IPv4 address from IMDSv2: {e} (deploy.client: local needs an instance with a public address: launch in a subnet that assigns one)"))?;
    Ok(ip.as_ref().trim().to_string())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A metadata service that hands out a session token on
    /// `PUT /latest/api/token` and answers the address only to a request
    /// that carries it (IMDSv2).
    async fn fake_imds() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut have = 0;
                    loop {
                        let Ok(n) = s.read(&mut buf[have..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        have += n;
                        let text = String::from_utf8_lossy(&buf[..have]).to_string();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let head = text[..end].to_ascii_lowercase();
                        have = 0;
                        let body = if head.starts_with("put /latest/api/token") {
                            ("200 OK", "t0ken")
                        } else if head.starts_with("get /latest/meta-data/public-ipv4")
                            && head.contains("x-aws-ec2-metadata-token: t0ken")
                        {
                            ("200 OK", "198.51.100.23")
                        } else {
                            ("401 Unauthorized", "")
                        };
                        let r = format!(
                            "HTTP/1.1 {}\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\ncontent-length: {}\r\n\r\n{}",
                            body.0,
                            body.1.len(),
                            body.1
                        );
                        if s.write_all(r.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn the_public_address_comes_from_imdsv2() {
        crate::tls::install_provider();
        let url = fake_imds().await;
        assert_eq!(
            super::public_ipv4(Some(&url)).await.unwrap(),
            "198.51.100.23"
        );
    }
}
