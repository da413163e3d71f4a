#!/usr/bin/env bash
# Checks flake.nix offline: it parses, and `outputs` takes exactly the declared
# inputs. (Evaluating it needs nixpkgs from the network, which CI lacks.)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nix-instantiate >/dev/null; then
  echo "installing Debian's nix-bin for the flake parse check" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nix-bin >/dev/null
fi
nix-instantiate --parse flake.nix >/dev/null
got=$(nix-instantiate --eval --strict --json -E '
  let f = import ./flake.nix;
      ins = builtins.filter (n: n != "self") (builtins.attrNames (builtins.functionArgs f.outputs));
  in { inputs = builtins.attrNames f.inputs; args = ins; }')
echo "$got" | python3 -c '
import json, sys
d = json.load(sys.stdin)
i, a = sorted(d["inputs"]), sorted(d["args"])
assert i == a, "flake inputs %s != outputs arguments %s" % (i, a)
print("flake.nix parses; inputs match outputs arguments:", ", ".join(i))
'
