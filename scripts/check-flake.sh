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

# packages.viewer pins what the wasm build and the npm lock pin.
wb_lock="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
wb_flake="$(sed -n 's/^ *wasmBindgenVersion = "\(.*\)";/\1/p' flake.nix)"
[ "$wb_lock" = "$wb_flake" ] || { echo "flake.nix builds wasm-bindgen-cli $wb_flake but Cargo.lock has wasm-bindgen $wb_lock" >&2; exit 1; }
[ -f "nix/wasm-bindgen-cli-$wb_flake.Cargo.lock" ] || { echo "nix/wasm-bindgen-cli-$wb_flake.Cargo.lock is missing (copy it from the crate)" >&2; exit 1; }
grep -q "nix/wasm-bindgen-cli-$wb_flake.Cargo.lock" flake.nix || { echo "flake.nix does not vendor nix/wasm-bindgen-cli-$wb_flake.Cargo.lock" >&2; exit 1; }
python3 - "$wb_lock" <<'PY'
import json, sys
lock = json.load(open("viewer/js/package-lock.json"))
bad = [k for k, v in lock["packages"].items()
       if k and not v.get("link") and not (v.get("resolved", "").startswith("https://registry.npmjs.org/") and v.get("integrity"))]
if bad:
    sys.exit("viewer/js/package-lock.json: entries without a registry 'resolved' URL and 'integrity' "
             "(the flake's importNpmLock fetches by them; viewer/js/.npmrc keeps them): " + ", ".join(bad[:5]))
print(f"viewer: wasm-bindgen {sys.argv[1]} pinned alike in Cargo.lock and flake.nix; npm lock entries all carry resolved + integrity")
PY
