#!/usr/bin/env bash
# Install everything the application runs on into the current kubectl context, pinned, idempotently:
# Knative Serving (+ Kourier as its cluster-local ingress), Knative Eventing with the Kafka broker,
# source and sink, Envoy Gateway (the public edge, Gateway API), Dapr, Redpanda and kube-prometheus-stack.
# Re-running it upgrades in place (kubectl apply, helm upgrade --install).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"

KNATIVE_VERSION="${KNATIVE_VERSION:-1.21.0}"      # serving, eventing, net-kourier, eventing-kafka-broker
ENVOY_GATEWAY_VERSION="${ENVOY_GATEWAY_VERSION:-v1.5.0}"
DAPR_VERSION="${DAPR_VERSION:-1.16.0}"
REDPANDA_CHART_VERSION="${REDPANDA_CHART_VERSION:-25.1.1}"
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-77.0.0}"

need kubectl
need helm

release() { printf 'https://github.com/%s/releases/download/knative-v%s/%s' "$1" "$KNATIVE_VERSION" "$2"; }
wait_deployments() { kubectl wait deployment --all -n "$1" --for=condition=Available --timeout=600s; }

log "Knative Serving $KNATIVE_VERSION"
kubectl apply -f "$(release knative/serving serving-crds.yaml)"
kubectl apply -f "$(release knative/serving serving-core.yaml)"
kubectl apply -f "$(release knative-extensions/net-kourier kourier.yaml)"
kubectl patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# Kourier is only the cluster-local ingress; the public edge is Envoy Gateway's Gateway.
kubectl patch service/kourier -n kourier-system --type merge -p '{"spec":{"type":"ClusterIP"}}'
# Pods get RuntimeDefault seccomp and no privilege escalation unless a Service says otherwise.
kubectl patch configmap/config-features -n knative-serving --type merge \
  -p '{"data":{"secure-pod-defaults":"enabled"}}'
# Prometheus scrapes the control plane and the queue-proxies (infra/monitoring).
kubectl patch configmap/config-observability -n knative-serving --type merge \
  -p '{"data":{"metrics-protocol":"prometheus","request-metrics-protocol":"prometheus"}}'
wait_deployments knative-serving
wait_deployments kourier-system

log "Knative Eventing $KNATIVE_VERSION with the Kafka broker, source and sink"
kubectl apply -f "$(release knative/eventing eventing-crds.yaml)"
kubectl apply -f "$(release knative/eventing eventing-core.yaml)"
for artifact in eventing-kafka-controller.yaml eventing-kafka-broker.yaml eventing-kafka-source.yaml \
  eventing-kafka-sink.yaml; do
  kubectl apply -f "$(release knative-extensions/eventing-kafka-broker "$artifact")"
done
# Triggers filter with `filters` (any of several types), the CloudEvents Subscriptions API dialect.
kubectl patch configmap/config-features -n knative-eventing --type merge \
  -p '{"data":{"new-trigger-filters":"enabled"}}'
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
