//! Wire config → validated config. Collects every problem, each with the path
//! of the field it concerns and what would be valid.

use super::model::*;
use super::wire::*;
use super::yaml::Path;
use crate::sim::profile;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub path: Path,
    pub message: String,
}

#[derive(Default)]
struct Ctx {
    issues: Vec<Issue>,
}

impl Ctx {
    fn err(&mut self, path: Path, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }
    fn duration(&mut self, path: Path, s: &Option<String>) -> Option<Duration> {
        let s = s.as_deref()?;
        match humantime::parse_duration(s) {
            Ok(d) if d > Duration::ZERO => Some(d),
            Ok(_) => {
                self.err(path, "must be longer than zero");
                None
            }
            Err(e) => {
                self.err(
                    path,
                    format!("`{s}` is not a duration ({e}); write e.g. `30s`, `2m`, `1h30m`"),
                );
                None
            }
        }
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

/// An endpoint's `name` under `p`, or an empty one when it is missing or
/// invalid (the error recorded; `example` shows a good one).
fn endpoint_name(cx: &mut Ctx, p: &Path, name: Option<String>, example: &str) -> String {
    match name {
        Some(n) if name_ok(&n) => n,
        Some(n) => {
            cx.err(
                p.key("name"),
                format!("`{n}` is not a valid name: use letters, digits, `-`, `_`, `.`, `:`, `/`"),
            );
            String::new()
        }
        None => {
            cx.err(
                p.key("name"),
                format!("is required: a short unique label, e.g. `name: {example}`"),
            );
            String::new()
        }
    }
}

/// A list item's `name` at `p`: present (else "is required: `example`")
/// and valid (letters, digits, `-`, `_`, `.`).
fn required_name(cx: &mut Ctx, p: Path, name: Option<String>, example: &str) -> Option<String> {
    match name {
        Some(n) if name_ok(&n) => Some(n),
        Some(n) => {
            cx.err(
                p,
                format!("`{n}` is not a valid name: use letters, digits, `-`, `_`, `.`"),
            );
            None
        }
        None => {
            cx.err(p, format!("is required: {example}"));
            None
        }
    }
}

/// Validates `w`; `default_name` names the config when it has no `name`.
pub fn validate(w: WireConfig, default_name: &str) -> Result<Config, Vec<Issue>> {
    let mut cx = Ctx::default();
    let root = Path::root();

    let name = w.name.unwrap_or_else(|| default_name.to_string());
    if !name_ok(&name) {
        cx.err(
            root.key("name"),
            format!("`{name}` is not a valid name: use letters, digits, `-`, `_`, `.`"),
        );
    }
    let seed = w.seed.unwrap_or(0);

    // Endpoints: the embedded simulator is the default when none is configured.
    let wire_endpoints = w.endpoints.unwrap_or_else(|| {
        vec![WireEndpoint {
            name: Some("sim".into()),
            provider: Some(ProviderKind::Sim),
            ..Default::default()
        }]
    });
    if wire_endpoints.is_empty() {
        cx.err(
            root.key("endpoints"),
            "lists no endpoint; remove the key to use the embedded simulator, or add one",
        );
    }
    let any_ec2 = wire_endpoints.iter().any(|e| e.ec2.is_some());
    let mut endpoints = vec![];
    let mut seen = BTreeSet::new();
    let mut instances = BTreeSet::new();
    let mut commands: Vec<CommandEndpoint> = vec![];
    for (i, e) in wire_endpoints.into_iter().enumerate() {
        let p = root.key("endpoints").index(i);
        if e.provider == Some(ProviderKind::Command) {
            if let Some(c) = command_endpoint(&mut cx, &p, e) {
                if !seen.insert(c.name.clone()) {
                    cx.err(
                        p.key("name"),
                        format!(
                            "`{}` names two endpoints; endpoint names must be unique",
                            c.name
                        ),
                    );
                }
                commands.push(c);
            }
            continue;
        }
        if let Some(ep) = endpoint(&mut cx, &p, e) {
            if !seen.insert(ep.name.clone()) {
                cx.err(
                    p.key("name"),
                    format!(
                        "`{}` names two endpoints; endpoint names must be unique",
                        ep.name
                    ),
                );
            }
            // One serving stack per instance: two endpoints on one instance
            // would remove each other's container.
            if let Some(id) = ep.ec2.as_ref().and_then(|s| s.instance_id.as_ref()) {
                if !instances.insert(id.clone()) {
                    cx.err(
                        p.key("ec2").key("instance_id"),
                        format!("`{id}` is the instance of another endpoint too; one instance serves one endpoint at a time"),
                    );
                }
            }
            endpoints.push(ep);
        }
    }

    let wire_datasets = w.datasets.unwrap_or_else(|| {
        vec![WireDataset {
            name: Some("synthetic-256-64".into()),
            synthetic: Some(WireSynthetic {
                prompt_tokens: Some(WireLength::Fixed(256)),
                output_tokens: Some(WireLength::Fixed(64)),
                shared_prefix_tokens: None,
                shared_prefix: None,
            }),
            ..Default::default()
        }]
    });
    if wire_datasets.is_empty() {
        cx.err(
            root.key("datasets"),
            "lists no dataset; remove the key for the default synthetic one, or add one",
        );
    }
    let mut datasets = vec![];
    let mut seen = BTreeSet::new();
    for (i, d) in wire_datasets.into_iter().enumerate() {
        let p = root.key("datasets").index(i);
        let Some(dname) = required_name(
            &mut cx,
            p.key("name"),
            d.name,
            "give the dataset a name, e.g. `name: short-prompts`",
        ) else {
            continue;
        };
        if !seen.insert(dname.clone()) {
            cx.err(
                p.key("name"),
                format!("`{dname}` names two datasets; dataset names must be unique"),
            );
        }
        if let Some(edges) = &d.buckets {
            if edges.len() < 2 || edges.windows(2).any(|w| w[0] >= w[1]) {
                cx.err(p.key("buckets"), "must list at least two strictly increasing token counts, e.g. `[1, 500, 1000, 2000]`");
            }
        }
        let sources = [d.synthetic.is_some(), d.jsonl.is_some(), d.trace.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            cx.err(p.clone(), "has more than one of `synthetic`, `jsonl` and `trace`; give one source per dataset");
            continue;
        }
        if let Some(t) = d.trace {
            if d.buckets.is_some() {
                cx.err(
                    p.key("buckets"),
                    "applies to `jsonl` datasets; a trace is replayed whole, in one bucket",
                );
            }
            if d.output_tokens.is_some() {
                cx.err(
                    p.key("output_tokens"),
                    "does not apply to a trace: each request asks for its traced output length",
                );
            }
            if let Some(source) = trace(&mut cx, p.key("trace"), t) {
                datasets.push(Dataset {
                    name: dname,
                    source,
                });
            }
            continue;
        }
        match (d.synthetic, d.jsonl) {
            (Some(_), Some(_)) => unreachable!("counted above"),
            (Some(s), None) => {
                let sp = p.key("synthetic");
                if d.buckets.is_some() {
                    cx.err(p.key("buckets"), "applies to `jsonl` datasets; a synthetic dataset's lengths come from `prompt_tokens`");
                }
                if d.output_tokens.is_some() {
                    cx.err(p.key("output_tokens"), "for synthetic datasets, set `synthetic.output_tokens`");
                }
                let pt = length(&mut cx, sp.key("prompt_tokens"), s.prompt_tokens, "prompt_tokens: 512");
                let ot = length(&mut cx, sp.key("output_tokens"), s.output_tokens, "output_tokens: 128");
                let (shared, cold_baseline, shared_key) = match (s.shared_prefix_tokens, s.shared_prefix) {
                    (Some(_), Some(_)) => {
                        cx.err(sp.key("shared_prefix"), "give `shared_prefix_tokens: N` (one prefix for every request) or `shared_prefix: {tokens, prefixes, requests_per_prefix, cold_baseline}`, not both");
                        (Default::default(), false, sp.key("shared_prefix"))
                    }
                    (t, None) => (
                        crate::dataset::synthetic::SharedPrefix { tokens: t.unwrap_or(0), prefixes: 1, requests_per_prefix: None },
                        false,
                        sp.key("shared_prefix_tokens"),
                    ),
                    (None, Some(w)) => {
                        let wp = sp.key("shared_prefix");
                        let tokens = w.tokens.unwrap_or(0);
                        if tokens == 0 {
                            cx.err(wp.key("tokens"), "is required and >= 1: the length of each shared prefix, e.g. `tokens: 512`");
                        }
                        let prefixes = w.prefixes.unwrap_or(1);
                        if prefixes == 0 {
                            cx.err(wp.key("prefixes"), "must be >= 1: the number of distinct prefixes (default 1)");
                        }
                        if w.requests_per_prefix == Some(0) {
                            cx.err(wp.key("requests_per_prefix"), "must be >= 1: the requests each prefix serves before a fresh set starts (leave it out: never renewed)");
                        }
                        (
                            crate::dataset::synthetic::SharedPrefix { tokens, prefixes, requests_per_prefix: w.requests_per_prefix },
                            w.cold_baseline.unwrap_or(false),
                            wp.key("tokens"),
                        )
                    }
                };
                if let Some(pt) = pt {
                    // Every prompt is its prefix and at least one token of its own.
                    if shared.tokens > 0 && shared.tokens >= pt.min() {
                        cx.err(
                            shared_key,
                            format!(
                                "{} must be smaller than the smallest prompt ({} tokens): each prompt is the shared prefix and at least one token of its own",
                                shared.tokens,
                                pt.min()
                            ),
                        );
                    }
                }
                if let (Some(prompt_tokens), Some(output_tokens)) = (pt, ot) {
                    datasets.push(Dataset {
                        name: dname,
                        source: DatasetSource::Synthetic { prompt_tokens, output_tokens, shared_prefix: shared, cold_baseline },
                    });
                }
            }
            (None, Some(j)) => {
                let jp = p.key("jsonl");
                let Some(path) = j.path else {
                    cx.err(jp.key("path"), "is required: the JSONL file, e.g. `path: datasets/qa-sample.jsonl`");
                    continue;
                };
                let template = j.template.unwrap_or_else(|| "{input}".into());
                if let Err(e) = crate::dataset::template::Template::parse(&template) {
                    cx.err(jp.key("template"), e);
                }
                let output_tokens = d.output_tokens.unwrap_or(128);
                if output_tokens == 0 {
                    cx.err(p.key("output_tokens"), "must be >= 1");
                }
                datasets.push(Dataset {
                    name: dname,
                    source: DatasetSource::Jsonl {
                        path,
                        template,
                        answers_key: j.answers_key.unwrap_or_else(|| "answers".into()),
                        buckets: d.buckets,
                        output_tokens,
                    },
                });
            }
            (None, None) => cx.err(
                p,
                "needs a source: `synthetic: {prompt_tokens: N, output_tokens: M}`, `jsonl: {path: FILE, template: \"...{input}...\"}` or `trace: {path: FILE.csv}`",
            ),
        }
    }

    let load = load(&mut cx, w.load.unwrap_or_default());

    let ws = w.sampling.unwrap_or_default();
    let sp = root.key("sampling");
    if ws.max_tokens == Some(0) {
        cx.err(sp.key("max_tokens"), "must be >= 1");
    }
    let temperature = ws.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        cx.err(
            sp.key("temperature"),
            format!("{temperature} is outside 0.0..=2.0"),
        );
    }
    if let Some(t) = ws.top_p {
        if !(t > 0.0 && t <= 1.0) {
            cx.err(sp.key("top_p"), format!("{t} is outside (0, 1]"));
        }
    }
    let sampling = Sampling {
        max_tokens: ws.max_tokens,
        temperature,
        top_p: ws.top_p,
        ignore_eos: ws.ignore_eos.unwrap_or(false),
    };

    let wp = w.pricing.unwrap_or_default();
    for (k, v) in wp.instance_hourly.iter().flatten() {
        if !(v.is_finite() && *v >= 0.0) {
            cx.err(
                root.key("pricing").key("instance_hourly").key(k),
                format!("{v} is not a price in $/hour (>= 0)"),
            );
        }
    }
    let mut token_prices = std::collections::BTreeMap::new();
    for (model, tp) in wp.token_prices.iter().flatten() {
        let at = root.key("pricing").key("token_prices").key(model);
        for (field, v) in [
            ("input_per_1m", tp.input_per_1m),
            ("output_per_1m", tp.output_per_1m),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                cx.err(
                    at.key(field),
                    format!("{v} is not a price in $ per 1M tokens (>= 0)"),
                );
            }
        }
        token_prices.insert(
            model.clone(),
            harness_core::cost::TokenPrice {
                input_per_1m: tp.input_per_1m,
                output_per_1m: tp.output_per_1m,
            },
        );
    }
    let mode = match wp.mode.as_deref() {
        None | Some("on_demand") => harness_core::cost::PriceMode::OnDemand,
        Some("spot") => harness_core::cost::PriceMode::Spot,
        Some(other) => {
            cx.err(
                root.key("pricing").key("mode"),
                format!(
                    "`{other}` is not an instance pricing mode; expected `on_demand` or `spot`"
                ),
            );
            harness_core::cost::PriceMode::OnDemand
        }
    };
    let pricing = Pricing {
        file: wp.file,
        region: wp.region,
        mode,
        instance_hourly: wp.instance_hourly.unwrap_or_default(),
        token_prices,
    };

