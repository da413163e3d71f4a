#!/usr/bin/env python3
"""Writes the small trace samples under datasets/ (run from the repo root).

They are written for this project, not taken from the real traces, in the
two public formats the harness reads (see datasets/README.md for where the
real ones live). Arrivals are bursty on purpose: a Poisson process whose rate
switches between a calm and a busy level, so that replaying them differs
from a constant or Poisson rate of the same mean. Deterministic: same files
every run.
"""
import datetime
import math
import random


def arrivals(rng, seconds, calm, busy, switch_s):
    t, out, rate = 0.0, [], calm
    next_switch = rng.expovariate(1 / switch_s)
    while True:
        t += rng.expovariate(rate)
        while t > next_switch:
            rate = busy if rate == calm else calm
            next_switch += rng.expovariate(1 / switch_s)
        if t >= seconds:
            return out
        out.append(t)


def lognormal(rng, median, sigma, lo, hi):
    return max(lo, min(hi, int(round(median * math.exp(rng.gauss(0, sigma))))))


def azure(path):
    rng = random.Random(2023)
    t0 = datetime.datetime(2023, 11, 16, 18, 15, 46, 680590)
    with open(path, "w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for t in arrivals(rng, 120.0, 1.0, 6.0, 15.0):
            ts = t0 + datetime.timedelta(seconds=t)
            # Seven fractional digits, as the 2023 files write them.
            stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond:06d}0"
            ctx = lognormal(rng, 900, 0.8, 20, 6000)
            gen = lognormal(rng, 120, 0.9, 1, 800)
            f.write(f"{stamp},{ctx},{gen}\n")


def burstgpt(path):
    rng = random.Random(2024)
    with open(path, "w") as f:
        f.write("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n")
        for t in arrivals(rng, 600.0, 0.15, 1.2, 60.0):
            model = "GPT-4" if rng.random() < 0.25 else "ChatGPT"
            req = lognormal(rng, 600, 1.0, 1, 8000)
            # About 2% failed in the traced service: no response tokens.
            resp = 0 if rng.random() < 0.02 else lognormal(rng, 250, 0.8, 1, 1500)
            log = "Conversation log" if rng.random() < 0.7 else "API log"
            f.write(f"{int(t)},{model},{req},{resp},{req + resp},{log}\n")


azure("datasets/azure-llm-sample.csv")
burstgpt("datasets/burstgpt-sample.csv")
