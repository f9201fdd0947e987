"""Operation, @operation, CompositeOperation, ConditionalOperation, RetryOperation."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest
from engine_helpers import Item, Pause, Prompt, Record, Resume, Stall, items, parked_in

from squadnb import (
    BatchExecutor,
    CompositeOperation,
    ConditionalOperation,
    Operation,
    RetryOperation,
    operation,
)
from squadnb._loop import run_sync
from squadnb.errors import RollbackNotSupported, SquadError, ValidationError


def run(op: Any, batch: list[Item], **kwargs: Any) -> Any:
    return BatchExecutor(**kwargs).execute(batch, op, progress=False)


# -- Operation and @operation -------------------------------------------------------------------

def test_operation_defaults() -> None:
    class Nameless(Operation):
        def execute(self, item: Item) -> None:
            pass

    op = Nameless()
    assert op.name == "Nameless" and repr(op) == "<Operation Nameless>"
    assert op.validate(Item("a")) is None
    with pytest.raises(RollbackNotSupported, match="Nameless cannot be rolled back"):
        op.rollback(Item("a"))
    with pytest.raises(NotImplementedError):
        Operation().execute(Item("a"))


def test_operation_decorator_plain_and_async() -> None:
    @operation
    def shout(item: Item) -> str:
        """Upper-case the title."""
        return item.title.upper()

    @operation(name="Whisper", validate=lambda i: None, rollback=lambda i: i.log.append("undo"))
    async def whisper(item: Item) -> str:
        return item.title.lower()

    assert isinstance(shout, Operation) and shout.name == "shout"
    assert shout.__doc__ == "Upper-case the title."
    assert shout(Item("ab")) == "AB"  # still callable as the function
    assert whisper.name == "Whisper"
    assert [r.value for r in run(shout, [Item("a")]).results] == ["A"]
    assert [r.value for r in run(whisper, [Item("B")]).results] == ["b"]
    item = Item("c")
    whisper.rollback(item)
    assert item.log == ["undo"]
    with pytest.raises(TypeError, match="needs a function"):
        operation(42)  # type: ignore[call-overload]


# -- CompositeOperation -------------------------------------------------------------------------

def test_composite_runs_steps_in_order_and_returns_their_values() -> None:
    @operation
    def one(item: Item) -> int:
        item.log.append("one")
        return 1

    @operation
    async def two(item: Item) -> int:
        item.log.append("two")
        return 2

    batch = items(3)
    result = run(CompositeOperation("Both", one, two), batch)
    assert result.all_succeeded
    assert [r.value for r in result.results] == [[1, 2]] * 3
    assert all(i.log == ["one", "two"] for i in batch)
    assert result.results[0].operation.name == "Both"


def test_composite_validates_each_step_just_before_it_runs() -> None:
    """Pause then Resume composes: Resume's validation sees the paused instance."""
    item = Item("a")
    result = run(CompositeOperation("PauseResume", Pause(), Resume()), [item])
    assert result.all_succeeded, result.error()
    assert item.log == ["pause", "resume"]


def test_composite_fails_at_a_later_steps_validation_and_undoes_earlier_steps() -> None:
    item = Item("a")
    result = run(CompositeOperation("PausePrompt", Pause(), Prompt()), [item])
    error = result.results[0].error
    assert str(error) == "operation 1 (SendPrompt) failed: validation failed: instance is paused"
    assert isinstance(error, SquadError)
    assert isinstance(error.__cause__, ValidationError)
    assert str(error.__cause__.__cause__) == "instance is paused"
    assert result.results[0].status == "failed"
    assert item.log == ["pause", "unpause"] and not item.paused


def test_composite_first_steps_refusal_is_recorded_invalid() -> None:
    item = Item("a")
    item.paused = True
    result = run(CompositeOperation("PausePrompt", Pause(), Prompt()), [item])
    assert result.results[0].status == "invalid"
    assert str(result.results[0].error) == "validation failed: already paused"
    assert item.log == []


def test_composite_rolls_back_executed_steps_in_reverse() -> None:
    @operation(rollback=lambda i: i.log.append("undo a"))
    def a(item: Item) -> None:
        item.log.append("a")

    @operation(rollback=lambda i: i.log.append("undo b"))
    async def b(item: Item) -> None:
        item.log.append("b")

    @operation
    def c(item: Item) -> None:
        raise OSError("disk full")

    item = Item("x")
    result = run(CompositeOperation("ABC", a, b, c), [item])
    error = result.results[0].error
    assert str(error) == "operation 2 (c) failed: disk full"
    assert isinstance(error.__cause__, OSError)
    assert item.log == ["a", "b", "undo b", "undo a"]


