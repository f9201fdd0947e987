"""All-or-nothing batches and sequences of batches: the rollback of a failed batch
(:func:`arun_with_rollback`, behind :meth:`BatchExecutor.execute_with_rollback`),
:class:`TransactionManager` and :class:`OperationChain`. A rolled-back batch raises
:class:`~squadnb.errors.RolledBack` or :class:`~squadnb.errors.RollbackIncomplete` (both
:class:`~squadnb.errors.TransactionError`).

Imports run one way: this module builds on :mod:`squadnb.engine.executor` (a transaction is a batch,
then a rollback batch, both run by the executor's machinery; :class:`TransactionManager` wraps a
:class:`BatchExecutor`). ``BatchExecutor.execute_with_rollback`` is the executor's public spelling of
a transaction (DESIGN §3), so the executor reaches :func:`arun_with_rollback` through one import at
call time rather than owning the rollback code itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable

from squadnb import _loop
from squadnb.engine._seconds import Seconds
from squadnb.engine.executor import BatchExecutor, _Limits, _Run
from squadnb.engine.operation import Operation, op_name
from squadnb.engine.progress import Progress, ProgressTracker, make_bar
from squadnb.engine.result import PartialResult
from squadnb.errors import RollbackIncomplete, RollbackNotSupported, RolledBack, TransactionError

if TYPE_CHECKING:
    from squadnb.engine.journal import Journal

__all__ = ["OperationChain", "RollbackIncomplete", "RolledBack", "TransactionError",
           "TransactionManager"]


class _RollbackOf(Operation):
    """The rollback phase as a batch of its own: ``execute`` is the operation's ``rollback``."""

    def __init__(self, operation: Any) -> None:
        self.name = f"Rollback({op_name(operation)})"
        self.operation = operation
        self.execute = getattr(operation, "rollback", None) or self._unsupported  # type: ignore

    def _unsupported(self, instance: Any) -> None:
        raise RollbackNotSupported(f"{op_name(self.operation)} cannot be rolled back")


async def arun_with_rollback(executor: BatchExecutor, run: _Run, progress: Progress) -> PartialResult:
    """Run the prepared batch ``run`` with ``executor``; return its result when nothing failed,
    otherwise roll back every success and raise :class:`~squadnb.errors.RolledBack` or
    :class:`~squadnb.errors.RollbackIncomplete`. When the batch itself is cancelled, its successes are
    rolled back (shielded) before the cancellation goes on."""
    try:
        result = await executor._aexecute(run)
    except asyncio.CancelledError:
        if run.result is not None and run.result.successes:
            await asyncio.shield(_rollback(executor, run, run.result, progress))
        raise
    if not result.failures:
        return result
    rollback = await asyncio.shield(_rollback(executor, run, result, progress))
    raise _transaction_error(result, rollback) from result.error()


async def _rollback(executor: BatchExecutor, batch: _Run, result: PartialResult,
                    progress: Progress) -> PartialResult:
    """Undo every success (never skips) under a fresh timeout and no deadline; mark ``rolled_back``
    where the undo succeeded (in the batch's journal too). The rollback's results follow the batch's
    input order, like every ``results`` list."""
    done = [(position, r) for position, r in enumerate(result.results) if r.success]
    operation = _RollbackOf(result.operation)
    bar = make_bar(progress, len(done), operation.name) if done else None
    run = _Run([r.instance for _, r in done], operation, None, bar,
               _Limits(executor.max_concurrency, executor.timeout), None)
    rollback = await run.run()
    for (_, original), undo in zip(done, rollback.results):
        original.rolled_back = undo.success
    if batch.journal is not None:
        await batch.journal.arolled_back(batch.batch_id,  # type: ignore[arg-type]
                                         [p for p, r in done if r.rolled_back])
    return rollback


def _transaction_error(result: PartialResult, rollback: PartialResult) -> TransactionError:
    name = op_name(result.operation)
    failed = f"{name} failed on {len(result.failures)} of {result.total} instances"
    if rollback.failures:
        return RollbackIncomplete(
            f"{failed}, and rollback partially failed: {len(rollback.failures)} of {rollback.total} "
            f"successes not restored ({rollback.error()})", result, rollback)
    undone = f"rolled back the {rollback.total} that succeeded" if rollback.total else "nothing to roll back"
    return RolledBack(f"{failed}; {undone}: {result.error()}", result, rollback)


