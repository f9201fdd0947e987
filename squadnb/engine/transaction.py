"""All-or-nothing batches (:class:`TransactionManager`) and sequences of batches
(:class:`OperationChain`). A rolled-back batch raises :class:`~squadnb.errors.RolledBack` or
:class:`~squadnb.errors.RollbackIncomplete` (both :class:`~squadnb.errors.TransactionError`)."""

from __future__ import annotations

from typing import Any, Iterable

from squadnb import _loop
from squadnb.engine.executor import BatchExecutor, Seconds
from squadnb.engine.operation import op_name
from squadnb.engine.progress import Progress, ProgressTracker
from squadnb.engine.result import PartialResult
from squadnb.errors import RollbackIncomplete, RolledBack, TransactionError

__all__ = ["OperationChain", "RollbackIncomplete", "RolledBack", "TransactionError",
           "TransactionManager"]


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
        """Set the per-operation limit; ``ValueError`` for zero or negative."""
        self.executor.timeout = timeout

    def execute(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
                *, progress: Progress = "auto", deadline: Seconds | None = None) -> PartialResult:
        """Return the result when nothing failed (an empty instance list included); otherwise roll back
        every success and raise ``RolledBack`` or ``RollbackIncomplete`` (with ``.result`` and
        ``.rollback_result``)."""
        return self.executor.execute_with_rollback(instances, operation, tracker, progress=progress,
                                                   deadline=deadline)

    async def aexecute(self, instances: Iterable[Any], operation: Any,
                       tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                       deadline: Seconds | None = None) -> PartialResult:
        """The async twin of :meth:`execute`."""
        return await self.executor.aexecute_with_rollback(instances, operation, tracker,
                                                          progress=progress, deadline=deadline)


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
                tracker: ProgressTracker | None = None, *,
                progress: Progress = False) -> list[PartialResult]:
        """Run the steps with ``executor``; return one :class:`PartialResult` per step that ran.

        ``tracker`` counts the results of every step (size it for all of them); ``progress=`` shows one
        bar per step. Raises ``BatchInterrupted`` on Ctrl-C (its ``.result`` is the interrupted step's).
        """
        # Not run_sync(self._aexecute(...)): each sync step turns Ctrl-C into BatchInterrupted.
        results: list[PartialResult] = []
        current: list[Any] | None = list(instances)
        for operation in self.operations:
            results.append(executor.execute(current, operation, tracker, progress=progress))
            current = self._next(current, results[-1])
            if current is None:
                break
        return results

    async def aexecute(self, instances: Iterable[Any], executor: BatchExecutor,
                       tracker: ProgressTracker | None = None, *,
                       progress: Progress = False) -> list[PartialResult]:
        """The async twin of :meth:`execute`."""
        return await _loop.arun(self._aexecute(list(instances), executor, tracker, progress))

    async def _aexecute(self, current: list[Any], executor: BatchExecutor,
                        tracker: ProgressTracker | None, progress: Progress) -> list[PartialResult]:
        results: list[PartialResult] = []
        step: list[Any] | None = current
        for operation in self.operations:
            results.append(await executor.aexecute(step, operation, tracker, progress=progress))
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
