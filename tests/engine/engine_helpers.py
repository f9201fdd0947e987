"""In-memory instances and operations for the engine's unit tests (no tmux, no git)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from squadnb import Operation


class Item:
    """A stand-in instance: a title and a log of what was done to it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.log: list[str] = []
        self.paused = False

    def __repr__(self) -> str:
        return f"Item({self.title!r})"


def items(n: int, prefix: str = "i") -> list[Item]:
    return [Item(f"{prefix}{k}") for k in range(n)]


class Peak:
    """Counts operations running at once (thread-safe) and remembers the highest count."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self.active -= 1


class Record(Operation):
    """Appends to the instance's log; fails on the titles listed in ``fail``; rollback logs too."""

    name = "Record"

    def __init__(self, fail: tuple[str, ...] = (), fail_rollback: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.fail_rollback = fail_rollback

    async def execute(self, instance: Item) -> str:
        await asyncio.sleep(0)
        if instance.title in self.fail:
            raise RuntimeError(f"boom on {instance.title}")
        instance.log.append("execute")
        return instance.title.upper()

    async def rollback(self, instance: Item) -> None:
        if instance.title in self.fail_rollback:
            raise RuntimeError(f"cannot undo {instance.title}")
        instance.log.append("rollback")


class Pause(Operation):
    """Validation requires a running item; rollback resumes it."""

    name = "Pause"

    def validate(self, instance: Item) -> None:
        if instance.paused:
            raise RuntimeError("already paused")

    def execute(self, instance: Item) -> None:
        instance.paused = True
        instance.log.append("pause")

    def rollback(self, instance: Item) -> None:
        instance.paused = False
        instance.log.append("unpause")


class Resume(Operation):
    name = "Resume"

    def validate(self, instance: Item) -> None:
        if not instance.paused:
            raise RuntimeError("not paused")

    async def execute(self, instance: Item) -> None:
        instance.paused = False
        instance.log.append("resume")

    async def rollback(self, instance: Item) -> None:
        instance.paused = True
        instance.log.append("unresume")


class Prompt(Operation):
    name = "SendPrompt"

    def validate(self, instance: Item) -> None:
        if instance.paused:
            raise RuntimeError("instance is paused")

    async def execute(self, instance: Item) -> None:
        instance.log.append("prompt")


class Stall(Operation):
    """Hangs until cancelled (a timeout, a deadline, a cancel); ``started`` is set once it runs and
    ``titles`` lists the instances it started on."""

    name = "Stall"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.titles: list[str] = []

    async def execute(self, instance: Item) -> None:
        self.titles.append(instance.title)
        self.started.set()
        await asyncio.sleep(60)


def parked_in(task: asyncio.Task[Any]) -> str | None:
    """The name of the innermost coroutine ``task`` is suspended in (``"sleep"`` while it waits in
    ``asyncio.sleep``), or None when it is not suspended in a coroutine: a way to wait until a task is
    parked where a test means to cancel it, instead of guessing with a sleep."""
    coro: Any = task.get_coro()
    name = None
    while coro is not None and hasattr(coro, "cr_code"):
        name = coro.cr_code.co_name if coro.cr_await is not None else None
        coro = coro.cr_await
    return name
