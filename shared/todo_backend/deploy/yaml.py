"""The YAML writer for generated manifests: block style, deterministic, quoting only when needed. Our
own, not PyYAML: the deploy helpers run without the package's dependencies installed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:@-]*(?<!:)")
# YAML 1.1 (PyYAML, kubectl's sigs.k8s.io/yaml) reads these as booleans or null, never as strings.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out = []
        for key, item in value.items():
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(item, Mapping | list) and item:
                out.append(head)
                out.extend(_lines(item, indent + 2))
            elif isinstance(item, str) and "\n" in item:
                out.append(head + (" |" if item.endswith("\n") else " |-"))
                out.extend(f"{pad}  {line}" if line else "" for line in item.rstrip("\n").split("\n"))
            else:
                out.append(f"{head} {_flow(item)}")
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            if isinstance(item, Mapping | list) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_flow(item)}")
        return out
    return [pad + _scalar(value)]


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(value: Any) -> str:
    """Block-style YAML for plain data, deterministic: keys in insertion order, quoting only when needed."""
    return "\n".join(_lines(value, 0)) + "\n"
