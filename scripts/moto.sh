#!/usr/bin/env bash
# Installs moto (the AWS API stand-in the EC2 and S3 tests run against) into
# $HARNESS_CACHE/moto-5, outside the clone, and prints the moto_server path.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
moto="$HARNESS_CACHE/moto-5"
if [ ! -x "$moto/bin/moto_server" ]; then
  echo "installing moto[server] 5 into $moto" >&2
  python3 -m venv "$moto"
  "$moto/bin/pip" install -q 'moto[server]>=5,<6'
fi
echo "$moto/bin/moto_server"
