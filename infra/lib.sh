# shellcheck shell=bash
# Shared by the infra scripts: where things are, and the helpers every step uses. Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAMESPACE="${NAMESPACE:-todo}"
export ROOT NAMESPACE

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required (see docs/deploy.md, Tools)"; }
# Run a command until it succeeds, at most 6 times, 5 s apart: for writes a webhook that has just become
# ready may still refuse (its endpoints and CA bundle settle a moment after its pods are Ready).
retry() {
  local attempt
  for attempt in 1 2 3 4 5 6; do
    "$@" && return 0
    [ "$attempt" -lt 6 ] && { log "retrying in 5 s: $*"; sleep 5; }
  done
  return 1
}

# The catalog's deploy helpers; they need only Python 3.11+ and this checkout (no pip install).
manifests() { PYTHONPATH="$ROOT/shared" python3 -m todo_backend.deploy "$@"; }

# Apply every YAML file in the given directories (those that exist), in order.
apply_dirs() {
  local dir
  for dir in "$@"; do
    if [ -d "$ROOT/$dir" ]; then
      kubectl apply -f "$ROOT/$dir"
    fi
  done
}
