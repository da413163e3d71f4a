//! Sub-millisecond timing that tokio's 1 ms timer wheel cannot give.
//!
//! [`TimerService`] keeps deadlines in a heap served by one OS thread that waits
//! on a condition variable with a nanosecond timeout (Linux wakes it within
//! ~50–100 µs) and wakes the waiting task through a oneshot channel. The
//! simulator uses it so that a configured 10 ms inter-token gap is 10 ms, not
//! 10–11 ms. [`PreciseSleep`] blocks an OS thread until each of a series of
//! deadlines, finishing with a short spin that adapts to how late the
//! thread's sleeps wake; the open-loop pacer uses it. Both threads set their
//! timer slack to 1 ns.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AO};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Deadlines closer than this are treated as due.
const SLACK: Duration = Duration::from_micros(20);

struct Entry {
    at: Instant,
    seq: u64,
    tx: oneshot::Sender<()>,
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

struct Inner {
    heap: Mutex<BinaryHeap<Entry>>,
    cv: Condvar,
    seq: AtomicU64,
    shutdown: AtomicBool,
}

#[derive(Clone)]
pub struct TimerService {
    inner: Arc<Inner>,
    _guard: Arc<ShutdownGuard>,
}

struct ShutdownGuard(Arc<Inner>);
impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.shutdown.store(true, AO::SeqCst);
        self.0.cv.notify_all();
    }
}

impl TimerService {
    pub fn start() -> Self {
        let inner = Arc::new(Inner {
            heap: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
            seq: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
        });
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("precise-timer".into())
            .spawn(move || run(worker))
            .expect("spawn timer thread");
        TimerService {
            _guard: Arc::new(ShutdownGuard(inner.clone())),
            inner,
        }
    }

    /// Completes at `at` (within ~0.1 ms), not at the next millisecond tick.
    pub async fn sleep_until(&self, at: Instant) {
        if at <= Instant::now() + SLACK {
            return;
        }
        let (tx, rx) = oneshot::channel();
        let seq = self.inner.seq.fetch_add(1, AO::Relaxed);
        let earliest = {
            let mut heap = self.inner.heap.lock().expect("timer heap");
            let earliest = heap.peek().map(|e| at < e.at).unwrap_or(true);
            heap.push(Entry { at, seq, tx });
            earliest
        };
        if earliest {
            self.inner.cv.notify_one();
        }
        let _ = rx.await;
    }
}

fn run(inner: Arc<Inner>) {
    // See `PreciseSleep::new`: the default 50 µs slack would make the
    // condition variable's timeout wake up to 50 µs late.
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    let mut heap = inner.heap.lock().expect("timer heap");
    loop {
        if inner.shutdown.load(AO::SeqCst) {
            return;
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.at <= now + SLACK) {
            let e = heap.pop().expect("peeked");
            let _ = e.tx.send(());
        }
        heap = match heap.peek().map(|e| e.at) {
            None => inner.cv.wait(heap).expect("timer heap"),
            Some(at) => inner.cv.wait_timeout(heap, at - now).expect("timer heap").0,
        };
    }
}

/// Blocks the calling OS thread until `at`: sleeps until shortly before, then
/// spins, so lateness stays in the tens of microseconds. A one-off; a thread
/// that waits for many deadlines keeps one [`PreciseSleep`].
pub fn sleep_until_precise(at: Instant) {
    PreciseSleep::new().until(at);
}

/// Waits for a series of deadlines on one OS thread (the open-loop pacer).
///
/// Each wait sleeps until `margin` before the deadline and spins the rest.
/// The spin is CPU spent for nothing, so the margin follows how late this
/// thread's sleeps actually wake: it jumps to any larger oversleep and decays
/// by 1/16 per sleep towards the recent ones, within
/// [`MIN_MARGIN`, `MAX_MARGIN`]. Waking on time costs about
/// `margin - oversleep` of spinning per deadline (tens of µs, measured by
/// `bench/run.sh` section 1's CPU per request) instead of a fixed 150 µs.
///
/// The thread's timer slack is set to 1 ns (Linux `PR_SET_TIMERSLACK`; the
/// default 50 µs lets the kernel wake a sleeper up to 50 µs late to batch
/// wake-ups), so that the oversleep is the scheduler's, not a policy's.
pub struct PreciseSleep {
    margin: Duration,
}

/// Never spin less than this before a deadline.
pub const MIN_MARGIN: Duration = Duration::from_micros(10);
/// Never spin more than this: a rare long oversleep (a preempted vCPU) is
/// lateness to report, not a reason to spin for milliseconds.
pub const MAX_MARGIN: Duration = Duration::from_micros(150);

impl Default for PreciseSleep {
    fn default() -> Self {
        Self::new()
    }
}

impl PreciseSleep {
    /// Sets the calling thread's timer slack; keep the value on that thread.
    pub fn new() -> Self {
        // Best effort: without it (not Linux, or refused) sleeps wake up to
        // the default slack late, which the margin then absorbs.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        PreciseSleep {
            margin: Duration::from_micros(50),
        }
    }

    /// The current spin margin.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// Returns at `at` or just after, never before.
    pub fn until(&mut self, at: Instant) {
        loop {
            let now = Instant::now();
            if now >= at {
                return;
            }
            let left = at - now;
            if left > self.margin {
                let wake = at - self.margin;
                std::thread::sleep(left - self.margin);
                let over = Instant::now().saturating_duration_since(wake);
                let decayed = self.margin - self.margin / 16;
                self.margin = over.max(decayed).clamp(MIN_MARGIN, MAX_MARGIN);
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never early, and it does wake. How late is a figure, not a test: on
    /// shared cores other tests' threads delay any wake-up by milliseconds,
    /// so the lateness is printed here and measured by `bench/run.sh`
    /// (section 3: the ITL against the simulator's 10 ms gap).
    #[tokio::test]
    async fn wakes_at_the_deadline_never_before() {
        let t = TimerService::start();
        let mut worst = Duration::ZERO;
        for i in 0..20 {
            let at = Instant::now() + Duration::from_micros(2_500 + i * 100);
            tokio::time::timeout(Duration::from_secs(5), t.sleep_until(at))
                .await
                .expect("the timer wakes");
            let late = Instant::now().saturating_duration_since(at);
            worst = worst.max(late);
            assert!(Instant::now() >= at - SLACK);
        }
        eprintln!("worst lateness {worst:?}");
    }

    #[test]
    fn precise_sleep_never_wakes_early() {
        for _ in 0..10 {
            let at = Instant::now() + Duration::from_micros(700);
            sleep_until_precise(at);
            assert!(Instant::now() >= at);
        }
    }

    /// The margin follows the oversleep but stays within its bounds, and a
    /// series of deadlines is never met early whatever the margin.
    #[test]
    fn the_pacers_margin_adapts_within_bounds() {
        let mut s = PreciseSleep::new();
        let mut at = Instant::now();
        for i in 0..200 {
            at += Duration::from_micros(100 + (i % 7) * 150);
            s.until(at);
            assert!(Instant::now() >= at);
            assert!(
                (MIN_MARGIN..=MAX_MARGIN).contains(&s.margin()),
                "{:?}",
                s.margin()
            );
        }
        // A deadline already past returns at once and leaves the margin alone.
        let m = s.margin();
        s.until(Instant::now() - Duration::from_millis(1));
        assert_eq!(s.margin(), m);
    }
}
