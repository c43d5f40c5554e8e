#!/usr/bin/env bash
# Validates the operations files without starting any server or needing a
# Docker engine: the alert rules (syntax and their unit tests), the
# Prometheus config, the Grafana dashboards and the compose file. The Go
# tests in dashboards/ check the metric names and `promtool check metrics`
# on real scrapes.
#
# Without promtool or docker-compose it installs them (scripts/ensure-ops-tools.sh,
# as root); a non-root developer without them gets a message and a skip,
# except under CI=true, where a missing tool is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ./scripts/ensure-ops-tools.sh; then
  if [ "${CI:-}" = true ]; then
    echo "check-ops: promtool and docker-compose are required under CI=true" >&2
    exit 1
  fi
  echo "check-ops: SKIPPED (promtool or docker-compose missing; see above)" >&2
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== promtool check rules dashboards/alerts.yml"
promtool check rules --lint=all --lint-fatal dashboards/alerts.yml
echo "== promtool test rules dashboards/alerts_test.yml"
promtool test rules dashboards/alerts_test.yml

# prometheus.yml names the rules by their path in the container; check a
# copy that names the repository's file instead.
echo "== promtool check config dashboards/prometheus.yml"
container_rules=/etc/prometheus/alerts.yml
grep -q "^  - $container_rules\$" dashboards/prometheus.yml || {
  echo "dashboards/prometheus.yml does not load $container_rules (docker-compose.yml mounts alerts.yml there)" >&2
  exit 1
}
sed "s#^  - $container_rules\$#  - $PWD/dashboards/alerts.yml#" dashboards/prometheus.yml > "$tmp/prometheus.yml"
promtool check config --lint=all --lint-fatal "$tmp/prometheus.yml"

echo "== Grafana dashboards are JSON and provisioned"
for f in dashboards/grafana/dashboards/*.json; do
  python3 -m json.tool "$f" >/dev/null || { echo "$f is not valid JSON" >&2; exit 1; }
done
# The provider's path is where docker-compose.yml mounts the dashboards, and
# the panels' datasource is the provisioned one.
grep -q 'path: /var/lib/grafana/dashboards$' dashboards/grafana/provisioning/dashboards/licenseops.yml &&
  grep -q '\./dashboards/grafana/dashboards:/var/lib/grafana/dashboards' docker-compose.yml &&
  grep -q 'uid: prometheus$' dashboards/grafana/provisioning/datasources/prometheus.yml || {
  echo "Grafana provisioning, docker-compose.yml mounts and the datasource uid do not match" >&2
  exit 1
}

echo "== docker-compose config -q"
# A bogus DOCKER_HOST proves the check needs no engine.
DOCKER_HOST=tcp://127.0.0.1:1 docker-compose --project-directory . -f docker-compose.yml config -q
echo "check-ops: OK"
