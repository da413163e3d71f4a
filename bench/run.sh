#!/usr/bin/env bash
# Client benchmark: drives `harness run` against `harness sim` (a separate
# process, zero model time unless stated) on loopback and prints figures.
# Nothing here asserts; compare the figures with ../shared/reference/peers.md §11.
#
#   bench/run.sh            # full ladder and memory (~8 minutes)
#   BENCH_ONLY=N bench/run.sh   # one section (1 to 5)
#   BENCH_QUICK=1 bench/run.sh
set -euo pipefail
name=""
source "$(dirname "$0")/lib.sh"
quick=${BENCH_QUICK:-}

# One experiment; prints "cpu_s max_rss_kb max_anon_kb" of the harness process and leaves
# the bundle at $out/$name.duckdb.
bench_run() { # name, load YAML (flow), output tokens
  local name=$1 load=$2 tokens=$3
  cat > "$out/$name.yml" <<YAML
name: $name
endpoints:
  - name: sim
    provider: openai
    base_url: http://127.0.0.1:$port/v1
    model: bench
datasets:
  - name: d
    synthetic: { prompt_tokens: 32, output_tokens: $tokens }
load: $load
sampling: { ignore_eos: true }
YAML
  /usr/bin/time -f "%U %S %M" -o "$out/$name.time" "$bin" run -q "$out/$name.yml" --out "$out/$name.duckdb" >/dev/null 2>"$out/$name.log" &
  local tpid=$! pid="" anon=0 a
  # Peak anonymous RSS (heap, stacks: what grows with streams and requests),
  # sampled every 50 ms; the rest of the peak RSS is code mapped from the
  # binary and libduckdb, a fixed cost.
  while kill -0 "$tpid" 2>/dev/null; do
    [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -1)
    if [ -n "$pid" ]; then
      a=$(awk '/^RssAnon/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
    fi
    sleep 0.05
  done
  wait "$tpid"
  awk -v anon="$anon" '{printf "%.3f %d %d\n", $1+$2, $3, anon}' "$out/$name.time"
}

field() { # bundle, python expression over e (the experiment) and s (summary)
  "$bin" show --json "$1" | python3 -c "
import json,sys
d=json.load(sys.stdin); e=d['experiments'][0]; s=e['summary']; dist=s['distributions']
print($2)"
}

echo "harness client benchmark — $(nproc) cores, $(date -u +%Y-%m-%d), client and simulator on the same machine"
echo

only=${BENCH_ONLY:-}
# 1. Open-loop ladder, zero model time, 16-token streams.
if [ -z "$only" ] || [ "$only" = 1 ]; then
start_sim --profile g5.xlarge:8b --ttft-ms 0 --itl-ms 0
echo "1) open loop, constant arrivals, 16 output tokens, zero model time"
# The fixed cost (start-up, opening and closing the bundle) is measured by a
# one-request run, median of 3, and shown apart: the last column is the
# marginal CPU of a request, (CPU - fixed) / requests.
fixed=$(for i in 1 2 3; do bench_run "fixed$i" "{rates: [500], requests: 1, warmup: {requests: 0}}" 16 | cut -d' ' -f1; done | sort -n | sed -n 2p)
echo "   fixed cost of a run (one request, median of 3): $(python3 -c "print('%.0f' % ($fixed*1000))") ms CPU"
printf "   %8s %10s %12s %12s %12s %12s %8s\n" target achieved "lag p50 ms" "lag p99 ms" "CPU ms/req" "less fixed" errors
best=0
rates="500 1000 2000 4000 6000 8000 10000 12000 16000"
[ -n "$quick" ] && rates="1000 2000"
for r in $rates; do
  n=$(( r * 3 ))
  read -r cpu _ _ < <(bench_run "open$r" "{rates: [$r], requests: $n, warmup: {requests: 200}, max_in_flight: 20000}" 16)
  read -r ach p50 p99 err ok < <(field "$out/open$r.duckdb" "'%.0f %.3f %.3f %d %d' % (s['send_rate'], dist['dispatch_lag']['p50'], dist['dispatch_lag']['p99'], s['requests_failed'], s['requests_ok'])")
  cpu_ms=$(python3 -c "print('%.3f' % ($cpu*1000/($n+200)))")
  marginal=$(python3 -c "print('%.3f' % (($cpu-$fixed)*1000/($n+200)))")
  printf "   %8s %10s %12s %12s %12s %12s %8s\n" "$r/s" "$ach/s" "$p50" "$p99" "$cpu_ms" "$marginal" "$err"
  if python3 -c "import sys; sys.exit(0 if $p99 < 5 and $ach >= 0.99*$r and $err == 0 else 1)"; then best=$r; fi
done
echo "   highest open-loop rate with dispatch-lag p99 < 5 ms (and >= 99% achieved, no errors): $best req/s"
echo
fi

# 2. Closed loop at concurrency 256, zero model time.
if [ -z "$only" ] || [ "$only" = 2 ]; then
start_sim --profile g5.xlarge:8b --ttft-ms 0 --itl-ms 0
echo "2) closed loop, concurrency 256, 16 output tokens, zero model time"
n=20000; [ -n "$quick" ] && n=5000
read -r cpu _ _ < <(bench_run closed256 "{concurrency: [256], requests: $n, warmup: {requests: 512}}" 16)
read -r rps err < <(field "$out/closed256.duckdb" "'%.0f %d' % (s['request_throughput'], s['requests_failed'])")
echo "   $rps req/s, $err errors, client CPU $(python3 -c "print('%.3f' % ($cpu*1000/($n+512)))") ms per request"
echo
fi

# 3. Memory at 1,000 concurrent streams (each stream open ~1.2 s: TTFT 50 ms, 120 tokens 10 ms apart).
if [ -z "$only" ] || [ "$only" = 3 ]; then
start_sim --profile g5.xlarge:8b --ttft-ms 50 --itl-ms 10
echo "3) 1,000 concurrent streams (TTFT 50 ms, ITL 10 ms, 120 tokens)"
read -r cpu rss anon < <(bench_run streams1000 "{concurrency: [1000], requests: 3000, warmup: {requests: 1000}}" 120)
read -r ttft50 ttft99 itl50 itl99 err < <(field "$out/streams1000.duckdb" "'%.2f %.2f %.2f %.2f %d' % (dist['ttft']['p50'], dist['ttft']['p99'], dist['itl']['p50'], dist['itl']['p99'], s['requests_failed'])")
echo "   peak RSS of the client: $((rss / 1024)) MiB ($((anon / 1024)) MiB anonymous); TTFT p50 $ttft50 ms / p99 $ttft99 ms (truth 50); ITL p50 $itl50 / p99 $itl99 ms (truth 10); errors $err"
fi

# 4. Memory at 10,000 concurrent streams (each open ~5 s: TTFT 50 ms, 10 tokens
#    500 ms apart), to show the client's memory per open stream.
if [ -z "$only" ] || [ "$only" = 4 ]; then
start_sim --profile g5.xlarge:8b --ttft-ms 50 --itl-ms 500 --max-concurrency 20000
echo "4) 10,000 concurrent streams (TTFT 50 ms, ITL 500 ms, 10 tokens)"
n=20000; [ -n "$quick" ] && n=10000
read -r cpu rss anon < <(bench_run streams10000 "{concurrency: [10000], requests: $n, max_in_flight: 20000}" 10)
read -r ttft50 ttft99 err < <(field "$out/streams10000.duckdb" "'%.2f %.2f %d' % (dist['ttft']['p50'], dist['ttft']['p99'], s['requests_failed'])")
echo "   peak RSS of the client: $((rss / 1024)) MiB ($((anon / 1024)) MiB anonymous); TTFT p50 $ttft50 ms / p99 $ttft99 ms (truth 50); errors $err"
echo
fi

# 5. Memory against the number of requests: closed loop at concurrency 256,
#    zero model time, 100,000 then 1,000,000 requests in one experiment. The
#    requests stream to the bundle as they finish, so the peak should not grow.
if [ -z "$only" ] || [ "$only" = 5 ]; then
start_sim --profile g5.xlarge:8b --ttft-ms 0 --itl-ms 0
echo "5) peak RSS against requests per experiment (closed loop 256, 16 tokens, zero model time)"
sizes="100000 1000000"; [ -n "$quick" ] && sizes="20000 100000"
for n in $sizes; do
  start=$(date +%s.%N)
  read -r cpu rss anon < <(bench_run "many$n" "{concurrency: [256], requests: $n}" 16)
  wall=$(python3 -c "import time; print('%.0f' % (time.time() - $start))")
  read -r rows < <(field "$out/many$n.duckdb" "'%d' % (s['requests'])")
  echo "   $n requests: peak RSS $((rss / 1024)) MiB ($((anon / 1024)) MiB anonymous), $rows rows summarised, ${wall} s wall, client CPU $(python3 -c "print('%.3f' % ($cpu*1000/$n))") ms per request"
  rm -f "$out/many$n.duckdb"*
done
fi
