#!/usr/bin/env bash
# Side by side: the harness, guidellm and aiperf (both from PyPI) against the
# same simulator, in one run, on the same workloads (32-token prompts, 16
# output tokens). The simulator writes its ground truth (`harness sim
# --truth-log`), and every figure is read from it the same way for each tool.
# Nothing here asserts. Client and simulator share this machine's cores.
#
#  1. accuracy: TTFT 50 ms, 10 ms between tokens, closed loop at concurrency
#     1, 32 and 256; each tool's TTFT and chunk-gap percentiles minus the
#     truth's, and the ratio of the errors;
#  2. open loop: constant arrivals at 100 to 4,000 req/s, zero model time;
#     the rate the simulator received and the arrivals' lateness against the
#     schedule (bench/peers.py arrivals), per tool;
#  3. throughput: closed loop at concurrency 256, zero model time, 5,000
#     requests; requests the simulator served per second.
# Each run also gives the tool's CPU per request (user + system of its whole
# process tree, start-up included) and its peak memory (PSS summed over its
# process tree, bench/treemem.py).
#
#   bench/peers.sh                  # 3 runs of each point (~30 minutes)
#   BENCH_RUNS=1 bench/peers.sh
#   BENCH_ONLY=2 bench/peers.sh     # one section
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


# One tool, one workload: prints a JSON line with the tool's figures (bench/peers.py
# on its result for closed loop, `arrivals` on the truth for open loop), its CPU per
# request and its peak memory. A run is cut off after 300 s (figures from the truth).
one() { # tool, load (c=N or r=R), requests, tag, ttft ms, itl ms
  local t=$1 load=$2 n=$3 tag=$4 ttft=$5 itl=$6 res hload gprof aload
  case $load in
    c=*) hload="concurrency: [${load#c=}]"; gprof="kind=concurrent,streams=${load#c=}"; aload=(--concurrency "${load#c=}");;
    r=*) hload="rates: [${load#r=}], max_in_flight: 20000"; gprof="kind=constant,rate=${load#r=}"; aload=(--request-rate "${load#r=}" --arrival-pattern constant);;
  esac
  start_sim --ttft-ms "$ttft" --itl-ms "$itl" --truth-log "$out/truth-$tag.jsonl"
  local wrap=(timeout 300 python3 "$root/bench/treemem.py" "$out/$tag.mem" -- /usr/bin/time -f "%U %S" -o "$out/$tag.time")
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
load: { $hload, requests: $n }
sampling: { ignore_eos: true }
YAML
      "${wrap[@]}" "$bin" run -q --no-preflight "$out/$tag.yml" --out "$out/$tag.duckdb" >/dev/null 2>"$out/$tag.log" || true
      "$bin" show --json "$out/$tag.duckdb" > "$out/$tag.json" || true
      res="$out/$tag.json";;
    guidellm)
      "${wrap[@]}" "$venv/bin/guidellm" run \
        --backend "kind=openai_http,target=http://127.0.0.1:$port,model=$snap" \
        --profile "$gprof" --constraint "kind=max_requests,count=$n" \
        --data kind=synthetic_text,prompt_tokens=32,output_tokens=16 \
        --output "kind=json,path=$out/$tag.json" --disable-console >/dev/null 2>"$out/$tag.log" || true
      res="$out/$tag.json";;
    aiperf)
      # aiperf leaves memory-mapped files in its temporary directory: keep them here.
      mkdir -p "$out/tmp"
      TMPDIR="$out/tmp" "${wrap[@]}" "$venv/bin/aiperf" profile --model m --tokenizer local/simwords \
        --url "http://127.0.0.1:$port" --endpoint-type chat --streaming "${aload[@]}" --request-count "$n" \
        --synthetic-input-tokens-mean 32 --synthetic-input-tokens-stddev 0 \
        --output-tokens-mean 16 --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
        --artifact-dir "$out/$tag" --ui-type none >"$out/$tag.log" 2>&1 || true
      res="$out/$tag/profile_export_aiperf.json";;
  esac
  stop_sim
  local rate=${load#r=}; [ "$load" = "${load#r=}" ] && rate=1
  { if [ "${load%%=*}" = c ] && [ "$ttft" != 0 ]; then
      python3 "$root/bench/peers.py" "$t" "$res" "$out/truth-$tag.jsonl"
    else
      python3 "$root/bench/peers.py" arrivals "$out/truth-$tag.jsonl" "$rate"
    fi; } | python3 -c "
import json, sys
d = json.loads(sys.stdin.read())
try:
    u, s = open('$out/$tag.time').read().split()[-2:]
    d['cpu_ms_per_request'] = (float(u) + float(s)) * 1e3 / $n
except (OSError, ValueError):
    d['cpu_ms_per_request'] = float('nan')  # cut off: time wrote nothing
try:
    d['peak_mib'] = int(open('$out/$tag.mem').read()) / 1024
except (OSError, ValueError):
    d['peak_mib'] = float('nan')
d.update(tool='$t', load='$load', c=int('${load#c=}') if '$load'.startswith('c=') else None, rate=$rate, n=$n)
print(json.dumps(d))"
}

echo "peers side by side — $(nproc) cores, $(date -u +%Y-%m-%d), $runs run(s) per point, client and simulator sharing the cores"
only=${BENCH_ONLY:-}
tools="harness guidellm aiperf"
if [ -z "$only" ] || [ "$only" = 1 ]; then
  for c in 1 32 256; do
    n=$(( c == 1 ? 100 : c * 8 ))
    for r in $(seq 1 "$runs"); do
      for t in $tools; do one "$t" "c=$c" "$n" "$t-c$c-r$r" 50 10 >> "$out/accuracy.jsonl"; done
    done
  done
fi
if [ -z "$only" ] || [ "$only" = 2 ]; then
  for rate in 100 250 500 1000 2000 4000; do
    n=$(( rate * 3 < 300 ? 300 : rate * 3 ))
    for r in $(seq 1 "$runs"); do
      for t in $tools; do one "$t" "r=$rate" "$n" "$t-r$rate-r$r" 0 0 >> "$out/open.jsonl"; done
    done
  done
fi
if [ -z "$only" ] || [ "$only" = 3 ]; then
  for r in $(seq 1 "$runs"); do
    for t in $tools; do one "$t" "c=256" 5000 "$t-tput-r$r" 0 0 >> "$out/throughput.jsonl"; done
  done
fi
python3 "$root/bench/peers-table.py" "$out"
