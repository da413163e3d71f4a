//! Runs sequences through the profile's performance model in real time.

use super::profile::Profile;
use crate::config::SimErrorKind;
use crate::timer::TimerService;
use crate::tokens::WORDS;
use harness_core::rng::Rng;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub seed: u64,
    /// Overrides the profile's sequence limit per replica.
    pub max_concurrency: Option<u32>,
    pub error_rate: f64,
    pub error_kind: SimErrorKind,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seed: 0,
            max_concurrency: None,
            error_rate: 0.0,
            error_kind: SimErrorKind::Http500,
        }
    }
}

struct Replica {
    kv: Arc<Semaphore>,
    seqs: Arc<Semaphore>,
    running: AtomicU64,
    context: AtomicU64,
}

pub struct Engine {
    pub profile: Profile,
    opts: EngineOptions,
    replicas: Vec<Replica>,
    next_replica: AtomicUsize,
    requests: AtomicU64,
    timer: TimerService,
    /// Requests waiting for room on a replica.
    waiting: AtomicU64,
    /// Tokens generated and prompt tokens prefilled, since the start.
    generated: AtomicU64,
    prefilled: AtomicU64,
}

/// What a request will do, decided when it arrives (deterministic for the
/// engine's seed and the request's arrival number).
#[derive(Debug, Clone)]
pub struct Plan {
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub fail: Option<SimErrorKind>,
    pub rng_seed: u64,
}

#[derive(Debug)]
pub enum Rejection {
    /// The prompt plus max_tokens exceeds the KV cache of one replica.
    TooLong { needed: u64, capacity: u64 },
}

/// A sequence admitted to a replica; holds its KV cache and slot until dropped.
pub struct Sequence {
    engine: Arc<Engine>,
    replica: usize,
    context: u64,
    _kv: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    rng: Rng,
    clock: Instant,
}

impl Engine {
    /// `HARNESS_SIM_SLOWDOWN=k` multiplies every model time by `k`: a stand-in
    /// for a slower server build (it is deliberately not part of experiment
    /// ids), used to test `harness diff`.
    pub fn new(profile: Profile, opts: EngineOptions) -> Arc<Engine> {
        let profile = match std::env::var("HARNESS_SIM_SLOWDOWN")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            Some(k) if k > 0.0 => profile.slowed(k),
            _ => profile,
        };
        let max_seqs = opts.max_concurrency.unwrap_or(profile.max_seqs) as usize;
        let kv = profile
            .kv_capacity_tokens
            .min(Semaphore::MAX_PERMITS as u64)
            .min(u32::MAX as u64) as usize;
        let replicas = (0..profile.replicas.max(1))
            .map(|_| Replica {
                kv: Arc::new(Semaphore::new(kv)),
                seqs: Arc::new(Semaphore::new(max_seqs.min(Semaphore::MAX_PERMITS))),
                running: AtomicU64::new(0),
                context: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Engine {
            profile,
            opts,
            replicas,
            next_replica: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            timer: TimerService::start(),
            waiting: AtomicU64::new(0),
            generated: AtomicU64::new(0),
            prefilled: AtomicU64::new(0),
        })
    }

    /// Decides a request's output length and fate.
    pub fn plan(&self, prompt_tokens: u64, max_tokens: u64, ignore_eos: bool) -> Plan {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::derive(self.opts.seed, n);
        let output_tokens = if ignore_eos || max_tokens <= 1 {
            max_tokens
        } else {
            rng.range_inclusive(max_tokens.div_ceil(2), max_tokens)
        };
        let fail = rng
            .chance(self.opts.error_rate)
            .then_some(self.opts.error_kind);
        Plan {
            prompt_tokens,
            output_tokens: output_tokens.max(1),
            fail,
            rng_seed: rng.next_u64(),
        }
    }

    /// Waits for room on a replica (FIFO), then holds it for the sequence.
    pub async fn admit(self: &Arc<Self>, plan: &Plan) -> Result<Sequence, Rejection> {
        let need = plan.prompt_tokens + plan.output_tokens;
        let capacity = self.profile.kv_capacity_tokens;
        if need > capacity {
            return Err(Rejection::TooLong {
                needed: need,
                capacity,
            });
        }
        let idx = self.next_replica.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        let r = &self.replicas[idx];
        // Counted as waiting until both its KV cache and its slot are held.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let permits = need.min(u32::MAX as u64) as u32;
        let kv = if capacity >= Semaphore::MAX_PERMITS as u64 {
            // Unlimited (fixed-timing) profiles: take nothing from the pool.
            r.kv.clone().acquire_many_owned(0).await
        } else {
            r.kv.clone().acquire_many_owned(permits).await
        }
        .expect("semaphore open");
        let slot = r
            .seqs
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        r.running.fetch_add(1, Ordering::Relaxed);
        r.context.fetch_add(plan.prompt_tokens, Ordering::Relaxed);
        Ok(Sequence {
            engine: self.clone(),
            replica: idx,
            context: plan.prompt_tokens,
            _kv: kv,
            _slot: slot,
            rng: Rng::new(plan.rng_seed),
            clock: Instant::now(),
        })
    }
}

