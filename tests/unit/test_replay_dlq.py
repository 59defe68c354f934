"""infra/replay-dlq.sh replays what the DLQ held when it started and stops, even while letters that fail
again keep arriving, and leaves the group at the noted ends so the next replay reads those letters.
Driven against a stand-in kubectl (and rpk behind `kubectl exec`) that plays a DLQ which grows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from todo_backend.catalog import source_checkout

REPO_ROOT = source_checkout()

FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
state["calls"].append(args)
rpk = args[args.index("rpk") + 1:] if "rpk" in args else []
if rpk[:2] == ["topic", "describe"]:
    state["describes"] += 1
    print("PARTITION  LEADER  EPOCH  REPLICAS  LOG-START-OFFSET  HIGH-WATERMARK")
    for p, end in enumerate(state["ends"]):
        print(f"{p}  0  1  [0 1 2]  {state['starts'][p]}  {end}")
elif rpk[:2] == ["group", "describe"] and "--print-summary" in rpk:
    state["summaries"] += 1  # the source's consumers leave after the second look
    print("GROUP  g")
    print(f"MEMBERS  {0 if state['summaries'] > 1 else 1}")
elif rpk[:2] == ["group", "describe"]:
    # The source has read everything noted and one letter that failed again meanwhile, which grew
    # partition 0: there is always lag, so waiting for none would never end.
    state["ends"][0] = state["noted"][0] + 2
    print("GROUP  knative-replay-task-events-dlq")
    print("TOPIC  PARTITION  CURRENT-OFFSET  LOG-START-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID")
    for p, end in enumerate(state["noted"]):
        current, log_end = (end + 1 if p == 0 else "-" if p == 3 else end), state["ends"][p]
        print(f"task-events.dlq  {p}  {current}  0  {log_end}  {log_end - current}  -")
elif rpk[:2] == ["group", "seek"]:
    state["seeks"].append(rpk)
    print(os.environ.get("FAKE_SEEK_OUTPUT", "TOPIC  PARTITION  PRIOR-OFFSET  CURRENT-OFFSET"))
elif "sh" in args:
    state["seek_file"] = sys.stdin.read()
json.dump(state, open(state_path, "w"))
"""


def _replay(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    state = tmp_path / "state.json"
    # Partition 1 never had a letter; partition 3's letters all expired (log start = high watermark).
    noted, starts = [3, 0, 5, 4], [0, 0, 1, 4]
    initial = {"ends": list(noted), "noted": noted, "starts": starts, "calls": [], "describes": 0}
    state.write_text(json.dumps({**initial, "seeks": [], "summaries": 0}))
    result = subprocess.run(
        ["bash", "infra/replay-dlq.sh", "task-events"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "PATH": f"{kubectl.parent}:{os.environ['PATH']}",
            "FAKE_STATE": str(state),
            "REPLAY_TIMEOUT_SECONDS": "20",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return result, json.loads(state.read_text())


def test_the_replay_stops_at_the_noted_ends_and_leaves_the_group_there(tmp_path: Path) -> None:
    result, final = _replay(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    verbs = [c[0] for c in final["calls"] if c[0] in {"apply", "delete"}]
    assert verbs == ["apply", "delete"]  # the source is gone once the noted ends are reached
    assert final["describes"] == 1  # the ends were noted once, before the replay, and never chased
    # Only the partitions that held letters; the seek waited for the group to be empty.
    assert final["seek_file"].splitlines() == ["task-events.dlq 0 3", "task-events.dlq 2 5"]
    assert final["summaries"] == 2
    group = "knative-replay-task-events-dlq"
    assert final["seeks"] == [["group", "seek", group, "--to-file", "/tmp/replay-seek"]]  # noqa: S108 (in the broker pod)


def test_a_seek_the_broker_refused_fails_the_replay(tmp_path: Path) -> None:
    """rpk exits 0 when the broker refuses a commit and says so in its output."""
    refused = "INVALID_OPERATION: seeking a non-empty group is not allowed."
    result, _ = _replay(tmp_path, FAKE_SEEK_OUTPUT=refused)
    assert result.returncode != 0 and refused in result.stderr
