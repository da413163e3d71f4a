//! `harness gc` and `harness status`.
//!
//! `gc` finds, by their `llm-harness:run-id` tag, the instances and security
//! groups that runs left behind in a region (a `kill -9`, a machine that
//! died, a teardown that could not finish), terminates and deletes them, and
//! deletes the token objects this machine's run-state files still list.
//! `status` reads this machine's run-state files.

use crate::aws::why;
use crate::cli::{GcArgs, StatusArgs};
use crate::deploy::fleet::{alive_filter, delete_agent_objects, tick, TAG_ENDPOINT, TAG_RUN};
use crate::deploy::state::{self, Kind, RunState};
use anyhow::Result;
use aws_sdk_ec2::types as ec2t;
use chrono::Utc;
use std::process::ExitCode;
use std::time::Duration;

struct Found {
    id: String,
    run: String,
    endpoint: String,
    instance_type: String,
    state: String,
    launched: Option<chrono::DateTime<Utc>>,
}

pub async fn run(a: GcArgs) -> Result<ExitCode> {
    let older_than = match &a.older_than {
        Some(s) => Some(humantime::parse_duration(s).map_err(|e| {
            crate::exit::bad_input(format!(
                "--older-than `{s}`: {e}; write a duration such as `2h` or `30m`"
            ))
        })?),
        None => None,
    };
    let aws = crate::aws::load(a.region.as_deref(), "harness gc (or pass --region)").await?;
    let ec2 = aws.ec2();
    let region = aws.region();
    let tagged = ec2t::Filter::builder()
        .name("tag-key")
        .values(TAG_RUN)
        .build();
    let r = ec2
        .describe_instances()
        .filters(tagged.clone())
        .filters(alive_filter())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("listing instances in {region}: {}", why(&e)))?;
    let now = Utc::now();
    let tag = |tags: &[ec2t::Tag], k: &str| {
        tags.iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .unwrap_or("")
            .to_string()
    };
    let mut found = vec![];
    for i in r.reservations().iter().flat_map(|r| r.instances()) {
        let launched = i
            .launch_time()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0));
        if let (Some(min), Some(l)) = (older_than, launched) {
            if (now - l).to_std().unwrap_or_default() < min {
                continue;
            }
        }
        found.push(Found {
            id: i.instance_id().unwrap_or_default().to_string(),
            run: tag(i.tags(), TAG_RUN),
            endpoint: tag(i.tags(), TAG_ENDPOINT),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            launched,
        });
    }
    let groups = ec2
        .describe_security_groups()
        .filters(tagged)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("listing security groups in {region}: {}", why(&e)))?;
    let groups: Vec<(String, String)> = groups
        .security_groups()
        .iter()
        .map(|g| {
            (
                g.group_id().unwrap_or_default().to_string(),
                tag(g.tags(), TAG_RUN),
            )
        })
        .collect();
    let states: Vec<RunState> = RunState::all()
        .into_iter()
        .filter(|s| s.region == region)
        .collect();
    let secrets: Vec<(String, String)> = states
        .iter()
        .flat_map(|s| s.live().filter(|r| r.kind == Kind::SecretObject))
        .filter_map(|r| r.id.as_deref().and_then(|u| crate::s3::parse_url(u).ok()))
        .collect();

    println!(
        "{region}: {} instance(s), {} security group(s) and {} token object(s) left by llm-harness runs{}",
        found.len(),
        groups.len(),
        secrets.len(),
        older_than
            .map(|d| format!(" (instances launched over {} ago)", humantime::format_duration(d)))
            .unwrap_or_default()
    );
    for f in &found {
        println!(
            "  instance {}  {}  {}  run {}  endpoint {}  launched {}",
            f.id,
            f.instance_type,
            f.state,
            f.run,
            f.endpoint,
            f.launched
                .map(|l| l.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        );
    }
    for (g, run) in &groups {
        println!("  security group {g}  run {run}");
    }
    for (b, k) in &secrets {
        println!("  token object s3://{b}/{k}");
    }
    let unfinished: Vec<&RunState> = states
        .iter()
        .filter(|s| s.status != "done" && s.objects.is_some())
        .collect();
    for st in &unfinished {
        println!(
            "  agent binary and jobs of unfinished run {} under {}/",
            st.run_id,
            st.objects.as_deref().unwrap_or_default()
        );
    }
    if a.dry_run
        || (found.is_empty() && groups.is_empty() && secrets.is_empty() && unfinished.is_empty())
    {
        mark_states(&states, &[], &[], &[]);
        return Ok(ExitCode::SUCCESS);
    }

    let ids: Vec<String> = found.iter().map(|f| f.id.clone()).collect();
    let mut failed = 0;
    if !ids.is_empty() {
        match ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
        {
            Ok(_) => println!("terminated {} instance(s)", ids.len()),
            Err(e) => {
                failed += ids.len();
                eprintln!("error: terminating {}: {}", ids.join(", "), why(&e));
            }
        }
    }
    // A group goes once no instance uses it: wait for the terminations.
    let mut deleted_groups = vec![];
    for (g, run) in &groups {
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            match ec2.delete_security_group().group_id(g).send().await {
                Ok(_) => {
                    deleted_groups.push(g.clone());
                    break;
                }
                Err(e) => {
                    let code = why(&e);
                    if code.starts_with("DependencyViolation")
                        && std::time::Instant::now() < deadline
                        && found.iter().any(|f| &f.run == run)
                    {
                        tokio::time::sleep(tick()).await;
                        continue;
                    }
                    eprintln!("  security group {g} (run {run}) kept: {code}");
                    break;
                }
            }
        }
    }
    if !deleted_groups.is_empty() {
        println!("deleted {} security group(s)", deleted_groups.len());
    }
    let mut deleted_secrets = vec![];
    if !secrets.is_empty() {
        let s3 = aws.s3();
        for (b, k) in &secrets {
            match s3.delete_object().bucket(b).key(k).send().await {
                Ok(_) => deleted_secrets.push(format!("s3://{b}/{k}")),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: deleting s3://{b}/{k}: {}", why(&e));
                }
            }
        }
        println!("deleted {} token object(s)", deleted_secrets.len());
    }
    // The agent binary and jobs a killed run left under its prefix.
    let s3 = aws.s3();
    let mut swept = 0;
    for st in states.iter().filter(|s| s.status != "done") {
        let Some((b, prefix)) = st
            .objects
            .as_deref()
            .and_then(|u| crate::s3::parse_url(u).ok())
        else {
            continue;
        };
        swept += delete_agent_objects(&s3, &b, &prefix).await;
    }
    if swept > 0 {
        println!("deleted {swept} agent and job object(s) of killed runs");
    }
    mark_states(&states, &ids, &deleted_groups, &deleted_secrets);
    Ok(ExitCode::from(if failed == 0 {
        crate::exit::SUCCESS
    } else {
        crate::exit::RUNTIME_FAILURE
    }))
}

