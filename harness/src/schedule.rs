//! When requests are sent. Knows nothing of HTTP or statistics.
//!
//! Every load shape compiles to one [`LoadPlan`]: a level (closed-loop
//! concurrency or an open-loop arrival process) plus one stop rule shared by
//! both modes ([`Admission`]). The driver calls `send` for each request with its
//! *scheduled* instant; the caller stamps the actual send, so dispatch lag is
//! always measured, never assumed away.
//!
//! - Closed loop: `concurrency` workers; a worker's next request is scheduled
//!   the moment its previous one ended.
//! - Open loop: one pacing OS thread computes arrival instants (constant
//!   spacing `k / rate`, Poisson with exponential gaps from a seeded
//!   generator, or a trace's own offsets divided by the replay speed-up),
//!   sleeps until each with sub-millisecond precision and spawns
//!   the request onto the runtime. When it falls behind it sends immediately;
//!   the lateness shows up as dispatch lag. Arrivals beyond `max_in_flight` are
//!   still handed to `send`, flagged `saturated`, to be recorded as failures.

use crate::config::{Arrival, LoadLevel};
use crate::shard::Shard;
use crate::timer::PreciseSleep;
use harness_core::rng::Rng;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize)]
pub struct LoadPlan {
    pub level: LoadLevel,
    /// Measured requests (after warm-up); `None` = until `duration`.
    pub requests: Option<u64>,
    /// Measured duration, from the first measured request's scheduled time.
    pub duration: Option<Duration>,
    pub warmup_requests: u64,
    pub warmup_duration: Option<Duration>,
    pub max_in_flight: u32,
    pub seed: u64,
    /// Replay levels: each request's arrival, in seconds from the start
    /// (already divided by the speed-up), cut to the requests planned.
    #[serde(skip)]
    pub arrivals: Option<Arc<[f64]>>,
    /// The part of the plan this process sends (`harness run --shard`);
    /// `None`: all of it. Not hashed: a shard's experiment is the whole's.
    #[serde(skip)]
    pub shard: Option<Shard>,
}

impl LoadPlan {
    /// The closed-loop plan of this process: with a shard, its share of the
    /// concurrency, of the measured requests and of the warm-up requests
    /// (`Shard::share`). An open-loop plan is the same for every shard.
    fn local(&self) -> LoadPlan {
        let (Some(s), LoadLevel::Closed { concurrency }) = (self.shard, self.level) else {
            return self.clone();
        };
        LoadPlan {
            level: LoadLevel::Closed {
                concurrency: s.share(concurrency as u64) as u32,
            },
            requests: self.requests.map(|r| s.share(r)),
            warmup_requests: s.share(self.warmup_requests),
            ..self.clone()
        }
    }

    /// Open loop: the offered rate in requests per second. For a replay,
    /// the mean over its measured arrivals: (n − 1) / (last − first), the
    /// arrivals after the warm-up requests (`None` with fewer than two, or
    /// all at one instant).
    pub fn offered_rate(&self) -> Option<f64> {
        match self.level {
            LoadLevel::Open { rate, .. } => Some(rate),
            LoadLevel::Closed { .. } => None,
            LoadLevel::Replay { .. } => {
                let a = self.arrivals.as_deref()?;
                let m = a.get(self.warmup_requests as usize..)?;
                let span = m.last()? - m.first()?;
                (m.len() >= 2 && span > 0.0).then(|| (m.len() - 1) as f64 / span)
            }
        }
    }

    /// The arrivals of a replay at `speed` of trace offsets `at_s`: cut to
    /// the warm-up plus `requests`, and to `duration` after the first
    /// measured arrival (warm-up by duration is applied as the plan runs).
    pub fn replay_arrivals(
        at_s: impl Iterator<Item = f64>,
        speed: f64,
        warmup_requests: u64,
        requests: Option<u64>,
        duration: Option<Duration>,
    ) -> Arc<[f64]> {
        let cap = requests.map_or(usize::MAX, |r| (warmup_requests + r) as usize);
        let mut out: Vec<f64> = at_s.take(cap).map(|t| t / speed).collect();
        if let (Some(d), Some(&first)) = (duration, out.get(warmup_requests as usize)) {
            out.retain(|t| *t < first + d.as_secs_f64());
        }
        out.into()
    }
}

