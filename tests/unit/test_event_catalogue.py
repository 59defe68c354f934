"""docs/events.asyncapi.yaml documents exactly the CloudEvent types the code emits."""

import yaml

from todo_backend.catalog import FUNCTIONS, source_checkout
from todo_backend.events import CLOUDEVENT_TYPES

DOC = yaml.safe_load((source_checkout() / "docs" / "events.asyncapi.yaml").read_text())


def test_the_catalogue_names_every_emitted_type_and_no_other() -> None:
    documented = {message["name"] for message in DOC["components"]["messages"].values()}
    assert documented == set(CLOUDEVENT_TYPES.values())


def test_every_type_a_function_consumes_is_emitted() -> None:
    consumed = {t for fn in FUNCTIONS for t in fn.event_types}
    assert consumed <= set(CLOUDEVENT_TYPES.values())


def test_it_is_asyncapi_3() -> None:
    assert DOC["asyncapi"].startswith("3.")
