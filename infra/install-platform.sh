#!/usr/bin/env bash
# Install everything the application runs on into the current kubectl context, pinned, idempotently:
# Knative Serving (+ Kourier as its cluster-local ingress), Knative Eventing with the Kafka broker,
# source and sink, Envoy Gateway (the public edge, Gateway API), Dapr, Redpanda and kube-prometheus-stack.
# Re-running it upgrades in place (kubectl apply, helm upgrade --install).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"

# shellcheck source=infra/versions.sh
source "$ROOT/infra/versions.sh"

need kubectl
need helm
need curl

# A release artifact of a Knative repository: release OWNER/REPO VERSION FILE
release() { printf 'https://github.com/%s/releases/download/knative-v%s/%s' "$1" "$2" "$3"; }
# Each deployment's rollout finished (on an upgrade, Available alone is the old ReplicaSet's).
wait_deployments() {
  local deployment
  for deployment in $(kubectl get deployments -n "$1" -o name); do
    kubectl rollout status "$deployment" -n "$1" --timeout=600s
  done
}

# Knative's controllers refuse an older API server: say so before installing anything.
server_minor="$(kubectl version -o json | python3 -c \
  'import json, sys; print(json.load(sys.stdin)["serverVersion"]["minor"].rstrip("+"))')"
[ "$server_minor" -ge "${KUBERNETES_VERSION#1.}" ] \
  || die "Kubernetes 1.$server_minor is older than $KUBERNETES_VERSION (infra/versions.sh)"

log "Knative Serving $KNATIVE_SERVING_VERSION"
kubectl apply -f "$(release knative/serving "$KNATIVE_SERVING_VERSION" serving-crds.yaml)"
kubectl apply -f "$(release knative/serving "$KNATIVE_SERVING_VERSION" serving-core.yaml)"
# Serving's webhook validates its ConfigMaps (config.webhook.serving.knative.dev, failurePolicy: Fail):
# a patch before it answers is refused.
wait_deployments knative-serving
# Kourier is only the cluster-local ingress; the public edge is Envoy Gateway's Gateway. Its Service is
# made ClusterIP before it is applied, so no run, first or again, exposes it as a LoadBalancer.
kourier="$(mktemp -d)"
trap 'rm -rf "$kourier"' EXIT
curl -fsSL -o "$kourier/kourier.yaml" \
  "$(release knative-extensions/net-kourier "$KOURIER_VERSION" kourier.yaml)"
cp "$ROOT/infra/kourier/kustomization.yaml" "$kourier/"
kubectl apply -k "$kourier"
retry kubectl patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# Pods get RuntimeDefault seccomp and no privilege escalation unless a Service says otherwise.
retry kubectl patch configmap/config-features -n knative-serving --type merge \
  -p '{"data":{"secure-pod-defaults":"enabled"}}'
# Prometheus scrapes the control plane and the queue-proxies (infra/monitoring).
retry kubectl patch configmap/config-observability -n knative-serving --type merge \
  -p '{"data":{"metrics-protocol":"prometheus","request-metrics-protocol":"prometheus"}}'
wait_deployments kourier-system

log "Knative Eventing $KNATIVE_EVENTING_VERSION with the Kafka broker, source and sink $KNATIVE_KAFKA_VERSION"
kubectl apply -f "$(release knative/eventing "$KNATIVE_EVENTING_VERSION" eventing-crds.yaml)"
kubectl apply -f "$(release knative/eventing "$KNATIVE_EVENTING_VERSION" eventing-core.yaml)"
wait_deployments knative-eventing
for artifact in eventing-kafka-controller.yaml eventing-kafka-broker.yaml eventing-kafka-source.yaml \
  eventing-kafka-sink.yaml; do
  retry kubectl apply -f "$(release knative-extensions/eventing-kafka-broker "$KNATIVE_KAFKA_VERSION" "$artifact")"
done
# Triggers filter with `filters` (the CloudEvents Subscriptions API dialect), always on since Eventing
# 1.15: the new-trigger-filters flag is gone.
wait_deployments knative-eventing

log "Envoy Gateway $ENVOY_GATEWAY_VERSION (installs the Gateway API CRDs)"
helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "$ENVOY_GATEWAY_VERSION" \
  --namespace envoy-gateway-system --create-namespace --wait
kubectl apply -f "$ROOT/infra/envoy-gateway/envoy-gateway.yaml"

log "Dapr $DAPR_VERSION"
helm repo add dapr https://dapr.github.io/helm-charts/ --force-update >/dev/null
helm upgrade --install dapr dapr/dapr --version "$DAPR_VERSION" \
  --namespace dapr-system --create-namespace --set global.ha.enabled=true --wait

log "Redpanda (chart $REDPANDA_CHART_VERSION, 3 brokers)"
helm repo add redpanda https://charts.redpanda.com --force-update >/dev/null
helm upgrade --install redpanda redpanda/redpanda --version "$REDPANDA_CHART_VERSION" \
  --namespace redpanda --create-namespace --values "$ROOT/infra/redpanda/values.yaml" --wait --timeout 15m

log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
helm upgrade --install monitoring prometheus-community/kube-prometheus-stack \
  --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace monitoring --create-namespace \
  --values "$ROOT/infra/monitoring/kube-prometheus-stack-values.yaml" --wait --timeout 15m

log "platform ready; next: infra/deploy-app.sh"