/// Decrements the waiting count when admission ends (or is abandoned).
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Engine {
    /// The engine's state in Prometheus's text format, under vLLM's metric
    /// names (`vllm:`), as vLLM's `/metrics` serves them: running and
    /// waiting requests, KV-cache usage (0–1, over replicas), prefix-cache
    /// queries and hits (no prefix cache: hits stay 0), and the prompt and
    /// generation token counters.
    pub fn metrics_text(&self) -> String {
        let running: u64 = self
            .replicas
            .iter()
            .map(|r| r.running.load(Ordering::Relaxed))
            .sum();
        let cap = self
            .profile
            .kv_capacity_tokens
            .min(Semaphore::MAX_PERMITS as u64) as f64;
        let usage = if self.profile.kv_capacity_tokens >= Semaphore::MAX_PERMITS as u64 {
            0.0
        } else {
            self.replicas
                .iter()
                .map(|r| 1.0 - r.kv.available_permits() as f64 / cap)
                .sum::<f64>()
                / self.replicas.len() as f64
        };
        let model = format!("model_name=\"{}\"", self.profile.name);
        let prefilled = self.prefilled.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "vllm:num_requests_running",
                "gauge",
                "Number of requests in model execution batches.",
                running as f64,
            ),
            (
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                self.waiting.load(Ordering::Relaxed) as f64,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
            (
                "vllm:prefix_cache_queries_total",
                "counter",
                "Prefix cache queries, in terms of number of queried tokens.",
                prefilled as f64,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "counter",
                "Prefix cache hits, in terms of number of cached tokens.",
                0.0,
            ),
            (
                "vllm:prompt_tokens_total",
                "counter",
                "Number of prefill tokens processed.",
                prefilled as f64,
            ),
            (
                "vllm:generation_tokens_total",
                "counter",
                "Number of generation tokens processed.",
                self.generated.load(Ordering::Relaxed) as f64,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{model}}} {value:?}\n"
            ));
        }
        out
    }
}

impl Sequence {
    /// Sleeps through prefill; returns the first token.
    pub async fn prefill(&mut self) -> &'static str {
        let p = &self.engine.profile;
        self.clock = Instant::now() + Duration::from_secs_f64(p.prefill_s(self.context));
        self.engine.timer.sleep_until(self.clock).await;
        self.engine
            .prefilled
            .fetch_add(self.context, Ordering::Relaxed);
        self.engine.generated.fetch_add(1, Ordering::Relaxed);
        self.word()
    }

    /// Sleeps one decode step (its length depends on the replica's load now);
    /// returns the next token.
    pub async fn decode(&mut self) -> &'static str {
        let r = &self.engine.replicas[self.replica];
        let step = self.engine.profile.step_s(
            r.running.load(Ordering::Relaxed),
            r.context.load(Ordering::Relaxed),
        );
        // Deadlines accumulate from the previous one, so timer lateness does
        // not add up over a long output.
        self.clock += Duration::from_secs_f64(step);
        self.engine.timer.sleep_until(self.clock).await;
        self.context += 1;
        r.context.fetch_add(1, Ordering::Relaxed);
        self.engine.generated.fetch_add(1, Ordering::Relaxed);
        self.word()
    }

    /// Generates `n` tokens in real time (prefill, then decode steps) and
    /// returns them as one text, for a response sent whole.
    pub async fn text(&mut self, n: u64) -> String {
        let mut text = String::new();
        for i in 0..n {
            let w = if i == 0 {
                self.prefill().await
            } else {
                self.decode().await
            };
            if i > 0 {
                text.push(' ');
            }
            text.push_str(w);
        }
        text
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.rng.range_inclusive(0, WORDS.len() as u64 - 1) as usize]
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        let r = &self.engine.replicas[self.replica];
        r.running.fetch_sub(1, Ordering::Relaxed);
        r.context.fetch_sub(self.context, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capacity_limit_makes_requests_queue() {
        let e = Engine::new(
            Profile::fixed(0.0, 0.0),
            EngineOptions {
                max_concurrency: Some(1),
                ..Default::default()
            },
        );
        let plan = e.plan(10, 5, true);
        let first = e.admit(&plan).await.unwrap();
        let e2 = e.clone();
        let waiter = tokio::spawn(async move { e2.admit(&plan).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "second request must queue behind the first"
        );
        drop(first);
        waiter.await.unwrap().unwrap();
    }

    #[test]
    fn plans_are_deterministic_for_a_seed() {
        let mk = || {
            Engine::new(
                Profile::fixed(0.0, 0.0),
                EngineOptions {
                    seed: 9,
                    error_rate: 0.3,
                    ..Default::default()
                },
            )
        };
        let (a, b) = (mk(), mk());
        for _ in 0..50 {
            let (pa, pb) = (a.plan(10, 100, false), b.plan(10, 100, false));
            assert_eq!(
                (pa.output_tokens, pa.fail.is_some()),
                (pb.output_tokens, pb.fail.is_some())
            );
            assert!((50..=100).contains(&pa.output_tokens));
        }
    }
}