    let wb = w.budgets.unwrap_or_default();
    let bp = root.key("budgets");
    for (field, v) in [
        ("ttft_p95_ms", wb.ttft_p95_ms),
        ("e2e_p95_ms", wb.e2e_p95_ms),
        ("cost_per_request", wb.cost_per_request),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                cx.err(bp.key(field), format!("{v} must be > 0"));
            }
        }
    }
    if let Some(e) = wb.error_rate {
        if !(0.0..=1.0).contains(&e) {
            cx.err(
                bp.key("error_rate"),
                format!("{e} is a fraction and must be within 0..=1 (0.01 = 1%)"),
            );
        }
    }
    let slo = wb.slo.map(|w| {
        let p = bp.key("slo");
        for (field, v) in [
            ("ttft_ms", w.ttft_ms),
            ("tpot_ms", w.tpot_ms),
            ("e2e_ms", w.e2e_ms),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                cx.err(p.key(field), format!("{v} must be > 0 (ms)"));
            }
        }
        let slo = harness_core::slo::Slo {
            ttft_ms: w.ttft_ms,
            tpot_ms: w.tpot_ms,
            e2e_ms: w.e2e_ms,
        };
        if slo.is_empty() {
            cx.err(
                p,
                "sets no limit: give at least one of ttft_ms, tpot_ms, e2e_ms, e.g. `slo: {ttft_ms: 500, e2e_ms: 8000}`",
            );
        }
        slo
    });
    if let Some(t) = wb.slo_attainment {
        if !(t > 0.0 && t <= 1.0) {
            cx.err(
                bp.key("slo_attainment"),
                format!("{t} is a fraction of requests and must be within (0, 1] (0.99 = 99%)"),
            );
        }
        if slo.is_none() {
            cx.err(
                bp.key("slo_attainment"),
                "needs `budgets.slo`, the per-request limits it counts, e.g. `slo: {ttft_ms: 500, tpot_ms: 50}`",
            );
        }
    }
    let budgets = Budgets {
        ttft_p95_ms: wb.ttft_p95_ms,
        e2e_p95_ms: wb.e2e_p95_ms,
        error_rate: wb.error_rate,
        cost_per_request: wb.cost_per_request,
        slo,
        slo_attainment: wb.slo_attainment,
    };
    if load
        .levels
        .iter()
        .any(|l| matches!(l, LoadLevel::Replay { .. }))
    {
        for (i, d) in datasets.iter().enumerate() {
            if !matches!(d.source, DatasetSource::Trace { .. }) {
                cx.err(
                    root.key("load").key("replay"),
                    format!("replays traces' arrival times, but dataset `{}` (datasets[{i}]) is not a trace; give replay levels in a config whose datasets are all `trace:`", d.name),
                );
            }
        }
    }
    if load.search.is_some() && !budgets.constraints().limits_latency() {
        cx.err(
            root.key("load").key("search"),
            "needs a latency budget to find where it breaks: set budgets.ttft_p95_ms, budgets.e2e_p95_ms, or budgets.slo with budgets.slo_attainment",
        );
    }
    if load.search.is_some() {
        for (i, e) in endpoints.iter().enumerate() {
            if e.ec2.is_some() {
                cx.err(
                    root.key("endpoints").index(i).key("ec2"),
                    "a capacity search (load.search) is not yet supported on a launched endpoint; give its load as `rates:` or `concurrency:` levels",
                );
            }
        }
    }

    let output_dir = w
        .output
        .and_then(|o| o.dir)
        .unwrap_or_else(|| "results".into());
    let deploy = deploy(&mut cx, w.deploy);
    if deploy.max_cost_usd.is_some() && !any_ec2 {
        cx.err(
            root.key("deploy").key("max_cost_usd"),
            "no endpoint has an `ec2:` section, so nothing is launched to cost it",
        );
    }
    // One launched instance per endpoint: the agent on it measures that
    // instance over loopback; `harness plan` scales the results to a fleet.
    for (i, e) in endpoints.iter().enumerate() {
        if e.ec2.is_some() && e.instance_count != 1 {
            cx.err(
                root.key("endpoints").index(i).key("instance_count"),
                format!("is {} but an `ec2:` endpoint launches one instance and measures it; for a fleet, run one and let `harness plan --rpm R` size it", e.instance_count),
            );
        }
    }
    // The cost bound prices instances in the pricing region: it must be the
    // region they are launched in.
    let price_region = pricing.region.as_deref().unwrap_or("us-east-1");
    if let Some(r) = deploy
        .region
        .as_deref()
        .filter(|r| any_ec2 && *r != price_region)
    {
        cx.err(
            root.key("deploy").key("region"),
            format!("is `{r}` but prices are looked up in `{price_region}` (pricing.region{}): the cost bound would use another region's prices; set `pricing.region: {r}`", if pricing.region.is_none() { ", by default" } else { "" }),
        );
    }

    if cx.issues.is_empty() {
        Ok(Config {
            name,
            seed,
            endpoints,
            commands,
            datasets,
            load,
            sampling,
            pricing,
            budgets,
            output_dir,
            deploy,
        })
    } else {
        Err(cx.issues)
    }
}

