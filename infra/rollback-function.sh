#!/usr/bin/env bash
# Send all of a function's traffic back to an earlier Ready revision:
#   infra/rollback-function.sh NAME REVISION
# The next deploy of the function applies `traffic: latestRevision` again, which un-pins it.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] || die "usage: $0 NAME REVISION"
name="$1" revision="$2"
kubectl get revision "$revision" -n "$NAMESPACE" >/dev/null || die "no revision $revision"
log "pinning $name to revision $revision"
kubectl patch ksvc "$name" -n "$NAMESPACE" --type merge \
  -p "{\"spec\":{\"traffic\":[{\"revisionName\":\"${revision}\",\"percent\":100}]}}"
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=condition=Ready --timeout=180s
