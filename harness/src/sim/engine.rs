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
    /// Automatic prefix caching, as vLLM's (on by default there and here).
    pub prefix_cache: bool,
    /// Where the server logs its ground truth (`harness sim --truth-log`).
    pub truth: Option<Arc<super::truth::TruthLog>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seed: 0,
            max_concurrency: None,
            error_rate: 0.0,
            error_kind: SimErrorKind::Http500,
            prefix_cache: true,
            truth: None,
        }
    }
}

/// Tokens per KV-cache block: the unit a prefix cache stores and matches,
/// as vLLM's default `block_size` of 16. Only full blocks are cached.
pub const PREFIX_BLOCK_TOKENS: u64 = 16;

/// Blocks a replica's prefix cache holds when its profile has no KV limit.
const UNLIMITED_CACHE_BLOCKS: usize = 1 << 20;

/// The chained hashes of a prompt's full blocks of [`PREFIX_BLOCK_TOKENS`]
/// tokens (the simulator's tokens are whitespace-separated words): block
/// `k`'s hash covers every token up to the end of block `k`, so two
/// prompts share block `k` exactly when their first `16·(k+1)` tokens are
/// equal. This is how vLLM keys its prefix cache (a hash of the parent
/// block's hash and the block's token ids).
pub fn prefix_blocks<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let mut out = vec![];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut n = 0u64;
    for t in tokens {
        t.hash(&mut h);
        n += 1;
        if n.is_multiple_of(PREFIX_BLOCK_TOKENS) {
            let block = h.finish();
            out.push(block);
            // The next block's hash starts from this one (the chain).
            h = std::collections::hash_map::DefaultHasher::new();
            block.hash(&mut h);
        }
    }
    out
}

struct Replica {
    kv: Arc<Semaphore>,
    seqs: Arc<Semaphore>,
    running: AtomicU64,
    context: AtomicU64,
    /// Prefix-cache blocks, least recently used evicted first.
    cache: std::sync::Mutex<lru::LruCache<u64, ()>>,
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
    /// Prompt tokens looked up in the prefix cache, and those found there.
    cache_queries: AtomicU64,
    cache_hits: AtomicU64,
}

/// What a request will do, decided when it arrives (deterministic for the
/// engine's seed and the request's arrival number).
#[derive(Debug, Clone)]
pub struct Plan {
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub fail: Option<SimErrorKind>,
    pub rng_seed: u64,
    /// The prompt's [`prefix_blocks`]; empty: nothing to look up or cache.
    pub prefix_blocks: Vec<u64>,
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
    /// Leading prompt tokens found in the prefix cache (not prefilled).
    cached: u64,
    prefix_blocks: Vec<u64>,
    _kv: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    rng: Rng,
    clock: Instant,
}

impl Engine {
    /// The server's ground-truth log, when it keeps one.
    pub fn truth(&self) -> Option<&Arc<super::truth::TruthLog>> {
        self.opts.truth.as_ref()
    }

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
        let cache_blocks = if profile.kv_capacity_tokens >= Semaphore::MAX_PERMITS as u64 {
            UNLIMITED_CACHE_BLOCKS
        } else {
            (profile.kv_capacity_tokens / PREFIX_BLOCK_TOKENS).max(1) as usize
        };
        let cache_blocks = std::num::NonZeroUsize::new(cache_blocks).expect(">= 1");
        let replicas = (0..profile.replicas.max(1))
            .map(|_| Replica {
                cache: std::sync::Mutex::new(lru::LruCache::new(cache_blocks)),
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
            cache_queries: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
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
            prefix_blocks: vec![],
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
        let cached = self.lookup(r, plan);
        Ok(Sequence {
            engine: self.clone(),
            replica: idx,
            context: plan.prompt_tokens,
            cached,
            prefix_blocks: if self.opts.prefix_cache {
                plan.prefix_blocks.clone()
            } else {
                vec![]
            },
            _kv: kv,
            _slot: slot,
            rng: Rng::new(plan.rng_seed),
            clock: Instant::now(),
        })
    }
}

impl Engine {
    /// Whether prompts are looked up in a prefix cache (so that the server
    /// hashes their blocks into [`Plan::prefix_blocks`]).
    pub fn caches_prefixes(&self) -> bool {
        self.opts.prefix_cache
    }

