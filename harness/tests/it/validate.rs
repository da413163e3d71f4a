//! `harness validate` reports every error with file, line, column, field path
//! and what would be valid, and exits non-zero.

use super::common::*;

fn validate(args: &[&str]) -> (bool, String, String) {
    let o = harness().arg("validate").args(args).output().unwrap();
    (o.status.success(), stdout(&o), stderr(&o))
}

fn cfg(name: &str) -> String {
    format!("{}/tests/configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_error_in_one_report() {
    let path = cfg("many-errors.yml");
    let (ok, _, err) = validate(&[&path]);
    assert!(!ok);
    let expected = [
        // unknown key, at the key's position, listing valid keys
        "many-errors.yml:6:5: endpoints[0].colour: unknown key `colour`; valid keys here: `name`, `provider`",
        // missing required field for the provider
        "many-errors.yml:3:9: endpoints[0].base_url: is required for provider `openai`",
        // bad enum value with the valid values
        "many-errors.yml:8:15: endpoints[1].provider: unknown value `bedrockish`, expected one of `sim`, `openai`, `sagemaker`, `bedrock`",
        // range errors on nested fields
        "many-errors.yml:11:47: endpoints[2].sim.error_rate: 1.5 is a fraction and must be within 0..=1",
        // wrong type
        "many-errors.yml:14:33: datasets[0].synthetic.prompt_tokens: is not a length: write a token count (`512`), `{uniform: [min, max]}` or `{normal: {mean, std, min, max}}`",
        "many-errors.yml:14:54: datasets[0].synthetic.output_tokens: must be >= 1",
        "many-errors.yml:16:20: load.concurrency[1]: concurrency must be >= 1",
        "many-errors.yml:17:13: load.duration: `5 parsecs` is not a duration",
        "many-errors.yml:18:12: load.arrival: only applies to open-loop `rates`",
        "many-errors.yml:20:16: sampling.temperature: 3 is outside 0.0..=2.0",
    ];
    for e in expected {
        assert!(err.contains(e), "missing `{e}` in:\n{err}");
    }
    assert!(err.starts_with("10 errors in config:"), "{err}");
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        dir.path(),
        "syntax",
        "load:\n  concurrency: [1, 2\nname: x\n",
    );
    let (ok, _, err) = validate(&[p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("syntax.yml:3:") && err.contains("invalid YAML"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(dir.path(), "dup", "seed: 1\nseed: 2\n");
    let (ok, _, err) = validate(&[p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("dup.yml:2:1: invalid YAML: duplicate key `seed`"),
        "{err}"
    );
}

#[test]
fn api_keys_belong_in_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        dir.path(),
        "key",
        "endpoints:\n  - name: x\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key: sk-123\n",
    );
    let (ok, _, err) = validate(&[p.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("key.yml:6:5: endpoints[0].api_key: unknown key `api_key` (put the key in an environment variable and name it with `api_key_env`)"), "{err}");
    assert!(
        !err.contains("sk-123"),
        "the secret must not be echoed: {err}"
    );
}

#[test]
fn overrides_are_validated_and_named() {
    let path = format!("{}/../configs/local.yml", env!("CARGO_MANIFEST_DIR"));
    let (ok, _, err) = validate(&[&path, "--set", "load.concurrency=[2, -1]"]);
    assert!(!ok);
    assert!(
        err.contains("(--set load.concurrency=[2, -1]): load.concurrency[1]:"),
        "{err}"
    );
    let (ok, _, err) = validate(&[&path, "--set", "load.concurency=[2]"]);
    assert!(!ok);
    assert!(err.contains("unknown key `concurency`"), "{err}");
    let (ok, _, err) = validate(&[&path, "--set", "nonsense"]);
    assert!(!ok);
    assert!(err.contains("is not `path=value`"), "{err}");
    let (ok, out, _) = validate(&[&path, "--set", "load.concurrency=[2]"]);
    assert!(ok);
    assert!(out.contains("OK, 4 experiment(s)"), "{out}");
}

#[test]
fn shipped_configs_are_valid() {
    // Paths in configs are relative to the current directory: the repo root.
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(format!("{root}/configs")).unwrap() {
        let p = entry.unwrap().path();
        // pricing.yml is a price book, checked by its own loader test.
        if p.extension().is_some_and(|e| e == "yml") && !p.ends_with("pricing.yml") {
            let o = harness()
                .current_dir(&root)
                .arg("validate")
                .arg(&p)
                .output()
                .unwrap();
            let err = stderr(&o);
            // The one allowed failure: the llama.cpp model is linked by
            // scripts/llama-server.sh, which a fresh clone has not run yet.
            let model_missing = err.contains("models/SmolLM2-135M-Instruct.Q4_1.gguf")
                && err.contains("cannot open");
            assert!(
                o.status.success() || model_missing,
                "{}: {err}",
                p.display()
            );
            assert!(!err.contains("in config"), "{}: {err}", p.display());
        }
    }
}

#[test]
fn show_settings_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        dir.path(),
        "headers",
        "endpoints:\n  - name: x\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key_env: MY_KEY\n    headers: { X-Api-Token: hunter2 }\n",
    );
    let o = harness()
        .env("MY_KEY", "sk-live-123456")
        .args(["validate", p.to_str().unwrap(), "--show-settings"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("X-Api-Token: \"****\""), "{out}");
    assert!(!out.contains("sk-live-123456"), "{out}");
    assert!(out.contains("api_key_env: \"MY_KEY\""), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn keys_and_header_values_are_checked_before_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        dir.path(),
        "hdr",
        "endpoints:\n  - name: x\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key_env: HARNESS_TEST_UNSET_KEY\n    headers: { \"X-Bad\": \"line\\nbreak-secret\", \"Bad Name\": v }\n",
    );
    // A header HTTP cannot carry is a config error with its line, naming the
    // header but never its value.
    let o = harness().arg("validate").arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("hdr.yml:7:")
            && err.contains("endpoints[0].headers.X-Bad: the value is not valid in an HTTP header"),
        "{err}"
    );
    assert!(
        err.contains("endpoints[0].headers.Bad Name: `Bad Name` is not a valid HTTP header name"),
        "{err}"
    );
    assert!(!err.contains("break-secret"), "{err}");
    // A key variable that is not set: validate and run say which, before anything starts.
    let p = write_config(
        dir.path(),
        "key",
        "endpoints:\n  - name: x\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key_env: HARNESS_TEST_UNSET_KEY\n",
    );
    let out = dir.path().join("k.duckdb");
    for args in [
        vec!["validate"],
        vec!["run", "--out", out.to_str().unwrap()],
    ] {
        let cmd = args[0];
        let o = harness()
            .env_remove("HARNESS_TEST_UNSET_KEY")
            .args(&args)
            .arg(&p)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains(
                "key.yml:6:18: endpoints[0].api_key_env: $HARNESS_TEST_UNSET_KEY is not set"
            ),
            "{cmd}: {err}"
        );
        assert!(
            !dir.path().join("k.duckdb").exists(),
            "{cmd}: no bundle, no run row"
        );
    }
    // A key with a line break cannot go in a header: named, never shown.
    let o = harness()
        .env("HARNESS_TEST_UNSET_KEY", "sk-abc\nxyz")
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the key in $HARNESS_TEST_UNSET_KEY holds a line break"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("sk-abc"));
}

