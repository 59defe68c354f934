#!/usr/bin/env bash
# Replay a topic's dead letters into the broker, once the cause of the failures is fixed:
#   infra/replay-dlq.sh task-events      (or: reminders)
# Replays the letters that are in <topic>.dlq when it starts, no more: it notes the DLQ's end offsets,
# applies knative/replays/replay-<topic>-dlq.yaml, waits until its consumer group has reached them,
# deletes it, and sets the group back to them. A letter that fails again returns to the DLQ after those
# offsets, so it waits there for the next replay instead of looping through this one; and one the source
# read past them before it was deleted is read again next time, not skipped.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
[ $# -eq 1 ] || die "usage: $0 TOPIC"
topic="$1"
source_file="$ROOT/knative/replays/replay-${topic}-dlq.yaml"
[ -f "$source_file" ] || die "no replay source for topic $topic"
group="knative-replay-${topic}-dlq"
rpk() { kubectl exec -n redpanda redpanda-0 -c redpanda -- rpk "$@"; }

# The high watermark of each DLQ partition, "PARTITION OFFSET" per line. Columns are found by name,
# counted from the right: REPLICAS ("[0 1 2]") holds spaces.
dlq_ends() {
  rpk topic describe "${topic}.dlq" --print-partitions | awk '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "HIGH-WATERMARK") from_end = NF - i; next }
    { print $1, $(NF - from_end) }'
}
# The group's committed offset of each DLQ partition ("-" when none), "PARTITION OFFSET" per line.
committed() {
  rpk group describe "$group" 2>/dev/null | awk -v t="${topic}.dlq" '$1 == t { print $2, $3 }'
}

log "dead letters in ${topic}.dlq before the replay"
ends="$(dlq_ends)"
[ -n "$ends" ] || die "cannot read the partitions of ${topic}.dlq"
printf '%s\n' "$ends"
kubectl apply -f "$source_file"
kubectl wait kafkasource "replay-${topic}-dlq" -n "$NAMESPACE" --for=condition=Ready --timeout=300s

reached() {  # every partition's committed offset is at or past its end noted above
  local now
  now="$(committed)"
  while read -r partition end; do
    [ "$end" = "0" ] && continue
    offset="$(awk -v p="$partition" '$1 == p { print $2 }' <<<"$now")"
    [[ "$offset" =~ ^[0-9]+$ ]] && [ "$offset" -ge "$end" ] || return 1
  done <<<"$ends"
}

deadline=$((SECONDS + ${REPLAY_TIMEOUT_SECONDS:-1800}))
until reached; do
  [ "$SECONDS" -lt "$deadline" ] || { kubectl delete -f "$source_file"; die "replay did not finish"; }
  log "replaying; waiting for $group to reach the noted ends"
  sleep 2
done
kubectl delete -f "$source_file"
log "replayed: $group has consumed what ${topic}.dlq held; setting it back to those ends"
seek="$(mktemp)"
trap 'rm -f "$seek"' EXIT
while read -r partition end; do printf '%s %s %s\n' "${topic}.dlq" "$partition" "$end"; done <<<"$ends" >"$seek"
kubectl exec -i -n redpanda redpanda-0 -c redpanda -- sh -c 'cat > /tmp/replay-seek' <"$seek"
# The deleted source's consumers leave the group shortly; a group with members cannot be moved.
for attempt in 1 2 3 4 5 6; do
  if rpk group seek "$group" --to-file /tmp/replay-seek; then exit 0; fi
  sleep $((attempt * 5))
done
die "could not set $group back to the noted ends; before the next replay: rpk group seek $group --to-file"
