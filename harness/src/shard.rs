//! One experiment across several load generators: `harness run --shard K/N`
//! runs shard K (0-based) of every experiment's plan, and `harness merge`
//! joins the shards' bundles into one experiment (`docs/sharding.md`).
//!
//! - **Split.** Open loop and replay: every shard walks the same seeded
//!   arrivals and stop rule, and sends the requests whose sequence number
//!   `seq` has `seq mod N = K`, at the instants a single client would. Closed
//!   loop: the concurrency, the measured requests and the warm-up requests are
//!   each split as evenly as they divide ([`Shard::share`]), and the shard's
//!   j-th request is global request `j·N + K`. A shard is not part of the
//!   experiment's id: every shard, and the merge, carry the id of the whole.
//! - **Start.** Every shard of an experiment starts at one instant on a
//!   reference clock ([`Aligned`]): `--start-at` (the agents' system clocks),
//!   or a barrier directory on a volume every agent shares (`--barrier`): each
//!   agent measures its clock's offset to the volume's file times, announces
//!   itself with a file, and all start a fixed margin after the last one
//!   arrived, as the volume's clock reads.
//! - **Time.** A shard's times are nanoseconds since that shared start, so
//!   the shards' rows are on one time axis without rebasing; what is not
//!   exact is how well the agents' clocks agreed, which each shard records
//!   (`shards` table) and the merge judges.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shard `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `K/N`, e.g. `0/3`: shard K (counted from 0, as a Kubernetes Indexed
    /// Job's `JOB_COMPLETION_INDEX`) of N.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!("`{s}` is not K/N: write e.g. 0/3 for the first of 3 shards (K counts from 0 to N-1)")
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(format!(
                "shard `{s}`: K must be 0 to N-1 and N at least 1 (shards count from 0)"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// This shard's part of `total` units split as evenly as they divide:
    /// `⌊total / N⌋`, plus one for the first `total mod N` shards. The parts
    /// of all N shards add up to `total`.
    pub fn share(&self, total: u64) -> u64 {
        let n = self.count as u64;
        total / n + u64::from((self.index as u64) < total % n)
    }

    /// Whether an open-loop or replay request `seq` is this shard's to send.
    pub fn owns(&self, seq: u64) -> bool {
        seq % self.count as u64 == self.index as u64
    }

    /// The global sequence number of this shard's `j`-th closed-loop request.
    pub fn global_seq(&self, j: u64) -> u64 {
        j * self.count as u64 + self.index as u64
    }

    /// This shard's part of `plan`, in words (`shards.split`):
    /// `seq mod N = K` (with its count of a fixed number of arrivals,
    /// `: n of T requests`), or for a closed loop its shares.
    pub fn split(&self, plan: &crate::schedule::LoadPlan) -> String {
        let crate::config::LoadLevel::Closed { concurrency } = plan.level else {
            let rule = format!("seq mod {} = {}", self.count, self.index);
            // A fixed number of arrivals (warm-up first): this shard's count.
            return match plan.requests.filter(|_| plan.duration.is_none()) {
                Some(r) => {
                    let all = plan.warmup_requests + r;
                    format!(
                        "{rule}: {} of {all} requests (warm-up included)",
                        self.share(all)
                    )
                }
                None => rule,
            };
        };
        let requests = plan.requests.map_or("until the duration".to_string(), |r| {
            format!("{} of {r}", self.share(r))
        });
        format!(
            "concurrency {} of {concurrency}, requests {requests}, warm-up {} of {}",
            self.share(concurrency as u64),
            self.share(plan.warmup_requests),
            plan.warmup_requests
        )
    }

    /// The label suffix of a shard's experiment, e.g. ` · shard 1/3`.
    pub fn suffix(&self) -> String {
        format!(" · shard {self}")
    }
}

/// Removes a shard suffix ([`Shard::suffix`]) from a label.
pub fn whole_label(label: &str) -> &str {
    match label.rsplit_once(" · shard ") {
        Some((head, tail)) if tail.parse::<Shard>().is_ok() => head,
        _ => label,
    }
}

/// How the shards of an experiment agree on when it starts.
#[derive(Debug, Clone)]
pub enum StartRule {
    /// At this instant (Unix ns) on each agent's own system clock.
    At(i64),
    /// A barrier directory on a volume every agent shares.
    Barrier { dir: PathBuf, timeout: Duration },
}

/// When a shard starts an experiment, on the reference clock and its own.
#[derive(Debug, Clone)]
pub struct Aligned {
    /// The local instant to start at (it may be past when the shard is late).
    pub start: Instant,
    /// The shared start, Unix ns on the reference clock: identical in every
    /// shard of the experiment.
    pub start_unix_ns: i64,
    /// This agent's clock minus the reference clock (ns), when measured.
    pub clock_offset_ns: Option<i64>,
    /// Half the width of the interval the offset is known to lie in (ns).
    pub clock_offset_error_ns: Option<i64>,
    /// `barrier` (offset to the shared volume's file times) or `start-at`
    /// (the system clock, offset not measured).
    pub clock_source: &'static str,
}

/// Time from the last shard's arrival at a barrier to the start: room for
/// every agent to see that arrival (a shared volume's directory listings can
/// lag) before the start instant.
pub const BARRIER_MARGIN: Duration = Duration::from_secs(2);

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn now_unix_ns() -> i64 {
    unix_ns(SystemTime::now())
}

/// The local instant at which the local clock reads `unix` (ns).
fn local_instant(unix: i64) -> Instant {
    let (now, now_unix) = (Instant::now(), now_unix_ns());
    let ahead = unix - now_unix;
    if ahead >= 0 {
        now + Duration::from_nanos(ahead as u64)
    } else {
        now.checked_sub(Duration::from_nanos((-ahead) as u64))
            .unwrap_or(now)
    }
}

impl StartRule {
    /// Agrees with the other shards on when experiment `id` starts.
    ///
    /// Errors: `--start-at` already past; a barrier that cannot be written,
    /// whose peers do not all arrive within its timeout, or that holds a
    /// file from an earlier job.
    /// Waiting stops with an error when `stop` is set (Ctrl-C). `run_id`
    /// (this run's) goes into the shard's announcement, so that a rerun can
    /// tell its own earlier run's announcement ([`AlreadyStarted::run_id`]).
    pub fn align(
        &self,
        id: &str,
        shard: Shard,
        run_id: &str,
        stop: &AtomicBool,
    ) -> Result<Aligned> {
        match self {
            StartRule::At(unix) => {
                if let Some(why) = start_at_past(*unix) {
                    bail!("{why}");
                }
                Ok(Aligned {
                    start: local_instant(*unix),
                    start_unix_ns: *unix,
                    clock_offset_ns: None,
                    clock_offset_error_ns: None,
                    clock_source: "start-at",
                })
            }
            StartRule::Barrier { dir, timeout } => barrier(dir, id, shard, run_id, *timeout, stop),
        }
    }
}

/// The offset of this agent's clock to the clock that stamps files in a
/// directory (the shared volume's), in ns, with half the width of the
/// interval it is known to lie in.
///
/// Writes the file until its stamp has advanced twice, or `limit` passes,
/// and reads the bounds from those writes ([`offset_from_writes`]).
pub fn clock_offset(path: &Path, limit: Duration) -> Result<(i64, Option<i64>)> {
    let deadline = Instant::now() + limit;
    let mut writes = Vec::new();
    let mut edges = 0;
    for i in 0u64.. {
        let a = now_unix_ns();
        std::fs::write(path, i.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
        let m = unix_ns(std::fs::metadata(path)?.modified()?);
        let b = now_unix_ns();
        if writes.last().is_some_and(|w: &FileWrite| m > w.stamp) {
            edges += 1;
        }
        writes.push(FileWrite {
            began: a,
            stamp: m,
            ended: b,
        });
        if edges >= 2 || Instant::now() >= deadline {
            break;
        }
    }
    Ok(offset_from_writes(&writes))
}

/// One write of the clock file: local Unix ns before and after it, and the
/// modification time the reference clock gave it.
#[derive(Debug, Clone, Copy)]
struct FileWrite {
    began: i64,
    stamp: i64,
    ended: i64,
}

/// The offset (local minus reference, ns) bounded by a series of writes, and
/// half the width of its interval; the error is `None` when the stamp never
/// advanced (only the upper bound is known, and it is returned).
///
/// A file's modification time is the reference clock's reading at some
/// moment within the write, so each write bounds the offset from above:
/// `offset ≤ ended − stamp`. When the stamp advances between two writes, the
/// new stamp was read after the earlier write began: `offset > began_earlier
/// − stamp_new`. The offset is the middle of the two bounds.
///
/// Most file clocks are coarse: the kernel stamps files with the time of its
/// last tick (1 to 10 ms), and that tick can land late. The bounds can then
/// cross (lower > upper) by up to a tick, because no single offset explains
/// every write. The offset is still their middle, and the error is the larger
/// of half the crossing and half the smallest advance of the stamp (the file
/// clock's resolution): the interval is what the file clock can tell, never
/// narrower.
fn offset_from_writes(writes: &[FileWrite]) -> (i64, Option<i64>) {
    let upper = writes.iter().map(|w| w.ended - w.stamp).min().unwrap_or(0);
    let (mut lower, mut step) = (i64::MIN, i64::MAX);
    for pair in writes.windows(2) {
        let (earlier, new) = (pair[0], pair[1]);
        if new.stamp > earlier.stamp {
            lower = lower.max(earlier.began - new.stamp);
            step = step.min(new.stamp - earlier.stamp);
        }
    }
    if lower == i64::MIN {
        return (upper, None);
    }
    let middle = lower / 2 + upper / 2;
    if lower <= upper {
        return (middle, Some((upper - lower) / 2));
    }
    (middle, Some(((lower - upper) / 2).max(step / 2)))
}

/// The barrier of experiment `id` in `dir`: `dir/<id>/K.clock` measures the
/// offset, `dir/<id>/K.ready` (renamed into place, so its time is the one it
/// was written with) announces the shard. The start is [`BARRIER_MARGIN`]
/// after the latest `.ready` time, on the volume's clock.
fn barrier(
    dir: &Path,
    id: &str,
    shard: Shard,
    run_id: &str,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Aligned> {
    let d = dir.join(id);
    std::fs::create_dir_all(&d)
        .with_context(|| format!("--barrier: cannot create {}", d.display()))?;
    // Arriving again (a rerun) takes back an earlier run's notice of
    // leaving, first, so that a peer restarted with it does not read it.
    let _ = std::fs::remove_file(d.join(format!("{}.left", shard.index)));
    let (offset, error) = clock_offset(&d.join(format!("{}.clock", shard.index)), limit())?;
    // Every shard announced already, this one included: it is a rerun (its
    // earlier run died after arriving). Before the start it joins at that
    // start, announcing nothing anew, which would move it; after the start
    // it cannot join an experiment under way.
    let me = Announcer::this_process();
    same_job(&d, shard, None)?;
    let announced = ready_times(&d, shard.count);
    if announced.len() == shard.count as usize {
        let a = barrier_start(&announced, offset, error);
        let late = now_unix_ns() - (a.start_unix_ns + offset);
        if late > 0 {
            let run_id =
                announcement(&d.join(format!("{}.ready", shard.index))).and_then(|a| a.run_id);
            return Err(AlreadyStarted {
                dir: d,
                shard,
                ago_s: late as f64 / 1e9,
                run_id,
            }
            .into());
        }
        return Ok(a);
    }
    let tmp = d.join(format!("{}.tmp", shard.index));
    let ready = d.join(format!("{}.ready", shard.index));
    if let Some(other) = announcement(&ready).filter(|a| a.by.is_alive_elsewhere(&me)) {
        bail!(
            "--barrier {}: shard {shard} is already waiting there ({}): each agent of a job needs its own K. If that process is gone, delete {}",
            d.display(),
            other.by,
            ready.display()
        );
    }
    let body = serde_json::json!({
        "shard": shard.to_string(),
        "host": me.host,
        "pid": me.pid,
        "run_id": run_id,
        "clock_offset_ns": offset,
        "clock_offset_error_ns": error,
    });
    std::fs::write(&tmp, body.to_string())
        .and_then(|()| std::fs::rename(&tmp, &ready))
        .with_context(|| format!("--barrier: cannot write {}", ready.display()))?;
    let mine = unix_ns(std::fs::metadata(&ready)?.modified()?);
    let began = Instant::now();
    let mut polls = 0u64;
    let times = loop {
        // Every second (each check reads every `.ready` file, on what may be
        // a network volume), and before starting.
        polls += 1;
        let times = ready_times(&d, shard.count);
        let all = times.len() == shard.count as usize;
        if polls % 20 == 1 || all {
            if let Err(e) = same_job(&d, shard, Some(&me)) {
                withdraw(&ready, &me);
                return Err(e);
            }
        }
        if all {
            break times;
        }
        let absent: Vec<u32> = (0..shard.count)
            .filter(|k| !times.iter().any(|(j, _)| j == k))
            .collect();
        let missing = shard_list(&absent, shard.count);
        // A shard that gave up waiting here will not start: waiting out the
        // timeout for it would only delay the same error. Its notice counts
        // once this shard has waited LEFT_GRACE, time for a peer restarted
        // with it to take its notice back.
        if polls % 20 == 1 && began.elapsed() >= LEFT_GRACE {
            if let Some(why) = absent
                .iter()
                .find_map(|k| std::fs::read_to_string(d.join(format!("{k}.left"))).ok())
            {
                withdraw(&ready, &me);
                // This shard leaves too: a notice of its own, so that a
                // peer that arrives later stops as well.
                leave_notice(
                    &d,
                    shard,
                    &me,
                    run_id,
                    &format!("stopped because {}", why.trim()),
                );
                bail!(
                    "--barrier {}: {}; so this experiment cannot start: run the shards that stopped again, together, or the job with a fresh barrier directory",
                    d.display(),
                    why.trim()
                );
            }
        }
        // A shard that leaves without starting takes its announcement back,
        // so that no later shard counts it as present and starts short.
        if stop.load(Ordering::Relaxed) {
            withdraw(&ready, &me);
            bail!("interrupted while waiting at the barrier {}", d.display());
        }
        if began.elapsed() >= timeout {
            withdraw(&ready, &me);
            // A notice for a shard that arrives later: it fails at once
            // instead of waiting its own timeout for this one.
            leave_notice(
                &d,
                shard,
                &me,
                run_id,
                &format!(
                    "waited {} for {missing} and left",
                    humantime::format_duration(timeout)
                ),
            );
            bail!(
                "--barrier {}: {missing} did not arrive within {} (each shard runs the same config, with the same experiments to run, and its own K)",
                d.display(),
                humantime::format_duration(timeout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A shard of this host whose process has ended (killed while it waited)
    // still counts as arrived: the experiment starts without its part.
    for k in (0..shard.count).filter(|k| *k != shard.index) {
        if let Some(a) = announcement(&d.join(format!("{k}.ready")))
            .filter(|a| a.by.host == me.host && !a.by.is_alive_elsewhere(&me))
        {
            eprintln!(
                "warning: shard {} announced itself at {} from {}, which has ended: the experiment starts without its part (a rerun of it with the same bundle records that part as not run)",
                a.shard,
                d.display(),
                a.by
            );
        }
    }
    let stale = timeout.as_nanos() as i64 + BARRIER_MARGIN.as_nanos() as i64;
    if let Some((k, t)) = times.iter().find(|(_, t)| mine - t > stale) {
        bail!(
            "--barrier {}: {k}.ready was written {:.0} s before this shard arrived, longer than the barrier waits: it is from an earlier job. Give each job a fresh barrier directory",
            d.display(),
            (mine - t) as f64 / 1e9
        );
    }
    Ok(barrier_start(&times, offset, error))
}

/// Leaves `K.left` notices at the barriers of experiments `ids` (under
/// `dir`), which this shard will not reach: its peers waiting or arriving
/// there stop with `why` instead of waiting out their timeout. The shard
/// run again removes each notice as it arrives.
pub fn leave_notices(dir: &Path, ids: &[&str], shard: Shard, run_id: &str, why: &str) {
    let me = Announcer::this_process();
    for id in ids {
        let d = dir.join(id);
        if std::fs::create_dir_all(&d).is_ok() {
            leave_notice(&d, shard, &me, run_id, why);
        }
    }
}

/// Writes `K.left` in barrier directory `d`: `shard K/N (<who>, run <run>)
/// <why>`, the line a peer quotes when it stops. A notice that cannot be
/// written only leaves the peers waiting their timeout, as before notices.
fn leave_notice(d: &Path, shard: Shard, me: &Announcer, run_id: &str, why: &str) {
    let _ = std::fs::write(
        d.join(format!("{}.left", shard.index)),
        format!("shard {shard} ({me}, run {run_id}) {why}"),
    );
}

/// How long a shard waits at a barrier before another's `K.left` notice
/// stops it: a peer restarted at about the same time removes its own notice
/// first thing, well within this.
const LEFT_GRACE: Duration = Duration::from_secs(5);

/// `shard 1/3`, or `shards 0/3 and 2/3`, or `shards 0/4, 1/4 and 3/4`.
pub fn shard_list(ks: &[u32], n: u32) -> String {
    let names: Vec<String> = ks.iter().map(|k| format!("{k}/{n}")).collect();
    match names.as_slice() {
        [one] => format!("shard {one}"),
        [head @ .., last] => format!("shards {} and {last}", head.join(", ")),
        [] => "no shard".to_string(),
    }
}

/// Who wrote a `.ready` file: a host name and a process id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announcer {
    host: Option<String>,
    pid: u32,
}

impl Announcer {
    fn this_process() -> Announcer {
        Announcer {
            host: crate::host::facts().name,
            pid: std::process::id(),
        }
    }

    /// Whether this announcer is another process than `me` that may still
    /// run: on another host (which cannot be asked), or on this one with its
    /// process id still alive. A process of this host that has ended left
    /// its file behind (SIGKILL at the barrier) and does not count.
    fn is_alive_elsewhere(&self, me: &Announcer) -> bool {
        if self == me {
            return false;
        }
        self.host != me.host || Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on host {}",
            self.pid,
            self.host.as_deref().unwrap_or("(unnamed)")
        )
    }
}

/// A shard's announcement at a barrier: its `K/N`, who wrote it, and in
/// which run.
struct Announcement {
    shard: Shard,
    by: Announcer,
    run_id: Option<String>,
}

/// The announcement in a `.ready` file; `None` when it is missing or cannot
/// be read (being written, or not ours).
fn announcement(path: &Path) -> Option<Announcement> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(Announcement {
        shard: v.get("shard")?.as_str()?.parse().ok()?,
        by: Announcer {
            host: v.get("host").and_then(|h| h.as_str()).map(String::from),
            pid: v.get("pid")?.as_u64()? as u32,
        },
        run_id: v.get("run_id").and_then(|r| r.as_str()).map(String::from),
    })
}

/// Takes this shard's announcement back when it leaves without starting,
/// unless another process has written over it.
fn withdraw(ready: &Path, me: &Announcer) {
    if announcement(ready).is_some_and(|a| a.by == *me) {
        let _ = std::fs::remove_file(ready);
    }
}

/// Checks that every shard announced at barrier directory `d` belongs to the
/// same job as `shard`: the same N. With `me` (this shard announced already),
/// also that its own `K.ready` is still its own, not overwritten by another
/// process given the same K.
///
/// Errors: a shard of another N (`0/2` beside `1/3` would otherwise meet at
/// one start with parts that do not add up); another process holding this K.
fn same_job(d: &Path, shard: Shard, me: Option<&Announcer>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(d) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "ready") {
            continue;
        }
        let Some(a) = announcement(&path) else {
            continue;
        };
        if a.shard.count != shard.count {
            bail!(
                "--barrier {}: shard {} ({}) is there, and this is shard {shard}: every shard of a job is given the same N, and each job its own barrier directory",
                d.display(),
                a.shard,
                a.by
            );
        }
        if let Some(me) = me.filter(|_| a.shard.index == shard.index) {
            if a.by != *me {
                bail!(
                    "--barrier {}: another process ({}) announced shard {shard} too: each agent of a job needs its own K",
                    d.display(),
                    a.by
                );
            }
        }
    }
    Ok(())
}

/// The start every shard computes from the `.ready` times of all N
/// ([`ready_times`]): [`BARRIER_MARGIN`] after the latest, on the volume's
/// clock, and on this agent's clock through its offset (ns) and error.
fn barrier_start(times: &[(u32, i64)], offset: i64, error: Option<i64>) -> Aligned {
    let last = times.iter().map(|(_, t)| *t).max().expect("N ≥ 1");
    let start_unix_ns = last + BARRIER_MARGIN.as_nanos() as i64;
    Aligned {
        start: local_instant(start_unix_ns + offset),
        start_unix_ns,
        clock_offset_ns: Some(offset),
        clock_offset_error_ns: error,
        clock_source: "barrier",
    }
}

/// The shards announced at barrier directory `d`, with their `.ready` file
/// times (Unix ns on the volume's clock).
fn ready_times(d: &Path, count: u32) -> Vec<(u32, i64)> {
    (0..count)
        .filter_map(|k| {
            let t = std::fs::metadata(d.join(format!("{k}.ready")))
                .and_then(|m| m.modified())
                .ok()?;
            Some((k, unix_ns(t)))
        })
        .collect()
}

/// A shard that reached its experiment's barrier after every shard had
/// announced itself there, itself included, and after the start they set:
/// a rerun of a shard that died in the experiment, or a barrier directory
/// left by an earlier job. The run goes on with its next experiment, which
/// the other shards are waiting for; this one's part is missing from it.
#[derive(Debug)]
pub struct AlreadyStarted {
    pub dir: PathBuf,
    pub shard: Shard,
    /// How long ago the experiment started (s).
    pub ago_s: f64,
    /// The run that announced this shard there: a run of this shard's own
    /// bundle when an earlier run of it died at the barrier (SIGKILL), so
    /// that the others started without it.
    pub run_id: Option<String>,
}

impl std::fmt::Display for AlreadyStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--barrier {}: every shard, {} included, had arrived, and the experiment started {:.1} s ago: this shard cannot join it. If an earlier run of this shard died in it, that part is missing (harness merge --allow-missing-shards keeps the rest); if the directory is from an earlier job, give each job a fresh barrier directory",
            self.dir.display(),
            self.shard,
            self.ago_s
        )
    }
}

