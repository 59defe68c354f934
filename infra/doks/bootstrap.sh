#!/usr/bin/env bash
# DigitalOcean Kubernetes: create the cluster if it does not exist, fetch its credentials, install the
# platform. Needs doctl, authenticated (`doctl auth init`).
#   CLUSTER_NAME=todo REGION=fra1 infra/doks/bootstrap.sh
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/../lib.sh"
CLUSTER_NAME="${CLUSTER_NAME:-todo}"
REGION="${REGION:-fra1}"
NODE_SIZE="${NODE_SIZE:-s-4vcpu-8gb}"
NODE_COUNT="${NODE_COUNT:-3}"
need doctl

if doctl kubernetes cluster get "$CLUSTER_NAME" >/dev/null 2>&1; then
  log "cluster $CLUSTER_NAME exists"
else
  log "creating cluster $CLUSTER_NAME in $REGION ($NODE_COUNT x $NODE_SIZE)"
  doctl kubernetes cluster create "$CLUSTER_NAME" --region "$REGION" \
    --node-pool "name=default;size=${NODE_SIZE};count=${NODE_COUNT}" --wait
fi
doctl kubernetes cluster kubeconfig save "$CLUSTER_NAME"
"$ROOT/infra/install-platform.sh"