    /// Prompt tokens of `plan` found in replica `r`'s prefix cache when it is
    /// scheduled: its leading blocks that are cached, at most all but one
    /// prompt token (the last is always computed, for the first output
    /// token, as in vLLM). Counts the lookup in the cache counters.
    fn lookup(&self, r: &Replica, plan: &Plan) -> u64 {
        if !self.opts.prefix_cache {
            return 0;
        }
        let hit_blocks = {
            let mut cache = r.cache.lock().expect("cache lock");
            plan.prefix_blocks
                .iter()
                .take_while(|b| cache.get(*b).is_some())
                .count() as u64
        };
        let cached = (hit_blocks * PREFIX_BLOCK_TOKENS).min(plan.prompt_tokens.saturating_sub(1));
        self.cache_queries
            .fetch_add(plan.prompt_tokens, Ordering::Relaxed);
        self.cache_hits.fetch_add(cached, Ordering::Relaxed);
        cached
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
    /// queries and hits (in tokens; both 0 with the cache off), and the
    /// prompt and generation token counters.
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
                self.cache_queries.load(Ordering::Relaxed) as f64,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "counter",
                "Prefix cache hits, in terms of number of cached tokens.",
                self.cache_hits.load(Ordering::Relaxed) as f64,
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
    /// Sleeps through prefill of the prompt tokens not found in the prefix
    /// cache, then caches the prompt's blocks; returns the first token.
    pub async fn prefill(&mut self) -> &'static str {
        let p = &self.engine.profile;
        self.clock =
            Instant::now() + Duration::from_secs_f64(p.prefill_s(self.context - self.cached));
        self.engine.timer.sleep_until(self.clock).await;
        if !self.prefix_blocks.is_empty() {
            let mut cache = self.engine.replicas[self.replica]
                .cache
                .lock()
                .expect("cache lock");
            // Tail blocks first, so that they are evicted before the head
            // blocks other prompts are likelier to share (as vLLM does).
            for b in self.prefix_blocks.drain(..).rev() {
                cache.put(b, ());
            }
        }
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

    #[tokio::test]
    async fn a_prompt_whose_blocks_were_prefilled_hits_the_prefix_cache() {
        let words = |n: usize, first: &'static str| -> Vec<&'static str> {
            std::iter::once(first)
                .chain(WORDS.iter().copied().cycle().take(n - 1))
                .collect()
        };
        let plan = |e: &Engine, w: &[&str]| {
            let mut p = e.plan(w.len() as u64, 1, true);
            p.prefix_blocks = prefix_blocks(w.iter().copied());
            p
        };
        let hits = |e: &Engine| {
            let m = e.metrics_text();
            let line = m
                .lines()
                .find(|l| l.starts_with("vllm:prefix_cache_hits_total{"))
                .unwrap();
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
        };
        for on in [true, false] {
            let e = Engine::new(
                Profile::fixed(0.0, 0.0),
                EngineOptions {
                    prefix_cache: on,
                    ..Default::default()
                },
            );
            let a = words(100, "alpha");
            assert_eq!(prefix_blocks(a.iter().copied()).len(), 6);
            let mut s = e.admit(&plan(&e, &a)).await.unwrap();
            assert_eq!(s.cached, 0, "a cold cache");
            s.prefill().await;
            drop(s);
            // Same prompt: its 6 full blocks (96 tokens) are cached.
            let s = e.admit(&plan(&e, &a)).await.unwrap();
            assert_eq!(s.cached, if on { 96 } else { 0 });
            // Another first token: every chained block differs.
            let s2 = e.admit(&plan(&e, &words(100, "omega"))).await.unwrap();
            assert_eq!(s2.cached, 0);
            // A prompt of exactly two cached blocks computes its last token.
            let b = &a[..32];
            let mut s3 = e.admit(&plan(&e, b)).await.unwrap();
            assert_eq!(s3.cached, if on { 31 } else { 0 });
            s3.prefill().await;
            assert_eq!(hits(&e), if on { 96.0 + 31.0 } else { 0.0 });
        }
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
