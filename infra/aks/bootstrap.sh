#!/usr/bin/env bash
# Azure Kubernetes Service: create the resource group and the cluster if they do not exist, fetch the
# credentials, install the platform. Needs az, logged in (`az login`) with a subscription selected.
#   CLUSTER_NAME=todo RESOURCE_GROUP=todo LOCATION=westeurope infra/aks/bootstrap.sh
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=infra/versions.sh
source "$ROOT/infra/versions.sh"
CLUSTER_NAME="${CLUSTER_NAME:-todo}"
RESOURCE_GROUP="${RESOURCE_GROUP:-todo}"
LOCATION="${LOCATION:-westeurope}"
NODE_VM_SIZE="${NODE_VM_SIZE:-Standard_D4s_v5}"
NODE_COUNT="${NODE_COUNT:-3}"
need az

az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none
if az aks show --resource-group "$RESOURCE_GROUP" --name "$CLUSTER_NAME" --output none 2>/dev/null; then
  log "cluster $CLUSTER_NAME exists"
else
  log "creating cluster $CLUSTER_NAME in $LOCATION ($NODE_COUNT x $NODE_VM_SIZE)"
  az aks create --resource-group "$RESOURCE_GROUP" --name "$CLUSTER_NAME" --location "$LOCATION" \
    --node-count "$NODE_COUNT" --node-vm-size "$NODE_VM_SIZE" --generate-ssh-keys \
    --kubernetes-version "$KUBERNETES_VERSION" \
    --enable-oidc-issuer --enable-workload-identity --output none
fi
az aks get-credentials --resource-group "$RESOURCE_GROUP" --name "$CLUSTER_NAME" --overwrite-existing
"$ROOT/infra/install-platform.sh"
