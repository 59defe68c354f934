#!/usr/bin/env bash
# Run the database migrations once, as a Kubernetes Job, from a function image, and wait for it:
#   infra/migrate.sh OWNER TAG [FUNCTION]
# The Job is recreated each time (a Job's pod template cannot change); its logs are printed on failure.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || die "usage: $0 OWNER TAG [FUNCTION]"
owner="$1" tag="$2" function="${3:-}"

render=(render "$ROOT/knative/jobs/migrate.yaml" --owner "$owner" --tag "$tag")
# Any function image carries the migrations; CI names one that this deploy built.
if [ -n "$function" ]; then render+=(--image-of "$function"); fi
job="$(manifests "${render[@]}")"
log "running migrations (image tag $tag)"
kubectl delete job migrate -n "$NAMESPACE" --ignore-not-found --wait=true
printf '%s\n' "$job" | kubectl apply -f -
# Complete or Failed, whichever comes first: `kubectl wait --for=condition=complete` alone would sit out
# its whole timeout on a Job that failed (backoffLimit 2, activeDeadlineSeconds 600).
deadline=$((SECONDS + 660))
while :; do
  state="$(kubectl get job migrate -n "$NAMESPACE" \
    -o jsonpath='{.status.conditions[?(@.status=="True")].type}')"
  [[ "$state" =~ (^| )(Complete|Failed)( |$) ]] && break
  [ "$SECONDS" -lt "$deadline" ] || { state="timed out"; break; }
  sleep 3
done
if [[ ! "$state" =~ (^| )Complete( |$) ]]; then
  kubectl logs job/migrate -n "$NAMESPACE" --all-containers --tail=200 || true
  die "migrations failed ($state)"
fi
kubectl logs job/migrate -n "$NAMESPACE" --tail=50 || true
