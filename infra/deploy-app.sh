#!/usr/bin/env bash
# Deploy (or re-deploy) the whole application into a cluster prepared by install-platform.sh:
#   DATABASE_URL=... JWT_SECRET=... IMAGE_OWNER=<ghcr owner> IMAGE_TAG=<tag> infra/deploy-app.sh
# Order: namespace, secrets, config and topics; migrations (a Job, waited for); every function (Service,
# Ready, health check, then its Triggers/PingSource/HTTPRoute); the Kafka sources last, so no trigger
# misses an event; Dapr components; monitoring.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
: "${DATABASE_URL:?set DATABASE_URL (postgresql://user:password@host:5432/db)}"
: "${JWT_SECRET:?set JWT_SECRET (at least 32 characters)}"
: "${IMAGE_OWNER:?set IMAGE_OWNER (the GHCR owner the images were pushed under, lowercase)}"
: "${IMAGE_TAG:?set IMAGE_TAG (the tag CI pushed: a commit SHA)}"
need kubectl
need python3

log "namespace, secrets and configuration"
kubectl apply -f "$ROOT/knative/namespaces/$NAMESPACE.yaml"
secret_args=(--from-literal=DATABASE_URL="$DATABASE_URL" --from-literal=JWT_SECRET="$JWT_SECRET")
if [ -n "${JWT_ISSUER:-}" ]; then secret_args+=(--from-literal=JWT_ISSUER="$JWT_ISSUER"); fi
if [ -n "${JWT_AUDIENCE:-}" ]; then secret_args+=(--from-literal=JWT_AUDIENCE="$JWT_AUDIENCE"); fi
kubectl create secret generic todo-secrets -n "$NAMESPACE" "${secret_args[@]}" \
  --dry-run=client -o yaml | kubectl apply -f -
if [ -n "${SMTP_HOST:-}" ]; then
  kubectl create secret generic smtp-credentials -n "$NAMESPACE" --from-literal=host="$SMTP_HOST" \
    --from-literal=port="${SMTP_PORT:-587}" --from-literal=user="${SMTP_USER:-}" \
    --from-literal=password="${SMTP_PASSWORD:-}" --from-literal=from="${SMTP_FROM:-}" \
    --dry-run=client -o yaml | kubectl apply -f -
fi
if [ -n "${GHCR_PULL_TOKEN:-}" ]; then
  # Private images: a pull secret for the namespace's default service account.
  kubectl create secret docker-registry ghcr-pull -n "$NAMESPACE" --docker-server=ghcr.io \
    --docker-username="$IMAGE_OWNER" --docker-password="$GHCR_PULL_TOKEN" \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl patch serviceaccount default -n "$NAMESPACE" --type merge \
    -p '{"imagePullSecrets":[{"name":"ghcr-pull"}]}'
fi
apply_dirs knative/config
# The identity the deploy workflow uses (docs/deploy.md, CI access).
apply_dirs knative/serviceaccounts knative/roles knative/rolebindings
"$ROOT/infra/create-topics.sh"

log "eventing: dead-letter sinks and the broker"
apply_dirs knative/kafkasinks knative/brokers
kubectl wait broker --all -n "$NAMESPACE" --for=condition=Ready --timeout=300s

"$ROOT/infra/migrate.sh" "$IMAGE_OWNER" "$IMAGE_TAG"

log "ingress: the Gateway and its permission to reach Knative's local ingress"
apply_dirs knative/ingress/gateways knative/ingress/referencegrants

for service in "$ROOT"/knative/services/*.yaml; do
  "$ROOT/infra/deploy-function.sh" "$(basename "$service" .yaml)" "$IMAGE_OWNER" "$IMAGE_TAG"
done

log "Kafka sources: the topics flow into the broker now that every trigger exists"
apply_dirs knative/kafkasources

log "Dapr components and monitoring"
apply_dirs dapr-components
"$ROOT/infra/apply-monitoring.sh"

gateway="$(kubectl get gateway api -n "$NAMESPACE" -o jsonpath='{.status.addresses[0].value}' 2>/dev/null || true)"
log "deployed; the API is at http://${gateway:-<pending: kubectl get gateway api -n $NAMESPACE>}/api/tasks"
