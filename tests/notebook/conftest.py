"""Fixtures of the notebook-layer tests: a squad of real, started demo agents."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from squadnb._loop import run_sync


@pytest.fixture
def has_session(tmux_socket: str) -> Callable[[Any], bool]:
    """``has_session(instance)``: does the instance's tmux session exist (``tmux has-session``)?"""

    def check(instance: Any) -> bool:
        return subprocess.run(["tmux", "-L", tmux_socket, "has-session", "-t",
                               f"={instance.session_name}"], capture_output=True).returncode == 0

    return check


@pytest.fixture
def started(squad) -> Callable[[int], list[Any]]:
    """``started(n)``: create and start ``n`` demo instances ``nb-0`` … in ``squad``."""

    def make(n: int) -> list[Any]:
        instances = [squad.new(f"nb-{i}") for i in range(n)]

        async def start_all() -> None:
            await asyncio.gather(*(inst.astart() for inst in instances))

        run_sync(start_all())
        return instances

    return make
