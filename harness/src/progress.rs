//! Live progress: one bar per experiment with requests done, live req/s,
//! TTFT p50 and errors. Drawn on stderr when it is a terminal; otherwise a
//! single line per finished experiment.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    label: String,
    tty: bool,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let template = if total.is_some() {
            "{prefix} [{bar:24.cyan/blue}] {pos}/{len} {elapsed} {msg}"
        } else {
            "{prefix} {spinner} {pos} req {elapsed} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            bar,
            label: label.to_string(),
            tty,
        }
    }

    pub fn update(&self, done: u64, rate: f64, ttft_p50_ms: Option<f64>, errors: u64) {
        self.bar.set_position(done);
        let ttft = ttft_p50_ms
            .map(|v| format!("{v:.1} ms"))
            .unwrap_or_else(|| "-".into());
        self.bar.set_message(format!(
            "{rate:.1} req/s · TTFT p50 {ttft} · errors {errors}"
        ));
    }

    /// Ends the bar at `done` requests, `warmup` of them warm-up, with
    /// `errors` failed in all and `failed` of the measured ones: the line
    /// counts the measured ones apart, as the table does.
    pub fn finish(&self, done: u64, warmup: u64, errors: u64, failed: u64) {
        self.bar.set_position(done);
        self.bar.finish();
        if !self.tty {
            let measured = done.saturating_sub(warmup);
            let counts = if warmup > 0 {
                format!(
                    "{measured} measured requests, {failed} errors; {warmup} warm-up, {} errors",
                    errors.saturating_sub(failed)
                )
            } else {
                format!("{measured} requests, {failed} errors")
            };
            eprintln!("done: {} ({counts})", self.label);
        }
    }
}
