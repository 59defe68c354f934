"""The deploy manifests are derived from the catalog: committed files match, and say what the catalog says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_backend import serve
from todo_backend.catalog import DELIVERY, FUNCTIONS, Function, Route, source_checkout
from todo_backend.deploy import ci, dapr, eventing, files, gateway, knative
from todo_backend.deploy.__main__ import main
from todo_backend.deploy.yaml import to_yaml
from todo_backend.settings import Settings

GENERATED = files.resources()

REPO_ROOT = source_checkout()


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {path: r for path, r in GENERATED.items() if r["kind"] == kind}


def _committed_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for d in files.MANAGED_DIRS
        if (root / d).is_dir()
        for p in sorted((root / d).rglob("*"))
        if p.is_file()
    }


def test_generating_into_an_empty_tree_yields_exactly_the_committed_files(tmp_path: Path) -> None:
    files.write(tmp_path)
    generated, committed = _committed_tree(tmp_path), _committed_tree(REPO_ROOT)
    assert sorted(set(generated) - set(committed)) == [], "generated but not committed: run the generator"
    assert sorted(set(committed) - set(generated)) == [], "committed but no longer generated: stale files"
    differing = [path for path in generated if generated[path] != committed[path]]
    assert differing == [], "run `python -m todo_backend.deploy` and commit the result"
    assert files.check(REPO_ROOT) == []


def test_check_reports_a_hand_edit_a_stale_file_and_a_missing_one(tmp_path: Path) -> None:
    files.write(tmp_path)
    service = tmp_path / "knative/services/create-task.yaml"
    service.write_text(service.read_text().replace('min-scale: "0"', 'min-scale: "3"'))
    (tmp_path / "knative/services/left-over.yaml").write_text("kind: Service\n")
    (tmp_path / "knative/jobs/migrate.yaml").unlink()
    assert files.check(tmp_path) == [
        "missing: knative/jobs/migrate.yaml",
        "not generated (stale): knative/services/left-over.yaml",
        "differs: knative/services/create-task.yaml",
    ]
    assert "knative/services/left-over.yaml" in files.write(tmp_path)
    assert files.check(tmp_path) == []


def test_the_yaml_writer_round_trips_through_a_yaml_parser() -> None:
    for path, resource in GENERATED.items():
        assert yaml.safe_load(to_yaml(resource)) == resource, path
    tricky = {"a": ["yes", "no", "on", "null", "~", "1", "0755", "1e3", "", "x: y", "# c", "* * * * *", True]}
    tricky["multi"] = "line one\nline two\n"  # type: ignore[assignment]
    assert yaml.safe_load(to_yaml(tricky)) == tricky


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_every_function_is_a_scale_to_zero_knative_service_on_its_own_image(fn: Function) -> None:
    service = GENERATED[f"knative/services/{fn.name}.yaml"]
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
    assert template["spec"]["containerConcurrency"] >= int(annotations["autoscaling.knative.dev/target"])
    assert template["spec"]["enableServiceLinks"] is False
    (container,) = template["spec"]["containers"]
    assert container["image"] == f"ghcr.io/OWNER/todo-{fn.name}:TAG"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "todo-config"}},
        {"secretRef": {"name": "todo-secrets"}},
    ]
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_no_knative_service_is_on_the_public_domain(fn: Function) -> None:
    labels = GENERATED[f"knative/services/{fn.name}.yaml"]["metadata"]["labels"]
    assert labels["networking.knative.dev/visibility"] == "cluster-local"


def test_the_public_routes_are_exactly_the_catalog_routes_by_path_and_method() -> None:
    routed = []
    for route in _of_kind("HTTPRoute").values():
        (rule,) = route["spec"]["rules"]
        (rewrite,) = rule["filters"]
        name = route["metadata"]["name"]
        assert rewrite["urlRewrite"]["hostname"] == f"{name}.todo.svc.cluster.local"
        for match in rule["matches"]:
            routed.append((name, match["method"], match["path"]["type"], match["path"]["value"]))
    expected = [
        (fn.name, r.method, *gateway.route_path_match(r).values()) for fn in FUNCTIONS for r in fn.routes
    ]
    assert sorted(routed) == sorted(expected)
    assert all(value.startswith(("/api/", "^/api/")) for *_, value in routed)
    assert not any("_fn" in value for *_, value in routed)


@pytest.mark.parametrize(
    ("path", "matches", "does_not_match"),
    [
        ("/api/tasks/{id}", "/api/tasks/0b3f", ["/api/tasks", "/api/tasks/0b3f/events", "/api/tasks/a/b"]),
        (
            "/api/tasks/{id}/complete",
            "/api/tasks/x/complete",
            ["/api/tasks/x/completed", "/api/tasks//complete"],
        ),
    ],
)
def test_a_parameterised_route_becomes_an_anchored_regex_matching_one_segment(
    path: str, matches: str, does_not_match: list[str]
) -> None:
    match = gateway.route_path_match(Route("GET", path))
    assert match["type"] == "RegularExpression"
    assert re.fullmatch(match["value"], matches)
    assert not any(re.fullmatch(match["value"], other) for other in does_not_match)


def test_each_event_consumer_gets_one_ordered_trigger_per_topic_covering_all_its_types() -> None:
    triggers = _of_kind("Trigger").values()
    for fn in (fn for fn in FUNCTIONS if fn.trigger == "cloudevent"):
        mine = [t for t in triggers if t["spec"]["subscriber"]["ref"]["name"] == fn.name]
        types = [f["exact"]["type"] for t in mine for f in t["spec"]["filters"][0]["any"]]
        assert sorted(types) == sorted(fn.event_types)
        topics = [eventing.topic_for(t).name for t in types]
        assert len(mine) == len(set(topics)), "one consumer group per topic keeps a task's events in order"
        for trigger in mine:
            assert (
                trigger["metadata"]["annotations"]["kafka.eventing.knative.dev/delivery.order"] == "ordered"
            )
            delivery = trigger["spec"]["delivery"]
            assert delivery["retry"] == DELIVERY.retries
            assert delivery["backoffPolicy"] == "exponential"
            assert delivery["deadLetterSink"]["ref"]["kind"] == "KafkaSink"


def test_the_docs_state_the_retry_policy_the_triggers_use() -> None:
    texts = [(REPO_ROOT / p).read_text() for p in ("docs/deploy.md", "docs/runbook.md", "README.md")]
    stated = [m for text in texts for m in re.findall(r"(\d+) retries, exponential from ([\d.]+) s", text)]
    assert len(stated) >= 2
    assert set(stated) == {(str(DELIVERY.retries), f"{DELIVERY.backoff_seconds:g}")}


def test_every_topic_flows_through_an_ordered_kafka_source_into_the_kafka_broker_and_has_a_dlq() -> None:
    settings = Settings.model_construct()
    (broker,) = _of_kind("Broker").values()
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
    sources = {s["metadata"]["name"]: s for s in _of_kind("KafkaSource").values()}
    sinks = {s["spec"]["topic"]: s for s in _of_kind("KafkaSink").values()}
    for topic in (settings.topic_task_events, settings.topic_reminders):
        source = sources[topic]
        assert source["spec"]["topics"] == [topic]
        assert source["spec"]["ordering"] == "ordered"
        assert source["spec"]["sink"]["ref"]["kind"] == "Broker"
        assert sinks[f"{topic}.dlq"]["spec"]["contentMode"] == "binary"
        dlq_name = source["spec"]["delivery"]["deadLetterSink"]["ref"]["name"]
        assert sinks[f"{topic}.dlq"]["metadata"]["name"] == dlq_name


def test_the_dead_letter_sinks_the_triggers_name_exist() -> None:
    sinks = {s["metadata"]["name"] for s in _of_kind("KafkaSink").values()}
    for trigger in _of_kind("Trigger").values():
        assert trigger["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] in sinks


def test_each_cron_function_is_woken_by_a_utc_ping_source_and_no_dapr_cron_binding() -> None:
    for fn in (fn for fn in FUNCTIONS if fn.trigger == "cron"):
        ping = GENERATED[f"knative/pingsources/{fn.name}.yaml"]
        assert (ping["spec"]["schedule"], ping["spec"]["timezone"]) == (fn.schedule, "UTC")
        assert ping["spec"]["sink"]["ref"]["name"] == fn.name
    # A cron binding fires only from a running sidecar, and every function scales to zero without one.
    assert not [c for c in _of_kind("Component").values() if c["spec"]["type"] == "bindings.cron"]


def test_components_that_use_credentials_reference_the_secret_store() -> None:
    components = _of_kind("Component")
    store = GENERATED[f"dapr-components/{dapr.SECRET_STORE}.yaml"]
    assert store["spec"]["type"] == "secretstores.kubernetes"
    for component in components.values():
        if any("secretKeyRef" in m for m in component["spec"]["metadata"]):
            assert component["auth"] == {"secretStore": dapr.SECRET_STORE}
        assert component["scopes"], "a component without scopes is loaded by every Dapr app"


def test_dapr_annotations_use_a_metrics_port_knative_does_not_reserve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dapr.DAPR_METRICS_PORT not in knative.KNATIVE_RESERVED_PORTS
    assert knative.CONTAINER_PORT not in knative.KNATIVE_RESERVED_PORTS
    assert knative.METRICS_PORT not in knative.KNATIVE_RESERVED_PORTS | {dapr.DAPR_METRICS_PORT}
    fn = FUNCTIONS[0]
    monkeypatch.setitem(dapr.DAPR_APPS, fn.name, dapr.DaprUse())
    service = knative.knative_service(fn)
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/app-id"] == fn.name
    assert annotations["dapr.io/app-port"] == str(knative.CONTAINER_PORT)
    assert annotations["dapr.io/metrics-port"] == str(dapr.DAPR_METRICS_PORT)


def test_no_function_runs_a_dapr_sidecar_by_default() -> None:
    for service in _of_kind("Service").values():
        assert not any(
            k.startswith("dapr.io/") for k in service["spec"]["template"]["metadata"]["annotations"]
        )


def test_the_config_map_sets_only_variables_settings_read() -> None:
    data = GENERATED["knative/config/todo-config.yaml"]["data"]
    assert data["TODO_ENV"] == "production"
    assert {key.lower() for key in data} <= set(Settings.model_fields)


def test_the_migration_job_runs_the_upgrade_from_a_function_image() -> None:
    job = GENERATED["knative/jobs/migrate.yaml"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    assert 'upgrade(os.environ["DATABASE_URL"])' in container["command"][2]
    assert knative.IMAGE_PATTERN.fullmatch(container["image"])


def test_render_fills_in_the_owner_and_tag_and_refuses_what_is_not_a_manifest_with_an_image() -> None:
    text = (REPO_ROOT / "knative/services/get-task.yaml").read_text()
    rendered = ci.render(text, "acme", "0123abc")
    assert "ghcr.io/acme/todo-get-task:0123abc" in rendered and "OWNER" not in rendered
    job = ci.render((REPO_ROOT / "knative/jobs/migrate.yaml").read_text(), "acme", "t1", "list-tasks")
    assert "ghcr.io/acme/todo-list-tasks:t1" in job
    with pytest.raises(ValueError):
        ci.render(text, "Acme", "t1")  # GHCR wants lowercase
    with pytest.raises(ValueError):
        ci.render("kind: ConfigMap\n", "acme", "t1")


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["README.md", "docs/deploy.md"], []),
        (["functions/get_task/main.py"], ["get-task"]),
        (["functions/get_task/main.py", "knative/services/list-tasks.yaml"], ["list-tasks", "get-task"]),
        (["shared/todo_backend/tasks.py"], [fn.name for fn in FUNCTIONS]),
        (["Dockerfile"], [fn.name for fn in FUNCTIONS]),
        (["pyproject.toml"], [fn.name for fn in FUNCTIONS]),
        (["functions/not_in_the_catalog/main.py"], []),
    ],
)
def test_a_change_affects_the_functions_whose_image_or_service_it_touches(
    changed: list[str], expected: list[str]
) -> None:
    assert sorted(fn.name for fn in ci.affected(changed)) == sorted(expected)


def test_the_affected_command_prints_a_json_matrix_and_falls_back_to_all_on_an_unknown_base(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--affected", "0" * 40, "HEAD", "--root", str(REPO_ROOT)]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert matrix == [{"name": fn.name, "folder": fn.folder} for fn in FUNCTIONS]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.name)
def test_the_image_launcher_runs_functions_framework_for_the_function(fn: Function) -> None:
    script = ci.launcher(fn.folder)
    command = script.strip().splitlines()[-1]
    assert command == f'PORT="${{PORT:-8080}}" exec python -m todo_backend.serve {fn.folder}'
    args = " ".join(serve.functions_framework_args(serve.function_in(fn.folder), "8080"))
    for part in (f"--target {fn.entry}", f"--source functions/{fn.folder}/main.py",
                 f"--signature-type {fn.signature_type}", "--asgi", "--port 8080"):  # fmt: skip
        assert part in args


def test_the_launcher_refuses_a_folder_the_catalog_does_not_declare() -> None:
    with pytest.raises(SystemExit, match="no catalog function lives in functions/no_such_function"):
        ci.launcher("no_such_function")


def test_the_command_line_refuses_to_write_outside_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_health_check_probes_fit_each_kind_of_function() -> None:
    for fn in FUNCTIONS:
        probe = ci.probe(fn)
        if fn.trigger == "http":
            assert (probe.method, probe.status) == (fn.routes[0].method, 401)
            assert "{" not in probe.path
        else:
            assert (probe.method, probe.path) == ("GET", "/robots.txt")
            assert probe.status == (405 if fn.trigger == "cloudevent" else 404)


def test_turning_reminder_email_on_gives_the_email_senders_a_dapr_sidecar_and_the_config_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dapr, "NOTIFICATION_EMAIL", "dapr")
    out = files.resources()
    assert out["knative/config/todo-config.yaml"]["data"]["NOTIFICATION_EMAIL"] == "dapr"
    for fn in FUNCTIONS:
        annotations = out[f"knative/services/{fn.name}.yaml"]["spec"]["template"]["metadata"]["annotations"]
        assert (annotations.get("dapr.io/enabled") == "true") == (fn.name in dapr.EMAIL_SENDERS)
        assert annotations["autoscaling.knative.dev/min-scale"] == "0"  # an output binding needs no warm pod
    binding = out[f"dapr-components/{Settings.model_construct().notification_email_binding}.yaml"]
    assert binding["spec"]["type"] == "bindings.smtp"
    assert binding["scopes"] == sorted(dapr.EMAIL_SENDERS)


def test_the_email_senders_are_catalog_functions() -> None:
    assert set(dapr.EMAIL_SENDERS) <= {fn.name for fn in FUNCTIONS}
    assert set(dapr.PUBSUB_CONSUMERS) <= {fn.name for fn in FUNCTIONS}


def test_an_http_pod_is_asked_for_as_many_requests_at_once_as_its_pool_keeps_connections() -> None:
    defaults = Settings.model_fields
    pool = defaults["db_pool_size"].default + defaults["db_max_overflow"].default
    assert knative.SCALING["http"].target == pool
    assert defaults["db_max_overflow"].default == 0  # an overflow connection is opened and closed per use
