#!/usr/bin/env bash
# DigitalOcean Kubernetes: create the cluster if it does not exist, fetch its credentials, install the
# platform. Needs doctl, authenticated (`doctl auth init`).
#   CLUSTER_NAME=todo REGION=fra1 infra/doks/bootstrap.sh
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=infra/versions.sh
source "$ROOT/infra/versions.sh"
CLUSTER_NAME="${CLUSTER_NAME:-todo}"
REGION="${REGION:-fra1}"
NODE_SIZE="${NODE_SIZE:-s-4vcpu-8gb}"
NODE_COUNT="${NODE_COUNT:-3}"
need doctl

if doctl kubernetes cluster get "$CLUSTER_NAME" >/dev/null 2>&1; then
  log "cluster $CLUSTER_NAME exists"
else
  # DOKS wants a full version slug (1.34.1-do.0): the newest it offers of the pinned minor.
  version="$(doctl kubernetes options versions --format Slug --no-header | grep -m1 "^${KUBERNETES_VERSION}\." || true)"
  [ -n "$version" ] || die "DigitalOcean offers no Kubernetes $KUBERNETES_VERSION any more: raise infra/versions.sh"
  log "creating cluster $CLUSTER_NAME in $REGION ($NODE_COUNT x $NODE_SIZE, Kubernetes $version)"
  doctl kubernetes cluster create "$CLUSTER_NAME" --region "$REGION" --version "$version" \
    --node-pool "name=default;size=${NODE_SIZE};count=${NODE_COUNT}" --wait
fi
doctl kubernetes cluster kubeconfig save "$CLUSTER_NAME"
"$ROOT/infra/install-platform.sh"
