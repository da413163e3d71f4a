//! Deployment: bringing up the serving endpoint an experiment talks to, and
//! taking it down whatever happens. Today: an external server that already
//! runs (nothing to start), or the embedded simulator, started on loopback for
//! the experiment and stopped when the [`Deployed`] value is dropped.

use crate::config::{Endpoint, ProviderKind};
use crate::sim::{Engine, EngineOptions, SimServer};
use anyhow::Result;

/// A serving endpoint, up. Dropping it tears down what was started.
pub struct Deployed {
    /// The OpenAI-compatible base URL (`…/v1`); may hold credentials, so mask
    /// it (`redact::url`) before showing it.
    pub base_url: String,
    /// The simulator behind the URL, if the harness started one.
    _sim: Option<SimServer>,
}

impl Deployed {
    pub fn is_embedded(&self) -> bool {
        self._sim.is_some()
    }
}

/// Brings up `ep`: the simulator (seeded with `seed`) for `provider: sim`, or
/// the configured `base_url`.
pub async fn start(ep: &Endpoint, seed: u64) -> Result<Deployed> {
    match ep.provider {
        ProviderKind::Openai => Ok(Deployed {
            base_url: ep.base_url.clone().expect("validated"),
            _sim: None,
        }),
        ProviderKind::Sim => {
            let s = ep.sim.as_ref().expect("validated");
            let profile = crate::cmd::sim::profile_for(&s.profile, s.ttft_ms, s.itl_ms)
                .map_err(anyhow::Error::msg)?;
            let engine = Engine::new(
                profile,
                EngineOptions {
                    seed,
                    max_concurrency: s.max_concurrency,
                    error_rate: s.error_rate,
                    error_kind: s.error_kind,
                },
            );
            let server = SimServer::start("127.0.0.1:0".parse().expect("addr"), engine).await?;
            Ok(Deployed {
                base_url: server.base_url(),
                _sim: Some(server),
            })
        }
    }
}
