"""The engine's one hook for instances that run operations elsewhere (``__squadnb_run__``), with
in-memory instances: no Dask here."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from squadnb import BatchExecutor, ConditionalOperation, Operation
from squadnb.engine.operation import verify_op
from squadnb.errors import RolledBack


class Elsewhere:
    """An instance that runs each phase itself, on a stand-in 'host' object, and records the calls."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.host = "far"
        self.calls: list[str] = []
        self.cancelled = False
        self.local = {"title": title}  # what the phases get: not this proxy

    async def __squadnb_run__(self, phase: str, operation: Any) -> Any:
        self.calls.append(phase)
        try:
            if phase == "verify":  # the hook runs a phase as the engine would, tally included
                return await verify_op(operation, self.local)
            value = getattr(operation, phase)(self.local)
            return await value if asyncio.iscoroutine(value) else value
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class Checked(Operation):
    def validate(self, instance: dict[str, Any]) -> None:
        if instance["title"] == "refused":
            raise ValueError("refused here")

    async def execute(self, instance: dict[str, Any]) -> str:
        if instance["title"] == "fails":
            raise RuntimeError("failed there")
        if instance["title"] == "hangs":
            await asyncio.Event().wait()
        return f"ran on {instance['title']}"

    def verify(self, instance: dict[str, Any]) -> bool:
        return True

    def rollback(self, instance: dict[str, Any]) -> None:
        instance["undone"] = True


def test_every_phase_goes_through_the_hook() -> None:
    items = [Elsewhere("a"), Elsewhere("refused")]
    result = BatchExecutor().execute(items, Checked(), progress=False)
    assert [r.status for r in result.results] == ["succeeded", "invalid"]
    assert result.results[0].value == "ran on a" and result.results[0].verified is True
    assert items[0].calls == ["validate", "execute", "verify"] and items[1].calls == ["validate"]
    assert str(result.results[1].error) == "validation failed: refused here"
    frame = result.to_dataframe()
    assert list(frame.columns[:2]) == ["instance", "host"] and list(frame["host"]) == ["far", "far"]

    plan = BatchExecutor().plan([Elsewhere("b"), Elsewhere("refused")], Checked())
    assert plan["would_run"].tolist() == [True, False]

    skipped = BatchExecutor().execute([Elsewhere("c")], ConditionalOperation(Checked(), lambda i: False),
                                      progress=False)
    assert skipped.results[0].status == "skipped"


def test_a_rollback_is_the_execute_of_the_rollback_batch() -> None:
    items = [Elsewhere("a"), Elsewhere("fails")]
    with pytest.raises(RolledBack):
        BatchExecutor().execute_with_rollback(items, Checked(), progress=False)
    assert items[0].calls == ["validate", "execute", "verify", "execute"]
    assert items[0].local.get("undone") is True and "undone" not in items[1].local


def test_a_timeout_cancels_the_hook() -> None:
    item = Elsewhere("hangs")
    result = BatchExecutor(timeout=0.2).execute([item], Checked(), progress=False)
    assert result.results[0].status == "timed out"
    assert item.cancelled