/// One request the plan asks for.
#[derive(Debug, Clone, Copy)]
pub struct Dispatch {
    pub seq: u64,
    pub scheduled: Instant,
    pub warmup: bool,
    /// Open loop only: too many requests were in flight to send this one.
    pub saturated: bool,
}

/// The stop rule: which requests are issued, and which are warm-up.
struct Admission {
    t0: Instant,
    plan: LoadPlan,
    measure_start: OnceLock<Instant>,
    measured: AtomicU64,
    stop: Arc<AtomicBool>,
    /// Set when the experiment's own early-stop rule ended it: issuing ends,
    /// and the plan counts as ended (not cut short).
    early: Arc<AtomicBool>,
    /// Set when `stop` ended issuing before the plan's own end.
    cut_short: AtomicBool,
}

impl Admission {
    fn admit(&self, seq: u64, scheduled: Instant) -> Option<bool> {
        if self.stop.load(Ordering::Relaxed) {
            self.cut_short.store(true, Ordering::Relaxed);
            return None;
        }
        if self.early.load(Ordering::Relaxed) {
            return None;
        }
        let in_warmup_time = self
            .plan
            .warmup_duration
            .is_some_and(|d| scheduled < self.t0 + d);
        if seq < self.plan.warmup_requests || in_warmup_time {
            return Some(true);
        }
        let start = *self.measure_start.get_or_init(|| scheduled);
        if self.plan.duration.is_some_and(|d| scheduled >= start + d) {
            return None;
        }
        let n = self.measured.fetch_add(1, Ordering::Relaxed);
        if self.plan.requests.is_some_and(|r| n >= r) {
            return None;
        }
        Some(false)
    }
}

