//! The page's state as it lives in the address bar, so that every view is a
//! shareable URL: `?page=heatmap&bundle=bundles/a.duckdb&budget=ttft.p95&ms=800`.
//! Pure, so it is tested on the host.

use harness_core::recommend::Constraints;
use harness_view::model::check_latency_key;

/// The viewer's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    #[default]
    Overview,
    Heatmap,
    Recommendations,
    Latency,
    Diff,
}

impl Page {
    pub const ALL: [Page; 5] = [
        Page::Overview,
        Page::Heatmap,
        Page::Recommendations,
        Page::Latency,
        Page::Diff,
    ];
    pub fn id(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Heatmap => "heatmap",
            Page::Recommendations => "recommendations",
            Page::Latency => "latency",
            Page::Diff => "diff",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Heatmap => "Price-performance heatmap",
            Page::Recommendations => "Recommendations",
            Page::Latency => "Latency and throughput",
            Page::Diff => "Diff",
        }
    }
    fn parse(s: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|p| p.id() == s)
    }
}

/// Everything the URL holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    pub page: Page,
    /// Bundle URLs, relative to the page or absolute (`bundle=`, repeatable).
    pub bundles: Vec<String>,
    /// The latency budget's statistic, `METRIC.STAT` (`budget=`).
    pub budget: Option<String>,
    /// Its limit in ms (`ms=`).
    pub ms: Option<f64>,
    /// Most acceptable error rate, percent (`err=`).
    pub err_pct: Option<f64>,
    /// The heatmap's target range, req/min (`rpm=LO..HI`) and steps (`steps=`).
    pub rpm: Option<(f64, f64)>,
    pub steps: Option<usize>,
}

impl Params {
    /// From the query string's (key, value) pairs, decoded. Unknown keys and
    /// values that do not parse are ignored (a stale link still opens).
    pub fn from_pairs(pairs: &[(String, String)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            let v = v.trim();
            match k.as_str() {
                "page" => p.page = Page::parse(v).unwrap_or_default(),
                "bundle" if !v.is_empty() => p.bundles.push(v.to_string()),
                "budget" if check_latency_key(v).is_ok() => p.budget = Some(v.to_string()),
                "ms" => p.ms = v.parse().ok().filter(|x: &f64| *x > 0.0 && x.is_finite()),
                "err" => p.err_pct = v.parse().ok().filter(|x: &f64| (0.0..=100.0).contains(x)),
                "rpm" => {
                    p.rpm = v.split_once("..").and_then(|(a, b)| {
                        let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                        (a > 0.0 && b >= a && f64::is_finite(b)).then_some((a, b))
                    })
                }
                "steps" => p.steps = v.parse().ok().filter(|s| (1..=50).contains(s)),
                _ => {}
            }
        }
        p
    }

    /// The pairs to write back into the query string.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = vec![("page".to_string(), self.page.id().to_string())];
        for b in &self.bundles {
            out.push(("bundle".into(), b.clone()));
        }
        if let Some(b) = &self.budget {
            out.push(("budget".into(), b.clone()));
        }
        if let Some(x) = self.ms {
            out.push(("ms".into(), x.to_string()));
        }
        if let Some(x) = self.err_pct {
            out.push(("err".into(), x.to_string()));
        }
        if let Some((a, b)) = self.rpm {
            out.push(("rpm".into(), format!("{a}..{b}")));
        }
        if let Some(s) = self.steps {
            out.push(("steps".into(), s.to_string()));
        }
        out
    }

    /// The budget the controls set, as `harness report --latency KEY=MS
    /// --max-error-rate E` takes it; `None`: the bundles' own budget.
    pub fn constraints(&self) -> Option<Constraints> {
        if self.budget.is_none() && self.ms.is_none() && self.err_pct.is_none() {
            return None;
        }
        let latency = match (&self.budget, self.ms) {
            (Some(k), Some(ms)) => vec![(k.clone(), ms)],
            _ => vec![],
        };
        Some(Constraints {
            max_error_rate: self
                .err_pct
                .map(|p| p / 100.0)
                .unwrap_or(Constraints::default().max_error_rate),
            latency,
            max_usd_per_request: None,
        })
    }

    /// The heatmap's target rates, as `harness report --rpm-range LO..HI
    /// --rpm-steps N` computes them; `None`: the default range.
    pub fn heatmap_rpms(&self) -> Option<Vec<f64>> {
        self.rpm
            .map(|(lo, hi)| harness_core::capacity::rpm_range(lo, hi, self.steps.unwrap_or(8)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn round_trips_and_ignores_nonsense() {
        let p = Params::from_pairs(&pairs(&[
            ("page", "heatmap"),
            ("bundle", "bundles/a.duckdb"),
            ("bundle", "https://x.example/b.duckdb"),
            ("budget", "ttft.p95"),
            ("ms", "800"),
            ("err", "2"),
            ("rpm", "60..6000"),
            ("steps", "5"),
            ("junk", "1"),
        ]));
        assert_eq!(p.page, Page::Heatmap);
        assert_eq!(p.bundles.len(), 2);
        assert_eq!(Params::from_pairs(&p.to_pairs()), p);
        let k = p.constraints().unwrap();
        assert_eq!(k.latency, vec![("ttft.p95".to_string(), 800.0)]);
        assert_eq!(k.max_error_rate, 0.02);
        assert_eq!(p.heatmap_rpms().unwrap().len(), 5);
        let bad = Params::from_pairs(&pairs(&[
            ("page", "nope"),
            ("budget", "ttft.p42"),
            ("ms", "-1"),
            ("rpm", "9..1"),
            ("steps", "0"),
        ]));
        assert_eq!(bad, Params::default());
        assert!(bad.constraints().is_none());
    }
}