/// `datasets[i].trace`. The file itself is read when the dataset is
/// prepared, where its errors name the file's line and column.
fn trace(cx: &mut Ctx, p: Path, w: WireTrace) -> Option<DatasetSource> {
    use crate::dataset::trace::Format;
    let Some(path) = w.path else {
        cx.err(
            p.key("path"),
            "is required: the trace CSV, e.g. `path: datasets/azure-llm-sample.csv`",
        );
        return None;
    };
    let format = match w.format.as_deref() {
        None => None,
        Some(f) => match Format::parse(f) {
            Some(f) => Some(f),
            None => {
                cx.err(
                    p.key("format"),
                    format!("`{f}` is not a trace format; expected {}", Format::NAMES),
                );
                None
            }
        },
    };
    if w.model.is_some() && format == Some(Format::Azure) {
        cx.err(
            p.key("model"),
            "filters BurstGPT rows by their `Model` column; an Azure trace has no such column",
        );
    }
    let start_s = match w.start.as_deref() {
        None => 0.0,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => {
                cx.err(
                    p.key("start"),
                    format!("`{s}` is not a duration ({e}); write e.g. `0s`, `90s`, `10m`"),
                );
                0.0
            }
        },
    };
    let prompts = match w.prompts {
        None => TracePrompts::Synthetic,
        Some(WirePrompts::Named(n)) if n == "synthetic" => TracePrompts::Synthetic,
        Some(WirePrompts::Named(n)) => {
            cx.err(
                p.key("prompts"),
                format!("`{n}` is not a prompt source; expected `synthetic` or `{{jsonl: {{path: FILE, template: \"...{{input}}...\"}}}}`"),
            );
            TracePrompts::Synthetic
        }
        Some(WirePrompts::Jsonl { jsonl }) => {
            let jp = p.key("prompts").key("jsonl");
            if jsonl.answers_key.is_some() {
                cx.err(
                    jp.key("answers_key"),
                    "does not apply to a trace's prompts: answers are not scored on a trace",
                );
            }
            let template = jsonl.template.unwrap_or_else(|| "{input}".into());
            if let Err(e) = crate::dataset::template::Template::parse(&template) {
                cx.err(jp.key("template"), e);
            }
            match jsonl.path {
                Some(path) => TracePrompts::Jsonl { path, template },
                None => {
                    cx.err(
                        jp.key("path"),
                        "is required: the JSONL file, e.g. `path: datasets/qa-sample.jsonl`",
                    );
                    TracePrompts::Synthetic
                }
            }
        }
    };
    Some(DatasetSource::Trace {
        path,
        format,
        start_s,
        model: w.model,
        prompts,
    })
}

fn length(cx: &mut Ctx, p: Path, w: Option<WireLength>, example: &str) -> Option<Length> {
    let bad = |cx: &mut Ctx, p: Path, m: &str| {
        cx.err(p, format!("{m}; write a token count (`{example}`), `{{uniform: [min, max]}}` or `{{normal: {{mean, std, min, max}}}}`"));
        None
    };
    match w {
        None => bad(cx, p, "is required"),
        Some(WireLength::Fixed(0)) => bad(cx, p, "must be >= 1"),
        Some(WireLength::Fixed(n)) => Some(Length::Fixed(n)),
        Some(WireLength::Dist(WireDist {
            uniform: Some([a, b]),
            normal: None,
        })) if a >= 1 && a <= b => Some(Length::Uniform { min: a, max: b }),
        Some(WireLength::Dist(WireDist {
            uniform: None,
            normal: Some(n),
        })) if n.min >= 1 && n.min <= n.max && n.std >= 0.0 && n.mean.is_finite() => {
            Some(Length::Normal {
                mean: n.mean,
                std: n.std,
                min: n.min,
                max: n.max,
            })
        }
        Some(_) => bad(
            cx,
            p,
            "is not a valid length (one of uniform or normal, 1 <= min <= max, std >= 0)",
        ),
    }
}

fn tokenizer(cx: &mut Ctx, p: Path, w: Option<WireTokenizer>) -> TokenizerSpec {
    let Some(w) = w else {
        return TokenizerSpec::Words;
    };
    match (w.file, w.gguf, w.hf) {
        (Some(f), None, None) => TokenizerSpec::File { path: f.into() },
        (None, Some(g), None) => TokenizerSpec::Gguf { path: g.into() },
        (None, None, Some(h)) => TokenizerSpec::Hf {
            model: h,
            revision: w.revision.unwrap_or_else(|| "main".into()),
        },
        _ => {
            cx.err(
                p,
                "give exactly one of `file: tokenizer.json`, `gguf: model.gguf` or `hf: org/model`",
            );
            TokenizerSpec::Words
        }
    }
}