/// Runs the plan from `t0` (now, or a start shared with other shards) to
/// completion: returns when every issued request's `send` future has
/// finished. With a shard, only its requests are sent, each with its global
/// sequence number (see `crate::shard`). Setting `stop` ends issuing early; the result is
/// true when it did (the plan was cut short), false when the plan ran out.
/// Setting `early` ends issuing too, as the plan's own end (a capacity
/// probe whose budget is clearly broken).
pub async fn drive<F, Fut>(
    plan: &LoadPlan,
    t0: Instant,
    stop: Arc<AtomicBool>,
    early: Arc<AtomicBool>,
    send: F,
) -> bool
where
    F: Fn(Dispatch) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let adm = Arc::new(Admission {
        t0,
        plan: plan.local(),
        measure_start: OnceLock::new(),
        measured: AtomicU64::new(0),
        stop,
        early,
        cut_short: AtomicBool::new(false),
    });
    let send = Arc::new(send);
    let outcome = adm.clone();
    // The local plan's level: a closed-loop shard's own concurrency.
    match adm.plan.level {
        LoadLevel::Closed { concurrency } => {
            let next = Arc::new(AtomicU64::new(0));
            let shard = plan.shard;
            let mut workers = Vec::with_capacity(concurrency as usize);
            for _ in 0..concurrency {
                let (adm, send, next) = (adm.clone(), send.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    let mut scheduled = t0;
                    loop {
                        let local = next.fetch_add(1, Ordering::Relaxed);
                        let Some(warmup) = adm.admit(local, scheduled) else {
                            break;
                        };
                        let seq = shard.map_or(local, |s| s.global_seq(local));
                        send(Dispatch {
                            seq,
                            scheduled,
                            warmup,
                            saturated: false,
                        })
                        .await;
                        scheduled = Instant::now();
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        }
        LoadLevel::Open { .. } | LoadLevel::Replay { .. } => {
            // When request `seq` arrives, from `t0`; `None`: no more.
            let mut rng = Rng::new(plan.seed);
            let mut offset = 0.0f64;
            let level = plan.level;
            let arrivals = plan.arrivals.clone();
            let mut arrival_at = move |seq: u64| -> Option<Instant> {
                let s = match level {
                    LoadLevel::Open {
                        rate,
                        arrival: Arrival::Constant,
                    } => seq as f64 / rate,
                    LoadLevel::Open {
                        rate,
                        arrival: Arrival::Poisson,
                    } => {
                        let at = offset;
                        offset += rng.exponential(rate);
                        at
                    }
                    LoadLevel::Replay { .. } => *arrivals.as_deref()?.get(seq as usize)?,
                    LoadLevel::Closed { .. } => unreachable!("closed loop has no arrivals"),
                };
                Some(t0 + Duration::from_secs_f64(s))
            };
            let handle = tokio::runtime::Handle::current();
            let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
            let in_flight = Arc::new(AtomicU64::new(0));
            let max = plan.max_in_flight as u64;
            let shard = plan.shard;
            std::thread::Builder::new()
                .name("pacer".into())
                .spawn(move || {
                    let mut sleep = PreciseSleep::new();
                    for seq in 0.. {
                        let Some(at) = arrival_at(seq) else {
                            break;
                        };
                        let Some(warmup) = adm.admit(seq, at) else {
                            break;
                        };
                        // Every shard walks every arrival (so that each
                        // applies the same stop rule) and sends its own.
                        if shard.is_some_and(|s| !s.owns(seq)) {
                            continue;
                        }
                        // Sleep in slices so a stop request is noticed during long gaps.
                        while at.saturating_duration_since(Instant::now())
                            > Duration::from_millis(50)
                        {
                            if adm.stop.load(Ordering::Relaxed) {
                                adm.cut_short.store(true, Ordering::Relaxed);
                                return;
                            }
                            if adm.early.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(40));
                        }
                        sleep.until(at);
                        let saturated = in_flight.load(Ordering::Relaxed) >= max;
                        if !saturated {
                            in_flight.fetch_add(1, Ordering::Relaxed);
                        }
                        let (send, done, in_flight) =
                            (send.clone(), done_tx.clone(), in_flight.clone());
                        handle.spawn(async move {
                            send(Dispatch {
                                seq,
                                scheduled: at,
                                warmup,
                                saturated,
                            })
                            .await;
                            if !saturated {
                                in_flight.fetch_sub(1, Ordering::Relaxed);
                            }
                            drop(done);
                        });
                    }
                })
                .expect("spawn pacer thread");
            // Resolves when the pacer and every request it spawned have
            // dropped their sender.
            let _ = done_rx.recv().await;
        }
    }
    outcome.cut_short.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn plan(level: LoadLevel) -> LoadPlan {
        LoadPlan {
            level,
            requests: Some(20),
            duration: None,
            warmup_requests: 3,
            warmup_duration: None,
            max_in_flight: 10_000,
            seed: 1,
            arrivals: None,
            shard: None,
        }
    }

    async fn collect(p: LoadPlan) -> Vec<(Dispatch, Instant)> {
        collect_from(p, Instant::now()).await
    }

    async fn collect_from(p: LoadPlan, t0: Instant) -> Vec<(Dispatch, Instant)> {
        let out = Arc::new(Mutex::new(vec![]));
        let o = out.clone();
        drive(
            &p,
            t0,
            Arc::new(AtomicBool::new(false)),
            Arc::default(),
            move |d| {
                let o = o.clone();
                async move {
                    o.lock().unwrap().push((d, Instant::now()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
        )
        .await;
        let v = out.lock().unwrap().clone();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_counts_warmup_separately() {
        let v = collect(plan(LoadLevel::Closed { concurrency: 4 })).await;
        assert_eq!(v.len(), 23);
        assert_eq!(v.iter().filter(|(d, _)| d.warmup).count(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_constant_spacing_and_rate() {
        let mut p = plan(LoadLevel::Open {
            rate: 200.0,
            arrival: Arrival::Constant,
        });
        p.requests = Some(100);
        p.warmup_requests = 0;
        let v = collect(p).await;
        assert_eq!(v.len(), 100);
        let mut sched: Vec<Instant> = v.iter().map(|(d, _)| d.scheduled).collect();
        sched.sort();
        let span = (sched[99] - sched[0]).as_secs_f64();
        assert!((span - 99.0 / 200.0).abs() < 1e-6, "planned span {span}");
        // Every request was dispatched at or after its scheduled time.
        assert!(v.iter().all(|(d, sent)| *sent >= d.scheduled));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duration_stops_issuing() {
        let timed = || {
            let mut p = plan(LoadLevel::Open {
                rate: 100.0,
                arrival: Arrival::Poisson,
            });
            p.requests = None;
            p.warmup_requests = 0;
            p.duration = Some(Duration::from_millis(300));
            p
        };
        let v = collect(timed()).await;
        // ~30 expected; Poisson with a fixed seed gives a fixed count.
        assert!((15..=50).contains(&v.len()), "{}", v.len());
        assert_eq!(
            v.len(),
            collect(timed()).await.len(),
            "same seed, same plan"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_sends_at_the_traced_offsets_and_ends_with_the_trace() {
        // Traced offsets 0, 0.1, 0.1, 0.4 s at speed 2; one warm-up request.
        let trace = [0.0, 0.1, 0.1, 0.4, 0.5];
        let mut p = plan(LoadLevel::Replay { speed: 2.0 });
        p.warmup_requests = 1;
        p.requests = Some(3);
        p.arrivals = Some(LoadPlan::replay_arrivals(
            trace.iter().copied(),
            2.0,
            1,
            Some(3),
            None,
        ));
        assert_eq!(p.arrivals.as_deref(), Some(&[0.0, 0.05, 0.05, 0.2][..]));
        // Measured arrivals 0.05, 0.05, 0.2: 2 gaps over 0.15 s.
        assert!((p.offered_rate().unwrap() - 2.0 / 0.15).abs() < 1e-9);
        let mut v = collect(p).await;
        v.sort_by_key(|(d, _)| d.seq);
        assert_eq!(v.len(), 4, "the trace's end ends the plan");
        let t0 = v[0].0.scheduled;
        let offsets: Vec<f64> = v
            .iter()
            .map(|(d, _)| (d.scheduled - t0).as_secs_f64())
            .collect();
        for (got, want) in offsets.iter().zip([0.0, 0.05, 0.05, 0.2]) {
            assert!((got - want).abs() < 1e-6, "{offsets:?}");
        }
        assert_eq!(
            v.iter().map(|(d, _)| d.warmup).collect::<Vec<_>>(),
            [true, false, false, false]
        );
        // A duration cuts the replay after the first measured arrival.
        let cut = LoadPlan::replay_arrivals(
            trace.iter().copied(),
            1.0,
            1,
            None,
            Some(Duration::from_millis(250)),
        );
        assert_eq!(
            &cut[..],
            &[0.0, 0.1, 0.1][..],
            "0.4 is more than 0.25 s after 0.1"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturation_is_flagged_not_dropped() {
        let mut p = plan(LoadLevel::Open {
            rate: 1000.0,
            arrival: Arrival::Constant,
        });
        p.warmup_requests = 0;
        p.max_in_flight = 2;
        let v = collect(p).await;
        assert_eq!(v.len(), 20);
        assert!(v.iter().any(|(d, _)| d.saturated));
    }

    /// The shards of a plan send, between them, exactly the requests of the
    /// whole plan: open loop at the same offsets from the start (the same
    /// seeded arrivals, to the nanosecond), closed loop in shares that add up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shards_send_the_whole_plan_between_them() {
        let offsets = |v: &[(Dispatch, Instant)], t0: Instant| -> Vec<(u64, u128, bool)> {
            let mut o: Vec<_> = v
                .iter()
                .map(|(d, _)| (d.seq, (d.scheduled - t0).as_nanos(), d.warmup))
                .collect();
            o.sort();
            o
        };
        let mut open = plan(LoadLevel::Open {
            rate: 400.0,
            arrival: Arrival::Poisson,
        });
        open.requests = Some(40);
        let t0 = Instant::now();
        let whole = offsets(&collect_from(open.clone(), t0).await, t0);
        let mut parts = vec![];
        for k in 0..3 {
            let t0 = Instant::now();
            let p = LoadPlan {
                shard: Some(Shard { index: k, count: 3 }),
                ..open.clone()
            };
            let got = offsets(&collect_from(p, t0).await, t0);
            assert!(got.iter().all(|(seq, _, _)| seq % 3 == k as u64));
            parts.extend(got);
        }
        parts.sort();
        assert_eq!(parts, whole, "43 arrivals, the same offsets and warm-ups");

        let mut closed = plan(LoadLevel::Closed { concurrency: 5 });
        closed.requests = Some(20);
        closed.warmup_requests = 4;
        let mut seqs = vec![];
        for k in 0..3 {
            let p = LoadPlan {
                shard: Some(Shard { index: k, count: 3 }),
                ..closed.clone()
            };
            let v = collect(p).await;
            let s = Shard { index: k, count: 3 };
            assert_eq!(v.len() as u64, s.share(20) + s.share(4));
            assert_eq!(
                v.iter().filter(|(d, _)| d.warmup).count() as u64,
                s.share(4)
            );
            seqs.extend(v.iter().map(|(d, _)| d.seq));
        }
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), 24, "no global sequence number twice");
    }
}