def test_composite_reports_a_failed_undo_as_a_note() -> None:
    @operation
    def a(item: Item) -> None:
        item.log.append("a")  # default rollback: not supported

    @operation
    def b(item: Item) -> None:
        raise RuntimeError("no")

    result = run(CompositeOperation("AB", a, b), [Item("x")])
    error = result.results[0].error
    assert str(error) == "operation 1 (b) failed: no"
    assert error.__notes__ == ["rollback of operation 0 (a) failed: a cannot be rolled back"]


def test_composite_rollback_undoes_every_step_in_reverse() -> None:
    item = Item("a")
    composite = CompositeOperation("PauseResume", Pause(), Resume())
    run_sync(composite.execute(item))
    run_sync(composite.rollback(item))
    assert item.log == ["pause", "resume", "unresume", "unpause"]
    failing = CompositeOperation("P", Pause(), Record(fail_rollback=("a",)))
    with pytest.raises(SquadError, match=r"rollback of operation 1 \(Record\) failed: cannot undo a"):
        run_sync(failing.rollback(item))
    assert item.log[-1] == "unpause"  # it went on after the failure


def test_composite_rollback_undoes_only_the_steps_that_ran_on_that_instance() -> None:
    item = Item("a")
    never = ConditionalOperation(Record(), lambda _: False)
    composite = CompositeOperation("MaybeRecordThenPause", Record(), never, Pause())
    run_sync(composite.execute(item))
    run_sync(composite.rollback(item))
    assert item.log == ["execute", "pause", "unpause", "rollback"]  # the skipped step is not undone


@pytest.mark.parametrize("cut", ["timeout", "deadline"])
def test_a_composite_cut_short_rolls_back_the_steps_that_ran(cut: str) -> None:
    batch = items(2)
    composite = CompositeOperation("PauseThenStall", Pause(), Stall())
    executor = BatchExecutor(max_concurrency=2, timeout=0.3 if cut == "timeout" else None)
    result = executor.execute(batch, composite, progress=False,
                              deadline=0.3 if cut == "deadline" else None)
    assert [r.status for r in result.results] == (["timed out"] * 2 if cut == "timeout"
                                                  else ["cancelled"] * 2)
    assert [i.log for i in batch] == [["pause", "unpause"]] * 2 and not any(i.paused for i in batch)
    assert all(r.error.__cause__ is None for r in result.results)


def test_a_failed_undo_of_a_cut_short_composite_is_the_timeouts_cause() -> None:
    composite = CompositeOperation("RecordThenStall", Record(fail_rollback=("i0",)), Stall())
    result = run(composite, items(1), timeout=0.3)
    error = result.results[0].error
    assert result.results[0].status == "timed out"
    assert str(error.__cause__) == "operation 1 (Stall) was cut short"
    assert error.__cause__.__notes__ == ["rollback of operation 0 (Record) failed: cannot undo i0"]


# -- ConditionalOperation -----------------------------------------------------------------------

def test_conditional_skips_where_the_predicate_is_false_and_evaluates_it_once() -> None:
    calls: list[str] = []

    def even(item: Item) -> bool:
        calls.append(item.title)
        return int(item.title[1:]) % 2 == 0

    batch = items(5)
    op = ConditionalOperation(Record(), even)
    assert op.name == "Conditional(Record)"
    result = run(op, batch)
    assert sorted(calls) == sorted(i.title for i in batch)  # once per instance
    assert [r.status for r in result.results] == ["succeeded", "skipped"] * 2 + ["succeeded"]
    assert len(result.successes) == 3 and result.failures == [] and len(result.skipped) == 2
    skipped = result.skipped[0]
    assert skipped.skipped and not skipped.success and skipped.attempts == 0 and skipped.error is None
    assert result.all_succeeded and result.success_rate == 100.0
    assert "2 skipped" in repr(result)
    assert [i.log for i in batch] == [["execute"], [], ["execute"], [], ["execute"]]