fn endpoint(cx: &mut Ctx, p: &Path, e: WireEndpoint) -> Option<Endpoint> {
    let before = cx.issues.len();
    let provider = match e.provider {
        Some(pr) => pr,
        None => {
            cx.err(
                p.key("provider"),
                "is required: one of `sim`, `openai`, `sagemaker`, `bedrock`, `command`",
            );
            return None;
        }
    };
    let name = endpoint_name(cx, p, e.name, "g5-xlarge-vllm");
    let instance_count = e.instance_count.unwrap_or(1);
    if instance_count == 0 {
        cx.err(p.key("instance_count"), "must be >= 1");
    }
    if let Some(env) = &e.api_key_env {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.err(p.key("api_key_env"), format!("`{env}` is not an environment variable name; give the variable's name (e.g. `OPENAI_API_KEY`), never the key itself"));
        }
    }
    let mut model = e.model.clone();
    let mut sim = None;
    let (mut sagemaker, mut bedrock) = (None, None);
    let aws = provider.is_aws();
    let provider_name = provider.as_str();
    // Sections that belong to another provider.
    for (key, set, owner) in [
        ("sagemaker", e.sagemaker.is_some(), ProviderKind::Sagemaker),
        ("bedrock", e.bedrock.is_some(), ProviderKind::Bedrock),
        ("command", e.command.is_some(), ProviderKind::Command),
    ] {
        if set && provider != owner {
            cx.err(
                p.key(key),
                format!("only applies to provider `{key}` (this endpoint's is `{provider_name}`)"),
            );
        }
    }
    if aws {
        for (key, set) in [
            ("base_url", e.base_url.is_some()),
            ("api", e.api.is_some()),
            (
                "instance_type",
                provider == ProviderKind::Bedrock && e.instance_type.is_some(),
            ),
            (
                "instance_count",
                provider == ProviderKind::Bedrock && e.instance_count.is_some(),
            ),
            ("api_key_env", e.api_key_env.is_some()),
            ("headers", e.headers.is_some()),
            ("sim", e.sim.is_some()),
            ("extra_body", e.extra_body.is_some()),
        ] {
            if set {
                cx.err(
                    p.key(key),
                    match key {
                        "instance_type" | "instance_count" => "does not apply to provider `bedrock`: a Bedrock model on demand has no instances, and is priced per token (configs/pricing.yml `tokens`, or `pricing.token_prices`)".to_string(),
                        "api" => format!("does not apply to provider `{provider_name}`: the request shape is the service's (Converse; or `sagemaker.format`)"),
                        _ => format!("does not apply to provider `{provider_name}`: it is reached through the AWS SDK, with the AWS credentials (its section has `endpoint_url` and `region`)"),
                    },
                );
            }
        }
        if model.is_none() {
            cx.err(
                p.key("model"),
                match provider {
                    ProviderKind::Bedrock => "is required for provider `bedrock`: the model id or inference profile id, e.g. `us.meta.llama3-1-8b-instruct-v1:0`",
                    _ => "is required for provider `sagemaker`: the model the endpoint serves (a label for reports and pricing)",
                },
            );
        }
    }
    match provider {
        // Validated by `command_endpoint`.
        ProviderKind::Command => {}
        ProviderKind::Sagemaker => {
            sagemaker = sagemaker_section(
                cx,
                p.key("sagemaker"),
                e.sagemaker.as_ref(),
                e.stream.unwrap_or(true),
            );
        }
        ProviderKind::Bedrock => {
            bedrock = Some(bedrock_section(
                cx,
                p.key("bedrock"),
                e.bedrock.clone().unwrap_or_default(),
            ));
        }
        ProviderKind::Openai => {
            match &e.base_url {
                None if e.ec2.is_some() => {}
                Some(_) if e.ec2.is_some() => cx.err(
                    p.key("base_url"),
                    "does not apply with `ec2:` (the harness launches the server and knows its address); remove one of them",
                ),
                None => cx.err(
                    p.key("base_url"),
                    "is required for provider `openai`, e.g. `base_url: http://127.0.0.1:8000/v1` (or give an `ec2:` section to have the harness launch the server)",
                ),
                // The value may hold credentials: never echo it unmasked.
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => cx.err(
                    p.key("base_url"),
                    "must start with http:// or https://, e.g. `base_url: http://127.0.0.1:8000/v1`",
                ),
                Some(u) => match reqwest::Url::parse(u) {
                    Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => {}
                    Ok(_) => cx.err(p.key("base_url"), "has no host; write e.g. `http://127.0.0.1:8000/v1`"),
                    Err(e) => cx.err(
                        p.key("base_url"),
                        format!("is not a valid URL ({e}); write e.g. `http://127.0.0.1:8000/v1`"),
                    ),
                },
            }
            if model.is_none() {
                cx.err(
                    p.key("model"),
                    "is required for provider `openai`: the model name the server expects",
                );
            }
            if e.sim.is_some() {
                cx.err(p.key("sim"), "only applies to provider `sim`");
            }
        }
        ProviderKind::Sim => {
            if e.base_url.is_some() {
                cx.err(
                    p.key("base_url"),
                    "does not apply to provider `sim` (the simulator picks a loopback port)",
                );
            }
            let ws = e.sim.clone().unwrap_or_default();
            let sp = p.key("sim");
            let model_name = model.get_or_insert_with(|| "llama-3.1-8b".into()).clone();
            let profile_name = match ws.profile {
                Some(pn) => pn,
                None => profile::default_profile_name(e.instance_type.as_deref(), &model_name),
            };
            if let Err(msg) = profile::lookup(&profile_name) {
                let at = if e.sim.as_ref().and_then(|s| s.profile.as_ref()).is_some() {
                    sp.key("profile")
                } else {
                    p.key("instance_type")
                };
                cx.err(at, msg);
            }
            for (field, v) in [("ttft_ms", ws.ttft_ms), ("itl_ms", ws.itl_ms)] {
                if let Some(v) = v {
                    if !(v.is_finite() && v >= 0.0) {
                        cx.err(sp.key(field), format!("{v} must be >= 0 milliseconds"));
                    }
                }
            }
            if ws.max_concurrency == Some(0) {
                cx.err(sp.key("max_concurrency"), "must be >= 1");
            }
            let error_rate = ws.error_rate.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&error_rate) {
                cx.err(
                    sp.key("error_rate"),
                    format!("{error_rate} is a fraction and must be within 0..=1"),
                );
            }
            let error_kind = match ws.error_kind.as_deref() {
                None => SimErrorKind::Http500,
                Some(k) => SimErrorKind::parse(k).unwrap_or_else(|| {
                    cx.err(
                        sp.key("error_kind"),
                        format!(
                            "`{k}` is not an error kind; expected one of {}",
                            SimErrorKind::NAMES.map(|n| format!("`{n}`")).join(", ")
                        ),
                    );
                    SimErrorKind::Http500
                }),
            };
            sim = Some(SimSettings {
                profile: profile_name,
                ttft_ms: ws.ttft_ms,
                itl_ms: ws.itl_ms,
                max_concurrency: ws.max_concurrency,
                error_rate,
                error_kind,
                prefix_cache: ws.prefix_cache.unwrap_or(true),
            });
        }
    }
    let tokenizer = tokenizer(cx, p.key("tokenizer"), e.tokenizer.clone());
    for (k, v) in e.headers.iter().flatten() {
        let at = p.key("headers").key(k);
        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            cx.err(
                at,
                format!("`{k}` is not a valid HTTP header name (letters, digits and `-`)"),
            );
        } else if reqwest::header::HeaderValue::from_str(v).is_err() {
            // Never echo the value: header values are often secrets.
            cx.err(at, "the value is not valid in an HTTP header: it holds a line break, a control character or non-ASCII text");
        }
    }
    let extra_body = e.extra_body.clone().unwrap_or_default();
    for k in extra_body.keys() {
        let at = p.key("extra_body").key(k);
        match k.as_str() {
            "model" | "messages" | "prompt" => cx.err(at, format!("`{k}` is set by the harness from the endpoint's `model` and the dataset; remove it from `extra_body`")),
            "stream" | "stream_options" => cx.err(at, format!("`{k}` is set by the harness from the endpoint's `stream`; remove it from `extra_body`")),
            "max_tokens" | "temperature" | "top_p" | "ignore_eos" => cx.err(at, format!("set `sampling.{k}` instead, so that it is hashed and shown with the other sampling settings")),
            _ => {}
        }
    }
    if provider == ProviderKind::Sim && !extra_body.is_empty() {
        cx.err(p.key("extra_body"), "only applies to provider `openai`");
    }
    let ec2 = match (&e.ec2, provider) {
        (None, _) => None,
        (Some(_), ProviderKind::Sim) => {
            cx.err(
                p.key("ec2"),
                "only applies to provider `openai` (the simulator runs in the harness)",
            );
            None
        }
        (Some(_), ProviderKind::Sagemaker | ProviderKind::Bedrock | ProviderKind::Command) => {
            cx.err(
                p.key("ec2"),
                "only applies to provider `openai` (the harness launches OpenAI-compatible servers)",
            );
            None
        }
        (Some(w), ProviderKind::Openai) => ec2(
            cx,
            p,
            e.instance_type.as_deref(),
            e.serving_stack.as_deref(),
            w,
        ),
    };
    if cx.issues.len() > before {
        return None;
    }
    let server_metrics = match e.server_metrics {
        Some(WireServerMetrics::On(false)) => None,
        None | Some(WireServerMetrics::On(true))
            if matches!(provider, ProviderKind::Sagemaker | ProviderKind::Bedrock) =>
        {
            if e.server_metrics.is_some() {
                cx.err(
                    p.key("server_metrics"),
                    "a managed endpoint (SageMaker, Bedrock) serves no Prometheus metrics to scrape",
                );
            }
            None
        }
        None | Some(WireServerMetrics::On(true)) => Some(ServerMetrics {
            url: None,
            interval: Duration::from_secs(1),
        }),
        Some(WireServerMetrics::Settings(w)) => {
            let sp = p.key("server_metrics");
            if let Some(u) = w.url.as_deref() {
                if reqwest::Url::parse(u).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
                {
                    cx.err(
                        sp.key("url"),
                        format!(
                            "`{}` is not an http(s) URL; write e.g. `http://10.0.0.5:8000/metrics`",
                            crate::redact::url(u)
                        ),
                    );
                }
            }
            let interval = cx
                .duration(sp.key("interval"), &w.interval)
                .unwrap_or(Duration::from_secs(1));
            if interval < Duration::from_millis(100) {
                cx.err(sp.key("interval"), "must be at least 100ms");
            }
            Some(ServerMetrics {
                url: w.url,
                interval,
            })
        }
    };
    Some(Endpoint {
        name,
        provider,
        model: model.unwrap_or_default(),
        instance_type: e.instance_type,
        instance_count,
        serving_stack: e.serving_stack,
        api: e.api.unwrap_or(ApiKind::Chat),
        stream: e.stream.unwrap_or(true),
        base_url: e.base_url,
        api_key_env: e.api_key_env,
        headers: e.headers.unwrap_or_default(),
        extra_body,
        sim,
        tokenizer,
        ec2,
        sagemaker,
        bedrock,
        server_metrics,
    })
}

