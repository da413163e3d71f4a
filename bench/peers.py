"""Reads one tool's result and the simulator's truth log for bench/peers.sh,
and prints one JSON line: the tool's TTFT and chunk-gap percentiles, the
truth's, and their differences (ms).

    python bench/peers.py TOOL RESULT TRUTH_LOG
TOOL: harness (RESULT is `harness show --json` output), guidellm (its JSON
output) or aiperf (its profile_export_aiperf.json).

    python bench/peers.py arrivals TRUTH_LOG RATE
prints the arrivals the simulator saw against a constant RATE (req/s): the
achieved rate, (n - 1) / (last - first) body received, the throughput,
n / (last response end - first body received), and the lateness of
each arrival against the best-fitting perfect schedule, received_i - i/RATE
- min_j(received_j - j/RATE) (so >= 0; the earliest arrival relative to the
schedule anchors it). This is the same measure for every tool, taken on the
server's side of loopback: a client that falls behind its schedule shows a
lateness that grows with i; the harness's own dispatch lag is the client-side
view of the same thing.

Truth: TTFT = first content chunk handed to the connection − request body
received; chunk gap = between consecutive content chunks (the simulator's
`--truth-log`, harness/src/sim/truth.rs). Percentiles are nearest-rank over
every request (every gap) the simulator served.
"""
import json
import math
import sys


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def truth(path):
    ttft, gaps = [], []
    with open(path) as f:
        next(f)  # header
        for line in f:
            r = json.loads(line)
            c = r["chunk_ns"]
            if not c:
                continue
            ttft.append((c[0] - r["received_ns"]) / 1e6)
            gaps += [(b - a) / 1e6 for a, b in zip(c, c[1:])]
    return {
        "requests": len(ttft),
        "ttft_p50": pct(ttft, 50),
        "ttft_p99": pct(ttft, 99),
        "gap_p50": pct(gaps, 50),
        "gap_p99": pct(gaps, 99),
    }


def tool(name, path):
    d = json.load(open(path))
    if name == "harness":
        e = d["experiments"][0]["summary"]
        dist = e["distributions"]
        return {
            "requests": e["requests_ok"],
            "req_s": e["request_throughput"],
            "ttft_p50": dist["ttft"]["p50"],
            "ttft_p99": dist["ttft"]["p99"],
            "gap_p50": dist["itl"]["p50"],
            "gap_p99": dist["itl"]["p99"],
            "gap": "chunk gaps",
        }
    if name == "guidellm":
        m = d["benchmarks"][0]["metrics"]
        t = m["time_to_first_token_ms"]["successful"]["percentiles"]
        i = m["inter_token_latency_ms"]["successful"]["percentiles"]
        return {
            "requests": m["request_totals"]["successful"],
            "req_s": m["requests_per_second"]["successful"]["mean"],
            "ttft_p50": t["p50"],
            "ttft_p99": t["p99"],
            # guidellm reports each request's mean gap, not every gap.
            "gap_p50": i["p50"],
            "gap_p99": i["p99"],
            "gap": "per-request mean gap",
        }
    if name == "aiperf":
        return {
            "requests": d["request_count"]["avg"],
            "req_s": d["request_throughput"]["avg"],
            "ttft_p50": d["time_to_first_token"]["p50"],
            "ttft_p99": d["time_to_first_token"]["p99"],
            "gap_p50": d["inter_chunk_latency"]["p50"],
            "gap_p99": d["inter_chunk_latency"]["p99"],
            "gap": "chunk gaps",
        }
    raise SystemExit(f"unknown tool {name}")


def arrivals(path, rate):
    rec, end = [], []
    with open(path) as f:
        next(f)  # header
        for line in f:
            r = json.loads(line)
            rec.append(r["received_ns"] / 1e9)
            end.append(r["end_ns"] / 1e9)
    rec.sort()
    n = len(rec)
    if n < 2:
        return {"requests": n}
    dev = [t - i / rate for i, t in enumerate(rec)]
    lo = min(dev)
    late = [(d - lo) * 1e3 for d in dev]
    return {
        "requests": n,
        "achieved": (n - 1) / (rec[-1] - rec[0]),
        # Requests served per second, first body received to last response end.
        "throughput": n / (max(end) - rec[0]),
        "late_p50": pct(late, 50),
        "late_p99": pct(late, 99),
    }


if sys.argv[1] == "arrivals":
    print(json.dumps(arrivals(sys.argv[2], float(sys.argv[3]))))
    sys.exit(0)

name, result, log = sys.argv[1:4]
t, g = tool(name, result), truth(log)
out = {"tool": name, **t, "truth": g}
for k in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99"):
    out["err_" + k] = t[k] - g[k]
print(json.dumps(out))
