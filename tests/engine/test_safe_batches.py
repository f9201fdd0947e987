"""Safe bulk fixes in the engine: dry-run plans, the failure cutoff, paced starts (in-memory instances)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from engine_helpers import Item, Pause, Record, items

from squadnb import BatchExecutor, CompositeOperation, ConditionalOperation, Operation, operation
from squadnb._loop import run_sync
from squadnb.errors import Cancelled


# -- plan -----------------------------------------------------------------------------------------

class Counting(Pause):
    """Pause that counts its validations and executions (thread-safe: plain execute runs in threads)."""

    def __init__(self) -> None:
        self.validated: list[str] = []
        self.executed: list[str] = []
        self._lock = threading.Lock()

    def validate(self, instance: Item) -> None:
        self.validated.append(instance.title)
        super().validate(instance)

    def execute(self, instance: Item) -> None:
        with self._lock:
            self.executed.append(instance.title)
        super().execute(instance)


def test_plan_validates_only_and_says_why_not_in_input_order() -> None:
    batch = items(4)
    batch[1].paused = True
    op = Counting()
    plan = BatchExecutor(max_concurrency=2).plan(batch, op)
    assert list(plan.columns) == ["instance", "operation", "would_run", "reason"]
    assert plan["instance"].tolist() == ["i0", "i1", "i2", "i3"]
    assert plan["operation"].tolist() == ["Counting"] * 4
    assert plan["would_run"].dtype == bool
    assert plan["would_run"].tolist() == [True, False, True, True]
    assert plan["reason"].tolist() == ["", "validation failed: already paused", "", ""]
    assert sorted(op.validated) == ["i0", "i1", "i2", "i3"] and op.executed == []
    assert [i.paused for i in batch] == [False, True, False, False]  # nothing changed


def test_plan_reason_is_the_text_the_result_would_carry() -> None:
    batch = items(3)
    batch[2].paused = True
    executor = BatchExecutor()
    plan = executor.plan(batch, Pause())
    result = executor.execute(batch, Pause(), progress=False)
    errors = [str(r.error) if r.error else "" for r in result.results]
    assert plan["reason"].tolist() == errors


def test_plan_says_a_false_condition_would_skip() -> None:
    op = ConditionalOperation(Record(), lambda i: i.title != "i1")
    plan = BatchExecutor().plan(items(3), op)
    assert plan["would_run"].tolist() == [True, False, True]
    assert plan.loc[1, "reason"] == "would be skipped: Conditional(Record)'s condition is false"
    # A composite checks its first step, as the executor does.
    composite = CompositeOperation("Both", ConditionalOperation(Pause(), lambda i: False), Record())
    assert BatchExecutor().plan(items(1), composite).loc[0, "reason"].startswith("would be skipped")


def test_plan_awaits_async_validation_and_bounds_it_by_the_timeout() -> None:
    class Slow(Operation):
        async def validate(self, instance: Item) -> None:
            if instance.title == "i1":
                await asyncio.sleep(30)
            await asyncio.sleep(0)
            if instance.title == "i2":
                raise PermissionError("locked")

        async def execute(self, instance: Item) -> None:
            raise AssertionError("plan must not execute")

    start = time.monotonic()
    plan = BatchExecutor(timeout=0.2).plan(items(3), Slow())
    assert time.monotonic() - start < 10
    assert plan["reason"].tolist() == ["", "validation timed out after 0.2s",
                                       "validation failed: locked"]


def test_plan_refuses_what_execute_refuses() -> None:
    a = Item("a")
    with pytest.raises(ValueError, match="listed twice"):
        BatchExecutor().plan([a, a], Record())
    with pytest.raises(TypeError, match="no callable execute"):
        BatchExecutor().plan([a], object())


def test_plan_of_nothing_is_an_empty_frame_with_the_columns() -> None:
    plan = BatchExecutor().plan([], Record())
    assert plan.empty and list(plan.columns) == ["instance", "operation", "would_run", "reason"]


def test_aplan_is_the_async_twin() -> None:
    async def main() -> list[bool]:
        return (await BatchExecutor().aplan(items(2), Record()))["would_run"].tolist()

    assert asyncio.run(main()) == [True, True]


# -- failure cutoff -------------------------------------------------------------------------------

def test_max_failures_starts_nothing_after_the_cutoff() -> None:
    op = Record(fail=tuple(f"i{k}" for k in range(20)))
    result = BatchExecutor(max_concurrency=1, max_failures=4).execute(items(20), op, progress=False)
    statuses = [r.status for r in result.results]
    assert statuses == ["failed"] * 4 + ["cancelled"] * 16
    cut = result.results[4:]
    assert all(isinstance(r.error, Cancelled) for r in cut)
    assert {str(r.error) for r in cut} == {"failure cutoff reached: 4 of 20 failed"}
    assert all(r.attempts == 0 for r in cut)
    assert len(result.failures) == 20 and result.total == 20


def test_the_cutoff_lets_running_operations_finish() -> None:
    failed = threading.Event()

    class SlowOrFailing(Operation):
        name = "SlowOrFailing"

        async def execute(self, instance: Item) -> str:
            if instance.title in ("i1", "i2"):
                if instance.title == "i2":
                    failed.set()
                raise RuntimeError("boom")
            if instance.title == "i0":
                while not failed.is_set():  # still running when the cutoff is reached
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
            return "done"

    executor = BatchExecutor(max_concurrency=3, max_failures=2)
    result = executor.execute(items(6), SlowOrFailing(), progress=False)
    assert [r.status for r in result.results] == ["succeeded", "failed", "failed", "cancelled",
                                                  "cancelled", "cancelled"]
    assert result.results[0].value == "done"
    assert str(result.results[3].error) == "failure cutoff reached: 2 of 6 failed"


def test_max_failure_rate_counts_the_failed_fraction_of_those_finished() -> None:
    # One at a time: ok, ok, fail (1/3), fail (2/4 = 0.5, not above), fail (3/5 > 0.5): cut.
    op = Record(fail=tuple(f"i{k}" for k in range(2, 10)))
    result = BatchExecutor(max_concurrency=1, max_failure_rate=0.5).execute(items(10), op,
                                                                             progress=False)
    assert [r.status for r in result.results] == ["succeeded"] * 2 + ["failed"] * 3 + \
        ["cancelled"] * 5
    assert str(result.results[5].error) == "failure cutoff reached: 3 of 10 failed"


def test_max_failure_rate_waits_until_max_concurrency_have_finished() -> None:
    # The first result is a failure (1 of 1 finished); judged that early it would cut the batch.
    class FirstFails(Operation):
        async def execute(self, instance: Item) -> None:
            if instance.title == "i0":
                raise RuntimeError("boom")
            await asyncio.sleep(0.05)

    result = BatchExecutor(max_concurrency=3, max_failure_rate=0.5).execute(
        items(6), FirstFails(), progress=False)
    assert [r.status for r in result.results] == ["failed"] + ["succeeded"] * 5


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"max_failures": -2}, {"max_failures": 1.5},
                                    {"max_failures": float("nan")},
                                    {"max_failure_rate": -0.1}, {"max_failure_rate": 1.5},
                                    {"max_failure_rate": float("nan")}, {"rate": 0}, {"rate": -1},
                                    {"rate": float("nan")}, {"rate": float("inf")}])
def test_bad_cutoff_and_rate_are_refused_naming_the_parameter(kwargs: dict[str, float]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"^{name} must be"):
        BatchExecutor(**kwargs)  # type: ignore[arg-type]
    executor = BatchExecutor()
    with pytest.raises(ValueError, match=f"^{name} must be"):
        setattr(executor, name, kwargs[name])


def test_cutoff_and_rate_show_in_the_repr() -> None:
    executor = BatchExecutor(4, 10, max_failures=3, rate=2)
    assert repr(executor) == ("BatchExecutor(max_concurrency=4, timeout=10.0, max_failures=3, "
                              "rate=2.0)")


# -- pacing ---------------------------------------------------------------------------------------

class Starts(Operation):
    """Records the loop time at which each instance starts."""

    name = "Starts"

    def __init__(self) -> None:
        self.at: list[float] = []

    async def execute(self, instance: Item) -> None:
        self.at.append(asyncio.get_running_loop().time())


def test_rate_spaces_starts_across_the_batch() -> None:
    op = Starts()
    rate = 20.0  # one start every 50 ms
    result = BatchExecutor(max_concurrency=8, rate=rate).execute(items(8), op, progress=False)
    assert result.all_succeeded
    gaps = [b - a for a, b in zip(op.at, op.at[1:])]
    resolution = time.get_clock_info("monotonic").resolution + 0.002  # the loop wakes timers early
    assert min(gaps) >= 1 / rate - resolution, gaps
    assert op.at[-1] - op.at[0] >= 7 / rate - resolution


def test_without_rate_starts_are_not_spaced() -> None:
    op = Starts()
    BatchExecutor(max_concurrency=8).execute(items(8), op, progress=False)
    assert op.at[-1] - op.at[0] < 0.05 * 7


def test_waiting_for_a_start_is_not_part_of_the_operation_timeout() -> None:
    # Three at once at 5 starts/s: the third waits 0.4 s for its slot, longer than the timeout.
    result = BatchExecutor(max_concurrency=3, timeout=0.15, rate=5).execute(items(3), Starts(),
                                                                           progress=False)
    assert [r.status for r in result.results] == ["succeeded"] * 3


def test_a_deadline_ends_the_wait_for_a_start() -> None:
    op = Starts()
    start = time.monotonic()
    result = BatchExecutor(max_concurrency=3, rate=0.2).execute(items(3), op, progress=False,
                                                                deadline=0.3)
    assert time.monotonic() - start < 3  # not the 10 s the third slot is away
    assert [r.status for r in result.results] == ["succeeded", "cancelled", "cancelled"]
    assert [r.attempts for r in result.results] == [1, 0, 0]


def test_rate_applies_to_async_and_submitted_batches() -> None:
    op = Starts()
    executor = BatchExecutor(max_concurrency=4, rate=25)
    assert executor.submit(items(3), op).result(30).all_succeeded
    assert min(b - a for a, b in zip(op.at, op.at[1:])) >= 0.04 - 0.003

    later = Starts()

    async def main() -> None:
        await executor.aexecute(items(3), later, progress=False)

    run_sync(main())
    assert min(b - a for a, b in zip(later.at, later.at[1:])) >= 0.04 - 0.003


def test_cutoff_and_pacing_with_a_plain_function() -> None:
    calls: list[str] = []

    @operation
    def fail(instance: Item) -> None:
        calls.append(instance.title)
        raise RuntimeError("no")

    result = BatchExecutor(max_concurrency=1, max_failures=1, rate=50).execute(items(3), fail,
                                                                                progress=False)
    assert calls == ["i0"]
    assert [r.status for r in result.results] == ["failed", "cancelled", "cancelled"]