/// An AWS region's shape (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
pub(crate) fn region_ok(r: &str) -> bool {
    r.split('-').count() >= 3
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `region`, `endpoint_url` and `max_retries` of an AWS provider's section.
fn aws_common(
    cx: &mut Ctx,
    p: &Path,
    region: &Option<String>,
    endpoint_url: &Option<String>,
    max_retries: Option<u32>,
    service: &str,
) -> u32 {
    if let Some(r) = region {
        if !region_ok(r) {
            cx.err(
                p.key("region"),
                format!("`{r}` is not an AWS region; write e.g. `us-east-1`"),
            );
        }
    }
    if let Some(u) = endpoint_url {
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || reqwest::Url::parse(u).is_err()
        {
            cx.err(
                p.key("endpoint_url"),
                format!("must be an http:// or https:// URL, e.g. `https://{service}.us-east-1.amazonaws.com`"),
            );
        }
    }
    let n = max_retries.unwrap_or(2);
    if n > 10 {
        cx.err(
            p.key("max_retries"),
            format!("{n} retries would hide a throttled endpoint: use 0..=10"),
        );
    }
    n
}

fn sagemaker_section(
    cx: &mut Ctx,
    p: Path,
    w: Option<&WireSageMaker>,
    stream: bool,
) -> Option<SageMakerSettings> {
    let Some(w) = w else {
        cx.err(
            p,
            "is required for provider `sagemaker`: at least `endpoint_name`, e.g. `sagemaker: { endpoint_name: my-llm }`",
        );
        return None;
    };
    let before = cx.issues.len();
    let max_retries = aws_common(
        cx,
        &p,
        &w.region,
        &w.endpoint_url,
        w.max_retries,
        "runtime.sagemaker",
    );
    let endpoint_name = match &w.endpoint_name {
        // SageMaker's own rule: letters, digits and hyphens, up to 63.
        Some(n)
            if !n.is_empty()
                && n.len() <= 63
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !n.starts_with('-')
                && !n.ends_with('-') =>
        {
            n.clone()
        }
        Some(n) => {
            cx.err(
                p.key("endpoint_name"),
                format!(
                    "`{n}` is not a SageMaker endpoint name (up to 63 letters, digits and hyphens, starting and ending with a letter or digit)"
                ),
            );
            String::new()
        }
        None => {
            cx.err(
                p.key("endpoint_name"),
                "is required: the SageMaker endpoint's name",
            );
            String::new()
        }
    };
    let custom_only = [
        ("request_template", w.request_template.is_some()),
        ("response_text", w.response_text.is_some()),
        ("stream_text", w.stream_text.is_some()),
    ];
    let format = match w.format.as_deref() {
        None | Some("tgi") | Some("openai") => {
            for (key, set) in custom_only {
                if set {
                    cx.err(p.key(key), "only applies to `format: custom`");
                }
            }
            if w.format.as_deref() == Some("openai") {
                SageMakerFormat::Openai
            } else {
                SageMakerFormat::Tgi
            }
        }
        Some("custom") => {
            let template = match &w.request_template {
                None => {
                    cx.err(p.key("request_template"), "is required with `format: custom`: the request body, JSON, with `{{prompt}}` and `{{max_tokens}}` in place, e.g. `'{\"prompt\": {{prompt}}, \"max_len\": {{max_tokens}}}'`");
                    String::new()
                }
                Some(t) => {
                    let probe = t
                        .replace("{{prompt}}", "\"x\"")
                        .replace("{{max_tokens}}", "1");
                    let unknown = probe.split("{{").nth(1).map(|rest| {
                        rest.split_once("}}")
                            .map(|(name, _)| name)
                            .unwrap_or(rest)
                            .to_string()
                    });
                    if let Some(name) = unknown {
                        cx.err(p.key("request_template"), format!("has `{{{{{name}}}}}`, which is not filled in: only `{{{{prompt}}}}` and `{{{{max_tokens}}}}` are (write other settings into the template as they are)"));
                    } else if !t.contains("{{prompt}}") {
                        cx.err(
                            p.key("request_template"),
                            "has no `{{prompt}}`: where does the prompt go?",
                        );
                    } else if let Err(e) = serde_json::from_str::<serde_json::Value>(&probe) {
                        cx.err(p.key("request_template"), format!("is not JSON once `{{{{prompt}}}}` and `{{{{max_tokens}}}}` are filled in ({e}); `{{{{prompt}}}}` becomes a JSON string with its quotes, so do not quote it"));
                    }
                    t.clone()
                }
            };
            let pointer = |cx: &mut Ctx, key: &str, v: &Option<String>, required: bool| match v {
                Some(ptr) if ptr.is_empty() || ptr.starts_with('/') => Some(ptr.clone()),
                Some(ptr) => {
                    cx.err(
                        p.key(key),
                        format!("`{ptr}` is not a JSON pointer; write e.g. `/0/generated_text`"),
                    );
                    None
                }
                None if required => {
                    cx.err(p.key(key), if key == "stream_text" {
                        "is required with `format: custom` and `stream: true` (the default): a JSON pointer to the text in each streamed line, e.g. `/token/text`"
                    } else {
                        "is required with `format: custom` and `stream: false`: a JSON pointer to the generated text, e.g. `/0/generated_text`"
                    });
                    None
                }
                None => None,
            };
            let response_text = pointer(cx, "response_text", &w.response_text, !stream);
            let stream_text = pointer(cx, "stream_text", &w.stream_text, stream);
            SageMakerFormat::Custom {
                request_template: template,
                response_text: response_text.unwrap_or_default(),
                stream_text,
            }
        }
        Some(f) => {
            cx.err(
                p.key("format"),
                format!("`{f}` is not a payload format: `tgi` (default), `openai` or `custom`"),
            );
            SageMakerFormat::Tgi
        }
    };
    if cx.issues.len() > before {
        return None;
    }
    Some(SageMakerSettings {
        endpoint_name,
        inference_component: w.inference_component.clone(),
        target_variant: w.target_variant.clone(),
        custom_attributes: w.custom_attributes.clone(),
        format,
        region: w.region.clone(),
        endpoint_url: w.endpoint_url.clone(),
        max_retries,
    })
}

fn bedrock_section(cx: &mut Ctx, p: Path, w: WireBedrock) -> BedrockSettings {
    let max_retries = aws_common(
        cx,
        &p,
        &w.region,
        &w.endpoint_url,
        w.max_retries,
        "bedrock-runtime",
    );
    BedrockSettings {
        region: w.region,
        endpoint_url: w.endpoint_url,
        max_retries,
        additional_fields: w.additional_fields.unwrap_or_default(),
    }
}

/// The serving stacks the harness can launch (`serving_stack` with `ec2:`).
pub const SERVING_STACKS: [&str; 5] = ["vllm", "tgi", "sglang", "llama-cpp", "custom"];

fn ec2(
    cx: &mut Ctx,
    p: &Path,
    instance_type: Option<&str>,
    serving_stack: Option<&str>,
    w: &WireEc2,
) -> Option<Ec2Settings> {
    let before = cx.issues.len();
    let at = p.key("ec2");
    match instance_type {
        None => cx.err(
            p.key("instance_type"),
            "is required with `ec2:`: the EC2 instance type to launch, e.g. `g5.2xlarge`",
        ),
        Some(t)
            if !t.contains('.')
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
        {
            cx.err(
                p.key("instance_type"),
                format!("`{t}` is not an EC2 instance type; write e.g. `g5.2xlarge`"),
            )
        }
        Some(_) => {}
    }
    match serving_stack {
        None => cx.err(p.key("serving_stack"), format!("is required with `ec2:`: one of {}", SERVING_STACKS.map(|s| format!("`{s}`")).join(", "))),
        Some(s) if !SERVING_STACKS.contains(&s) => cx.err(
            p.key("serving_stack"),
            format!("`{s}` is not a stack the harness can launch: one of {}", SERVING_STACKS.map(|s| format!("`{s}`")).join(", ")),
        ),
        Some("custom") if w.command.is_none() || w.image.is_none() => cx.err(
            at.key("command"),
            "`serving_stack: custom` needs both `ec2.image` and `ec2.command` (the command that serves an OpenAI-compatible API on `ec2.port`)",
        ),
        Some(_) => {}
    }
    if w.command.is_some() && serving_stack != Some("custom") {
        cx.err(at.key("command"), "only applies to `serving_stack: custom`; the other stacks are started with `model`, `tensor_parallel`, `max_model_len` and `extra_args`");
    }
    if let (Some(t), Some(stack), None) = (instance_type, serving_stack, &w.image) {
        let acc = crate::deploy::ec2::Accelerator::of(t);
        if stack != "custom"
            && SERVING_STACKS.contains(&stack)
            && crate::deploy::ec2::default_image(stack, acc).is_none()
        {
            cx.err(at.key("image"), format!("is required here: the harness pins no `{stack}` image for {t} ({}); give one that serves {stack} there", acc.words()));
        }
    }
    let ami = match w.ami.as_deref() {
        None | Some("auto") => None,
        Some(a)
            if a.starts_with("ami-")
                && a.len() > 4
                && a[4..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Some(a.to_string())
        }
        Some(a) => {
            cx.err(at.key("ami"), format!("`{a}` is not an AMI id; write `ami-0123456789abcdef0`, or `auto` for the AWS Deep Learning AMI of the region"));
            None
        }
    };
    let tensor_parallel = w.tensor_parallel.unwrap_or(1);
    if tensor_parallel == 0 {
        cx.err(
            at.key("tensor_parallel"),
            "must be >= 1 (the number of GPUs one server spans)",
        );
    }
    if w.max_model_len == Some(0) {
        cx.err(at.key("max_model_len"), "must be >= 1 (tokens)");
    }
    if let Some(env) = &w.hf_token_env {
        if looks_like_token(env) {
            // Never echo it: it is probably the token.
            cx.err(at.key("hf_token_env"), "holds what looks like a token; give the name of the variable that holds it (e.g. `HF_TOKEN`), never the token itself");
        } else if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.err(at.key("hf_token_env"), format!("`{env}` is not an environment variable name; give the variable's name (e.g. `HF_TOKEN`), never the token itself"));
        }
    }
    for (i, a) in w.extra_args.iter().flatten().enumerate() {
        if a.contains(['\n', '\r', '\0']) {
            cx.err(
                at.key("extra_args").index(i),
                "holds a line break or NUL; give one argument per list item",
            );
        }
    }
    // A secret on the server's command line would sit in the instance's user
    // data (readable by anyone who can describe the instance) and in the
    // bundle's config: refuse it.
    let words: Vec<(Path, &str)> = w
        .extra_args
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, a)| (at.key("extra_args").index(i), a.as_str()))
        .chain(
            w.command
                .iter()
                .flat_map(|c| c.split_whitespace().map(|t| (at.key("command"), t))),
        )
        .collect();
    for (wp, word) in words {
        let flag = word.split('=').next().unwrap_or("");
        if word.starts_with('-') && crate::redact::is_secret_key(flag.trim_start_matches('-')) {
            cx.err(wp, format!("`{flag}` passes a secret on the server's command line, which would be written into the instance's user data; the harness delivers the Hugging Face token itself (`ec2.hf_token_env`)"));
        } else if looks_like_token(word) {
            cx.err(wp, "looks like a token (hf_…, sk-…, ghp_…, AKIA…): secrets never go on the server's command line, which would be written into the instance's user data");
        }
    }
    let spot = match w.market.as_deref() {
        None | Some("on-demand") => false,
        Some("spot") => true,
        Some(m) => {
            cx.err(
                at.key("market"),
                format!("`{m}` is not a market: `on-demand` or `spot`"),
            );
            false
        }
    };
    if let Some(cr) = &w.capacity_reservation {
        let hex = cr.strip_prefix("cr-").unwrap_or("");
        if !(8..=17).contains(&hex.len()) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            cx.err(
                at.key("capacity_reservation"),
                format!(
                    "`{cr}` is not a capacity reservation id; write e.g. `cr-0123456789abcdef0`"
                ),
            );
        } else if spot {
            cx.err(
                at.key("capacity_reservation"),
                "a capacity reservation holds on-demand capacity; remove `market: spot`",
            );
        }
    }
    let volume_gib = w.volume_gib.unwrap_or(200);
    if !(8..=16384).contains(&volume_gib) {
        cx.err(
            at.key("volume_gib"),
            format!("{volume_gib} is outside 8..=16384 (GiB of the root volume)"),
        );
    }
    if let Some(id) = &w.instance_id {
        let hex = id.strip_prefix("i-").unwrap_or("");
        if !matches!(hex.len(), 8 | 17) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            cx.err(
                at.key("instance_id"),
                format!("`{id}` is not an EC2 instance id; write e.g. `i-0123456789abcdef0`"),
            );
        }
        // What only a launch sets, on an instance that already exists.
        for (key, set) in [
            ("ami", w.ami.as_deref().is_some_and(|a| a != "auto")),
            ("market", w.market.is_some()),
            ("capacity_reservation", w.capacity_reservation.is_some()),
            ("volume_gib", w.volume_gib.is_some()),
        ] {
            if set {
                cx.err(
                    at.key(key),
                    format!("applies to an instance the harness launches; with `instance_id` the instance exists already (remove `{key}`)"),
                );
            }
        }
    }
    let port = w.port.unwrap_or(8000);
    if port < 1024 {
        cx.err(
            at.key("port"),
            format!("{port} is a privileged port; use 1024..=65535"),
        );
    }
    if cx.issues.len() > before {
        return None;
    }
    Some(Ec2Settings {
        ami,
        image: w.image.clone(),
        command: w.command.clone(),
        tensor_parallel,
        max_model_len: w.max_model_len,
        extra_args: w.extra_args.clone().unwrap_or_default(),
        hf_token_env: w.hf_token_env.clone(),
        spot,
        capacity_reservation: w.capacity_reservation.clone(),
        port,
        volume_gib,
        instance_id: w.instance_id.clone(),
    })
}

