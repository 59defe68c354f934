"""infra/install-platform.sh writes nothing a webhook validates before that webhook answers, and a re-run
never exposes Kourier. The webhooks, read at the pinned tags: Serving's serving-core.yaml installs
config.webhook.serving.knative.dev (failurePolicy: Fail) for its ConfigMaps in knative-serving;
Eventing's eventing-core.yaml installs the webhooks that validate what the Kafka artifacts add to
knative-eventing."""

from __future__ import annotations

import re

import yaml

from todo_backend.catalog import source_checkout

REPO_ROOT = source_checkout()
SCRIPT = REPO_ROOT / "infra" / "install-platform.sh"
# The artifact that installs a namespace's validating webhook, and the namespace.
WEBHOOKS = {"serving-core.yaml": "knative-serving", "eventing-core.yaml": "knative-eventing"}
# Artifacts that write into a namespace without naming it on the command line.
WRITES_INTO = {"eventing-kafka-": "knative-eventing"}


def _lines(text: str) -> list[str]:
    return [
        ln.strip()
        for ln in text.replace("\\\n", " ").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]


def writes_before_their_webhook(text: str) -> list[str]:
    installed: set[str] = set()
    ready: set[str] = set()
    early = []
    for line in _lines(text):
        if match := re.match(r"wait_deployments (\S+)", line):
            ready.add(match[1])
            continue
        if not re.match(r"(retry )?kubectl (apply|patch|create)\b", line):
            continue
        targets = set(re.findall(r"-n (\S+)", line))
        targets |= {ns for prefix, ns in WRITES_INTO.items() if prefix in line}
        early += [line for ns in targets if ns in installed and ns not in ready]
        installed |= {ns for artifact, ns in WEBHOOKS.items() if artifact in line}
    return early


def test_no_write_reaches_a_namespace_before_its_webhook_is_up() -> None:
    assert writes_before_their_webhook(SCRIPT.read_text()) == []


def test_the_check_finds_a_patch_right_after_serving_is_applied() -> None:
    """The first install's failure: config-network patched while Serving's webhook was still starting."""
    script = """
kubectl apply -f "$(release knative/serving "$V" serving-core.yaml)"
kubectl patch configmap/config-network -n knative-serving --type merge -p '{}'
wait_deployments knative-serving
"""
    assert len(writes_before_their_webhook(script)) == 1


def test_kourier_is_cluster_local_on_every_apply() -> None:
    lines = _lines(SCRIPT.read_text())
    assert not any("kourier.yaml" in ln and ln.startswith("kubectl apply -f") for ln in lines)
    assert any(ln.startswith("kubectl apply -k") for ln in lines)
    kustomization = yaml.safe_load((REPO_ROOT / "infra" / "kourier" / "kustomization.yaml").read_text())
    [patch] = kustomization["patches"]
    assert patch["target"] == {"kind": "Service", "name": "kourier", "namespace": "kourier-system"}
    assert yaml.safe_load(patch["patch"]) == [{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}]
    assert kustomization["resources"] == ["kourier.yaml"]


def test_no_patch_sets_a_flag_the_pinned_eventing_no_longer_has() -> None:
    # new-trigger-filters was removed in Eventing 1.15 (knative/eventing #8067): Trigger filters are on.
    assert not any("new-trigger-filters" in line for line in _lines(SCRIPT.read_text()))


def test_every_version_is_pinned_in_versions_sh_alone() -> None:
    versions = (REPO_ROOT / "infra" / "versions.sh").read_text()
    pinned = set(re.findall(r"^([A-Z_]+_VERSION)=", versions, re.MULTILINE))
    for script in REPO_ROOT.glob("infra/**/*.sh"):
        if script.name != "versions.sh":
            assert not re.findall(r"^\s*[A-Z_]+_VERSION=", script.read_text(), re.MULTILINE), script
    used = set(re.findall(r"\$\{?([A-Z_]+_VERSION)", SCRIPT.read_text()))
    assert used <= pinned and "KUBERNETES_VERSION" in pinned
