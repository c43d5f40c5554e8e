#!/usr/bin/env bash
# Installs the tools `make test-ops` needs and a fresh Debian machine may
# lack: promtool (Debian's `prometheus` package) and docker-compose (Debian's
# `docker-compose` package, which validates a compose file without a Docker
# engine). Like ensure-deps.sh it starts no server: a policy-rc.d that
# refuses every start keeps the package's prometheus service from running,
# and recommends (node-exporter, docker.io) are not installed.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages (no service is started)…" >&2
policy=/usr/sbin/policy-rc.d
restore_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && restore_policy=true
fi
trap '$restore_policy && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