fn deploy(cx: &mut Ctx, w: Option<WireDeploy>) -> Deploy {
    let p = Path::root().key("deploy");
    let w = w.unwrap_or_default();
    let d = Deploy::default();
    if let Some(r) = &w.region {
        let ok = r.split('-').count() >= 3
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            cx.err(
                p.key("region"),
                format!("`{r}` is not an AWS region; write e.g. `us-east-1`"),
            );
        }
    }
    if let Some(m) = w.max_cost_usd {
        if !(m.is_finite() && m > 0.0) {
            cx.err(
                p.key("max_cost_usd"),
                format!("{m} is not a budget: give dollars above zero, e.g. `max_cost_usd: 50`"),
            );
        }
    }
    let max_duration = cx
        .duration(p.key("max_duration"), &w.max_duration)
        .unwrap_or(d.max_duration);
    if max_duration > std::time::Duration::from_secs(7 * 24 * 3600) {
        cx.err(
            p.key("max_duration"),
            "is over 7 days: an instance left that long is a leak, not a benchmark; split the run",
        );
    } else if max_duration < std::time::Duration::from_secs(5 * 60) {
        cx.err(
            p.key("max_duration"),
            "is under 5 minutes: too short to boot, load a model and benchmark",
        );
    }
    let parallel = w.parallel.unwrap_or(d.parallel);
    if parallel == 0 {
        cx.err(
            p.key("parallel"),
            "must be >= 1 (instances brought up at once)",
        );
    }
    let client = match w.client.as_deref() {
        None | Some("instance") => ClientSite::Instance,
        Some("local") => ClientSite::Local,
        Some(c) => {
            cx.err(p.key("client"), format!("`{c}` is not a client site: `instance` (the default: the client runs on the instance, over loopback) or `local`"));
            ClientSite::Instance
        }
    };
    match (&w.allowed_cidr, client) {
        (None, ClientSite::Local) => cx.err(p.key("allowed_cidr"), "is required with `client: local`: the only CIDR that may reach the serving port, e.g. `203.0.113.7/32`"),
        (Some(_), ClientSite::Instance) => cx.err(p.key("allowed_cidr"), "only applies to `client: local`; with the client on the instance no port is opened"),
        (Some(c), ClientSite::Local) => {
                        match c.parse::<ipnet_like::Cidr>() {
                Err(()) => cx.err(p.key("allowed_cidr"), format!("`{c}` is not a CIDR; write e.g. `203.0.113.7/32`")),
                Ok(ipnet_like::Cidr { v6, len, .. }) if (!v6 && len < 16) || (v6 && len < 32) => cx.err(
                    p.key("allowed_cidr"),
                    format!("`{c}` opens the port to {}; name your own address or network, e.g. `203.0.113.7/32` (at least /16 for IPv4, /32 for IPv6)", if len == 0 { "everyone".to_string() } else { format!("2^{} addresses", if v6 { 128 - len } else { 32 - len }) }),
                ),
                Ok(ipnet_like::Cidr { network, host_bits: true, .. }) => cx.err(
                    p.key("allowed_cidr"),
                    format!("`{c}` has host bits set: the network it names is `{network}`; write that (or the address alone, as /32)"),
                ),
                Ok(_) => {}
            }
        }
        (None, ClientSite::Instance) => {}
    }
    if let Some(n) = &w.instance_profile {
        // IAM's own rule for instance profile names.
        if n.is_empty()
            || n.len() > 128
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        {
            cx.err(p.key("instance_profile"), format!("`{n}` is not an instance profile name (up to 128 of letters, digits and `+=,.@_-`); give the name, not the ARN"));
        }
    }
    if let Some(b) = &w.bucket {
        if let Err(e) = crate::s3::parse_url(b) {
            cx.err(
                p.key("bucket"),
                format!("{e}; the run's objects go under s3://BUCKET/PREFIX/runs/<run id>/"),
            );
        }
    }
    // Default: 30 minutes, or half of a shorter max_duration.
    let startup_timeout = cx
        .duration(p.key("startup_timeout"), &w.startup_timeout)
        .unwrap_or(d.startup_timeout.min(max_duration / 2));
    if startup_timeout >= max_duration {
        cx.err(
            p.key("startup_timeout"),
            format!(
                "is {}, not under deploy.max_duration ({}): no time would be left to benchmark",
                humantime::format_duration(startup_timeout),
                humantime::format_duration(max_duration)
            ),
        );
    }
    Deploy {
        region: w.region,
        max_cost_usd: w.max_cost_usd,
        max_duration,
        parallel,
        client,
        allowed_cidr: w.allowed_cidr,
        bucket: w.bucket,
        startup_timeout,
        agent_binary: w.agent_binary,
        instance_profile: w.instance_profile,
    }
}

