#!/usr/bin/env bash
# Google Kubernetes Engine: create the cluster if it does not exist, fetch its credentials, install the
# platform. Needs gcloud, authenticated, with the project set (`gcloud config set project ...`).
#   CLUSTER_NAME=todo REGION=europe-west1 infra/gke/bootstrap.sh
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=infra/versions.sh
source "$ROOT/infra/versions.sh"
CLUSTER_NAME="${CLUSTER_NAME:-todo}"
REGION="${REGION:-europe-west1}"
MACHINE_TYPE="${MACHINE_TYPE:-e2-standard-4}"
NODES_PER_ZONE="${NODES_PER_ZONE:-1}"  # a regional cluster: one node in each of the region's three zones
need gcloud
PROJECT="$(gcloud config get-value project 2>/dev/null)"
[ -n "$PROJECT" ] || die "no gcloud project: gcloud config set project <id>"

gcloud services enable container.googleapis.com --project "$PROJECT"
if gcloud container clusters describe "$CLUSTER_NAME" --region "$REGION" --project "$PROJECT" >/dev/null 2>&1; then
  log "cluster $CLUSTER_NAME exists"
else
  log "creating cluster $CLUSTER_NAME in $REGION"
  gcloud container clusters create "$CLUSTER_NAME" --project "$PROJECT" --region "$REGION" \
    --machine-type "$MACHINE_TYPE" --num-nodes "$NODES_PER_ZONE" --release-channel regular \
    --cluster-version "$KUBERNETES_VERSION" \
    --workload-pool "${PROJECT}.svc.id.goog"
fi
gcloud container clusters get-credentials "$CLUSTER_NAME" --region "$REGION" --project "$PROJECT"
"$ROOT/infra/install-platform.sh"
