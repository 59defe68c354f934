"""A function process's logs: JSON lines in the cluster, readable lines locally, with the log context."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from todo_backend import logs
from todo_backend.settings import Settings


def settings(**fields: str) -> Settings:
    return Settings(database_url="postgresql://db/todo", jwt_secret="x" * 40, todo_env="test", **fields)


def record(message: str = "handled", *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("todo_backend.consumers", level, __file__, 1, message, args, None)


def failed_record() -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = record("failed", level=logging.ERROR)
        failure.exc_info = sys.exc_info()
    return failure


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers and level: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_a_record_with_context_and_an_exception_is_one_json_line_with_every_field() -> None:
    with logs.context(request_id="req-1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
        with logs.context(ce_id="ev-1", ce_type="dev.todo.task.completed", ce_subject="task-1"):
            line = logs.JsonFormatter("schedule-next-occurrence").format(failed_record())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry.pop("exc_info").splitlines()[-1] == "ValueError: boom"
    assert datetime.fromisoformat(entry.pop("time")).utcoffset() is not None  # RFC 3339, with its offset
    assert entry == {
        "level": "ERROR",
        "logger": "todo_backend.consumers",
        "function": "schedule-next-occurrence",
        "message": "failed",
        "request_id": "req-1",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "ce_id": "ev-1",
        "ce_type": "dev.todo.task.completed",
        "ce_subject": "task-1",
    }


def test_the_context_holds_inside_its_block_only_and_leaves_out_unset_fields() -> None:
    formatter = logs.JsonFormatter("create-task")
    with logs.context(request_id="req-2", ce_subject=None):
        inside = json.loads(formatter.format(record("handled %s", "it")))
    outside = json.loads(formatter.format(record()))
    assert (inside["request_id"], "ce_subject" in inside) == ("req-2", False)
    assert not set(outside) & set(logs.FIELDS)
    assert "exc_info" not in outside


def test_a_misspelt_context_field_is_refused() -> None:
    with pytest.raises(TypeError, match="request_idd"), logs.context(request_idd="x"):
        pass


def test_text_lines_name_the_function_level_and_context_and_keep_the_traceback() -> None:
    formatter = logs.TextFormatter("deliver-notification")
    with logs.context(ce_id="ev-3"):
        text = formatter.format(failed_record())
    first, *rest = text.splitlines()
    assert " ERROR   deliver-notification todo_backend.consumers [ce_id=ev-3]: failed" in first
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: boom"
    assert not text.lstrip().startswith("{")


def test_configure_writes_json_to_stdout_at_the_level_the_settings_give(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(settings(log_level="WARNING"), "create-task")
    log = logging.getLogger("todo_backend.test")
    log.info("dropped")
    log.warning("kept %d", 1)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["kept 1"]
    assert logging.getLogger().level == logging.WARNING


def test_configure_writes_text_lines_when_the_settings_say_so(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(settings(log_format="text"), "create-task")
    logging.getLogger("todo_backend.test").info("readable")
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith(" INFO    create-task todo_backend.test: readable")


def test_the_settings_default_to_json_at_info() -> None:
    defaults = settings()
    assert (defaults.log_format, defaults.log_level) == ("json", "INFO")