impl std::error::Error for AlreadyStarted {}

/// How long the clock-offset measurement may write: long enough for a
/// volume whose file times advance in whole seconds.
fn limit() -> Duration {
    Duration::from_millis(2500)
}

/// Why a `--start-at` of `unix` (ns) cannot be used, when it is already
/// past: how long ago, `3.2 s` under a minute, `5m 3s` under a day, else in
/// whole hours (`6years 11months 30days 2h`). Checked before a run
/// ([`check`]) and again at the start ([`StartRule::align`]).
fn start_at_past(unix: i64) -> Option<String> {
    let late = now_unix_ns() - unix;
    if late <= 0 {
        return None;
    }
    let d = Duration::from_nanos(late as u64);
    let s = d.as_secs();
    let ago = match s {
        0..60 => format!("{:.1} s", d.as_secs_f64()),
        60..86_400 => humantime::format_duration(Duration::from_secs(s)).to_string(),
        _ => humantime::format_duration(Duration::from_secs(s / 3600 * 3600)).to_string(),
    };
    Some(format!(
        "--start-at is {ago} in the past: give a time far enough ahead for every shard to be running"
    ))
}

/// What a shard's run checks before anything is written: the rule for its
/// start, experiments that can be split, and no command endpoints
/// (`commands`: the config has command cells, which run whole).
///
/// Errors (bad input): no start rule; `--start-at` with more than one
/// experiment to run; a capacity search (its next probe depends on every
/// shard's results); the embedded simulator (each shard would run its own
/// server); an EC2 endpoint (its instance's agent runs the benchmark); a
/// closed-loop concurrency below N.
pub fn check(
    experiments: &[crate::plan::Experiment],
    commands: bool,
    shard: Shard,
    rule: Option<&StartRule>,
) -> Result<(), String> {
    use crate::config::LoadLevel;
    use crate::deploy::Kind;
    let mut errors = vec![];
    if commands {
        errors.push("--shard splits the load of endpoint experiments; the config's command endpoints run whole (run them without --shard)".to_string());
    }
    match rule {
        None => errors.push(format!(
            "--shard {shard}: the shards need one start: give --barrier DIR (a directory every agent shares) or --start-at TIME"
        )),
        Some(StartRule::At(_)) if experiments.len() > 1 => errors.push(format!(
            "--start-at aligns one experiment, and this config has {}: give --barrier DIR, which aligns each",
            experiments.len()
        )),
        Some(StartRule::At(unix)) => errors.extend(start_at_past(*unix)),
        Some(StartRule::Barrier { timeout, .. }) if timeout.is_zero() => errors.push(
            "--barrier-timeout 0s: the shards could never meet; give the time a shard waits for the others, e.g. 10m".to_string(),
        ),
        Some(_) => {}
    }
    for e in experiments {
        if e.search.is_some() {
            errors.push(format!(
                "`{}`: a capacity search (load.search) cannot be sharded: each probe depends on the whole load's result",
                e.label
            ));
        }
        // An endpoint that cannot be sharded at all is named once; its
        // experiments' splits are moot.
        match Kind::of(&e.endpoint) {
            Kind::Simulator => {
                errors.push(format!(
                    "endpoint `{}` is the embedded simulator, which each shard would run on its own: point every shard at one server (e.g. `harness sim` and an `openai` endpoint)",
                    e.endpoint.name
                ));
                continue;
            }
            Kind::Ec2 => {
                errors.push(format!(
                    "endpoint `{}` is launched on EC2, where its instance benchmarks itself: shard an endpoint that is already serving",
                    e.endpoint.name
                ));
                continue;
            }
            Kind::External | Kind::Service => {}
        }
        if let LoadLevel::Closed { concurrency } = e.plan.level {
            if concurrency < shard.count {
                errors.push(format!(
                    "`{}`: concurrency {concurrency} cannot be split over {} shards (each needs at least 1): raise `load.concurrency` or run fewer shards",
                    e.label, shard.count
                ));
            }
        }
        if let Some(n) = e.plan.requests {
            if n < shard.count as u64 {
                errors.push(format!(
                    "`{}`: {n} request(s) cannot be split over {} shards (each needs at least 1): raise `load.requests` or run fewer shards",
                    e.label, shard.count
                ));
            }
        }
    }
    // One line per mistake: an endpoint's refusal is not repeated for each
    // of its experiments.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.clone()));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_sequences_partition() {
        for n in 1..6u32 {
            for total in [0u64, 1, 7, 100, 101] {
                let s: u64 = (0..n)
                    .map(|k| Shard { index: k, count: n }.share(total))
                    .sum();
                assert_eq!(s, total, "{total} over {n}");
            }
            // Every global sequence number belongs to exactly one shard, and
            // each shard's closed-loop numbers are its own.
            for seq in 0..50u64 {
                let owners: Vec<u32> = (0..n)
                    .filter(|&k| Shard { index: k, count: n }.owns(seq))
                    .collect();
                assert_eq!(owners.len(), 1);
                let sh = Shard {
                    index: owners[0],
                    count: n,
                };
                assert!(sh.owns(sh.global_seq(seq)));
            }
        }
    }

    #[test]
    fn a_clock_offset_is_bounded_by_the_writes_even_when_a_coarse_stamp_lands_late() {
        let w = |began, stamp, ended| FileWrite {
            began,
            stamp,
            ended,
        };
        // The stamp never advanced: the upper bound alone, no error.
        assert_eq!(
            offset_from_writes(&[w(100, 50, 110), w(120, 50, 130)]),
            (60, None)
        );
        // Consistent bounds: upper 100 - 90 = 10, lower 105 - 100 = 5.
        assert_eq!(
            offset_from_writes(&[w(95, 90, 100), w(105, 90, 112), w(113, 100, 118)]),
            (7, Some(2))
        );
        // A 4 ms tick that landed late: the second write, 4.5 ms in, still
        // got the stamp 0, so the bounds cross (lower 0.5 ms > upper 0.1 ms).
        // The interval is the file clock's resolution, not empty.
        let us = 1_000;
        assert_eq!(
            offset_from_writes(&[
                w(0, 0, 100 * us),
                w(4_500 * us, 0, 4_600 * us),
                w(5_000 * us, 4_000 * us, 5_100 * us),
            ]),
            (300 * us, Some(2_000 * us))
        );
    }

    #[test]
    fn parses_k_of_n_and_names_the_mistake() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1/0", "a/3", "3", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad) && e.contains("0"), "{e}");
        }
        let s = Shard { index: 1, count: 3 };
        assert_eq!(
            whole_label(&format!("a · b · rate 5{}", s.suffix())),
            "a · b · rate 5"
        );
        assert_eq!(whole_label("a · shard x"), "a · shard x");
    }

    #[test]
    fn the_offset_to_a_local_directory_is_near_zero_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let (off, err) = clock_offset(&d.path().join("c"), Duration::from_secs(3)).unwrap();
        // Same clock: the true offset is 0 (plus the coarse clock's lag),
        // and it lies within the bounds found.
        let err = err.expect("a local file's time advances within 3 s");
        assert!(
            off.abs() <= err + 1_000_000,
            "offset {off} ns, error {err} ns"
        );
        assert!(err < 50_000_000, "error {err} ns");
    }

    #[test]
    fn a_barrier_gives_every_shard_the_same_start() {
        let d = tempfile::tempdir().unwrap();
        let rule = StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_secs(20),
        };
        let runs: Vec<_> = (0..3)
            .map(|k| {
                let rule = rule.clone();
                std::thread::spawn(move || {
                    rule.align(
                        "exp",
                        Shard { index: k, count: 3 },
                        "r",
                        &AtomicBool::new(false),
                    )
                    .unwrap()
                })
            })
            .collect();
        let got: Vec<Aligned> = runs.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(got.iter().all(|a| a.start_unix_ns == got[0].start_unix_ns));
        assert!(got[0].start_unix_ns > now_unix_ns() - 1_000_000_000);
        // A shard that never comes: a clear error naming it.
        let e = StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_millis(200),
        }
        .align(
            "other",
            Shard { index: 0, count: 2 },
            "r",
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("shard 1/2 did not arrive"), "{e}");
        // ... and takes its announcement back: a shard 1 arriving later
        // waits instead of starting alone.
        assert!(!d.path().join("other/0.ready").exists());
    }

    #[test]
    fn a_barrier_refuses_another_n_and_a_second_process_with_the_same_k() {
        let d = tempfile::tempdir().unwrap();
        let rule = StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_millis(300),
        };
        let stop = AtomicBool::new(false);
        let announce = |exp: &str, k: &str, shard: &str, host: Option<String>, pid: u32| {
            std::fs::create_dir_all(d.path().join(exp)).unwrap();
            let body = serde_json::json!({"shard": shard, "host": host, "pid": pid});
            std::fs::write(d.path().join(exp).join(k), body.to_string()).unwrap();
        };
        // 1/3 waits where 0/2 arrives: refused, naming both.
        announce("a", "1.ready", "1/3", Some("other".into()), 7);
        let e = rule
            .align("a", Shard { index: 0, count: 2 }, "r", &stop)
            .unwrap_err();
        let e = format!("{e}");
        assert!(
            e.contains("shard 1/3") && e.contains("0/2") && e.contains("same N"),
            "{e}"
        );
        // Shard 0/2 is already waiting on another host: refused.
        announce("b", "0.ready", "0/2", Some("other".into()), 7);
        let e = rule
            .align("b", Shard { index: 0, count: 2 }, "r", &stop)
            .unwrap_err();
        let e = format!("{e}");
        assert!(e.contains("already waiting") && e.contains("own K"), "{e}");
        // ... but a file left by a process of this host that has ended does
        // not count: the shard announces itself and waits for shard 1.
        let pid_gone = u32::MAX - 1;
        announce(
            "c",
            "0.ready",
            "0/2",
            Announcer::this_process().host,
            pid_gone,
        );
        let e = rule
            .align("c", Shard { index: 0, count: 2 }, "r", &stop)
            .unwrap_err();
        assert!(format!("{e}").contains("shard 1/2 did not arrive"), "{e}");
        // A process that overwrites this shard's announcement while it waits
        // is caught.
        let d2 = d.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            while !d2.join("e/0.ready").exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let body = serde_json::json!({"shard": "0/2", "host": "other", "pid": 9});
            std::fs::write(d2.join("e/0.ready"), body.to_string()).unwrap();
        });
        let e = StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_secs(10),
        }
        .align("e", Shard { index: 0, count: 2 }, "r", &stop)
        .unwrap_err();
        writer.join().unwrap();
        assert!(format!("{e}").contains("announced shard 0/2 too"), "{e}");
    }

    #[test]
    fn a_shard_arriving_after_another_gave_up_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        let rule = |secs| StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_secs(secs),
        };
        let stop = AtomicBool::new(false);
        let e = rule(1)
            .align("x", Shard { index: 0, count: 2 }, "run-0", &stop)
            .unwrap_err();
        assert!(format!("{e}").contains("shard 1/2 did not arrive"), "{e}");
        // Shard 1 would wait 10 minutes for a shard that already left; it
        // fails with why instead (after LEFT_GRACE), and withdraws its own
        // announcement.
        let e = rule(600)
            .align("x", Shard { index: 1, count: 2 }, "run-1", &stop)
            .unwrap_err();
        let e = format!("{e}");
        assert!(
            e.contains("shard 0/2 (process ")
                && e.contains(", run run-0) waited 1s for shard 1/2 and left; so this experiment cannot start"),
            "{e}"
        );
        assert!(!d.path().join("x/1.ready").exists());
        // ... and leaves a notice of its own, for a peer arriving later.
        let notice = std::fs::read_to_string(d.path().join("x/1.left")).unwrap();
        assert!(notice.contains("stopped because shard 0/2 ("), "{notice}");
        assert_eq!(shard_list(&[0, 2], 3), "shards 0/3 and 2/3");
        assert_eq!(shard_list(&[0, 1, 3], 4), "shards 0/4, 1/4 and 3/4");
        // Shard 0 run again takes its notice back and waits as usual.
        let e = rule(1)
            .align("x", Shard { index: 0, count: 2 }, "run-2", &stop)
            .unwrap_err();
        assert!(format!("{e}").contains("shard 1/2 did not arrive"), "{e}");
    }

    #[test]
    fn a_rerun_shard_joins_before_the_start_and_is_refused_after_it() {
        let d = tempfile::tempdir().unwrap();
        let rule = StartRule::Barrier {
            dir: d.path().to_path_buf(),
            timeout: Duration::from_secs(20),
        };
        let stop = AtomicBool::new(false);
        let runs: Vec<_> = (0..2)
            .map(|k| {
                let rule = rule.clone();
                std::thread::spawn(move || {
                    rule.align(
                        "exp",
                        Shard { index: k, count: 2 },
                        &format!("run-{k}"),
                        &AtomicBool::new(false),
                    )
                    .unwrap()
                })
            })
            .collect();
        let first: Vec<Aligned> = runs.into_iter().map(|h| h.join().unwrap()).collect();
        let start = first[0].start_unix_ns;
        // Shard 1 died and runs again: the start has not passed (the clock
        // measurement takes well under the 2 s margin on a local disk), so it
        // joins at the same start instead of moving it.
        let again = rule.align("exp", Shard { index: 1, count: 2 }, "r", &stop);
        if now_unix_ns() < start {
            assert_eq!(again.unwrap().start_unix_ns, start);
        }
        // After the start it cannot join: a typed error naming the way on.
        while now_unix_ns() <= start {
            std::thread::sleep(Duration::from_millis(50));
        }
        let e = rule
            .align("exp", Shard { index: 1, count: 2 }, "r", &stop)
            .unwrap_err();
        let started = e.downcast_ref::<AlreadyStarted>().expect("typed");
        assert!(started.ago_s > 0.0);
        // It names the run that announced shard 1 (a rerun whose bundle holds
        // that run died at the barrier, and skips instead of stopping).
        assert_eq!(started.run_id.as_deref(), Some("run-1"));
        assert!(format!("{e}").contains("--allow-missing-shards"), "{e}");
    }
}
