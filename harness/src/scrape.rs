//! Scrapes the serving engine's Prometheus `/metrics` while an experiment
//! runs (`server_metrics`; what the samples mean and how they are summarised
//! is `harness_core::server`). A scrape that fails is counted, never fatal.

use crate::clock::Clock;
use harness_core::server::{parse_exposition, ServerSample};
use std::time::Duration;

/// Where and how often to scrape one endpoint.
#[derive(Debug, Clone)]
pub struct Scraper {
    pub url: String,
    pub interval: Duration,
    client: reqwest::Client,
}

/// What one experiment's scraping gave.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    /// The URL, credentials masked.
    pub url: String,
    pub interval: Duration,
    pub samples: Vec<ServerSample>,
    pub attempts: u64,
    pub failures: u64,
    /// Why the last failed scrape failed.
    pub last_error: Option<String>,
}

/// The metrics URL of an endpoint served at `base_url`: the same origin,
/// path `/metrics` (`http://h:8000/v1` → `http://h:8000/metrics`).
pub fn default_url(base_url: &str) -> Option<String> {
    let mut u = reqwest::Url::parse(base_url).ok()?;
    u.set_path("/metrics");
    u.set_query(None);
    Some(u.to_string())
}

impl Scraper {
    pub fn new(url: String, interval: Duration) -> Scraper {
        Scraper {
            url,
            interval,
            client: reqwest::Client::builder()
                .timeout(interval.max(Duration::from_millis(500)))
                .build()
                .expect("a reqwest client"),
        }
    }

    /// Scrapes every `interval` on `clock`, the first at once (a baseline
    /// for the counters), until [`Scraping::finish`]. Each sample is stamped
    /// when its response has arrived.
    pub fn start(&self, clock: Clock) -> Scraping {
        let me = self.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut out = Scraped {
                url: crate::redact::url(&me.url),
                interval: me.interval,
                ..Default::default()
            };
            let mut tick = tokio::time::interval(me.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stop_rx => break,
                }
                out.attempts += 1;
                match me.scrape(clock).await {
                    Ok(s) => out.samples.extend(s),
                    Err(e) => {
                        out.failures += 1;
                        out.last_error = Some(crate::redact::text(&e));
                    }
                }
            }
            out
        });
        Scraping {
            stop: stop_tx,
            task,
        }
    }

    async fn scrape(&self, clock: Clock) -> Result<Vec<ServerSample>, String> {
        let r = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| crate::aws::error_chain(&e))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| crate::aws::error_chain(&e))?;
        let t_ns = clock.now_ns();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        parse_exposition(&body, t_ns)
    }
}

/// A scraper running over one experiment.
pub struct Scraping {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Scraped>,
}

impl Scraping {
    /// Stops scraping and gives what was scraped, oldest first.
    pub async fn finish(self) -> Scraped {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_url_is_the_servers_origin() {
        assert_eq!(
            default_url("http://10.0.0.5:8000/v1").as_deref(),
            Some("http://10.0.0.5:8000/metrics")
        );
        assert_eq!(
            default_url("https://api.example.com/openai/v1?x=1").as_deref(),
            Some("https://api.example.com/metrics")
        );
        assert_eq!(default_url("not a url"), None);
    }
}
