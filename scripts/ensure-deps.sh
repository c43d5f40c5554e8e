#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need and a fresh
# Debian machine may lack: the PostgreSQL, Redis and Redis Sentinel binaries (the
# tests and the demo start private servers from them; none is started here),
# Debian's headless Chromium and axe-core for the console's browser tests,
# and make's other tools. Go modules come through the Go module proxy.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have_redis() { command -v redis-server >/dev/null 2>&1; }
# The fault suite's Sentinel failover test starts private sentinels from it.
have_sentinel() { command -v redis-sentinel >/dev/null 2>&1; }

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
have_sentinel || missing+=(redis-sentinel)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)   # go test -race needs cgo
# The console's browser tests (console/browser_test.go) drive this one.
command -v chromium-headless-shell >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium-headless-shell ] ||
  missing+=(chromium-headless-shell)
command -v npm >/dev/null 2>&1 || missing+=(npm)    # fetches axe-core, below

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} from Debian's packages…" >&2
  # Install the binaries without creating or starting any server: the
  # project starts its own private ones and leaves the machine's alone.
  mkdir -p /etc/postgresql-common
  if ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf 2>/dev/null; then
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
  fi
  policy=/usr/sbin/policy-rc.d
  restore_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && restore_policy=true
  fi
  trap '$restore_policy && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
# axe-core, the accessibility checker the browser tests inject into each
# page: a pinned version from the npm registry, kept in .cache/ (ignored by
# git) so that it is fetched once.
./scripts/ensure-axe.sh >/dev/null
