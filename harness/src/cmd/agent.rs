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
    if let Some(u) = &job.secret_url {
        crate::redact::register_url(u);
    }
    eprintln!("agent: run {}, endpoint {}", job.run_id, job.endpoint);
    let beat = Arc::new(Mutex::new(Beat {
        phase: Phase::Starting,
        done: 0,
        message: None,
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
            .args(["logs", "--tail", "5000", "llm-harness-serving"])
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
            }
        };
        if let Err(e) = put(&http, &url, serde_json::to_vec(&hb).expect("json")).await {
            eprintln!("agent: heartbeat not written: {e:#}");
        }
        tokio::time::sleep(every).await;
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
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

/// PUTs `body`, retrying three times over 7 s.
async fn put(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<()> {
    let mut last = String::new();
    for wait in [0u64, 1, 2, 4] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
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

    // The serving stack.
    let mut _sim = None;
    let mut image_digest = None;
    let base_url = match a.stand_in.as_deref() {
        Some("sim") => {
            let profile = crate::cmd::sim::profile_for("g5.xlarge:8b", Some(5.0), Some(1.0))
                .map_err(anyhow::Error::msg)?;
            let engine = crate::sim::Engine::new(profile, Default::default());
            let s =
                crate::sim::SimServer::start("127.0.0.1:0".parse().expect("addr"), engine).await?;
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
                .args(&job.serve.docker_flags)
                .arg(&job.serve.image)
                .args(&job.serve.args)
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
        if let Ok(r) = http
            .get(&health)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
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