class TransactionManager:
    """Runs batches all-or-nothing: :meth:`BatchExecutor.execute_with_rollback` with its own executor.

    ``timeout`` is the per-operation limit in seconds (``None``: no limit; zero or negative:
    ``ValueError``), also settable with :meth:`set_timeout`.
    """

    def __init__(self, max_concurrency: int = 10, timeout: Seconds | None = 300.0) -> None:
        self.executor = BatchExecutor(max_concurrency, timeout)

    @property
    def timeout(self) -> float | None:
        return self.executor.timeout

    @timeout.setter
    def timeout(self, value: Seconds | None) -> None:
        self.executor.timeout = value

    def set_timeout(self, timeout: Seconds | None) -> None:
        """Set the per-operation limit; ``ValueError`` for zero, negative, NaN or infinite."""
        self.executor.timeout = timeout

    def execute(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
                *, progress: Progress = "auto", deadline: Seconds | None = None,
                journal: Journal | None = None) -> PartialResult:
        """Return the result when nothing failed (an empty instance list included); otherwise roll back
        every success and raise ``RolledBack`` or ``RollbackIncomplete`` (with ``.result`` and
        ``.rollback_result``). ``journal`` records the batch (and marks what was rolled back)."""
        return self.executor.execute_with_rollback(instances, operation, tracker, progress=progress,
                                                   deadline=deadline, journal=journal)

    async def aexecute(self, instances: Iterable[Any], operation: Any,
                       tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                       deadline: Seconds | None = None, journal: Journal | None = None) -> PartialResult:
        """The async twin of :meth:`execute`."""
        return await self.executor.aexecute_with_rollback(instances, operation, tracker,
                                                          progress=progress, deadline=deadline,
                                                          journal=journal)


class OperationChain:
    """Operations run one after another over the same instances, one batch per step.

    With ``stop_on_failure`` (the default) the chain stops after a step with any failure. With
    ``only_succeeded`` each step runs only on the instances that succeeded at the previous step
    (skips are not carried), in input order.
    """

    def __init__(self, stop_on_failure: bool = True, only_succeeded: bool = False) -> None:
        self.stop_on_failure = stop_on_failure
        self.only_succeeded = only_succeeded
        self.operations: list[Any] = []

    def add(self, operation: Any) -> OperationChain:
        """Append a step; returns the chain, so calls can be chained."""
        if not callable(getattr(operation, "execute", None)):
            raise TypeError(f"operation {operation!r} has no callable execute(instance)")
        self.operations.append(operation)
        return self

    def execute(self, instances: Iterable[Any], executor: BatchExecutor,
                tracker: ProgressTracker | None = None, *, progress: Progress = False,
                journal: Journal | None = None) -> list[PartialResult]:
        """Run the steps with ``executor``; return one :class:`PartialResult` per step that ran.

        ``tracker`` counts the results of every step (size it for all of them); ``progress=`` shows one
        bar per step; ``journal`` records each step as a batch of its own. Raises
        ``BatchInterrupted`` on Ctrl-C (its ``.result`` is the interrupted step's).
        """
        # Not run_sync(self._aexecute(...)): each sync step turns Ctrl-C into BatchInterrupted.
        results: list[PartialResult] = []
        current: list[Any] | None = list(instances)
        for operation in self.operations:
            results.append(executor.execute(current, operation, tracker, progress=progress,
                                            journal=journal))
            current = self._next(current, results[-1])
            if current is None:
                break
        return results

    async def aexecute(self, instances: Iterable[Any], executor: BatchExecutor,
                       tracker: ProgressTracker | None = None, *, progress: Progress = False,
                       journal: Journal | None = None) -> list[PartialResult]:
        """The async twin of :meth:`execute`."""
        return await _loop.arun(self._aexecute(list(instances), executor, tracker, progress, journal))

    async def _aexecute(self, current: list[Any], executor: BatchExecutor,
                        tracker: ProgressTracker | None, progress: Progress,
                        journal: Journal | None) -> list[PartialResult]:
        results: list[PartialResult] = []
        step: list[Any] | None = current
        for operation in self.operations:
            results.append(await executor.aexecute(step, operation, tracker, progress=progress,
                                                   journal=journal))
            step = self._next(step, results[-1])
            if step is None:
                break
        return results

    def _next(self, current: list[Any], result: PartialResult) -> list[Any] | None:
        """The instances of the next step, or None when the chain stops here."""
        if self.stop_on_failure and result.failures:
            return None
        if self.only_succeeded:
            return [r.instance for r in result.results if r.success]
        return current

    def __repr__(self) -> str:
        steps = " -> ".join(op_name(o) for o in self.operations)
        return (f"OperationChain({steps or 'empty'}, stop_on_failure={self.stop_on_failure}, "
                f"only_succeeded={self.only_succeeded})")