/// Marks what gc removed (and instances no longer found alive) in the local
/// state files; a run with nothing left becomes `done`.
fn mark_states(states: &[RunState], instances: &[String], groups: &[String], secrets: &[String]) {
    for s in states {
        let mut s = s.clone();
        let mut changed = false;
        let gone: Vec<String> = s
            .live()
            .filter(|r| match r.kind {
                Kind::Instance => r.id.as_ref().is_some_and(|i| instances.contains(i)),
                Kind::SecurityGroup => r.id.as_ref().is_some_and(|g| groups.contains(g)),
                Kind::SecretObject => r.id.as_ref().is_some_and(|u| secrets.contains(u)),
            })
            .map(|r| r.client_token.clone())
            .collect();
        for t in gone {
            let _ = s.deleted(&t);
            changed = true;
        }
        if s.live().count() == 0 && s.status != "done" {
            s.status = "done".into();
            changed = true;
        }
        if changed {
            let _ = s.save();
        }
    }
}

pub fn status(a: StatusArgs) -> Result<ExitCode> {
    let now = Utc::now();
    let runs: Vec<RunState> = RunState::all()
        .into_iter()
        .filter(|s| a.all || s.status != "done")
        .collect();
    if runs.is_empty() {
        println!(
            "no EC2 run in flight (state files in {}{})",
            state::dir().display(),
            if a.all {
                ""
            } else {
                "; --all lists finished ones"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in &runs {
        let cost = s
            .cost_so_far(now)
            .map(|c| format!("${c:.2}"))
            .unwrap_or_else(|| "unknown".into());
        println!(
            "run {}  {}  {}  started {}  instances stop themselves by {}  cost so far {cost}",
            s.run_id,
            s.status,
            s.region,
            s.started_at.format("%Y-%m-%d %H:%M UTC"),
            s.expires_at.format("%H:%M UTC"),
        );
        println!("  config {}", s.config_file);
        for r in &s.resources {
            println!(
                "  {:<15} {:<22} {:<10} {}{}",
                r.kind.as_str(),
                r.id.as_deref().unwrap_or("(no answer yet)"),
                r.phase.as_str(),
                r.endpoint,
                r.instance_type
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            );
        }
        if s.live().count() > 0 && s.expires_at < now {
            println!(
                "  past its expiry with resources not known to be gone: `harness gc --region {}`",
                s.region
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
