#!/usr/bin/env bash
# Create the application's topics in Redpanda if they are missing (the relay publishes to them; the DLQ
# topics are created by their KafkaSinks). Partitions and replicas as todo-config declares them.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
config="$ROOT/knative/config/todo-config.yaml"
value() { sed -nE "s/^  $1: \"?([^\"]*)\"?$/\\1/p" "$config"; }
partitions="$(value KAFKA_TOPIC_PARTITIONS)"
replicas="$(value KAFKA_REPLICATION_FACTOR)"
rpk() { kubectl exec -n redpanda redpanda-0 -c redpanda -- rpk "$@"; }

for topic in "$(value TOPIC_TASK_EVENTS)" "$(value TOPIC_REMINDERS)"; do
  if rpk topic describe "$topic" >/dev/null 2>&1; then
    log "topic $topic exists"
  else
    log "creating topic $topic ($partitions partitions, $replicas replicas)"
    rpk topic create "$topic" --partitions "$partitions" --replicas "$replicas"
  fi
done