def test_conditional_async_predicate_and_inner_validation() -> None:
    async def paused(item: Item) -> bool:
        return item.paused

    a, b = Item("a"), Item("b")
    a.paused = True
    result = run(ConditionalOperation(Resume(), paused), [a, b])
    assert [r.status for r in result.results] == ["succeeded", "skipped"]


def test_conditional_predicate_that_raises_makes_the_instance_invalid() -> None:
    def broken(item: Item) -> bool:
        raise KeyError("status")

    result = run(ConditionalOperation(Record(), broken), [Item("a")])
    assert result.results[0].status == "invalid"


def test_conditional_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable predicate"):
        ConditionalOperation(Record(), True)  # type: ignore[arg-type]


# -- RetryOperation -----------------------------------------------------------------------------

class Flaky(Operation):
    """Fails the first ``failures`` calls per instance."""

    name = "Flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}
        self.validations = 0

    def validate(self, item: Item) -> None:
        self.validations += 1

    async def execute(self, item: Item) -> str:
        n = self.calls[item.title] = self.calls.get(item.title, 0) + 1
        if n <= self.failures:
            raise ConnectionError(f"attempt {n} failed")
        return f"ok after {n}"


def test_retry_until_success_counts_attempts() -> None:
    flaky = Flaky(failures=2)
    op = RetryOperation(flaky, max_retries=3, delay=0)
    assert op.name == "Retry(Flaky)"
    result = run(op, items(3))
    assert result.all_succeeded
    assert [r.attempts for r in result.results] == [3, 3, 3]
    assert [r.value for r in result.results] == ["ok after 3"] * 3
    assert flaky.validations == 3  # once per instance, not per attempt


def test_retry_gives_up_after_max_retries_plus_one_attempts() -> None:
    flaky = Flaky(failures=10)
    result = run(RetryOperation(flaky, max_retries=2, delay=0), [Item("a")])
    failure = result.results[0]
    assert failure.attempts == 3 and flaky.calls == {"a": 3}
    assert str(failure.error) == "operation failed after 2 retries: attempt 3 failed"
    assert isinstance(failure.error.__cause__, ConnectionError)


def test_retry_zero_retries_is_one_attempt() -> None:
    result = run(RetryOperation(Flaky(failures=1), max_retries=0, delay=0), [Item("a")])
    assert result.results[0].attempts == 1
    assert str(result.results[0].error) == "operation failed after 0 retries: attempt 1 failed"


def test_retry_only_on_matching_errors() -> None:
    flaky = Flaky(failures=5)
    result = run(RetryOperation(flaky, max_retries=3, delay=0, retry_on=TimeoutError), [Item("a")])
    assert result.results[0].attempts == 1
    assert isinstance(result.results[0].error, ConnectionError)


def test_retry_on_takes_a_predicate_over_the_error() -> None:
    seen: list[str] = []

    def transient(exc: BaseException) -> bool:
        seen.append(str(exc))
        return "attempt 1" in str(exc)

    flaky = Flaky(failures=5)
    result = run(RetryOperation(flaky, max_retries=3, delay=0, retry_on=transient), [Item("a")])
    assert result.results[0].attempts == 2 and flaky.calls == {"a": 2}
    assert seen == ["attempt 1 failed", "attempt 2 failed"]
    assert str(result.results[0].error) == "attempt 2 failed"  # refused: raised as it is
    assert run(RetryOperation(Flaky(failures=2), delay=0, retry_on=lambda e: True),
               [Item("a")]).all_succeeded


def test_retry_on_accepts_a_tuple_of_types_and_defaults_to_every_exception() -> None:
    op = RetryOperation(Flaky(failures=1), delay=0, retry_on=(KeyError, ConnectionError))
    assert run(op, [Item("a")]).results[0].attempts == 2
    assert RetryOperation(Record()).retry_on is None
    assert run(RetryOperation(Flaky(failures=1), delay=0), [Item("a")]).results[0].attempts == 2


@pytest.mark.parametrize("bad", [42, "ConnectionError", (KeyError, "x")])
def test_retry_on_refuses_what_is_neither_types_nor_callable(bad: object) -> None:
    with pytest.raises(TypeError, match="retry_on must be"):
        RetryOperation(Record(), retry_on=bad)  # type: ignore[arg-type]


