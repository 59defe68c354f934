# shellcheck shell=bash
# Every version the cluster path pins, in one place (docs/deploy.md "Versions" says why each). Sourced by
# install-platform.sh and the cloud bootstrap scripts; each can be overridden from the environment.
#
# Supported window: Kubernetes 1.34. The floor is Knative 1.22's (knative.dev/pkg version/version.go,
# defaultMinimumVersion v1.34.0: its controllers refuse an older API server); Envoy Gateway v1.9 supports
# 1.33 to 1.36 (its compatibility matrix, end of life 2027-02-14); Dapr 1.18 follows Kubernetes' skew
# policy and is tested on 1.32 to 1.34 (its kind e2e). 1.34 is the minor all of them support and test.
# Chosen from the newest releases in the upstream repositories as mirrored in August 2026: check each
# project's support policy before a deploy and raise the pins together, then this window.

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.34}"           # the minor the bootstrap scripts create
KNATIVE_SERVING_VERSION="${KNATIVE_SERVING_VERSION:-1.22.1}"
KNATIVE_EVENTING_VERSION="${KNATIVE_EVENTING_VERSION:-1.22.2}"
KNATIVE_KAFKA_VERSION="${KNATIVE_KAFKA_VERSION:-1.22.3}"     # eventing-kafka-broker: broker, source, sink
KOURIER_VERSION="${KOURIER_VERSION:-1.22.1}"                 # net-kourier
ENVOY_GATEWAY_VERSION="${ENVOY_GATEWAY_VERSION:-v1.9.0}"     # installs Gateway API v1.6.1's CRDs
DAPR_VERSION="${DAPR_VERSION:-1.18.3}"                       # components-contrib v1.18.4
REDPANDA_CHART_VERSION="${REDPANDA_CHART_VERSION:-25.1.1}"
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-88.5.3}"  # prometheus-operator v0.93.1

export KUBERNETES_VERSION KNATIVE_SERVING_VERSION KNATIVE_EVENTING_VERSION KNATIVE_KAFKA_VERSION \
  KOURIER_VERSION ENVOY_GATEWAY_VERSION DAPR_VERSION REDPANDA_CHART_VERSION KUBE_PROMETHEUS_STACK_VERSION
