"""infra/replay-dlq.sh replays what the DLQ held when it started and stops, even while letters that fail
again keep arriving, and leaves the group at the noted ends so the next replay reads those letters.
Driven against a stand-in kubectl (and rpk behind `kubectl exec`) that plays a DLQ which grows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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
        print(f"{p}  0  1  [0 1 2]  0  {end}")
elif rpk[:2] == ["group", "describe"]:
    # The source has read everything noted and one letter that failed again meanwhile, which grew
    # partition 0: there is always lag, so waiting for none would never end.
    state["ends"][0] = state["noted"][0] + 2
    print("GROUP  knative-replay-task-events-dlq")
    print("TOPIC  PARTITION  CURRENT-OFFSET  LOG-START-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID")
    for p, end in enumerate(state["noted"]):
        current, log_end = (end + 1 if p == 0 else end), state["ends"][p]
        print(f"task-events.dlq  {p}  {current}  0  {log_end}  {log_end - current}  -")
elif rpk[:2] == ["group", "seek"]:
    state["seeks"].append(rpk)
elif "sh" in args:
    state["seek_file"] = sys.stdin.read()
json.dump(state, open(state_path, "w"))
"""


def test_the_replay_stops_at_the_noted_ends_and_leaves_the_group_there(tmp_path: Path) -> None:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    state = tmp_path / "state.json"
    noted = [3, 0, 5]
    state.write_text(
        json.dumps({"ends": list(noted), "noted": noted, "calls": [], "describes": 0, "seeks": []})
    )
    env = {**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "FAKE_STATE": str(state)}
    result = subprocess.run(
        ["bash", "infra/replay-dlq.sh", "task-events"],
        cwd=REPO_ROOT,
        env={**env, "REPLAY_TIMEOUT_SECONDS": "20"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    final = json.loads(state.read_text())
    verbs = [c[0] for c in final["calls"] if c[0] in {"apply", "delete"}]
    assert verbs == ["apply", "delete"]  # the source is gone once the noted ends are reached
    assert final["describes"] == 1  # the ends were noted once, before the replay, and never chased
    assert final["seek_file"].splitlines() == [f"task-events.dlq {p} {end}" for p, end in enumerate(noted)]
    assert final["seeks"] == [
        ["group", "seek", "knative-replay-task-events-dlq", "--to-file", "/tmp/replay-seek"]  # noqa: S108 (in the broker pod)
    ]