def test_a_validation_error_is_never_retried() -> None:
    # The composite's second step refuses: a ValidationError (as the cause) is not retried, even
    # when retry_on accepts everything.
    inner = CompositeOperation("RecordThenPause", Record(), Pause())
    item = Item("a")
    item.paused = True  # Pause refuses; Record does not
    result = run(RetryOperation(inner, max_retries=3, delay=0, retry_on=lambda e: True), [item])
    failure = result.results[0]
    assert failure.attempts == 1
    assert "validation failed: already paused" in str(failure.error)
    raised = run(RetryOperation(operation(lambda i: (_ for _ in ()).throw(
        ValidationError("validation failed: no"))), max_retries=3, delay=0), [Item("b")])
    assert raised.results[0].attempts == 1 and raised.results[0].status == "invalid"


def test_a_retry_pickles_whatever_retry_on_it_was_given() -> None:
    import pickle

    op = pickle.loads(pickle.dumps(RetryOperation(Record(), retry_on=ConnectionError, delay=0)))
    assert op.retry_on is ConnectionError and op.name == "Retry(Record)"


def test_retry_delay_and_backoff_are_waited() -> None:
    start = time.monotonic()
    result = run(RetryOperation(Flaky(failures=2), max_retries=2, delay=0.05, backoff=2.0,
                                jitter=0.01), [Item("a")])
    assert result.all_succeeded
    assert time.monotonic() - start >= 0.05 + 0.1


def test_retry_jitter_adds_a_uniform_wait_of_at_most_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high  # the longest wait jitter allows

    monkeypatch.setattr(random, "uniform", uniform)
    start = time.monotonic()
    result = run(RetryOperation(Flaky(failures=2), max_retries=2, delay=0, jitter=0.1), [Item("a")])
    assert result.all_succeeded and result.results[0].attempts == 3
    assert draws == [(0, 0.1), (0, 0.1)]  # one draw per retry
    assert time.monotonic() - start >= 0.2
    draws.clear()
    assert run(RetryOperation(Flaky(failures=1), delay=0), [Item("b")]).all_succeeded
    assert draws == []  # no jitter, no draw


def test_retry_with_a_plain_operation() -> None:
    calls = []

    @operation
    def sometimes(item: Item) -> str:
        calls.append(threading.current_thread().name)
        if len(calls) < 2:
            raise RuntimeError("first time")
        return "ok"

    result = run(RetryOperation(sometimes, delay=0), [Item("a")])
    assert result.results[0].value == "ok" and result.results[0].attempts == 2
    assert "squadnb-loop" not in calls


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"delay": -0.1}, {"backoff": -1.0},
                                    {"jitter": -1.0}])
def test_retry_refuses_negative_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        RetryOperation(Record(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["delay", "jitter", "backoff"])
def test_retry_refuses_nan_and_infinite_settings(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        RetryOperation(Record(), **{name: value})  # type: ignore[arg-type]


def test_timeout_bounds_the_retry_as_a_whole() -> None:
    flaky = Flaky(failures=100)
    start = time.monotonic()
    result = run(RetryOperation(flaky, max_retries=50, delay=0.05), [Item("a")], timeout=0.3)
    assert result.results[0].status == "timed out"
    assert 2 <= result.results[0].attempts < 50
    assert time.monotonic() - start < 10


def test_retry_rollback_and_conditional_rollback_delegate() -> None:
    item = Item("a")
    run_sync(RetryOperation(Record()).rollback(item))
    run_sync(ConditionalOperation(Record(), bool).rollback(item))
    assert item.log == ["rollback", "rollback"]


def test_combinators_nest() -> None:
    flaky = Flaky(failures=1)
    op = CompositeOperation("Nested", ConditionalOperation(Record(), lambda i: i.title != "i1"),
                            RetryOperation(flaky, delay=0))
    result = run(op, items(3))
    assert result.all_succeeded, result.error()
    # The composite's first step is the conditional: a false predicate skips the whole composite.
    assert [r.status for r in result.results] == ["succeeded", "skipped", "succeeded"]
    assert flaky.calls == {"i0": 2, "i2": 2}


def test_cancelled_retry_delay_stops_promptly_on_its_own_loop() -> None:
    async def main() -> float:
        flaky = Flaky(failures=9)
        op = RetryOperation(flaky, delay=30)
        task = asyncio.ensure_future(op.execute(Item("a")))
        async with asyncio.timeout(10):
            while parked_in(task) != "sleep":  # the first attempt failed and the delay has begun
                await asyncio.sleep(0)
        assert flaky.calls == {"a": 1}
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - start

    assert asyncio.run(main()) < 5
