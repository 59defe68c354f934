"""The rollout scripts against a stand-in kubectl that answers as a cluster does in the failures they
exist for: a rollback while the newest revision is broken (the Service's Ready stays False), and a
migration Job that failed (waiting for `complete` would wait out its whole timeout)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from todo_backend.catalog import source_checkout

REPO_ROOT = source_checkout()

FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
joined = " ".join(args)
if args[0] == "wait" and "--for=condition=Ready" in args and "ksvc/" in joined:
    sys.exit(1)  # the newest revision failed: Ready is False however long one waits
if args[0] == "wait" and "--for=condition=complete" in args:
    time.sleep(600)  # a failed Job never completes
if args[0] == "get" and "jsonpath={.metadata.generation}" in args:
    print("7")
elif args[:2] == ["get", "job"]:
    print(os.environ.get("FAKE_JOB_STATE", ""))
elif args[:3] == ["apply", "-f", "-"]:
    sys.stdin.read()
"""


def _run(
    tmp_path: Path, script: list[str], **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir(exist_ok=True)
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "calls.log"
    result = subprocess.run(
        ["bash", *script],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "FAKE_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def test_a_rollback_succeeds_while_the_services_ready_stays_false(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, ["infra/rollback-function.sh", "create-task", "create-task-00012"])
    assert result.returncode == 0, result.stderr[-2000:]
    [patch] = [c for c in calls if c[0] == "patch"]
    assert json.loads(patch[patch.index("-p") + 1]) == {
        "spec": {"traffic": [{"revisionName": "create-task-00012", "percent": 100}]}
    }
    waits = [" ".join(c) for c in calls if c[0] == "wait"]
    # The pin, as the route serves it: for this generation, ready, all traffic on that revision.
    assert any("--for=jsonpath={.status.observedGeneration}=7" in w for w in waits)
    assert any("--for=condition=RoutesReady" in w for w in waits)
    assert any("--for=jsonpath={.status.traffic[0].revisionName}=create-task-00012" in w for w in waits)


def test_a_failed_migration_job_fails_the_script_at_once_with_its_logs(tmp_path: Path) -> None:
    result, calls = _run(
        tmp_path, ["infra/migrate.sh", "acme", "0123abc"], FAKE_JOB_STATE="FailureTarget Failed"
    )
    assert result.returncode != 0 and "migrations failed (FailureTarget Failed)" in result.stderr
    assert any(c[:2] == ["logs", "job/migrate"] for c in calls)


def test_a_completed_migration_job_passes(tmp_path: Path) -> None:
    result, _ = _run(
        tmp_path, ["infra/migrate.sh", "acme", "0123abc"], FAKE_JOB_STATE="SuccessCriteriaMet Complete"
    )
    assert result.returncode == 0, result.stderr[-2000:]
