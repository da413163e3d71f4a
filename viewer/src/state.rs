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
    Commands,
}

impl Page {
    pub const ALL: [Page; 6] = [
        Page::Overview,
        Page::Heatmap,
        Page::Recommendations,
        Page::Latency,
        Page::Diff,
        Page::Commands,
    ];
    pub fn id(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Heatmap => "heatmap",
            Page::Recommendations => "recommendations",
            Page::Latency => "latency",
            Page::Diff => "diff",
            Page::Commands => "commands",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Heatmap => "Price-performance heatmap",
            Page::Recommendations => "Recommendations",
            Page::Latency => "Latency and throughput",
            Page::Diff => "Diff",
            Page::Commands => "Command experiments",
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
    /// What the address held that was not used, each `key=value (why)`, for
    /// the page to say (never written back).
    pub ignored: Vec<String>,
}

impl Params {
    /// From the query string's (key, value) pairs, decoded. Unknown keys and
    /// values that do not parse are left out, so that a stale link still
    /// opens, and listed in `ignored` with what would be valid.
    pub fn from_pairs(pairs: &[(String, String)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            let v = v.trim();
            let why = match k.as_str() {
                "page" => match Page::parse(v) {
                    Some(page) => {
                        p.page = page;
                        None
                    }
                    None => Some(format!(
                        "not a page: one of {}",
                        Page::ALL.map(|p| p.id()).join(", ")
                    )),
                },
                "bundle" if !v.is_empty() => {
                    p.bundles.push(v.to_string());
                    None
                }
                "bundle" => Some("empty".to_string()),
                "budget" => match check_latency_key(v) {
                    Ok(()) => {
                        p.budget = Some(v.to_string());
                        None
                    }
                    Err(e) => Some(e),
                },
                "ms" => {
                    p.ms = v.parse().ok().filter(|x: &f64| *x > 0.0 && x.is_finite());
                    p.ms.is_none()
                        .then(|| "not a number of ms above 0".to_string())
                }
                "err" => {
                    p.err_pct = v.parse().ok().filter(|x: &f64| (0.0..=100.0).contains(x));
                    p.err_pct
                        .is_none()
                        .then(|| "not a percentage, 0 to 100".to_string())
                }
                "rpm" => {
                    p.rpm = v.split_once("..").and_then(|(a, b)| {
                        let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                        (a > 0.0 && b >= a && f64::is_finite(b)).then_some((a, b))
                    });
                    p.rpm
                        .is_none()
                        .then(|| "not a range LOW..HIGH of req/min, 0 < LOW <= HIGH".to_string())
                }
                "steps" => {
                    p.steps = v.parse().ok().filter(|s| (1..=50).contains(s));
                    p.steps
                        .is_none()
                        .then(|| "not a whole number from 1 to 50".to_string())
                }
                _ => Some(
                    "unknown key: page, bundle, budget, ms, err, rpm and steps are read"
                        .to_string(),
                ),
            };
            if let Some(why) = why {
                p.ignored.push(format!("{k}={v} ({why})"));
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

    /// The budget the controls set: `base` (the bundles' own budget) with the
    /// chosen statistic's limit set to `ms` (added or replaced; the other
    /// limits kept) and the error-rate limit set, as `harness report` takes it
    /// with every limit spelled out (`--latency KEY=MS ... --max-error-rate E`).
    /// `None`: nothing set, the bundles' budget applies.
    pub fn constraints(&self, base: &Constraints) -> Option<Constraints> {
        if self.budget.is_none() && self.ms.is_none() && self.err_pct.is_none() {
            return None;
        }
        let mut k = base.clone();
        if let (Some(key), Some(ms)) = (&self.budget, self.ms) {
            match k.latency.iter_mut().find(|(x, _)| x == key) {
                Some(slot) => slot.1 = ms,
                None => k.latency.push((key.clone(), ms)),
            }
        }
        if let Some(p) = self.err_pct {
            k.max_error_rate = p / 100.0;
        }
        Some(k)
    }

    /// What is wrong with the controls' values, in words; `None` when they
    /// can be applied.
    pub fn check_controls(ms: &str, err: &str, lo: &str, hi: &str, steps: &str) -> Option<String> {
        let num = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
        if num(ms).is_none_or(|x| x <= 0.0) {
            return Some(format!(
                "the latency budget must be a number of ms > 0 (got `{ms}`)"
            ));
        }
        if num(err).is_none_or(|x| !(0.0..=100.0).contains(&x)) {
            return Some(format!(
                "the error rate must be a percentage from 0 to 100 (got `{err}`)"
            ));
        }
        match (num(lo), num(hi)) {
            (Some(a), Some(b)) if a > 0.0 && b >= a => {}
            _ => {
                return Some(format!(
                    "the target range must run from a rate > 0 up to one at least as high (got `{lo}` to `{hi}`)"
                ))
            }
        }
        if steps
            .trim()
            .parse::<usize>()
            .ok()
            .is_none_or(|n| !(1..=50).contains(&n))
        {
            return Some(format!(
                "the number of steps must be 1 to 50 (got `{steps}`)"
            ));
        }
        None
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
        assert_eq!(
            p.ignored,
            vec![
                "junk=1 (unknown key: page, bundle, budget, ms, err, rpm and steps are read)"
                    .to_string()
            ]
        );
        let again = Params::from_pairs(&p.to_pairs());
        assert!(again.ignored.is_empty());
        assert_eq!(
            Params {
                ignored: vec![],
                ..p.clone()
            },
            again
        );
        let base = Constraints {
            max_error_rate: 0.01,
            latency: vec![("ttft.p95".into(), 1000.0), ("e2e.p95".into(), 5000.0)],
            ..Default::default()
        };
        let k = p.constraints(&base).unwrap();
        // The chosen limit is replaced; the bundles' other limits stay.
        assert_eq!(
            k.latency,
            vec![
                ("ttft.p95".to_string(), 800.0),
                ("e2e.p95".to_string(), 5000.0)
            ]
        );
        assert_eq!(k.max_error_rate, 0.02);
        assert_eq!(p.heatmap_rpms().unwrap().len(), 5);
        let bad = Params::from_pairs(&pairs(&[
            ("page", "nope"),
            ("budget", "ttft.p42"),
            ("ms", "-1"),
            ("rpm", "9..1"),
            ("steps", "0"),
        ]));
        assert_eq!(bad.ignored.len(), 5, "{:?}", bad.ignored);
        assert!(bad.ignored[2].starts_with("ms=-1 (not a number of ms above 0"));
        assert_eq!(
            Params {
                ignored: vec![],
                ..bad.clone()
            },
            Params::default()
        );
        assert!(bad.constraints(&base).is_none());
        assert!(Params::check_controls("800", "1", "60", "6000", "8").is_none());
        for (ms, err, lo, hi, steps, says) in [
            ("0", "1", "60", "6000", "8", "latency budget"),
            ("", "1", "60", "6000", "8", "latency budget"),
            ("800", "200", "60", "6000", "8", "error rate"),
            ("800", "1", "5000", "100", "8", "target range"),
            ("800", "1", "60", "", "8", "target range"),
            ("800", "1", "60", "6000", "0", "steps"),
        ] {
            let e = Params::check_controls(ms, err, lo, hi, steps).unwrap();
            assert!(e.contains(says), "{e}");
        }
    }
}
