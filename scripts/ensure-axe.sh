#!/usr/bin/env bash
# Fetches axe-core (pinned) from the npm registry into .cache/axe-core-<v>/
# unless it is there, and prints the path of its axe.min.js. The console's
# browser tests inject it into every page they check.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.10.3
dir=.cache/axe-core-$version
js=$dir/package/axe.min.js
if [ ! -s "$js" ]; then
  mkdir -p "$dir"
  tgz=$(cd "$dir" && npm pack --silent "axe-core@$version")
  tar -xzf "$dir/$tgz" -C "$dir" package/axe.min.js package/LICENSE
  rm -f "$dir/$tgz"
fi
echo "$PWD/$js"
