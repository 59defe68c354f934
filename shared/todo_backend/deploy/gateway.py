"""Gateway API: the public Gateway, one HTTPRoute per HTTP function carrying exactly its catalog routes,
and the ReferenceGrant that lets those routes reach Knative's cluster-local ingress."""

from __future__ import annotations

import re
from typing import Any

from todo_backend.catalog import Function, Route
from todo_backend.deploy.cluster import NAMESPACE, labels, meta

INGRESS_GATEWAY = "api"
GATEWAY_CLASS = "envoy-gateway"
# Knative's cluster-local ingress (net-kourier). The public Gateway forwards /api/... here with the
# function's cluster-local host, so Kourier (and, when scaled to zero, the activator) does the rest.
KNATIVE_LOCAL_INGRESS = {"name": "kourier-internal", "namespace": "kourier-system", "port": 80}
ROUTE_TIMEOUT = "60s"  # a cold start plus the request; Envoy's own default (15 s) is too short


def route_path_match(route: Route) -> dict[str, str]:
    """A Gateway API path match for a catalog route: Exact, or an anchored RE2 regex for {params}."""
    if "{" not in route.path:
        return {"type": "Exact", "value": route.path}
    parts = re.split(r"\{\w+\}", route.path)
    return {"type": "RegularExpression", "value": "^" + "[^/]+".join(map(re.escape, parts)) + "$"}


def cluster_local_host(fn: Function) -> str:
    return f"{fn.name}.{NAMESPACE}.svc.cluster.local"


def gateway() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": meta(INGRESS_GATEWAY, "ingress"),
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {
                    "name": "http",
                    "protocol": "HTTP",
                    "port": 80,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }


def http_route(fn: Function) -> dict[str, Any]:
    """The function's catalog routes (path AND method) on the public Gateway, and nothing else."""
    backend = {"group": "", "kind": "Service", **KNATIVE_LOCAL_INGRESS}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta(fn.name, "ingress"),
        "spec": {
            "parentRefs": [{"name": INGRESS_GATEWAY}],
            "rules": [
                {
                    "matches": [{"path": route_path_match(r), "method": r.method} for r in fn.routes],
                    "filters": [
                        {"type": "URLRewrite", "urlRewrite": {"hostname": cluster_local_host(fn)}},
                    ],
                    "backendRefs": [backend],
                    "timeouts": {"request": ROUTE_TIMEOUT},
                }
            ],
        },
    }


def reference_grant() -> dict[str, Any]:
    name = f"{NAMESPACE}-routes-to-{KNATIVE_LOCAL_INGRESS['name']}"
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {
            "name": name,
            "namespace": KNATIVE_LOCAL_INGRESS["namespace"],
            "labels": labels(name, "ingress"),
        },
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": NAMESPACE}],
            "to": [{"group": "", "kind": "Service", "name": KNATIVE_LOCAL_INGRESS["name"]}],
        },
    }
