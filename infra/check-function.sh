#!/usr/bin/env bash
# Health-check one deployed function from inside the cluster (every Service is cluster-local):
#   infra/check-function.sh NAME METHOD PATH EXPECTED_STATUS
# `python -m todo_backend.deploy probe NAME` prints the METHOD PATH STATUS that fit the function.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -eq 4 ] || die "usage: $0 NAME METHOD PATH EXPECTED_STATUS"
name="$1" method="$2" path="$3" expected="$4"
url="http://${name}.${NAMESPACE}.svc.cluster.local${path}"

# A throwaway curl pod; a cold start may take a few seconds, so a few attempts.
for attempt in 1 2 3 4 5; do
  status="$(kubectl run "probe-${name}-$$-${attempt}" -n "$NAMESPACE" --rm -i --quiet --restart=Never \
    --image=curlimages/curl:8.11.1 --command -- \
    curl -sS -o /dev/null -w '%{http_code}' -X "$method" --max-time 60 "$url" 2>/dev/null || true)"
  status="${status//[^0-9]/}"
  if [ "$status" = "$expected" ]; then
    log "$name answers $method $path with $status"
    exit 0
  fi
  log "$name answered $method $path with '${status:-nothing}', expected $expected (attempt $attempt)"
  sleep $((attempt * 3))
done
die "$name failed its health check"
