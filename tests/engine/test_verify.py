"""Verified outcomes: an operation's verify() after a successful execute, through every wrapper."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from engine_helpers import Item, Pause, Record, items

from squadnb import (
    BatchExecutor,
    CompositeOperation,
    ConditionalOperation,
    Operation,
    RetryOperation,
    operation,
)
from squadnb.errors import OperationTimeout, RolledBack, SquadError, ValidationError, VerificationError


class Checked(Record):
    """Record, then verify that the instance's log says so, unless its title is in ``broken``."""

    name = "Checked"

    def __init__(self, broken: tuple[str, ...] = (), fail: tuple[str, ...] = ()) -> None:
        super().__init__(fail=fail)
        self.broken = broken
        self.verified: list[str] = []

    async def verify(self, instance: Item) -> None:
        self.verified.append(instance.title)
        if instance.title in self.broken:
            raise AssertionError(f"{instance.title}'s log does not show the execute")


def run(op: Any, batch: list[Item], **kwargs: Any) -> Any:
    return BatchExecutor(max_concurrency=4, timeout=kwargs.pop("timeout", 30)).execute(
        batch, op, progress=False, **kwargs)


def test_verify_runs_after_a_successful_execute_and_is_recorded() -> None:
    op = Checked(broken=("i1",), fail=("i2",))
    result = run(op, items(3))
    assert [r.status for r in result.results] == ["succeeded", "failed", "failed"]
    assert sorted(op.verified) == ["i0", "i1"]  # not after the failed execute
    assert [r.verified for r in result.results] == [True, False, None]
    error = result.results[1].error
    assert isinstance(error, VerificationError) and isinstance(error, SquadError)
    assert str(error) == "verification failed: i1's log does not show the execute"
    assert isinstance(error.__cause__, AssertionError)
    assert result.results[1].value is None or result.results[1].value == "I1"
    frame = result.to_dataframe()
    assert frame["verified"].dtype == "boolean"
    assert frame["verified"].tolist()[:2] == [True, False] and frame["verified"].isna().tolist()[2]
    assert frame.loc[1, "error_type"] == "VerificationError"


def test_without_verify_verified_is_none_and_the_table_hides_the_column() -> None:
    result = run(Record(), items(2))
    assert [r.verified for r in result.results] == [None, None]
    assert result.to_dataframe()["verified"].isna().all()
    assert "verified" not in str(result) and "verified" not in result._repr_html_()
    shown = run(Checked(), items(1))
    assert "verified" in str(shown) and "verified" in shown._repr_html_()


def test_a_verify_returning_false_fails_and_a_verification_error_is_kept_as_is() -> None:
    own = VerificationError("instance 'i1': the session is gone")

    @operation(name="Probe", verify=lambda i: {"i0": False, "i1": None, "i2": True}[i.title])
    def probe(instance: Item) -> None:
        pass

    result = run(probe, items(3))
    assert [r.status for r in result.results] == ["failed", "succeeded", "succeeded"]
    assert str(result.results[0].error) == "verification failed: Probe.verify returned False"

    def raise_own(instance: Item) -> None:
        raise own

    result = run(operation(lambda i: None, name="Own", verify=raise_own), items(1))
    assert result.results[0].error is own and result.results[0].verified is False


def test_plain_verify_runs_in_a_worker_thread_and_async_verify_on_the_loop() -> None:
    threads: list[str] = []

    class Both(Operation):
        async def execute(self, instance: Item) -> None:
            pass

        def verify(self, instance: Item) -> None:
            threads.append(threading.current_thread().name)

    assert run(Both(), items(2)).all_succeeded
    assert threads and "squadnb-loop" not in threads


def test_verify_counts_inside_the_per_operation_timeout() -> None:
    class SlowCheck(Operation):
        async def execute(self, instance: Item) -> None:
            pass

        async def verify(self, instance: Item) -> None:
            await asyncio.sleep(30)

    result = run(SlowCheck(), items(1), timeout=0.2)
    assert isinstance(result.results[0].error, OperationTimeout)
    assert result.results[0].verified is None  # cut short: neither held nor failed


