"""Prints bench/peers.sh's tables from its JSON lines (bench/out/peers/*.jsonl):
the median of the runs of each point, with the range, and each peer's ratio
to the harness.

    python3 bench/peers-table.py bench/out/peers
"""
import json
import math
import os
import statistics
import sys

TOOLS = ("harness", "guidellm", "aiperf")
out = sys.argv[1]


def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path)]


def med(xs):
    xs = sorted(x for x in xs if x is not None and not math.isnan(x))
    if not xs:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(xs), xs[0], xs[-1]


def rng(t, f="{:+.2f}"):
    m, lo, hi = t
    return f"{f.format(m)} ({f.format(lo)}..{f.format(hi)})"


def group(rows, key):
    by = {}
    for r in rows:
        by.setdefault((r[key], r["tool"]), []).append(r)
    return by


def ratio(peer, harness, lower_is_better=True):
    if not (harness and peer) or math.isnan(peer) or math.isnan(harness):
        return "–"
    return f"{peer / harness:.1f}x" if lower_is_better else f"{harness / peer:.1f}x"


acc = load("accuracy.jsonl")
if acc:
    print("\n1) Accuracy. Error against the simulator's truth, ms: median of the runs (range). Truth is the")
    print("   simulator's own receive-to-first-chunk and chunk-to-chunk times; the client's numbers include")
    print("   loopback and parsing. CPU is per request, start-up included; memory is the peak PSS of the tree.")
    keys = [("err_ttft_p50", "TTFT p50"), ("err_ttft_p99", "TTFT p99"), ("err_gap_p50", "gap p50"), ("err_gap_p99", "gap p99")]
    by = group(acc, "c")
    for c in sorted({k[0] for k in by}):
        print(f"\n   concurrency {c}")
        print(f"   {'tool':9} " + " ".join(f"{n:>22}" for _, n in keys) + f" {'CPU ms/req':>11} {'MiB':>6} {'req/s':>7}")
        h = by.get((c, "harness"), [])
        for t in TOOLS:
            rs = by.get((c, t), [])
            if not rs:
                continue
            cells = " ".join(f"{rng(med([r[k] for r in rs])):>22}" for k, _ in keys)
            cpu = med([r["cpu_ms_per_request"] for r in rs])[0]
            mem = med([r["peak_mib"] for r in rs])[0]
            rps = med([r["req_s"] for r in rs])[0]
            print(f"   {t:9} {cells} {cpu:>11.2f} {mem:>6.0f} {rps:>7.1f}")
        for t in TOOLS[1:]:
            rs = by.get((c, t), [])
            if not rs or not h:
                continue
            parts = []
            for k, n in keys:
                e, b = abs(med([r[k] for r in rs])[0]), abs(med([r[k] for r in h])[0])
                parts.append(f"{n} {e / b:.1f}x" if b > 0.05 else f"{n} {e:.2f} vs {b:.2f} ms")
            for k, n in (("cpu_ms_per_request", "CPU"), ("peak_mib", "memory")):
                parts.append(f"{n} {ratio(med([r[k] for r in rs])[0], med([r[k] for r in h])[0])}")
            print(f"   {t} / harness: " + ", ".join(parts))
    print("\n   gap: " + "; ".join(f"{r['tool']}: {r['gap']}" for r in {r['tool']: r for r in acc}.values()))

ol = load("open.jsonl")
if ol:
    print("\n2) Open loop, constant arrivals, zero model time. 'achieved' is the rate the simulator")
    print("   received; lateness is each arrival against the best-fitting perfect schedule, seen by the")
    print("   simulator (bench/peers.py arrivals). Median of the runs (range).")
    by = group(ol, "rate")
    print(f"\n   {'rate':>6} {'tool':9} {'achieved':>24} {'late p50 ms':>24} {'late p99 ms':>26} {'CPU ms/req':>11} {'MiB':>6}")
    for rate in sorted({k[0] for k in by}):
        for t in TOOLS:
            rs = by.get((rate, t), [])
            if not rs:
                continue
            ach = rng(med([r.get("achieved") for r in rs]), "{:.0f}")
            p50 = rng(med([r.get("late_p50") for r in rs]), "{:.2f}")
            p99 = rng(med([r.get("late_p99") for r in rs]), "{:.2f}")
            cpu = med([r["cpu_ms_per_request"] for r in rs])[0]
            mem = med([r["peak_mib"] for r in rs])[0]
            print(f"   {rate:>6.0f} {t:9} {ach:>24} {p50:>24} {p99:>26} {cpu:>11.3f} {mem:>6.0f}")
    print("\n   highest rate with >= 99% achieved and lateness p99 < 5 ms (median of the runs):")
    for t in TOOLS:
        best = 0
        for rate in sorted({k[0] for k in by}):
            rs = by.get((rate, t), [])
            if not rs:
                continue
            ach, p99 = med([r.get("achieved") for r in rs])[0], med([r.get("late_p99") for r in rs])[0]
            if ach >= 0.99 * rate and p99 < 5:
                best = rate
        print(f"   {t:9} {best:.0f} req/s")

tp = load("throughput.jsonl")
if tp:
    print("\n3) Closed loop, concurrency 256, zero model time: requests the simulator served per second")
    print("   (first body received to last response end). Median of the runs (range).")
    by = group(tp, "c")
    h = by.get((256, "harness"), [])
    for t in TOOLS:
        rs = by.get((256, t), [])
        if not rs:
            continue
        th = med([r.get("throughput") for r in rs])
        cpu = med([r["cpu_ms_per_request"] for r in rs])[0]
        mem = med([r["peak_mib"] for r in rs])[0]
        line = f"   {t:9} {rng(th, '{:.0f}'):>26} req/s, CPU {cpu:.3f} ms/req, {mem:.0f} MiB"
        if t != "harness" and h:
            line += f"; harness / {t}: throughput {ratio(th[0], med([r.get('throughput') for r in h])[0], False)}"
        print(line)
