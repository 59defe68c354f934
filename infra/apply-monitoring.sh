#!/usr/bin/env bash
# ServiceMonitors, PodMonitors, alert rules and the Grafana dashboard (a ConfigMap Grafana's sidecar loads).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
apply_dirs infra/monitoring/servicemonitors infra/monitoring/podmonitors infra/monitoring/prometheusrules
kubectl create configmap todo-system-dashboard -n monitoring \
  --from-file=todo-system.json="$ROOT/infra/monitoring/dashboards/todo-system.json" \
  --dry-run=client -o yaml \
  | kubectl label --local -f - grafana_dashboard=1 -o yaml \
  | kubectl apply -f -
