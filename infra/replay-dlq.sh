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

# Each DLQ partition that holds letters, "PARTITION HIGH-WATERMARK" per line (one whose letters all
# expired, log start = high watermark, has none to read). Columns are found by name, counted from the
# right: REPLICAS ("[0 1 2]") holds spaces.
dlq_ends() {
  rpk topic describe "${topic}.dlq" --print-partitions | awk '
    NR == 1 {
      for (i = 1; i <= NF; i++) {
        if ($i == "LOG-START-OFFSET") start = NF - i
        if ($i == "HIGH-WATERMARK") end = NF - i
      }
      next
    }
    $(NF - end) ~ /^[0-9]+$/ && $(NF - end) > $(NF - start) { print $1, $(NF - end) }'
}
# The group's committed offset of each DLQ partition ("-" when none), "PARTITION OFFSET" per line.
committed() {
  rpk group describe "$group" 2>/dev/null | awk -v t="${topic}.dlq" '$1 == t { print $2, $3 }'
}

log "dead letters in ${topic}.dlq before the replay"
ends="$(dlq_ends)"
[ -n "$ends" ] || { log "${topic}.dlq holds no letters: nothing to replay"; exit 0; }
printf '%s\n' "$ends"
kubectl apply -f "$source_file"
kubectl wait kafkasource "replay-${topic}-dlq" -n "$NAMESPACE" --for=condition=Ready --timeout=300s

reached() {  # every partition's committed offset is at or past its end noted above
  local now
  now="$(committed)"
  while read -r partition end; do
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
# A group with members cannot be moved, and rpk then reports the refusal in its output, exiting 0: wait
# until the deleted source's consumers have left, and read what the seek says.
for attempt in $(seq 1 150); do
  members="$(rpk group describe "$group" --print-summary 2>/dev/null | awk '$1 == "MEMBERS" { print $2 }')"
  [ "$members" = "0" ] && break
  [ "$attempt" -lt 150 ] || die "$group still has members after 5 minutes; seek it to the ends above by hand"
  sleep 2
done
if ! out="$(rpk group seek "$group" --to-file /tmp/replay-seek 2>&1)" || grep -qiE 'error|not allowed' <<<"$out"; then
  printf '%s\n' "$out" >&2
  die "could not set $group back to the noted ends; before the next replay: rpk group seek $group --to-file"
fi
printf '%s\n' "$out"
