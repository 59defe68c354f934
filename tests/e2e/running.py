"""What the e2e tests know of the stack they run: where it answers, logs and keeps its state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunningStack:
    url: str
    log: Path
    data_dir: Path  # TODO_DATA_DIR: holds the stack.json the stack writes while it runs
