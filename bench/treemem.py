"""Runs a command and writes its process tree's peak memory (KiB) to a file.

    python3 bench/treemem.py OUT -- COMMAND [ARGS...]

Memory is the sum of PSS (proportional set size, /proc/PID/smaps_rollup)
over the command and all its descendants, sampled every 200 ms: a tool that
forks worker processes (guidellm, aiperf) is counted whole, and pages the
workers share are counted once, not once per worker. A peak shorter than
the sampling interval can be missed. Exits with the command's status.
"""
import os
import subprocess
import sys
import time


def children():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        m.setdefault(ppid, []).append(int(d))
    return m


def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss(root):
    m, todo, total = children(), [root], 0
    while todo:
        p = todo.pop()
        total += pss(p)
        todo += m.get(p, [])
    return total


out, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
p = subprocess.Popen(cmd)
peak = 0
while p.poll() is None:
    peak = max(peak, tree_pss(p.pid))
    time.sleep(0.2)
with open(out, "w") as f:
    f.write(f"{peak}\n")
sys.exit(p.returncode)
