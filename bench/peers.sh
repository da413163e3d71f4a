#!/usr/bin/env bash
# Side by side: the harness, guidellm and aiperf (both from PyPI) against the
# same simulator, in one run, on the same workload (32-token prompts, 16
# output tokens, TTFT 50 ms, 10 ms between tokens, closed loop at
# concurrency 1, 32 and 256). The simulator writes its ground truth
# (`harness sim --truth-log`); each tool's TTFT and chunk-gap percentiles are
# compared with it, and with each other as a ratio of errors. Nothing here
# asserts. Client and simulator share this machine's cores.
#
#   bench/peers.sh               # 3 runs of each point (~10 minutes)
#   BENCH_RUNS=1 bench/peers.sh
#
# The peers install into $HARNESS_CACHE/peers (a Python venv, about 6.5 GB:
# guidellm pulls in torch). Offline, they need a tokenizer to synthesise
# prompts: bench/peer-tokenizer.py writes one over the simulator's words, in
# a Hugging Face cache layout (aiperf loads only from a cache or the Hub).
set -euo pipefail
name=peers
source "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-3}

peers="$HARNESS_CACHE/peers"
venv="$peers/venv"
if [ ! -x "$venv/bin/guidellm" ] || [ ! -x "$venv/bin/aiperf" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q guidellm==0.8.1 aiperf==0.13.0
fi
snap="$peers/hf/hub/models--local--simwords/snapshots/0000000000000000000000000000000000000001"
if [ ! -f "$snap/tokenizer.json" ]; then
  "$venv/bin/python" "$root/bench/peer-tokenizer.py" "$snap" >/dev/null
  mkdir -p "$peers/hf/hub/models--local--simwords/refs"
  printf 0000000000000000000000000000000000000001 > "$peers/hf/hub/models--local--simwords/refs/main"
fi
export HF_HOME="$peers/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1


# One tool at one concurrency: prints the JSON line of bench/peers.py plus
# the tool's CPU seconds (user + system, its whole process tree).
one() { # tool, concurrency, requests, tag
  local t=$1 c=$2 n=$3 tag=$4 res
  start_sim --ttft-ms 50 --itl-ms 10 --truth-log "$out/truth-$tag.jsonl"
  case $t in
    harness)
      cat > "$out/$tag.yml" <<YAML
name: peers
endpoints:
  - name: sim
    provider: openai
    base_url: http://127.0.0.1:$port/v1
    model: m
    server_metrics: false
datasets:
  - name: d
    synthetic: { prompt_tokens: 32, output_tokens: 16 }
load: { concurrency: [$c], requests: $n }
sampling: { ignore_eos: true }
YAML
      /usr/bin/time -f "%U %S" -o "$out/$tag.time" "$bin" run -q --no-preflight "$out/$tag.yml" --out "$out/$tag.duckdb" >/dev/null
      "$bin" show --json "$out/$tag.duckdb" > "$out/$tag.json"
      res="$out/$tag.json";;
    guidellm)
      /usr/bin/time -f "%U %S" -o "$out/$tag.time" "$venv/bin/guidellm" run \
        --backend "kind=openai_http,target=http://127.0.0.1:$port,model=$snap" \
        --profile "kind=concurrent,streams=$c" --constraint "kind=max_requests,count=$n" \
        --data kind=synthetic_text,prompt_tokens=32,output_tokens=16 \
        --output "kind=json,path=$out/$tag.json" --disable-console >/dev/null 2>"$out/$tag.log"
      res="$out/$tag.json";;
    aiperf)
      # aiperf leaves memory-mapped files in its temporary directory: keep them here.
      mkdir -p "$out/tmp"
      TMPDIR="$out/tmp" /usr/bin/time -f "%U %S" -o "$out/$tag.time" "$venv/bin/aiperf" profile --model m --tokenizer local/simwords \
        --url "http://127.0.0.1:$port" --endpoint-type chat --streaming --concurrency "$c" --request-count "$n" \
        --synthetic-input-tokens-mean 32 --synthetic-input-tokens-stddev 0 \
        --output-tokens-mean 16 --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
        --artifact-dir "$out/$tag" --ui-type none >"$out/$tag.log" 2>&1
      res="$out/$tag/profile_export_aiperf.json";;
  esac
  stop_sim
  python3 "$root/bench/peers.py" "$t" "$res" "$out/truth-$tag.jsonl" |
    python3 -c "import json,sys; d=json.loads(sys.stdin.read()); u,s=open('$out/$tag.time').read().split()[-2:]; d['cpu_ms_per_request']=(float(u)+float(s))*1e3/$n; d['c']=$c; print(json.dumps(d))"
}

echo "peers side by side — $(nproc) cores, $(date -u +%Y-%m-%d), $runs run(s) per point, client and simulator sharing the cores"
for c in 1 32 256; do
  n=$(( c == 1 ? 100 : c * 8 ))
  for r in $(seq 1 "$runs"); do
    for t in harness guidellm aiperf; do
      one "$t" "$c" "$n" "$t-c$c-r$r" >> "$out/results.jsonl"
    done
  done
done

python3 - "$out/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = sorted(xs); m = statistics.median(xs)
    return m, xs[0], xs[-1]
def fmt(t):
    m, lo, hi = t
    return f"{m:+.2f} ({lo:+.2f}..{hi:+.2f})"
print()
print("Error against the simulator's truth, ms: median of the runs (range). Truth is the simulator's own")
print("receive-to-first-chunk and chunk-to-chunk times; the client's numbers include loopback and parsing.")
keys = [("err_ttft_p50", "TTFT p50"), ("err_ttft_p99", "TTFT p99"), ("err_gap_p50", "gap p50"), ("err_gap_p99", "gap p99")]
by = {}
for r in rows:
    by.setdefault((r["c"], r["tool"]), []).append(r)
for c in sorted({k[0] for k in by}):
    print(f"\nconcurrency {c}")
    print(f"  {'tool':9} " + " ".join(f"{n:>22}" for _, n in keys) + f" {'CPU ms/req':>12} {'req/s':>8}")
    base = {k: abs(med([r[k] for r in by[(c, 'harness')]])[0]) for k, _ in keys}
    for t in ("harness", "guidellm", "aiperf"):
        rs = by.get((c, t), [])
        if not rs:
            continue
        cells = " ".join(f"{fmt(med([r[k] for r in rs])):>22}" for k, _ in keys)
        cpu = med([r["cpu_ms_per_request"] for r in rs])[0]
        rps = med([r["req_s"] for r in rs])[0]
        print(f"  {t:9} {cells} {cpu:>12.2f} {rps:>8.1f}")
    for t in ("guidellm", "aiperf"):
        rs = by.get((c, t), [])
        if not rs:
            continue
        ratios = []
        for k, n in keys:
            e = abs(med([r[k] for r in rs])[0])
            ratios.append(f"{n} {e / base[k]:.1f}x" if base[k] > 0.05 else f"{n} {e:.2f} vs {base[k]:.2f} ms")
        cpu = med([r["cpu_ms_per_request"] for r in rs])[0] / med([r["cpu_ms_per_request"] for r in by[(c, 'harness')]])[0]
        print(f"  {t} / harness: " + ", ".join(ratios) + f", CPU {cpu:.0f}x")
gap_note = {r["tool"]: r["gap"] for r in rows}
print("\ngap: " + "; ".join(f"{t}: {g}" for t, g in gap_note.items()))
PY
