"""free_port never hands the same OS-picked port to two callers of one process: between its probe and
the server's bind the port is free again, and the OS may pick it once more."""

from __future__ import annotations

from typing import Any

import pytest

from todo_backend.devstack import runner


class _Probe:
    """A socket whose bind(0) gets the ports the OS would pick, in turn."""

    picks: list[int] = []

    def __init__(self, *args: Any) -> None:
        self.port = 0

    def __enter__(self) -> _Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self.port = address[1] or _Probe.picks.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return (runner.HOST, self.port)


def test_a_port_the_os_picks_twice_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.socket, "socket", _Probe)
    monkeypatch.setattr(runner, "_picked", set())
    _Probe.picks = [41000, 41000, 41001]  # the OS picks the first one again before anyone bound it
    assert [runner.free_port(), runner.free_port()] == [41000, 41001]


def test_a_port_asked_for_by_number_is_checked_however_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker restarting on its port asks for that port again: it is free, so it is the answer."""
    monkeypatch.setattr(runner.socket, "socket", _Probe)
    assert [runner.free_port(9100), runner.free_port(9100)] == [9100, 9100]
