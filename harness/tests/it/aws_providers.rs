//! SageMaker and Bedrock endpoints through the harness's real AWS SDK
//! clients (`aws-sdk-sagemakerruntime`, `aws-sdk-bedrockruntime`), against
//! the simulator's SageMaker-runtime and Bedrock-runtime faces on loopback:
//! an endpoint-URL override and static test credentials. The SDK decodes the
//! simulator's event-stream frames, so it judges their fidelity; the timing
//! is checked against the simulator's ground truth (a fixed TTFT and gap).

use super::common::*;
use harness_core::Metric;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A secret access key that must never be written anywhere.
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/SimulatorSecretKey0123";

/// `harness sim` on a free loopback port, stopped on drop.
struct Sim {
    child: Child,
    url: String,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = harness()
            .args(["sim", "--listen", &listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the simulator did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Sim {
            child,
            url: format!("http://{listen}"),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `harness ARGS` with static test credentials and nothing else of AWS.
fn aws_harness(dir: &Path, args: &[&str]) -> Command {
    let mut c = harness();
    c.args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATORTEST")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

fn run_aws(dir: &Path, yaml: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let cfg = write_config(dir, "aws", yaml);
    let out = dir.join("aws.duckdb");
    let mut args = vec![
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = aws_harness(dir, &args).output().unwrap();
    let log = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(3),
        "{log}"
    );
    assert!(!log.contains(SECRET), "the secret key was printed");
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the secret key is in the bundle"
    );
    (out, log)
}

fn endpoints(url: &str, stream: bool) -> String {
    format!(
        r#"
endpoints:
  - name: bedrock
    provider: bedrock
    model: us.meta.llama3-1-8b-instruct-v1:0
    stream: {stream}
    bedrock: {{ region: us-east-1, endpoint_url: "{url}", additional_fields: {{ ignore_eos: true }} }}
  - name: sm-tgi
    provider: sagemaker
    model: llama-3.1-8b
    stream: {stream}
    sagemaker: {{ endpoint_name: my-llm, region: us-east-1, endpoint_url: "{url}" }}
  - name: sm-openai
    provider: sagemaker
    model: llama-3.1-8b
    stream: {stream}
    sagemaker: {{ endpoint_name: my-llm, format: openai, region: us-east-1, endpoint_url: "{url}" }}
"#
    )
}

const LOAD: &str = r#"
datasets:
  - name: tiny
    synthetic: { prompt_tokens: 32, output_tokens: 16 }
load: { concurrency: [1], requests: 20, warmup: { requests: 2 } }
sampling: { ignore_eos: true }
"#;

/// (endpoint, ok, first_token_ns null, prompt usage = client, output usage,
/// output client, retries) per request.
type Row = (String, bool, bool, bool, Option<i64>, Option<i64>, i32);

fn rows(bundle: &Path) -> Vec<Row> {
    let c = duckdb::Connection::open(bundle).unwrap();
    let mut st = c
        .prepare(
            "SELECT e.endpoint, r.status = 'ok', r.first_token_ns IS NULL, \
             r.prompt_tokens_usage IS NOT DISTINCT FROM r.prompt_tokens_client, \
             r.output_tokens_usage, r.output_tokens_client, r.retries \
             FROM requests r JOIN experiments e USING (experiment_id) ORDER BY e.endpoint, r.seq",
        )
        .unwrap();
    let v = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    v
}

#[test]
fn streamed_ttft_and_gaps_match_the_simulators_truth_through_the_aws_sdks() {
    let sim = Sim::start(&["--ttft-ms", "50", "--itl-ms", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let (bundle, log) = run_aws(
        dir.path(),
        &format!("name: aws\n{}{LOAD}", endpoints(&sim.url, true)),
        &[],
    );
    let exps = experiments(&bundle);
    assert_eq!(exps.len(), 3, "{log}");
    for e in &exps {
        let s = &e.summary;
        assert_eq!(
            s.requests_failed, 0,
            "{}: {:?}\n{log}",
            e.label, s.errors_by_class
        );
        let ttft = s.dist(Metric::Ttft).unwrap();
        let itl = s.dist(Metric::Itl).unwrap();
        eprintln!(
            "{}: TTFT p50 {:.2} p99 {:.2}; ITL mean {:.3} p50 {:.2}",
            e.label, ttft.p50, ttft.p99, itl.mean, itl.p50
        );
        assert!(
            ttft.p50 >= 49.9 && ttft.p50 <= 55.0,
            "{}: TTFT p50 {}",
            e.label,
            ttft.p50
        );
        assert!(
            (itl.p50 - 10.0).abs() <= 1.0,
            "{}: ITL p50 {}",
            e.label,
            itl.p50
        );
        assert!(
            (itl.mean - 10.0).abs() <= 0.5,
            "{}: ITL mean {}",
            e.label,
            itl.mean
        );
        if !e.label.starts_with("sm-tgi") {
            // 16 tokens each (ignore_eos), every gap timed.
            assert_eq!(itl.count, 15 * s.requests_ok, "{}", e.label);
        }
    }
    // Usage round-trips, apart from the client's counts: Bedrock's
    // inputTokens/outputTokens, TGI's details.generated_tokens, OpenAI's usage.
    for (ep, ok, not_streamed, prompt_same, usage_out, client_out, retries) in rows(&bundle) {
        assert!(ok && !not_streamed && retries == 0, "{ep}");
        assert_eq!(usage_out, client_out, "{ep}: output tokens");
        if ep != "sm-tgi" {
            assert!(prompt_same, "{ep}: prompt tokens");
            assert_eq!(usage_out, Some(16), "{ep}");
        }
    }
    let c = duckdb::Connection::open(&bundle).unwrap();
    let providers: Vec<String> = c
        .prepare("SELECT DISTINCT provider FROM experiments ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(providers, ["bedrock", "sagemaker"]);
}

#[test]
fn whole_responses_are_read_and_the_prompt_is_never_counted_as_output() {
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let (bundle, log) = run_aws(
        dir.path(),
        &format!("name: aws\n{}{LOAD}", endpoints(&sim.url, false)),
        &[],
    );
    let r = rows(&bundle);
    assert_eq!(r.len(), 66, "{log}");
    for (ep, ok, not_streamed, _, usage_out, client_out, _) in r {
        // No first token to time; e2e and the server's usage only.
        assert!(ok && not_streamed, "{ep}\n{log}");
        assert_eq!(usage_out, client_out, "{ep}: output tokens");
    }
}

#[test]
fn throttling_is_classed_retried_within_bounds_and_kept_out_of_latency() {
    let sim = Sim::start(&[
        "--ttft-ms",
        "50",
        "--itl-ms",
        "1",
        "--error-rate",
        "0.5",
        "--error-kind",
        "http_429",
        "--seed",
        "3",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"name: aws
endpoints:
  - name: no-retry
    provider: bedrock
    model: meta.llama3-1-8b-instruct-v1:0
    bedrock: {{ region: us-east-1, endpoint_url: "{0}", max_retries: 0 }}
  - name: retry
    provider: bedrock
    model: meta.llama3-1-8b-instruct-v1:0
    bedrock: {{ region: us-east-1, endpoint_url: "{0}", max_retries: 4 }}
datasets:
  - name: tiny
    synthetic: {{ prompt_tokens: 32, output_tokens: 4 }}
load: {{ concurrency: [1], requests: 40 }}
"#,
        sim.url
    );
    let (bundle, log) = run_aws(dir.path(), &yaml, &["--no-preflight"]);
    let c = duckdb::Connection::open(&bundle).unwrap();
    let q = |sql: &str| -> (i64, i64, i64, i64) {
        c.query_row(sql, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
    };
    // Without retries: about half fail, every one as throttled.
    let (failed, throttled, named, max_retries) = q(
        "SELECT count(*) FILTER (r.status = 'error'), count(*) FILTER (error_class = 'http_429'), \
         count(*) FILTER (error_message LIKE 'HTTP 429: ThrottlingException: %'), max(retries) \
         FROM requests r JOIN experiments e USING (experiment_id) WHERE e.endpoint = 'no-retry'",
    );
    assert!((8..=32).contains(&failed), "{failed}\n{log}");
    assert_eq!((throttled, named, max_retries), (failed, failed, 0));
    // With up to 4 retries: (nearly) all succeed, some after retries, none
    // after more than 4; a failure has used all 4.
    let (failed, retried, over, failed_short) = q(
        "SELECT count(*) FILTER (r.status = 'error'), count(*) FILTER (retries > 0), \
         count(*) FILTER (retries > 4), count(*) FILTER (r.status = 'error' AND retries < 4) \
         FROM requests r JOIN experiments e USING (experiment_id) WHERE e.endpoint = 'retry'",
    );
    assert!(failed <= 3 && retried >= 5, "{failed} {retried}\n{log}");
    assert_eq!((over, failed_short), (0, 0));
    // A retried request's latency is its last attempt's (about the 50 ms
    // TTFT); the backoff (100 ms and more) shows as lag.
    let (n, slow_ttft, small_lag, _) = q(
        "SELECT count(*), count(*) FILTER ((first_token_ns - sent_ns) / 1e6 > 70), \
         count(*) FILTER ((sent_ns - scheduled_ns) / 1e6 < 95), 0 \
         FROM requests r JOIN experiments e USING (experiment_id) \
         WHERE e.endpoint = 'retry' AND retries > 0 AND r.status = 'ok'",
    );
    assert!(n >= 3, "{n}");
    assert_eq!((slow_ttft, small_lag), (0, 0), "{n} retried requests");
}

#[test]
fn a_stream_cut_mid_way_is_recorded_as_an_error() {
    let sim = Sim::start(&[
        "--ttft-ms",
        "5",
        "--itl-ms",
        "1",
        "--error-rate",
        "1",
        "--error-kind",
        "mid_stream",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (bundle, log) = run_aws(
        dir.path(),
        &format!(
            "name: aws\n{}\ndatasets:\n  - name: tiny\n    synthetic: {{ prompt_tokens: 32, output_tokens: 16 }}\nload: {{ concurrency: [1], requests: 4 }}\nsampling: {{ ignore_eos: true }}\n",
            endpoints(&sim.url, true)
        ),
        &["--no-preflight"],
    );
    let c = duckdb::Connection::open(&bundle).unwrap();
    let (n, cut): (i64, i64) = c
        .query_row(
            "SELECT count(*), count(*) FILTER (error_class = 'incomplete_stream' AND error_message LIKE '%cut%') FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, cut), (12, 12), "{log}");
}

#[test]
fn without_aws_credentials_the_run_stops_before_any_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "aws",
        &format!("name: aws\n{}{LOAD}", endpoints("http://127.0.0.1:9", true)),
    );
    let out = dir.path().join("aws.duckdb");
    let o = aws_harness(
        dir.path(),
        &["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()],
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no AWS credentials for the SageMaker and Bedrock endpoints"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "a bundle was written");
}

#[test]
fn compare_yml_runs_bedrock_sagemaker_and_self_hosted_into_one_bundle() {
    let sim = Sim::start(&["--ttft-ms", "5", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compare.duckdb");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let sets = [
        format!("endpoints[0].bedrock.endpoint_url={}", sim.url),
        format!("endpoints[1].sagemaker.endpoint_url={}", sim.url),
        format!("endpoints[2].base_url={}/v1", sim.url),
        "load.requests=6".into(),
        "datasets[0].synthetic.output_tokens=8".into(),
    ];
    let mut args = vec![
        "run".to_string(),
        "-q".into(),
        "configs/compare.yml".into(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ];
    for s in &sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = aws_harness(dir.path(), &args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let c = duckdb::Connection::open(&out).unwrap();
    let got: Vec<(String, String, i64, bool)> = c
        .prepare(
            "SELECT e.provider, e.status, s.requests_ok, s.usd_per_10k_requests IS NOT NULL \
             FROM experiments e JOIN summaries s USING (experiment_id) ORDER BY e.ordinal",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let providers: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        providers,
        [
            "bedrock",
            "bedrock",
            "sagemaker",
            "sagemaker",
            "openai",
            "openai"
        ]
    );
    assert!(got.iter().all(|g| g.1 == "complete" && g.2 == 6), "{got:?}");
    // Bedrock is priced per token, the self-hosted server per instance hour;
    // the SageMaker instance has no price in the catalogue (said, not guessed).
    assert_eq!(
        got.iter().map(|g| g.3).collect::<Vec<_>>(),
        [true, true, false, false, true, true]
    );
}

#[test]
fn aws_sections_are_validated_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "bad",
        "endpoints:\n  - name: a\n    provider: sagemaker\n    model: m\n  - name: b\n    provider: bedrock\n    model: x\n    base_url: http://h/v1\n    bedrock: { region: nowhere, max_retries: 50 }\n  - name: c\n    provider: sagemaker\n    model: m\n    sagemaker: { endpoint_name: bad_name!, format: custom, request_template: '{\"p\": \"{{prompt}}\"}' }\n  - name: d\n    provider: openai\n    model: m\n    base_url: http://h/v1\n    bedrock: {}\n  - name: e\n    provider: bedrock\n    model: x\n    instance_type: g5.2xlarge\n    api: completions\n  - name: f\n    provider: sagemaker\n    model: m\n    sagemaker: { endpoint_name: -lead, format: custom, request_template: '{\"p\": {{prompt}}, \"t\": {{temperature}}}', response_text: /x }\n",
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    let se = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    for want in [
        "bad.yml:2:9: endpoints[0].sagemaker: is required for provider `sagemaker`",
        "bad.yml:8:15: endpoints[1].base_url: does not apply to provider `bedrock`",
        "endpoints[1].bedrock.region: `nowhere` is not an AWS region",
        "endpoints[1].bedrock.max_retries: 50 retries would hide a throttled endpoint",
        "endpoints[2].sagemaker.endpoint_name: `bad_name!` is not a SageMaker endpoint name",
        "endpoints[2].sagemaker.request_template: is not JSON once",
        "endpoints[2].sagemaker.stream_text: is required with `format: custom` and `stream: true`",
        "endpoints[3].bedrock: only applies to provider `bedrock` (this endpoint's is `openai`)",
        "endpoints[4].instance_type: does not apply to provider `bedrock`: a Bedrock model on demand has no instances",
        "endpoints[4].api: does not apply to provider `bedrock`",
        "endpoints[5].sagemaker.endpoint_name: `-lead` is not a SageMaker endpoint name",
        "endpoints[5].sagemaker.request_template: has `{{temperature}}`, which is not filled in",
        // Streamed by default: the pointer into each line is the one needed.
        "endpoints[5].sagemaker.stream_text: is required with `format: custom` and `stream: true`",
    ] {
        assert!(se.contains(want), "missing `{want}` in:\n{se}");
    }
}

#[test]
fn the_region_an_endpoint_is_reached_in_is_part_of_its_experiment_id() {
    let sim = Sim::start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "aws",
        &format!(
            "name: aws\nendpoints:\n  - name: br\n    provider: bedrock\n    model: meta.llama3-1-8b-instruct-v1:0\n    bedrock: {{ endpoint_url: \"{}\" }}\ndatasets:\n  - name: tiny\n    synthetic: {{ prompt_tokens: 8, output_tokens: 4 }}\nload: {{ concurrency: [1], requests: 2 }}\n",
            sim.url
        ),
    );
    let out = dir.path().join("aws.duckdb");
    for region in ["us-west-2", "eu-west-1"] {
        let o = aws_harness(
            dir.path(),
            &[
                "run",
                "-q",
                cfg.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--region",
                region,
            ],
        )
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            !stdout(&o).contains("already in the bundle"),
            "{}",
            stdout(&o)
        );
    }
    assert_eq!(experiments(&out).len(), 2);
    let o = aws_harness(
        dir.path(),
        &[
            "run",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--region",
            "mars",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--region `mars` is not an AWS region"),
        "{}",
        stderr(&o)
    );
}
