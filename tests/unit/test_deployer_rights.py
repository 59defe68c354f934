"""The deploy workflow's identity may do what its scripts do, and no more: every kubectl call the
workflow makes (in its steps and the infra/ scripts they run) is read, turned into the RBAC requests the
API server authorizes, and checked against the generated Role; every right the Role grants is used.

How kubectl calls map to requests (client-side kubectl): apply reads, then creates or patches; wait and
delete --wait get, list and watch the object; `logs TYPE/NAME` reads the object, lists its pods and reads
pods/log; `run -i --rm` creates the pod, watches it, attaches (a WebSocket GET from kubectl 1.30, which
API servers authorize as `get` before 1.35 and `create` from it), reads its log when it finished before
the attach, and deletes it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_backend.catalog import source_checkout
from todo_backend.deploy import files, rbac
from todo_backend.deploy.cluster import NAMESPACE

REPO_ROOT = source_checkout()
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "deploy.yml"
ROLE = REPO_ROOT / "knative" / "roles" / f"{rbac.DEPLOYER}.yaml"
Request = tuple[str, str, str]  # (API group, resource, verb)

RESOURCE_TYPES = {  # the short names the scripts use
    "ksvc": ("serving.knative.dev", "services"),
    "revision": ("serving.knative.dev", "revisions"),
    "job": ("batch", "jobs"),
    "pod": ("", "pods"),
}
VALUE_FLAGS = {"-n", "--namespace", "-o", "-p", "-f", "--type", "--timeout", "--image", "--restart", "--tail"}
OPERATORS = {"|", "||", "&&", ";", ")", "(", ">", "<", "&"}


def scripts_run_by(text: str) -> list[Path]:
    """The infra scripts `text` runs, and those they run, once each."""
    found: list[Path] = []
    pending = re.findall(r"infra/[\w/-]+\.sh", text)
    while pending:
        path = REPO_ROOT / pending.pop(0)
        if path not in found and path.name != "lib.sh":
            found.append(path)
            pending += re.findall(r"infra/[\w/-]+\.sh", path.read_text())
    return found


def kubectl_calls(text: str) -> list[list[str]]:
    """Each kubectl command line in shell `text` (continuations joined), as its words up to the first
    shell operator."""
    calls = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for start in (m.start() for m in re.finditer(r"\bkubectl\s", line)):
            lexer = shlex.shlex(line[start:], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = []
            for word in lexer:
                if word in OPERATORS or word.endswith(")"):
                    break
                words.append(word)
            calls.append(words)
    return calls


def _positional(words: list[str]) -> list[str]:
    out, skip = [], False
    for word in words[2:]:
        if skip:
            skip = False
        elif word in VALUE_FLAGS:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def _applied(script: str) -> list[dict[str, Any]]:
    """Every generated manifest under the knative/ paths `script` names: what its `apply -f` applies."""
    prefixes = [p.rstrip("/") for p in re.findall(r"knative/[\w/.-]+", script)]
    return [r for path, r in files.resources().items() if any(path.startswith(p) for p in prefixes)]


def _applied_types(script: str) -> set[tuple[str, str]]:
    return {(r["apiVersion"].rpartition("/")[0], r["kind"].lower() + "s") for r in _applied(script)}


def requests(words: list[str], script: str) -> set[Request]:
    """The RBAC requests one kubectl call makes."""
    verb, args = words[1], _positional(words)
    if verb == "apply":
        return {(g, r, v) for g, r in _applied_types(script) for v in ("get", "create", "patch")}
    if verb == "run":
        pod = {("", "pods", v) for v in ("create", "get", "list", "watch")}
        if "-i" in words:
            pod |= {("", "pods/attach", "get"), ("", "pods/attach", "create"), ("", "pods/log", "get")}
        if "--rm" in words:
            pod.add(("", "pods", "delete"))
        return pod
    kind, _, name = args[0].partition("/")
    group, resource = RESOURCE_TYPES[kind]
    if verb == "get":
        return {(group, resource, "get" if name or len(args) > 1 else "list")}
    if verb == "wait":
        return {(group, resource, v) for v in ("get", "list", "watch")}
    if verb == "patch":
        return {(group, resource, "get"), (group, resource, "patch")}
    if verb == "delete":
        waits = "--wait=false" not in words
        return {(group, resource, "delete")} | (
            {(group, resource, v) for v in ("get", "list", "watch")} if waits else set()
        )
    if verb == "logs":
        return {(group, resource, "get"), ("", "pods", "list"), ("", "pods/log", "get")}
    raise AssertionError(f"no RBAC mapping for kubectl {verb}: add one")


def _deploy_calls() -> list[tuple[str, list[str]]]:
    """(where, words) of every kubectl call the deploy workflow makes."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    runs = "\n".join(step.get("run", "") for step in steps)
    sources = [(WORKFLOW.name, runs)] + [(p.name, p.read_text()) for p in scripts_run_by(runs)]
    return [(name, words) for name, text in sources for words in kubectl_calls(text)]


def needed() -> dict[Request, list[str]]:
    out: dict[Request, list[str]] = {}
    texts = {WORKFLOW.name: WORKFLOW.read_text()} | {
        p.name: p.read_text() for p in REPO_ROOT.glob("infra/*.sh")
    }
    for where, words in _deploy_calls():
        for request in requests(words, texts[where]):
            out.setdefault(request, []).append(f"{where}: {' '.join(words)}")
    return out


def granted(role: dict[str, Any]) -> set[Request]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _role() -> dict[str, Any]:
    return dict(yaml.safe_load(ROLE.read_text()))


def test_the_deploy_workflow_runs_the_scripts_this_test_reads() -> None:
    names = {p.name for p in scripts_run_by(WORKFLOW.read_text())}
    assert {"migrate.sh", "deploy-function.sh", "check-function.sh", "rollback-function.sh"} <= names


def test_every_kubectl_call_of_the_deploy_workflow_is_allowed_to_the_deployer() -> None:
    missing = {r: where for r, where in needed().items() if r not in granted(_role())}
    assert missing == {}


def test_the_deployer_has_no_right_the_workflow_does_not_use() -> None:
    assert granted(_role()) - set(needed()) == set()


def test_every_call_is_in_the_app_namespace() -> None:
    """A Role grants nothing outside its namespace: a call elsewhere, or in the default one, fails. An
    apply takes the namespace from its manifests."""
    scripts = {p.name: p.read_text() for p in REPO_ROOT.glob("infra/*.sh")}
    for where, words in _deploy_calls():
        if words[1] == "apply":
            applied = _applied(scripts[where])
            assert applied and {r["metadata"]["namespace"] for r in applied} == {NAMESPACE}, where
        else:
            assert "-n" in words and words[words.index("-n") + 1] == "$NAMESPACE", f"{where}: {words}"
    assert _role()["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("rule", range(len(rbac.RULES)))
def test_without_any_one_rule_some_call_is_refused(rule: int) -> None:
    role = _role()
    del role["rules"][rule]
    assert set(needed()) - granted(role), f"rule {rule} is not needed"


def test_the_binding_gives_the_role_to_the_deployer_account() -> None:
    binding = rbac.role_binding()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": rbac.DEPLOYER,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": rbac.DEPLOYER, "namespace": NAMESPACE}]