/// Just enough CIDR parsing for `deploy.allowed_cidr` (IPv4 or IPv6 / prefix).
mod ipnet_like {
    pub struct Cidr {
        pub v6: bool,
        pub len: u8,
        /// The network itself (`203.0.113.0/24` for `203.0.113.7/24`).
        pub network: String,
        /// The address has bits set past the prefix.
        pub host_bits: bool,
    }
    impl std::str::FromStr for Cidr {
        type Err = ();
        fn from_str(s: &str) -> Result<Cidr, ()> {
            let (addr, len) = s.split_once('/').ok_or(())?;
            let len: u8 = len.parse().map_err(|_| ())?;
            match addr.parse::<std::net::IpAddr>().map_err(|_| ())? {
                std::net::IpAddr::V4(a) if len <= 32 => {
                    let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
                    let n = std::net::Ipv4Addr::from(u32::from(a) & mask);
                    Ok(Cidr {
                        v6: false,
                        len,
                        network: format!("{n}/{len}"),
                        host_bits: n != a,
                    })
                }
                std::net::IpAddr::V6(a) if len <= 128 => {
                    let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
                    let n = std::net::Ipv6Addr::from(u128::from(a) & mask);
                    Ok(Cidr {
                        v6: true,
                        len,
                        network: format!("{n}/{len}"),
                        host_bits: n != a,
                    })
                }
                _ => Err(()),
            }
        }
    }
}

/// Whether `s` looks like a credential rather than a name: a Hugging Face,
/// OpenAI, GitHub or AWS access key prefix followed by a long run.
fn looks_like_token(s: &str) -> bool {
    ["hf_", "sk-", "ghp_", "github_pat_", "AKIA", "ASIA"]
        .iter()
        .any(|p| s.starts_with(p) && s.len() >= p.len() + 16)
}

fn load(cx: &mut Ctx, w: WireLoad) -> Load {
    let p = Path::root().key("load");
    let arrival = match w.arrival.as_deref() {
        None | Some("constant") => Arrival::Constant,
        Some("poisson") => Arrival::Poisson,
        Some(other) => {
            cx.err(
                p.key("arrival"),
                format!("`{other}` is not an arrival process; expected `constant` or `poisson`"),
            );
            Arrival::Constant
        }
    };
    let mut levels = vec![];
    for (i, c) in w.concurrency.iter().flatten().enumerate() {
        if *c == 0 {
            cx.err(p.key("concurrency").index(i), "concurrency must be >= 1");
        } else {
            levels.push(LoadLevel::Closed { concurrency: *c });
        }
    }
    for (i, r) in w.rates.iter().flatten().enumerate() {
        if !(r.is_finite() && *r > 0.0) {
            cx.err(
                p.key("rates").index(i),
                format!("{r} is not a request rate; rates are requests per second > 0"),
            );
        } else {
            levels.push(LoadLevel::Open { rate: *r, arrival });
        }
    }
    for (i, k) in w.replay.iter().flatten().enumerate() {
        if !(k.is_finite() && *k > 0.0) {
            cx.err(
                p.key("replay").index(i),
                format!(
                    "{k} is not a speed-up; replay speeds are > 0 (1: as traced, 2: twice as fast)"
                ),
            );
        } else {
            levels.push(LoadLevel::Replay { speed: *k });
        }
    }
    let search = w.search.map(|ws| search(cx, &p, ws, arrival));
    let searches_rates = search.is_some_and(|s| s.spec.axis == harness_core::search::Axis::Rate);
    if w.concurrency.is_none() && w.rates.is_none() && w.replay.is_none() {
        if search.is_none() {
            levels.push(LoadLevel::Closed { concurrency: 1 });
        }
    } else if levels.is_empty() && cx.issues.is_empty() {
        cx.err(p.clone(), "has no load level: give `concurrency: [1, 8]` (closed loop), `rates: [2.0, 5.0]` (open loop, req/s) and/or `replay: [1]` (a trace's own arrivals)");
    }
    if w.arrival.is_some() && w.rates.is_none() && !searches_rates {
        cx.err(p.key("arrival"), "only applies to open-loop `rates` (or `search: {rate: …}`); closed-loop `concurrency` levels have no arrival process");
    }
    let duration = cx.duration(p.key("duration"), &w.duration);
    let requests = w.requests;
    if requests == Some(0) {
        cx.err(p.key("requests"), "must be >= 1");
    }
    // A trace is replayed whole unless capped; other levels send 100 (the
    // plan gives them their default when replay levels share the config).
    let requests = if requests.is_none() && duration.is_none() && w.replay.is_none() {
        Some(100)
    } else {
        requests
    };
    let ww = w.warmup.unwrap_or_default();
    let warmup_duration = cx.duration(p.key("warmup").key("duration"), &ww.duration);
    let timeout = cx
        .duration(p.key("timeout"), &w.timeout)
        .unwrap_or(Duration::from_secs(120));
    let max_in_flight = w.max_in_flight.unwrap_or(10_000);
    if max_in_flight == 0 {
        cx.err(p.key("max_in_flight"), "must be >= 1");
    }
    Load {
        levels,
        requests,
        duration,
        warmup_requests: ww.requests.unwrap_or(0),
        warmup_duration,
        timeout,
        max_in_flight,
        search,
    }
}

fn search(cx: &mut Ctx, load: &Path, w: WireSearch, arrival: Arrival) -> SearchSettings {
    use harness_core::search::{Axis, SearchSpec};
    let p = load.key("search");
    let (axis, start) = match (w.rate, w.concurrency) {
        (Some(r), None) => {
            if !(r.is_finite() && r > 0.0) {
                cx.err(
                    p.key("rate"),
                    format!("{r} is not a request rate; the first rate probed, req/s > 0"),
                );
            }
            (Axis::Rate, r)
        }
        (None, Some(c)) => {
            if c == 0 {
                cx.err(
                    p.key("concurrency"),
                    "the first concurrency probed must be >= 1",
                );
            }
            (Axis::Concurrency, c as f64)
        }
        (Some(_), Some(_)) => {
            cx.err(
                p.clone(),
                "searches either `rate` (open loop) or `concurrency` (closed loop), not both",
            );
            (Axis::Rate, 1.0)
        }
        (None, None) => {
            cx.err(p.clone(), "says what to search and where to start: `rate: 1` (open loop, from 1 req/s) or `concurrency: 1` (closed loop)");
            (Axis::Rate, 1.0)
        }
    };
    let precision = w.precision.unwrap_or(0.05);
    if !(precision > 0.0 && precision < 1.0) {
        cx.err(p.key("precision"), format!("{precision} is the relative width of the final interval and must be within (0, 1) (0.05 = 5%)"));
    }
    let max_probes = w.max_probes.unwrap_or(16);
    if max_probes == 0 {
        cx.err(p.key("max_probes"), "must be >= 1");
    }
    let floor: f64 = if axis == Axis::Concurrency { 1.0 } else { 0.01 };
    let min = w.min.unwrap_or(floor.min(start));
    if !(min.is_finite() && min > 0.0 && min <= start) {
        cx.err(
            p.key("min"),
            format!("{min} must be > 0 and at most the start ({start})"),
        );
    }
    if let Some(max) = w.max.filter(|m| !(m.is_finite() && *m >= start)) {
        cx.err(
            p.key("max"),
            format!("{max} must be at least the start ({start})"),
        );
    }
    SearchSettings {
        spec: SearchSpec {
            axis,
            start,
            precision,
            max_probes,
            min,
            max: w.max,
        },
        arrival,
        early_stop: w.early_stop.unwrap_or(true),
    }
}

