"""execute_with_rollback, TransactionManager, OperationChain."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from engine_helpers import Item, Pause, Record, Resume, items

from squadnb import (
    BatchExecutor,
    CompositeOperation,
    ConditionalOperation,
    Operation,
    OperationChain,
    ProgressTracker,
    TransactionManager,
    operation,
)
from squadnb.errors import RollbackIncomplete, RolledBack, TransactionError


def test_all_succeed_returns_the_result_and_rolls_nothing_back() -> None:
    batch = items(3)
    result = BatchExecutor().execute_with_rollback(batch, Record(), progress=False)
    assert result.all_succeeded
    assert all(i.log == ["execute"] for i in batch)


def test_a_failure_rolls_back_every_success_and_raises_rolled_back() -> None:
    batch = items(4)
    executor = BatchExecutor(max_concurrency=2)
    with pytest.raises(RolledBack) as caught:
        executor.execute_with_rollback(batch, Record(fail=("i2",)), progress=False)
    error = caught.value
    assert isinstance(error, TransactionError)
    assert str(error).startswith("Record failed on 1 of 4 instances; rolled back the 3 that "
                                 "succeeded: boom on i2")
    assert isinstance(error.__cause__, RuntimeError)
    result, rollback = error.result, error.rollback_result
    assert [r.status for r in result.results] == ["rolled back", "rolled back", "failed",
                                                  "rolled back"]
    assert len(result.successes) == 3 and all(r.rolled_back for r in result.successes)
    assert rollback.total == 3 and rollback.all_succeeded
    assert rollback.results[0].operation.name == "Rollback(Record)"
    assert [i.log for i in batch] == [["execute", "rollback"]] * 2 + [[]] + [["execute", "rollback"]]
    assert executor.last_result is result


def test_rollback_results_follow_input_order_not_completion_order() -> None:
    class Reversed(Operation):
        """Finishes in reverse input order; the last instance fails."""

        async def execute(self, item: Item) -> None:
            index = int(item.title[1:])
            await asyncio.sleep(0.02 * (4 - index))
            if index == 4:
                raise RuntimeError("last one fails")

        async def rollback(self, item: Item) -> None:
            item.log.append("rollback")

    batch = items(5)
    with pytest.raises(RolledBack) as caught:
        BatchExecutor(max_concurrency=5).execute_with_rollback(batch, Reversed(), progress=False)
    assert [r.instance.title for r in caught.value.result.successes] == ["i3", "i2", "i1", "i0"]
    assert [r.instance.title for r in caught.value.rollback_result.results] == ["i0", "i1", "i2", "i3"]


def test_failed_rollback_raises_rollback_incomplete() -> None:
    batch = items(3)
    with pytest.raises(RollbackIncomplete) as caught:
        BatchExecutor().execute_with_rollback(batch, Record(fail=("i0",), fail_rollback=("i1",)),
                                              progress=False)
    error = caught.value
    assert "rollback partially failed: 1 of 2 successes not restored" in str(error)
    by_title = {r.instance.title: r for r in error.result.results}
    assert not by_title["i1"].rolled_back and by_title["i1"].status == "succeeded"
    assert by_title["i2"].rolled_back and by_title["i2"].status == "rolled back"
    assert [r.instance.title for r in error.rollback_result.failures] == ["i1"]


def test_operation_without_rollback_is_incomplete() -> None:
    @operation
    def once(item: Item) -> None:
        if item.title == "i1":
            raise RuntimeError("x")

    with pytest.raises(RollbackIncomplete) as caught:
        BatchExecutor().execute_with_rollback(items(2), once, progress=False)
    assert "once cannot be rolled back" in str(caught.value.rollback_result.error())


def test_nothing_to_undo_still_raises_rolled_back() -> None:
    with pytest.raises(RolledBack, match="nothing to roll back") as caught:
        BatchExecutor().execute_with_rollback(items(2), Record(fail=("i0", "i1")), progress=False)
    assert caught.value.rollback_result.total == 0


def test_empty_list_returns_without_raising() -> None:
    result = BatchExecutor().execute_with_rollback([], Record(), progress=False)
    assert result.total == 0 and not result.all_succeeded
    assert TransactionManager().execute([], Record(), progress=False).total == 0


def test_rollback_runs_under_a_fresh_timeout_after_the_deadline() -> None:
    class SlowUndo(Operation):
        name = "SlowUndo"

        async def execute(self, item: Item) -> None:
            if item.title == "i1":
                await asyncio.sleep(30)
            item.log.append("execute")

        async def rollback(self, item: Item) -> None:
            await asyncio.sleep(0.3)  # longer than the whole batch's deadline
            item.log.append("rollback")

    batch = items(2)
    with pytest.raises(RolledBack) as caught:
        BatchExecutor(max_concurrency=2, timeout=5).execute_with_rollback(
            batch, SlowUndo(), progress=False, deadline=0.15)
    assert [r.status for r in caught.value.result.results] == ["rolled back", "cancelled"]
    assert batch[0].log == ["execute", "rollback"]


def test_rollback_has_its_own_per_operation_timeout() -> None:
    class StuckUndo(Record):
        async def rollback(self, item: Item) -> None:
            await asyncio.sleep(30)

    start = time.monotonic()
    with pytest.raises(RollbackIncomplete) as caught:
        BatchExecutor(timeout=0.2).execute_with_rollback(items(2), StuckUndo(fail=("i0",)),
                                                         progress=False)
    assert time.monotonic() - start < 10
    assert caught.value.rollback_result.results[0].status == "timed out"


def test_rollback_never_pushes_the_tracker_past_its_total() -> None:
    tracker = ProgressTracker(4)
    counts: list[int] = []
    tracker.on_progress(lambda r, c, t: counts.append(c))
    with pytest.raises(RolledBack):
        BatchExecutor().execute_with_rollback(items(4), Record(fail=("i3",)), tracker,
                                              progress=False)
    assert tracker.progress == (4, 4) and counts == [1, 2, 3, 4]


def test_rollback_progress_is_a_separate_phase() -> None:
    phases: list[tuple[str, int, int]] = []
    with pytest.raises(RolledBack):
        BatchExecutor(max_concurrency=1).execute_with_rollback(
            items(3), Record(fail=("i2",)),
            progress=lambda r, c, t: phases.append((r.operation.name, c, t)))
    assert phases == [("Record", 1, 3), ("Record", 2, 3), ("Record", 3, 3),
                      ("Rollback(Record)", 1, 2), ("Rollback(Record)", 2, 2)]


def test_skipped_instances_are_never_rolled_back() -> None:
    batch = items(4)
    op = ConditionalOperation(Record(fail=("i3",)), lambda i: i.title != "i1")
    with pytest.raises(RolledBack) as caught:
        BatchExecutor().execute_with_rollback(batch, op, progress=False)
    assert [r.status for r in caught.value.result.results] == ["rolled back", "skipped",
                                                               "rolled back", "failed"]
    assert caught.value.rollback_result.total == 2 and batch[1].log == []


def test_a_failed_composite_is_not_rolled_back_twice() -> None:
    def resume_fails_on(title: str) -> Resume:
        class Picky(Resume):
            async def execute(self, item: Item) -> None:
                if item.title == title:
                    raise RuntimeError("resume failed")
                await super().execute(item)
        return Picky()

    batch = items(2)
    with pytest.raises(RolledBack):
        BatchExecutor().execute_with_rollback(
            batch, CompositeOperation("PR", Pause(), resume_fails_on("i1")), progress=False)
    assert batch[1].log == ["pause", "unpause"]  # the composite undid its own step, once
    assert batch[0].log == ["pause", "resume", "unresume", "unpause"]


def test_submit_as_a_transaction() -> None:
    future = BatchExecutor().submit(items(2), Record(fail=("i0",)), transaction=True)
    with pytest.raises(RolledBack) as caught:
        future.result(timeout=10)
    assert caught.value.result.results[1].rolled_back


def test_cancelled_transaction_rolls_back_what_succeeded() -> None:
    started = threading.Event()

    class Slow(Record):
        async def execute(self, item: Item) -> str:
            if item.title == "i1":
                started.set()
                await asyncio.sleep(30)
            return await super().execute(item)

    batch = items(3)
    future = BatchExecutor(max_concurrency=2).submit(batch, Slow(), transaction=True)
    assert started.wait(10)
    future.cancel()
    with pytest.raises(RolledBack) as caught:
        future.result(timeout=10)
    statuses = [r.status for r in caught.value.result.results]
    assert statuses[1] == "cancelled" and "rolled back" in statuses
    assert batch[0].log == ["execute", "rollback"]


def test_async_twin_of_execute_with_rollback() -> None:
    async def main() -> RolledBack:
        try:
            await BatchExecutor().aexecute_with_rollback(items(2), Record(fail=("i1",)),
                                                         progress=False)
        except RolledBack as exc:
            return exc
        raise AssertionError("RolledBack expected")

    assert asyncio.run(main()).result.results[0].rolled_back


# -- TransactionManager ---------------------------------------------------------------------------

def test_transaction_manager() -> None:
    manager = TransactionManager(3)
    assert manager.timeout == 300.0 and manager.executor.max_concurrency == 3
    manager.set_timeout(60)
    assert manager.timeout == 60
    with pytest.raises(ValueError):
        manager.set_timeout(0)
    assert manager.execute(items(2), Record(), progress=False).all_succeeded
    with pytest.raises(RolledBack):
        manager.execute(items(2), Record(fail=("i0",)), progress=False)

    async def main() -> object:
        return await manager.aexecute(items(2), Record(), progress=False)

    assert asyncio.run(main()).all_succeeded  # type: ignore[attr-defined]


# -- OperationChain -------------------------------------------------------------------------------

class Step(Record):
    def __init__(self, label: str, fail: tuple[str, ...] = ()) -> None:
        super().__init__(fail)
        self.name = label

    async def execute(self, item: Item) -> str:
        if item.title in self.fail:
            raise RuntimeError(f"{self.name} failed on {item.title}")
        item.log.append(self.name)
        return self.name


def test_chain_runs_steps_in_order() -> None:
    batch = items(3)
    chain = OperationChain()
    assert chain.add(Step("a")).add(Step("b")) is chain
    results = chain.execute(batch, BatchExecutor())
    assert [r.all_succeeded for r in results] == [True, True]
    assert all(i.log == ["a", "b"] for i in batch)
    assert repr(chain) == "OperationChain(a -> b, stop_on_failure=True, only_succeeded=False)"


def test_chain_stops_after_a_failing_step() -> None:
    batch = items(3)
    chain = OperationChain().add(Step("a", fail=("i1",))).add(Step("b"))
    results = chain.execute(batch, BatchExecutor())
    assert len(results) == 1 and len(results[0].failures) == 1
    assert [i.log for i in batch] == [["a"], [], ["a"]]


def test_chain_without_stop_runs_every_step_on_every_instance() -> None:
    batch = items(3)
    chain = OperationChain(stop_on_failure=False).add(Step("a", fail=("i1",))).add(Step("b"))
    results = chain.execute(batch, BatchExecutor())
    assert len(results) == 2 and results[1].total == 3
    assert [i.log for i in batch] == [["a", "b"], ["b"], ["a", "b"]]


def test_chain_only_succeeded_carries_successes_not_skips() -> None:
    batch = items(4)
    first = ConditionalOperation(Step("a", fail=("i1",)), lambda i: i.title != "i2")
    chain = OperationChain(stop_on_failure=False, only_succeeded=True).add(first).add(Step("b"))
    results = chain.execute(batch, BatchExecutor())
    assert [r.instance.title for r in results[1].results] == ["i0", "i3"]
    assert [i.log for i in batch] == [["a", "b"], [], [], ["a", "b"]]


def test_chain_shares_a_tracker_across_steps() -> None:
    tracker = ProgressTracker(6)
    OperationChain().add(Step("a")).add(Step("b")).execute(items(3), BatchExecutor(), tracker)
    assert tracker.progress == (6, 6) and tracker.is_complete


def test_chain_progress_and_async_twin() -> None:
    seen: list[str] = []
    chain = OperationChain().add(Step("a")).add(Step("b"))
    chain.execute(items(2), BatchExecutor(), progress=lambda r, c, t: seen.append(r.operation.name))
    assert seen == ["a", "a", "b", "b"]

    async def main() -> list:
        return await chain.aexecute(items(2), BatchExecutor())

    assert [r.all_succeeded for r in asyncio.run(main())] == [True, True]
    with pytest.raises(TypeError):
        chain.add(object())
