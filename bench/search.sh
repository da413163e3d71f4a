#!/usr/bin/env bash
# Capacity search against a grid of the same precision: what each costs in
# requests and seconds to locate the same capacity. The endpoint is the
# embedded simulator with a capacity known in closed form (fixed timing: every
# request takes 50 ms, 4 at a time, constant arrivals: 80 req/s), the budget
# e2e p95 <= 75 ms. Nothing here asserts; the figures are printed.
#
#   bench/search.sh            # 3 searches and 1 grid (~2 minutes)
#   BENCH_RUNS=5 bench/search.sh
set -euo pipefail
name=search
source "$(dirname "$0")/lib.sh"
runs=${BENCH_RUNS:-3}
start=20; precision=0.05; requests=80

config() { # name, load lines
  cat > "$out/$1.yml" <<YAML
name: $1
endpoints:
  - name: sim
    provider: sim
    sim: { ttft_ms: 10, itl_ms: 5, max_concurrency: 4 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 9 }
sampling: { ignore_eos: true }
load:
$2
  requests: $requests
budgets: { e2e_p95_ms: 75 }
YAML
}

# Runs a config into a fresh bundle; prints "seconds requests experiments lo hi".
measure() { # name
  local t0 t1
  rm -f "$out/$1.duckdb"   # a fresh bundle: a rerun would reuse every probe
  t0=$(date +%s.%N)
  "$bin" run -q "$out/$1.yml" --out "$out/$1.duckdb" >/dev/null 2>&1
  t1=$(date +%s.%N)
  "$bin" show --json "$out/$1.duckdb" | python3 -c "
import json, sys
d = json.load(sys.stdin)
xs = d['experiments']
sent = sum(e['summary']['requests'] + e['summary']['warmup_requests'] for e in xs)
found = next((e['probe']['found'] for e in xs if e.get('probe') and e['probe'].get('found')), None) or {}
print(f\"{$t1 - $t0:.1f} {sent} {len(xs)} {found.get('lo')} {found.get('hi')}\")"
}

echo "capacity search vs grid — $(nproc) cores, $(date -u +%Y-%m-%d); truth 80 req/s, precision ${precision}, ${requests} requests per level"
echo
config search "  search: { rate: $start, precision: $precision }"
printf "%-8s %9s %9s %6s %18s\n" run seconds requests probes "capacity (req/s)"
results=()
for i in $(seq 1 "$runs"); do
  read -r s n p lo hi < <(measure search)
  printf "%-8s %9s %9s %6s %18s\n" "search$i" "$s" "$n" "$p" "[$lo, $hi]"
  results+=("$s $n $lo $hi")
done
# The grid that gives the same precision without knowing the answer: levels a
# factor (1 + precision) apart from the start up to the highest rate a search
# probed above capacity.
hi=$(printf '%s\n' "${results[@]}" | awk '{print $4}' | sort -g | tail -1)
rates=$(python3 -c "
r, out = $start, []
while r < $hi * (1 + $precision):
    out.append(round(r, 4)); r *= 1 + $precision
print(', '.join(map(str, out)))")
config grid "  rates: [$rates]"
read -r gs gn gp _ _ < <(measure grid)
printf "%-8s %9s %9s %6s %18s\n" grid "$gs" "$gn" "$gp" "(levels)"
echo
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = [list(map(float, l.split()[:2])) for l in sys.stdin if l.strip()]
secs = sorted(r[0] for r in rows); reqs = sorted(r[1] for r in rows)
print(f'search: median {statistics.median(secs):.1f} s (range {secs[0]:.1f}-{secs[-1]:.1f}), median {statistics.median(reqs):.0f} requests (range {reqs[0]:.0f}-{reqs[-1]:.0f})')
print(f'grid:   {$gs:.1f} s, {$gn:.0f} requests, {$gp:.0f} levels')
print(f'search/grid: {statistics.median(secs) / $gs:.2f} of the time, {statistics.median(reqs) / $gn:.2f} of the requests')"
