#!/usr/bin/env python3
"""Runs every command the README shows, in the order shown, in a fresh copy
of the repository (the files git tracks, plus new files it does not ignore:
no results/, no models/, no build output), so that the README and the
commands cannot drift apart. scripts/test.sh runs it after the llama.cpp
end-to-end test, whose cached server install the llama.cpp commands reuse.

The commands are the lines of the README's ```sh blocks. A trailing `# ...`
comment is the README's explanation, and may carry an expectation:
  - "exits N": the command must exit with status N (default 0);
  - "serves until Ctrl-C": a server; it is started in the background, the
    next command runs once it answers on the port in its command line, and
    it is stopped when all commands have run.
`scripts/test.sh` itself is not run (it is what runs this script).

Usage: scripts/check-readme.py [README]    (exit 1 on the first failure)
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SKIP = {"scripts/test.sh"}
TIMEOUT_S = 40 * 60


def commands(readme):
    """(line number, command, comment) of every command in ```sh blocks."""
    out, in_sh = [], False
    for n, line in enumerate(open(readme, encoding="utf-8"), 1):
        s = line.rstrip("\n")
        if s.startswith("```"):
            in_sh = (not in_sh) and s.strip() == "```sh"
            continue
        if not in_sh or not s.strip() or s.lstrip().startswith("#"):
            continue
        cmd, _, comment = s.partition(" #")
        out.append((n, cmd.strip(), comment.strip()))
    return out


def fresh_copy():
    """The repository's tracked and unignored files, copied to a new folder."""
    dest = tempfile.mkdtemp(prefix="readme-")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src = os.path.join(ROOT, f.decode())
        if not os.path.exists(src):
            continue  # deleted in the work tree
        dst = os.path.join(dest, f.decode())
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    return dest


def wait_for_port(port, proc, seconds=900):
    url = f"http://127.0.0.1:{port}/v1/models"
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return True
        except urllib.error.HTTPError:
            return True  # it answers (a static server has no /v1/models)
        except Exception:
            time.sleep(0.5)
    return False


def main():
    readme = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "README.md")
    cmds = commands(readme)
    if not cmds:
        sys.exit(f"{readme}: no ```sh commands found")
    work = fresh_copy()
    servers, failed = [], None
    print(f"README commands in a fresh copy: {work}", flush=True)
    try:
        for n, cmd, comment in cmds:
            if cmd in SKIP:
                print(f"-- README:{n}: {cmd}  (skipped: this is the test command)", flush=True)
                continue
            m = re.search(r"exits (\d+)", comment)
            want = int(m.group(1)) if m else 0
            print(f"-- README:{n}: {cmd}", flush=True)
            if "serves until Ctrl-C" in comment:
                port = re.search(r"(?::|\s)(\d{4,5})\b", cmd)
                proc = subprocess.Popen(
                    ["bash", "-c", cmd], cwd=work, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                )
                servers.append(proc)
                if not port or not wait_for_port(port.group(1), proc):
                    failed = f"README:{n}: `{cmd}` did not start serving"
                    break
                continue
            t0 = time.time()
            r = subprocess.run(["bash", "-c", cmd], cwd=work, timeout=TIMEOUT_S)
            print(f"   exit {r.returncode} in {time.time() - t0:.0f} s", flush=True)
            if r.returncode != want:
                failed = f"README:{n}: `{cmd}` exited {r.returncode}, the README says {want}"
                break
    finally:
        for p in servers:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except Exception:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(failed)
    print(f"all {len(cmds)} README commands behaved as the README says", flush=True)


if __name__ == "__main__":
    main()