def test_verify_is_not_called_for_invalid_or_skipped_instances() -> None:
    op = Checked()
    batch = items(3)
    batch[1].paused = True
    guarded = CompositeOperation("Guarded", Pause(), op)
    result = run(ConditionalOperation(guarded, lambda i: i.title != "i2"), batch)
    assert [r.status for r in result.results] == ["succeeded", "invalid", "skipped"]
    assert op.verified == ["i0"]


def test_composite_verifies_each_step_right_after_it_runs() -> None:
    order: list[str] = []

    class Step(Record):
        def __init__(self, label: str, broken: bool = False) -> None:
            super().__init__()
            self.name = label
            self.broken = broken

        async def execute(self, instance: Item) -> str:
            order.append(f"{self.name}.execute")
            return await super().execute(instance)

        async def verify(self, instance: Item) -> None:
            order.append(f"{self.name}.verify")
            if self.broken:
                raise RuntimeError(f"{self.name} did not hold")

    ok = run(CompositeOperation("AB", Step("A"), Step("B")), items(1))
    assert ok.all_succeeded and ok.results[0].verified is True
    assert order == ["A.execute", "A.verify", "B.execute", "B.verify"]

    order.clear()
    batch = items(1)
    bad = run(CompositeOperation("AB", Step("A"), Step("B", broken=True), Step("C")), batch)
    error = bad.results[0].error
    assert str(error) == "operation 1 (B) failed: verification failed: B did not hold"
    assert isinstance(error.__cause__, VerificationError)
    assert bad.results[0].verified is False
    assert order == ["A.execute", "A.verify", "B.execute", "B.verify"]  # C never ran
    assert batch[0].log == ["execute", "execute", "rollback"]  # A undone; B (failed) not


def test_conditional_passes_verify_through_and_has_none_when_its_operation_has_none() -> None:
    checked = Checked(broken=("i0",))
    result = run(ConditionalOperation(checked, lambda i: True), items(1))
    assert isinstance(result.results[0].error, VerificationError)
    assert not hasattr(ConditionalOperation(Record(), bool), "verify")
    assert run(ConditionalOperation(Record(), bool), items(1)).results[0].verified is None


def test_retry_retries_an_attempt_whose_verify_failed() -> None:
    class Settles(Record):
        """Verify holds from the second attempt on."""

        def __init__(self) -> None:
            super().__init__()
            self.checks = 0

        async def verify(self, instance: Item) -> None:
            self.checks += 1
            if self.checks < 2:
                raise RuntimeError("not yet")

    op = Settles()
    result = run(RetryOperation(op, max_retries=2, delay=0), items(1))
    assert result.all_succeeded and result.results[0].attempts == 2
    assert result.results[0].verified is True and op.checks == 2  # the executor did not verify again

    never = run(RetryOperation(Checked(broken=("i0",)), max_retries=1, delay=0), items(1))
    error = never.results[0].error
    assert str(error).startswith("operation failed after 1 retries: verification failed:")
    assert isinstance(error.__cause__, VerificationError)
    assert never.results[0].verified is False and never.results[0].attempts == 2


def test_retry_on_decides_whether_a_failed_verification_is_retried() -> None:
    op = Checked(broken=("i0",))
    result = run(RetryOperation(op, max_retries=3, delay=0,
                                retry_on=lambda exc: not isinstance(exc, VerificationError)),
                 items(1))
    assert isinstance(result.results[0].error, VerificationError)
    assert result.results[0].attempts == 1


def test_a_failed_verification_is_a_failure_for_a_transaction() -> None:
    batch = items(3)
    with pytest.raises(RolledBack) as caught:
        BatchExecutor().execute_with_rollback(batch, Checked(broken=("i2",)), progress=False)
    assert [r.status for r in caught.value.result.results] == ["rolled back", "rolled back", "failed"]
    assert batch[2].log == ["execute"]  # the failed one is not rolled back


def test_validation_error_is_not_verification() -> None:
    assert not issubclass(VerificationError, ValidationError)
