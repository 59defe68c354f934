"""The identity CI deploys with: a ServiceAccount in the app namespace, bound to a Role with exactly the
rights the deploy workflow's scripts use (infra/migrate.sh, deploy-function.sh, check-function.sh,
rollback-function.sh and the workflow's own kubectl calls). tests/unit/test_deployer_rights.py reads
every kubectl call in those and checks each against these rules.

Not the built-in `admin` ClusterRole: it reaches custom resources only through aggregated roles, and
Envoy Gateway ships none for gateway.networking.k8s.io, so an HTTPRoute apply would be Forbidden."""

from __future__ import annotations

from typing import Any

from todo_backend.deploy.cluster import NAMESPACE, meta

DEPLOYER = "deployer"

APPLY = ["get", "create", "patch"]  # client-side `kubectl apply`: read, then create or patch

RULES: list[dict[str, list[str]]] = [
    # deploy-function.sh applies the Service and waits for it; rollback-function.sh patches its traffic.
    {"apiGroups": ["serving.knative.dev"], "resources": ["services"], "verbs": [*APPLY, "list", "watch"]},
    # rollback-function.sh checks that the revision it pins exists.
    {"apiGroups": ["serving.knative.dev"], "resources": ["revisions"], "verbs": ["get"]},
    # deploy-function.sh wires the function once it is healthy.
    {"apiGroups": ["eventing.knative.dev"], "resources": ["triggers"], "verbs": APPLY},
    {"apiGroups": ["sources.knative.dev"], "resources": ["pingsources"], "verbs": APPLY},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": APPLY},
    # migrate.sh recreates the migration Job, waits for it and prints its logs.
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": [*APPLY, "delete", "list", "watch"]},
    # check-function.sh: `kubectl run --rm -i` creates a curl pod, attaches to it (a WebSocket GET from
    # kubectl 1.30 on, which API servers before 1.35 authorize as `get`, later ones as `create`), reads
    # its log when it finished before the attach, and deletes it; `kubectl logs job/...` lists the pods.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


def service_account() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(DEPLOYER, "deployer")}


def role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(DEPLOYER, "deployer"),
        "rules": RULES,
    }


def role_binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(DEPLOYER, "deployer"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DEPLOYER},
        "subjects": [{"kind": "ServiceAccount", "name": DEPLOYER, "namespace": NAMESPACE}],
    }