#[test]
fn a_malformed_base_url_is_a_config_error_that_never_echoes_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(
        dir.path(),
        "url",
        "endpoints:\n  - { name: a, provider: openai, base_url: \"ftp://user:pw123secret@h/v1?api-key=QSECRET\", model: m }\n  - { name: b, provider: openai, base_url: \"http://127.0.0.1:notaport/v1\", model: m }\n  - { name: c, provider: openai, base_url: \"http:///v1\", model: m }\n",
    );
    let o = harness()
        .args([
            "validate",
            p.to_str().unwrap(),
            "--set",
            "endpoints[2].base_url=ftp://u:SETSECRET@h/v1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("url.yml:2:")
            && err.contains("endpoints[0].base_url: must start with http:// or https://"),
        "{err}"
    );
    assert!(
        err.contains("url.yml:3:")
            && err.contains("endpoints[1].base_url: is not a valid URL (invalid port number)"),
        "{err}"
    );
    assert!(
        err.contains("(--set endpoints[2].base_url=ftp://****@h/v1)"),
        "{err}"
    );
    for s in ["pw123secret", "QSECRET", "SETSECRET"] {
        assert!(!err.contains(s), "{s} in {err}");
    }
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::process::Stdio;
    let path = format!("{}/../configs/local.yml", env!("CARGO_MANIFEST_DIR"));
    let mut child = harness()
        .args(["validate", &path, "--show-settings"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head -0`
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(141));
}

/// Shared-prefix settings: each mistake with its place and what is valid;
/// a prefix must leave every prompt, the shortest included, a token of its
/// own (prompts are never lengthened to fit it).
#[test]
fn shared_prefix_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, synthetic: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "name: p\nendpoints:\n  - {{ name: s, provider: sim }}\ndatasets:\n  - name: d\n    synthetic: {synthetic}\nload: {{ concurrency: [1], requests: 4 }}\n"
            ),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    for (synthetic, want) in [
        (
            "{ prompt_tokens: {uniform: [32, 256]}, output_tokens: 4, shared_prefix: { tokens: 64, prefixes: 2 } }",
            "datasets[0].synthetic.shared_prefix.tokens: 64 must be smaller than the smallest prompt (32 tokens)",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix_tokens: 8, shared_prefix: { tokens: 64 } }",
            "datasets[0].synthetic.shared_prefix: give `shared_prefix_tokens: N` (one prefix for every request) or `shared_prefix: {tokens, prefixes, requests_per_prefix, cold_baseline}`, not both",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: { tokens: 64, prefixes: 0 } }",
            "datasets[0].synthetic.shared_prefix.prefixes: must be >= 1",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: { tokens: 64, requests_per_prefix: 0 } }",
            "leave it out: never renewed",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: { cold_baseline: true } }",
            "datasets[0].synthetic.shared_prefix.tokens: is required and >= 1",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: { tokens: 64, colour: red } }",
            "unknown key `colour`",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix_tokens: 64, cold_baseline: true }",
            "unknown key `cold_baseline` (it belongs in `shared_prefix: {tokens, prefixes, requests_per_prefix, cold_baseline}`)",
        ),
        // Rust's type names never reach the author.
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: { tokens: 64, prefixes: -1 } }",
            "datasets[0].synthetic.shared_prefix.prefixes: invalid value: integer `-1`, expected a whole number >= 0",
        ),
        (
            "{ prompt_tokens: 128, output_tokens: 4, shared_prefix: 64 }",
            "datasets[0].synthetic.shared_prefix: wrong type: found integer `64`, expected a mapping of keys",
        ),
    ] {
        let path = write("p.yml", synthetic);
        let (ok, _, err) = validate(&[&path]);
        assert!(!ok, "{synthetic}");
        assert!(err.contains("p.yml:6:"), "{synthetic}: no place in {err}");
        assert!(err.contains(want), "{synthetic}: missing `{want}` in:\n{err}");
    }
    let path = write(
        "ok.yml",
        "{ prompt_tokens: {uniform: [65, 256]}, output_tokens: 4, shared_prefix: { tokens: 64, prefixes: 2, cold_baseline: true } }",
    );
    let (ok, out, err) = validate(&[&path]);
    assert!(ok, "{out}{err}");
}
