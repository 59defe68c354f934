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
# Not Ready: while the newest revision is broken the Service's Ready stays False (ConfigurationsReady),
# pinned or not. What the pin must achieve is a ready route, for this generation, sending everything
# to the pinned revision.
generation="$(kubectl get "ksvc/$name" -n "$NAMESPACE" -o jsonpath='{.metadata.generation}')"
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=jsonpath='{.status.observedGeneration}'="$generation" \
  --timeout=60s
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=condition=RoutesReady --timeout=180s
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=jsonpath='{.status.traffic[0].revisionName}'="$revision" \
  --timeout=60s
