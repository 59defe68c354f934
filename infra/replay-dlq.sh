#!/usr/bin/env bash
# Replay a topic's dead letters into the broker, once the cause of the failures is fixed:
#   infra/replay-dlq.sh task-events      (or: reminders)
# Applies knative/replays/replay-<topic>-dlq.yaml, waits until its consumer group has caught up with the
# <topic>.dlq topic, then deletes it, so events that fail again wait in the DLQ instead of looping.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -eq 1 ] || die "usage: $0 TOPIC"
topic="$1"
source_file="$ROOT/knative/replays/replay-${topic}-dlq.yaml"
[ -f "$source_file" ] || die "no replay source for topic $topic"
group="knative-replay-${topic}-dlq"
rpk() { kubectl exec -n redpanda redpanda-0 -c redpanda -- rpk "$@"; }

log "dead letters in ${topic}.dlq before the replay"
rpk topic describe "${topic}.dlq" --print-partitions || true
kubectl apply -f "$source_file"
kubectl wait kafkasource "replay-${topic}-dlq" -n "$NAMESPACE" --for=condition=Ready --timeout=300s

deadline=$((SECONDS + ${REPLAY_TIMEOUT_SECONDS:-1800}))
while :; do
  lag="$(rpk group describe "$group" 2>/dev/null | awk '$1 == "TOTAL-LAG" {print $2}')"
  if [ "${lag:-}" = "0" ]; then
    log "replayed: $group has consumed everything in ${topic}.dlq"
    break
  fi
  [ "$SECONDS" -lt "$deadline" ] || { kubectl delete -f "$source_file"; die "replay did not finish"; }
  log "lag ${lag:-unknown}; waiting"
  sleep 10
done
kubectl delete -f "$source_file"
