//! Deployment: bringing up the serving endpoint an experiment talks to, and
//! taking it down whatever happens. Four kinds ([`Kind`]):
//! - an external server that already runs (nothing to start);
//! - a managed AWS service, SageMaker or Bedrock (nothing to start);
//! - the embedded simulator, started on loopback for the experiment and
//!   stopped when the [`Deployed`] value is dropped;
//! - EC2 (`ec2:`): [`ec2::plan`] says what would be launched, with its user
//!   data and cost bound (`harness run --dry-run`); [`fleet`] launches it,
//!   and the agent on each instance ([`job`], `harness agent`) serves and
//!   benchmarks; [`state`] records every resource before it is created.

pub mod ec2;
pub mod fleet;
pub mod job;
pub mod state;

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

/// How an endpoint is brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A server that already runs at `base_url`.
    External,
    /// The embedded simulator, on loopback.
    Simulator,
    /// An EC2 instance the harness launches (`ec2:`).
    Ec2,
    /// A managed AWS service (SageMaker, Bedrock), reached through the SDK.
    Service,
}

impl Kind {
    pub fn of(ep: &Endpoint) -> Kind {
        match (ep.provider, &ep.ec2) {
            (ProviderKind::Sim, _) => Kind::Simulator,
            (ProviderKind::Openai, Some(_)) => Kind::Ec2,
            (ProviderKind::Openai, None) => Kind::External,
            (ProviderKind::Sagemaker | ProviderKind::Bedrock, _) => Kind::Service,
            (ProviderKind::Command, _) => unreachable!("command endpoints are in `commands`"),
        }
    }
}

/// Brings up `ep`: the simulator (seeded with `seed`) for `provider: sim`,
/// the configured `base_url`, or for an `ec2:` endpoint the URL it is served
/// at (`served_at`: the agent's loopback address on the instance).
pub async fn start(ep: &Endpoint, seed: u64, served_at: Option<&str>) -> Result<Deployed> {
    match Kind::of(ep) {
        // Nothing to start; the provider reaches the service itself.
        Kind::Service => Ok(Deployed {
            base_url: String::new(),
            _sim: None,
        }),
        Kind::External => Ok(Deployed {
            base_url: ep.base_url.clone().expect("validated"),
            _sim: None,
        }),
        Kind::Ec2 => match served_at {
            Some(url) => Ok(Deployed {
                base_url: url.to_string(),
                _sim: None,
            }),
            None => anyhow::bail!(
                "endpoint `{}` is launched on EC2 by the fleet stage, not started here",
                ep.name
            ),
        },
        Kind::Simulator => {
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
                    prefix_cache: s.prefix_cache,
                    truth: None,
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
