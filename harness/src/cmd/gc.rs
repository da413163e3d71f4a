//! `harness gc` and `harness status`.
//!
//! `gc` finds, by their `llm-harness:run-id` tag, the instances and security
//! groups that runs left behind in a region (a `kill -9`, a machine that
//! died, a teardown that could not finish), terminates and deletes them, and
//! deletes the token objects, agent bundles and jobs this machine's run-state
//! files still list, and ends the agent commands they list on bring-your-own
//! instances (cancelled, serving container removed; the instance stays). It leaves alone a run whose harness is still running on
//! this machine (its own teardown owns it), and, unless `--force`, a run this
//! machine has no state file for that has not reached its expiry tag (it may
//! be in flight on another machine). It brings the state files up to date.
//! `status` reads this machine's run-state files.

use crate::aws::why;
use crate::cli::{GcArgs, StatusArgs};
use crate::deploy::fleet::{
    agent_objects, alive_filter, delete_agent_objects, delete_security_group, end_command,
    TAG_ENDPOINT, TAG_EXPIRES, TAG_RUN,
};
use crate::deploy::state::{self, Kind, RunState};
use anyhow::Result;
use aws_sdk_ec2::types as ec2t;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

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
    let s3 = aws.s3();
    let region = aws.region();
    let states: Vec<RunState> = RunState::all()
        .into_iter()
        .filter(|s| s.region == region)
        .collect();
    // Runs whose harness is still running here: their own teardown owns
    // their resources; gc leaves them alone.
    let in_flight: BTreeMap<String, Option<u32>> = states
        .iter()
        .filter(|s| s.in_flight())
        .map(|s| (s.run_id.clone(), s.pid))
        .collect();
    let known: BTreeSet<&str> = states.iter().map(|s| s.run_id.as_str()).collect();
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
    let mut alive_ids = BTreeSet::new();
    // Run id → why gc leaves it alone.
    let mut spared: BTreeMap<String, String> = BTreeMap::new();
    for i in r.reservations().iter().flat_map(|r| r.instances()) {
        let id = i.instance_id().unwrap_or_default().to_string();
        alive_ids.insert(id.clone());
        let run = tag(i.tags(), TAG_RUN);
        if let Some(pid) = in_flight.get(&run) {
            spared.insert(
                run.clone(),
                format!(
                    "in flight on this machine (harness pid {}); its own teardown removes it, or Ctrl-C stops it",
                    pid.map(|p| p.to_string()).unwrap_or_default()
                ),
            );
            continue;
        }
        let expires = chrono::DateTime::parse_from_rfc3339(&tag(i.tags(), TAG_EXPIRES)).ok();
        if !a.force && !known.contains(run.as_str()) && expires.is_some_and(|e| e > now) {
            spared.insert(
                run.clone(),
                format!(
                    "not known on this machine and not expired (until {}): it may be in flight elsewhere; --force sweeps it",
                    expires.map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
                ),
            );
            continue;
        }
        let launched = i
            .launch_time()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0));
        if let (Some(min), Some(l)) = (older_than, launched) {
            if (now - l).to_std().unwrap_or_default() < min {
                continue;
            }
        }
        found.push(Found {
            id,
            run,
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
    let all_groups: Vec<(String, String)> = groups
        .security_groups()
        .iter()
        .map(|g| {
            (
                g.group_id().unwrap_or_default().to_string(),
                tag(g.tags(), TAG_RUN),
            )
        })
        .collect();
    let group_ids: BTreeSet<String> = all_groups.iter().map(|g| g.0.clone()).collect();
    let groups: Vec<(String, String)> = all_groups
        .into_iter()
        .filter(|(_, run)| !spared.contains_key(run) && !in_flight.contains_key(run))
        .collect();
    let swept_states: Vec<&RunState> = states
        .iter()
        .filter(|s| !in_flight.contains_key(&s.run_id))
        .collect();
    let secrets: Vec<(String, String)> = swept_states
        .iter()
        .flat_map(|s| s.live().filter(|r| r.kind == Kind::SecretObject))
        .filter_map(|r| r.id.as_deref().and_then(|u| crate::s3::parse_url(u).ok()))
        .collect();
    // Agent commands on bring-your-own instances: (run, command, instance).
    let commands: Vec<(String, String, String)> = swept_states
        .iter()
        .flat_map(|s| {
            s.live()
                .filter(|r| r.kind == Kind::Command)
                .filter_map(|r| Some((s.run_id.clone(), r.id.clone()?, r.target.clone()?)))
        })
        .collect();
    // The agent bundle and jobs that runs which did not finish left.
    let mut leftovers: Vec<(&RunState, String, String, usize)> = vec![];
    for st in swept_states.iter().filter(|s| s.status != "done") {
        let Some((b, prefix)) = st
            .objects
            .as_deref()
            .and_then(|u| crate::s3::parse_url(u).ok())
        else {
            continue;
        };
        let n = agent_objects(&s3, &b, &prefix).await.len();
        leftovers.push((st, b, prefix, n));
    }

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
    for (run, c, i) in &commands {
        println!("  agent command {c} on your instance {i} (not terminated)  run {run}");
    }
    for (st, b, prefix, n) in leftovers.iter().filter(|l| l.3 > 0) {
        println!(
            "  {n} agent and job object(s) of unfinished run {} under s3://{b}/{prefix}/",
            st.run_id
        );
    }
    for (run, why) in &spared {
        println!("  left alone: run {run}: {why}");
    }
    let nothing = found.is_empty()
        && groups.is_empty()
        && secrets.is_empty()
        && commands.is_empty()
        && leftovers.iter().all(|l| l.3 == 0);
    if a.dry_run || nothing {
        if !a.dry_run {
            mark_states(&swept_states, &alive_ids, &group_ids, &[]);
        }
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
            Ok(_) => {
                println!("terminated {} instance(s)", ids.len());
                for i in &ids {
                    alive_ids.remove(i);
                }
            }
            Err(e) => {
                failed += ids.len();
                eprintln!("error: terminating {}: {}", ids.join(", "), why(&e));
            }
        }
    }
    // A group goes once no instance uses it (delete_security_group waits
    // for the terminations).
    let mut group_ids = group_ids;
    let no_hurry = std::sync::atomic::AtomicBool::new(false);
    let mut deleted_groups = 0;
    for (g, run) in &groups {
        match delete_security_group(&ec2, g, &no_hurry).await {
            Ok(()) => {
                group_ids.remove(g);
                deleted_groups += 1;
            }
            Err(e) => {
                failed += 1;
                eprintln!("  security group {g} (run {run}) kept: {e}");
            }
        }
    }
    if deleted_groups > 0 {
        println!("deleted {deleted_groups} security group(s)");
    }
    let mut deleted_secrets = vec![];
    for (b, k) in &secrets {
        match s3.delete_object().bucket(b).key(k).send().await {
            Ok(_) => deleted_secrets.push(format!("s3://{b}/{k}")),
            Err(e) => {
                failed += 1;
                eprintln!("error: deleting s3://{b}/{k}: {}", why(&e));
            }
        }
    }
    if !deleted_secrets.is_empty() {
        println!("deleted {} token object(s)", deleted_secrets.len());
    }
    if !commands.is_empty() {
        let ssm = aws.ssm();
        let mut ended = 0;
        for (_, c, i) in &commands {
            match end_command(&ssm, c, i).await {
                Ok(()) => {
                    deleted_secrets.push(c.clone());
                    ended += 1;
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: ending agent command {c} on {i}: {e}");
                }
            }
        }
        println!("ended {ended} agent command(s) on bring-your-own instances");
    }
    let mut swept = 0;
    for (_, b, prefix, n) in &leftovers {
        if *n > 0 {
            swept += delete_agent_objects(&s3, b, prefix).await;
        }
    }
    if swept > 0 {
        println!("deleted {swept} agent and job object(s) of unfinished runs");
    }
    mark_states(&swept_states, &alive_ids, &group_ids, &deleted_secrets);
    Ok(ExitCode::from(if failed == 0 {
        crate::exit::SUCCESS
    } else {
        crate::exit::RUNTIME_FAILURE
    }))
}

/// Brings the state files of runs that are not in flight up to date: an
/// instance no longer alive (`alive`: the run-tagged instances still alive),
/// a security group no longer found (`groups`), and a token object deleted
/// or an agent command ended (`secrets`: object URLs and command ids) are
/// marked deleted; a run with nothing left becomes `done`.
fn mark_states(
    states: &[&RunState],
    alive: &BTreeSet<String>,
    groups: &BTreeSet<String>,
    secrets: &[String],
) {
    for s in states {
        let mut s = (*s).clone();
        let gone: Vec<String> = s
            .live()
            .filter(|r| match (r.kind, r.id.as_ref()) {
                (Kind::Instance, Some(i)) => !alive.contains(i),
                (Kind::SecurityGroup, Some(g)) => !groups.contains(g),
                (Kind::SecretObject | Kind::Command, Some(u)) => secrets.contains(u),
                // Never answered: only the tag search could find it.
                (_, None) => false,
            })
            .map(|r| r.client_token.clone())
            .collect();
        let mut changed = !gone.is_empty();
        for t in gone {
            let _ = s.deleted(&t);
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
