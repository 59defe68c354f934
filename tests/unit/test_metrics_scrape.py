"""The PodMonitors find the metrics of the pods Knative makes of the generated Services, by the rules
that decide it upstream (read at the pinned tags):

- Knative Serving 1.21 (pkg/reconciler/revision/resources/deploy.go, queue.go): the user container's
  ports are replaced by one, named `user-port`, on its serving port; the queue-proxy sidecar declares
  queue-port, http-queueadm, http-autometric and http-usermetric.
- Prometheus's pod discovery (discovery/kubernetes/pod.go): one target per declared container port, with
  `__address__` = pod IP:port and the `__meta_kubernetes_pod_*` labels; a container with no ports gets
  one target without a port. An undeclared port has no target unless `__address__` is relabelled.
- prometheus-operator v0.85 (pkg/prometheus/promcfg.go, generatePodMonitorConfig): keep by the selector,
  keep by `port` (container port name) or `portNumber`, then the endpoint's own relabelings.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from todo_backend.catalog import FUNCTIONS, source_checkout
from todo_backend.deploy import knative

REPO_ROOT = source_checkout()
PODMONITORS = REPO_ROOT / "infra" / "monitoring" / "podmonitors"
POD_IP = "10.4.0.7"
QUEUE_PROXY_PORTS = {
    "queue-port": 8012,
    "http-queueadm": 8022,
    "http-autometric": 9090,
    "http-usermetric": 9091,
}
Target = dict[str, str]
_GO_GROUP = re.compile(r"\$\{(\d+)\}|\$(\d+)")  # $1 and ${1} in a replacement, as Python's \g<1>


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def knative_pod(service: dict[str, Any]) -> dict[str, Any]:
    """The pod a revision of `service` runs as: its containers with the ports Knative gives them."""
    template = service["spec"]["template"]
    [user] = template["spec"]["containers"]
    port = user["ports"][0]["containerPort"]
    containers = [
        {"name": user.get("name", "user-container"), "ports": [{"name": "user-port", "containerPort": port}]},
        {
            "name": "queue-proxy",
            "ports": [{"name": n, "containerPort": p} for n, p in QUEUE_PROXY_PORTS.items()],
        },
    ]
    labels = {**template["metadata"]["labels"], "serving.knative.dev/service": service["metadata"]["name"]}
    return {"namespace": service["metadata"]["namespace"], "labels": labels, "containers": containers}


def discovered(pod: dict[str, Any]) -> list[Target]:
    """Prometheus's pod role: a target per declared container port (one without a port if none)."""
    common = {"__meta_kubernetes_namespace": pod["namespace"], "__meta_kubernetes_pod_ip": POD_IP}
    for key, value in pod["labels"].items():
        common[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = value
        common[f"__meta_kubernetes_pod_labelpresent_{_sanitize(key)}"] = "true"
    targets = []
    for container in pod["containers"]:
        base = {**common, "__meta_kubernetes_pod_container_name": container["name"]}
        for port in container.get("ports") or [None]:
            if port is None:
                targets.append({**base, "__address__": POD_IP})
                continue
            targets.append(
                {
                    **base,
                    "__address__": f"{POD_IP}:{port['containerPort']}",
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                }
            )
    return targets


def operator_relabelings(endpoint: dict[str, Any], selector: dict[str, Any]) -> list[dict[str, Any]]:
    """The relabel_configs prometheus-operator writes for one podMetricsEndpoint, in its order."""
    rules: list[dict[str, Any]] = []
    for key, value in selector.get("matchLabels", {}).items():
        rules.append(
            {
                "action": "keep",
                "sourceLabels": [f"__meta_kubernetes_pod_label_{_sanitize(key)}"],
                "regex": value,
            }
        )
    for expression in selector.get("matchExpressions", []):
        present = [f"__meta_kubernetes_pod_labelpresent_{_sanitize(expression['key'])}"]
        label = [f"__meta_kubernetes_pod_label_{_sanitize(expression['key'])}"]
        match expression["operator"]:
            case "Exists":
                rules.append({"action": "keep", "sourceLabels": present, "regex": "true"})
            case "DoesNotExist":
                rules.append({"action": "drop", "sourceLabels": present, "regex": "true"})
            case "In":
                rules.append(
                    {"action": "keep", "sourceLabels": label, "regex": "|".join(expression["values"])}
                )
            case "NotIn":
                rules.append(
                    {"action": "drop", "sourceLabels": label, "regex": "|".join(expression["values"])}
                )
    if endpoint.get("port"):
        rules.append(
            {
                "action": "keep",
                "sourceLabels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": endpoint["port"],
            }
        )
    elif endpoint.get("portNumber"):
        rules.append(
            {
                "action": "keep",
                "sourceLabels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(endpoint["portNumber"]),
            }
        )
    return [*rules, *endpoint.get("relabelings", [])]


def relabel(target: Target, rules: list[dict[str, Any]]) -> Target | None:
    """Prometheus's relabelling (keep, drop, replace) of one target; None when it is dropped."""
    labels = dict(target)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            replacement = _GO_GROUP.sub(r"\\g<\1\2>", rule.get("replacement", "$1"))
            labels[rule["targetLabel"]] = match.expand(replacement)
    return labels


def scraped(monitor: dict[str, Any], pod: dict[str, Any]) -> list[Target]:
    if monitor["metadata"]["namespace"] != pod["namespace"]:
        return []
    out = []
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        rules = operator_relabelings(endpoint, monitor["spec"]["selector"])
        out += [t for t in (relabel(t, rules) for t in discovered(pod)) if t is not None]
    return out


def _monitor(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((PODMONITORS / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_each_function_pod_has_one_target_on_its_metrics_port(fn: Any) -> None:
    pod = knative_pod(knative.knative_service(fn))
    [target] = scraped(_monitor("todo-functions"), pod)
    assert target["__address__"] == f"{POD_IP}:{knative.METRICS_PORT}"
    assert target["function"] == fn.name


def test_the_queue_proxy_monitor_scrapes_the_user_metrics_port_of_each_function() -> None:
    pod = knative_pod(knative.knative_service(FUNCTIONS[0]))
    [target] = scraped(_monitor("todo-queue-proxy"), pod)
    assert target["__address__"] == f"{POD_IP}:{QUEUE_PROXY_PORTS['http-usermetric']}"
    assert target["function"] == FUNCTIONS[0].name


def test_an_undeclared_port_number_finds_no_target() -> None:
    """The rule the first monitor broke: `portNumber: 9464` keeps only a declared port 9464, and Knative
    declares none, so nothing would be scraped."""
    monitor = _monitor("todo-functions")
    monitor["spec"]["podMetricsEndpoints"] = [{"portNumber": knative.METRICS_PORT, "path": "/metrics"}]
    assert scraped(monitor, knative_pod(knative.knative_service(FUNCTIONS[0]))) == []


def test_the_monitor_selects_only_function_pods() -> None:
    pod = knative_pod(knative.knative_service(FUNCTIONS[0]))
    del pod["labels"]["todo.dev/function"]
    assert scraped(_monitor("todo-functions"), pod) == []


def test_an_ipv6_pod_address_keeps_its_brackets() -> None:
    rules = _monitor("todo-functions")["spec"]["podMetricsEndpoints"][0]["relabelings"]
    moved = relabel({"__address__": "[fd00::7]:8080"}, rules)
    assert moved is not None and moved["__address__"] == f"[fd00::7]:{knative.METRICS_PORT}"


def test_the_metrics_port_and_path_are_the_ones_the_functions_serve() -> None:
    config = knative.config_map()["data"]
    assert config["METRICS_PORT"] == str(knative.METRICS_PORT)
    [endpoint] = _monitor("todo-functions")["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert knative.METRICS_PORT not in knative.KNATIVE_RESERVED_PORTS
