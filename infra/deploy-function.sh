#!/usr/bin/env bash
# Roll out one function: its Service with a new image, wait for Ready, health-check it, then wire it
# (its Triggers, PingSource and HTTPRoute, whichever it has):
#   infra/deploy-function.sh NAME OWNER TAG
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -eq 3 ] || die "usage: $0 NAME OWNER TAG"
name="$1" owner="$2" tag="$3"

log "deploying $name ($tag)"
manifests render "$ROOT/knative/services/$name.yaml" --owner "$owner" --tag "$tag" | kubectl apply -f -
# Ready of this spec, not the one before: right after the apply, the status may still be the previous
# generation's, Ready with the old revision, and the health check would test that one.
generation="$(kubectl get "ksvc/$name" -n "$NAMESPACE" -o jsonpath='{.metadata.generation}')"
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=jsonpath='{.status.observedGeneration}'="$generation" \
  --timeout=60s
kubectl wait "ksvc/$name" -n "$NAMESPACE" --for=condition=Ready --timeout=300s

read -r method path status < <(manifests probe "$name")
"$ROOT/infra/check-function.sh" "$name" "$method" "$path" "$status"

shopt -s nullglob
wiring=("$ROOT"/knative/triggers/"$name"-*.yaml "$ROOT/knative/pingsources/$name.yaml" \
  "$ROOT/knative/ingress/httproutes/$name.yaml")
for file in "${wiring[@]}"; do
  if [ -f "$file" ]; then kubectl apply -f "$file"; fi
done