/// An endpoint with provider `command`: its `command:` section, and the
/// endpoint keys that apply to a program (name, instance type and count).
fn command_endpoint(cx: &mut Ctx, p: &Path, e: WireEndpoint) -> Option<CommandEndpoint> {
    let before = cx.issues.len();
    let name = endpoint_name(cx, p, e.name.clone(), "llama-cpp-offline");
    for (key, set) in [
        ("model", e.model.is_some()),
        ("serving_stack", e.serving_stack.is_some()),
        ("api", e.api.is_some()),
        ("stream", e.stream.is_some()),
        ("base_url", e.base_url.is_some()),
        ("api_key_env", e.api_key_env.is_some()),
        ("headers", e.headers.is_some()),
        ("extra_body", e.extra_body.is_some()),
        ("sim", e.sim.is_some()),
        ("tokenizer", e.tokenizer.is_some()),
        ("ec2", e.ec2.is_some()),
        ("sagemaker", e.sagemaker.is_some()),
        ("bedrock", e.bedrock.is_some()),
        ("server_metrics", e.server_metrics.is_some()),
    ] {
        if set {
            cx.err(p.key(key), "does not apply to provider `command`: it runs a program, not requests (a command endpoint takes `name`, `instance_type`, `instance_count` and `command`)");
        }
    }
    let instance_count = e.instance_count.unwrap_or(1);
    if instance_count == 0 {
        cx.err(p.key("instance_count"), "must be >= 1");
    }
    let Some(c) = e.command else {
        cx.err(
            p.key("command"),
            "is required for provider `command`: at least `run: <command line>` and `metrics:`",
        );
        return None;
    };
    let cp = p.key("command");
    let run = c.run.unwrap_or_default();
    let template = match shlex::split(&run) {
        Some(w) if !w.is_empty() => w,
        Some(_) => {
            cx.err(
                cp.key("run"),
                "is required: the command line, e.g. `run: python3 bench.py --batch {batch}`",
            );
            vec![]
        }
        None => {
            cx.err(
                cp.key("run"),
                format!("`{run}` does not split into words: a quote is not closed"),
            );
            vec![]
        }
    };
    let mut placeholders = BTreeSet::new();
    for w in &template {
        match harness_core::command::placeholders(w) {
            Ok(ps) => placeholders.extend(ps),
            Err(m) => cx.err(cp.key("run"), m),
        }
    }
    let arg_name_ok = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    // An argument map's names, and no empty list (it would leave no cell).
    let check_args = |cx: &mut Ctx, at: Path, args: &harness_core::command::Args| {
        for (k, v) in args {
            if !arg_name_ok(k) {
                cx.err(
                    at.key(k),
                    "is not an argument name: use letters, digits, `_`, `-`, `.`",
                );
            }
            if matches!(v, serde_json::Value::Array(a) if a.is_empty()) {
                cx.err(at.key(k), "is an empty list, which leaves no cell to run");
            }
        }
    };
    let defaults = c.defaults.unwrap_or_default();
    check_args(cx, cp.key("defaults"), &defaults);
    let mut scenarios = vec![];
    let wire_scenarios = c.scenarios.unwrap_or_else(|| {
        vec![WireScenario {
            name: Some("default".into()),
            arguments: None,
        }]
    });
    if wire_scenarios.is_empty() {
        cx.err(
            cp.key("scenarios"),
            "lists no scenario; remove the key for one scenario of the defaults, or add one",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, s) in wire_scenarios.into_iter().enumerate() {
        let sp = cp.key("scenarios").index(i);
        let Some(sname) = required_name(cx, sp.key("name"), s.name, "e.g. `name: full-finetuning`")
        else {
            continue;
        };
        if !seen.insert(sname.clone()) {
            cx.err(
                sp.key("name"),
                format!("`{sname}` names two scenarios; scenario names must be unique"),
            );
        }
        let args = s.arguments.unwrap_or_default();
        check_args(cx, sp.key("arguments"), &args);
        scenarios.push(harness_core::command::Scenario { name: sname, args });
    }
    let matrix = c.matrix.unwrap_or_default();
    for (k, vs) in &matrix {
        if !arg_name_ok(k) {
            cx.err(
                cp.key("matrix").key(k),
                "is not an argument name: use letters, digits, `_`, `-`, `.`",
            );
        }
        if vs.is_empty() {
            cx.err(cp.key("matrix").key(k), "is an empty list, which leaves no cell to run; list its values, e.g. `num_gpus: [1, 2]`");
        }
    }
    // Every placeholder names an argument of every cell (or a builtin).
    if cx.issues.len() == before {
        match harness_core::command::expand(&defaults, &scenarios, &matrix) {
            Err(m) => cx.err(cp.key("matrix"), m),
            Ok(cells) => {
                for ph in &placeholders {
                    if harness_core::command::BUILTINS.contains(&ph.as_str()) || ph == "args" {
                        continue;
                    }
                    if let Some(cell) = cells.iter().find(|c| !c.args.contains_key(ph)) {
                        cx.err(cp.key("run"), format!("`{{{ph}}}` is not an argument of scenario `{}`: set it in the scenario, in `defaults` or in `matrix` (builtins: `{{run_dir}}`, `{{run}}`, and the word `{{args}}`)", cell.scenario));
                        break;
                    }
                }
            }
        }
    }
    let warmup_runs = c.warmup_runs.unwrap_or(0);
    let runs = c.runs.unwrap_or(3);
    if runs == 0 {
        cx.err(cp.key("runs"), "must be >= 1: the measured runs per cell");
    }
    let timeout = cx
        .duration(cp.key("timeout"), &c.timeout)
        .unwrap_or(Duration::from_secs(30 * 60));
    let sample_interval = cx
        .duration(cp.key("sample_interval"), &c.sample_interval)
        .unwrap_or(Duration::from_millis(500));
    if sample_interval < Duration::from_millis(50) {
        cx.err(cp.key("sample_interval"), "must be at least `50ms`: sampling the process tree costs CPU the command would otherwise have");
    }
    let env_name_ok = |k: &str| {
        !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let env = c.env.unwrap_or_default();
    for (k, v) in &env {
        if !env_name_ok(k) {
            cx.err(
                cp.key("env").key(k),
                "is not an environment variable name: use letters, digits and `_`",
            );
        }
        if crate::redact::is_secret_key(k) {
            cx.err(cp.key("env").key(k), format!("looks like a secret, and `env` values are stored with the results: list `{k}` under `secret_env` and export it instead"));
        }
        let _ = v;
    }
    let secret_env = c.secret_env.unwrap_or_default();
    for (i, k) in secret_env.iter().enumerate() {
        if !env_name_ok(k) {
            cx.err(cp.key("secret_env").index(i), format!("`{k}` is not an environment variable name; give the variable's name (e.g. `HF_TOKEN`), never its value"));
        }
    }
    let mut metrics = BTreeMap::new();
    let wire_metrics = c.metrics.unwrap_or_default();
    if wire_metrics.is_empty() {
        cx.err(cp.key("metrics"), "is required: the metrics the command reports, e.g. `metrics: { train_runtime: { unit: s } }` (read from JSON lines on its stdout)");
    }
    for (k, m) in wire_metrics {
        let mp = cp.key("metrics").key(&k);
        if !arg_name_ok(&k) {
            cx.err(
                mp.clone(),
                "is not a metric name: use letters, digits, `_`, `-`, `.`",
            );
        }
        let Some(unit) = m.unit.filter(|u| !u.trim().is_empty()) else {
            cx.err(
                mp.key("unit"),
                "is required: the metric's unit, stored with it (e.g. `s`, `tokens/s`, `tokens`)",
            );
            continue;
        };
        let key_set = m.field.is_some();
        let key = m.field.unwrap_or_else(|| k.clone());
        let source = match (m.json, m.regex) {
            (Some(_), Some(_)) => {
                cx.err(mp.clone(), "has both `json` and `regex`; give one source");
                continue;
            }
            (_, Some(pattern)) => {
                if key_set {
                    cx.err(
                        mp.key("key"),
                        "applies to `json` sources; a regex metric is its first capture group",
                    );
                }
                match regex::Regex::new(&pattern) {
                    Ok(r) if r.captures_len() == 2 => MetricSource::Regex { pattern },
                    Ok(r) if r.captures_len() > 2 => {
                        cx.err(mp.key("regex"), format!("`{pattern}` has {} capture groups; give exactly one, around the number (write other groups as `(?:...)`)", r.captures_len() - 1));
                        continue;
                    }
                    Ok(_) => {
                        cx.err(mp.key("regex"), format!("`{pattern}` has no capture group: put the number in parentheses, e.g. `tokens/s: ([0-9.]+)`"));
                        continue;
                    }
                    Err(e) => {
                        cx.err(
                            mp.key("regex"),
                            format!("`{pattern}` is not a regular expression: {e}"),
                        );
                        continue;
                    }
                }
            }
            (None, None) => MetricSource::Stdout { key },
            (Some(j), None) if j == "stdout" => MetricSource::Stdout { key },
            (Some(path), None) => {
                if let Err(e) = harness_core::command::placeholders(&path) {
                    cx.err(mp.key("json"), e);
                }
                for ph in harness_core::command::placeholders(&path).unwrap_or_default() {
                    if !harness_core::command::BUILTINS.contains(&ph.as_str()) {
                        cx.err(mp.key("json"), format!("`{{{ph}}}`: a metrics file's path takes `{{run_dir}}` and `{{run}}` only"));
                    }
                }
                MetricSource::File { path, key }
            }
        };
        metrics.insert(
            k,
            CommandMetric {
                unit,
                source,
                list: m.list.unwrap_or(false),
            },
        );
    }
    let inputs = c.inputs.unwrap_or_default();
    for (i, path) in inputs.iter().enumerate() {
        // Read when the cells are planned (each is hashed into the cell
        // ids); a missing one is named here, with its line.
        if let Err(e) = std::fs::File::open(path) {
            cx.err(
                cp.key("inputs").index(i),
                format!("`{path}` cannot be read ({e}); an input is a file the command reads, hashed into each cell's id, with a path relative to the directory the harness runs in"),
            );
        }
    }
    (cx.issues.len() == before).then_some(CommandEndpoint {
        name,
        instance_type: e.instance_type,
        instance_count,
        run,
        template,
        inputs,
        defaults,
        scenarios,
        matrix,
        warmup_runs,
        runs,
        timeout,
        env,
        secret_env,
        sample_interval,
        metrics,
        config_path: p.clone(),
    })
}
