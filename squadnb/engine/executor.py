"""BatchExecutor: one operation over many instances, with bounded concurrency, a per-operation timeout,
a batch deadline, cancellation, progress, and transaction-like rollback.

The batch runs on squadnb's loop (:mod:`squadnb._loop`) as a fixed pool of ``max_concurrency`` worker
tasks pulling the next instance from the list, so the hot path per instance is one coroutine call (or
one hand-off to a worker thread for a plain ``execute``) and one result object. The per-operation
timeout is one re-armed timer per worker rather than one per operation: it fires at the running
operation's deadline and cancels just that operation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Coroutine, Iterable

from squadnb import _loop
from squadnb.engine._invoke import Attempts, attempts, operation_timeout, run_in_thread
from squadnb.engine._seconds import Seconds, check_timeout, non_negative_seconds
from squadnb.engine.operation import Operation, Skip, op_name, validation_error
from squadnb.engine.progress import Bar, Progress, ProgressTracker, check_progress, make_bar
from squadnb.engine.result import OperationResult, PartialResult, instance_label
from squadnb.errors import (
    BatchInterrupted,
    Cancelled,
    OperationTimeout,
)

__all__ = ["BatchExecutor", "BatchFuture"]

_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution
_CANCELLED = "batch cancelled"
_DEADLINE = "batch deadline passed"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Worker:
    """One of a batch's worker tasks, with its timeout timer."""

    __slots__ = ("run", "task", "started", "expired", "stopped", "timer")

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.task: asyncio.Task[None] | None = None
        self.started: float | None = None  # loop time the running operation started; None when idle
        self.expired = False  # the running operation passed its timeout
        self.stopped = False  # the running operation was cancelled by the batch
        self.timer: asyncio.TimerHandle | None = None

    def on_timer(self) -> None:
        self.timer = None
        if self.started is None or self.task is None:
            return
        loop = self.run.loop
        due = self.started + self.run.timeout  # type: ignore[operator]
        if loop.time() + _CLOCK_RESOLUTION >= due:  # the loop runs a timer up to this much early
            self.expired = True
            self.task.cancel()
        else:
            self.timer = loop.call_at(due, self.on_timer)

    async def work(self) -> None:
        run = self.run
        operation_timeout.set(run.timeout)  # this worker task's own context
        try:
            while run.stop_reason is None and run.next < run.total:
                index = run.next
                run.next += 1
                run.record(index, await self.one(run.instances[index]))
        finally:
            if self.timer is not None:
                self.timer.cancel()

    async def one(self, instance: Any) -> OperationResult:
        run = self.run
        start = _now()
        counter = Attempts()
        attempts.set(counter)
        self.started = run.loop.time()
        self.expired = self.stopped = False
        if run.timeout is not None and self.timer is None:
            self.timer = run.loop.call_at(self.started + run.timeout, self.on_timer)
        error: BaseException | None = None
        value = None
        skipped = False
        try:
            if run.validate is not None:
                try:
                    checked = run.validate(instance)
                    if inspect.isawaitable(checked):
                        await checked
                except Skip:
                    skipped = True
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    error = validation_error(exc)
            if error is None and not skipped:
                counter.count = 1
                # _invoke.call inlined on purpose: it would ask iscoroutinefunction and add a
                # coroutine frame for every instance; here that is decided once per batch
                # (_Run.execute_async), which keeps the per-instance overhead (benchmarks/
                # engine_overhead.py) at one coroutine call.
                if run.execute_async:
                    value = await run.execute(instance)
                else:
                    value = await run_in_thread(run.execute, instance)
                    if inspect.isawaitable(value):
                        value = await value
        except asyncio.CancelledError:
            if not (self.expired or self.stopped):
                raise  # the worker itself is being torn down (the loop is closing)
            error = value = None
        except BaseException as exc:  # any exception is this instance's failure, never the batch's
            error = exc
        finally:
            self.started = None
        if self.expired or self.stopped:
            # Also when the operation swallowed the cancel and returned: a late completion never counts.
            if self.task is not None and self.task.cancelling():
                self.task.uncancel()
            skipped, value, cause = False, None, error  # what the operation raised while cut short
            if self.expired:
                error = OperationTimeout(f"operation timed out after {run.timeout:g}s")
            else:
                error = Cancelled(f"cancelled while running ({run.stop_reason})")
            error.__cause__ = cause
        return OperationResult(instance, run.operation, error=error, value=value, start_time=start,
                               end_time=_now(), attempts=counter.count, skipped=skipped)


class _Run:
    """The state of one batch on the loop."""

    def __init__(self, instances: list[Any], operation: Any, tracker: ProgressTracker | None,
                 bar: Bar | None, concurrency: int, timeout: float | None,
                 deadline: float | None) -> None:
        self.instances = instances
        self.concurrency = concurrency
        self.total = len(instances)
        self.operation = operation
        self.tracker = tracker
        self.bar = bar
        self.timeout = timeout
        self.deadline = deadline  # time.monotonic() value, the loop's clock
        validate = getattr(operation, "validate", None)
        # The base class's validate accepts everything: skip the call.
        self.validate = None if getattr(validate, "__func__", None) is Operation.validate else validate
        self.execute = operation.execute
        self.execute_async = inspect.iscoroutinefunction(self.execute)
        self.results: list[OperationResult | None] = [None] * self.total
        self.successes: list[OperationResult] = []
        self.failures: list[OperationResult] = []
        self.skipped: list[OperationResult] = []
        self.next = 0
        self.stop_reason: str | None = None
        self.workers: list[_Worker] = []
        self.notify_error: BaseException | None = None
        self.result: PartialResult | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set on the loop

    def record(self, index: int, result: OperationResult) -> None:
        self.results[index] = result
        if result.skipped:
            self.skipped.append(result)
        elif result.error is None:
            self.successes.append(result)
        else:
            self.failures.append(result)
        if self.tracker is not None or self.bar is not None:
            try:
                if self.tracker is not None:
                    self.tracker.update(result)
                if self.bar is not None:
                    self.bar.update(result)
            except Exception as exc:  # e.g. the callback warning under -W error: raised after the batch
                self.notify_error = self.notify_error or exc

    def stop(self, reason: str) -> None:
        """Start nothing new; cancel the operations running now (they are recorded ``Cancelled``)."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        for worker in self.workers:
            if worker.started is not None and worker.task is not None:
                worker.stopped = True
                worker.task.cancel()

    async def run(self) -> PartialResult:
        """Run every instance (or until stopped) and return the result; on cancellation of the calling
        task, stop, settle, keep the result in ``self.result`` and re-raise."""
        self.loop = loop = asyncio.get_running_loop()
        start = _now()
        deadline = None
        if self.deadline is not None:
            if loop.time() >= self.deadline:
                self.stop(_DEADLINE)
            deadline = loop.call_at(self.deadline, self.stop, _DEADLINE)
        self.workers = [_Worker(self) for _ in range(min(self.total, self.concurrency))]
        for worker in self.workers:
            worker.task = loop.create_task(worker.work())
        tasks = [w.task for w in self.workers]
        try:
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            self.stop(_CANCELLED)
            await asyncio.wait(tasks)
            raise
        finally:
            if deadline is not None:
                deadline.cancel()
            self.result = self._finish(start)
        if self.notify_error is not None:
            raise self.notify_error
        return self.result

    def _finish(self, start: datetime) -> PartialResult:
        now = _now()
        reason = self.stop_reason or _CANCELLED
        for index, result in enumerate(self.results):
            if result is None:  # never started
                self.record(index, OperationResult(
                    self.instances[index], self.operation,
                    error=Cancelled(f"cancelled before it started ({reason})"), start_time=now,
                    end_time=now))
        result = PartialResult(successes=self.successes, failures=self.failures, total=self.total,
                               start_time=start, end_time=_now(),
                               results=self.results,  # type: ignore[arg-type]  # all set by now
                               skipped=self.skipped, operation=self.operation)
        if self.bar is not None:
            self.bar.close(failed=bool(self.failures))
        return result


class BatchFuture:
    """A batch started by :meth:`BatchExecutor.submit`, running on squadnb's loop.

    ``cancel()`` stops it cleanly: nothing new starts, running operations are cancelled, every instance
    still gets a result. ``result(timeout=None)`` blocks for the :class:`PartialResult` (also after a
    cancel), or raises what ``execute_with_rollback`` raises when submitted with ``transaction=True``
    (``concurrent.futures.TimeoutError`` when ``timeout`` passes first). ``add_done_callback(fn)``
    calls ``fn(batch_future)`` from the loop thread once it is done.
    """

    def __init__(self, future: concurrent.futures.Future[PartialResult], run: _Run) -> None:
        self._future = future
        self._run = run

    def cancel(self) -> bool:
        """Ask the batch to stop; False when it had already finished. Never blocks."""
        if self._future.done():
            return False
        _loop.get_loop().call_soon_threadsafe(self._run.stop, _CANCELLED)
        return True

    def cancelled(self) -> bool:
        """True when ``cancel()`` stopped the batch (its result is still available)."""
        return self._run.stop_reason == _CANCELLED

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> PartialResult:
        return self._future.result(timeout)

    def add_done_callback(self, fn: Callable[[BatchFuture], Any]) -> None:
        loop = _loop.get_loop()
        self._future.add_done_callback(lambda _: loop.call_soon_threadsafe(fn, self))

    def _wait(self, held: _HeldInterrupts) -> PartialResult:
        """Block for the result; on Ctrl-C cancel the batch, let it settle, raise BatchInterrupted.

        ``held`` is released only inside the ``try``, so a Ctrl-C that arrived while the batch was
        being handed to the loop is delivered here, where it cancels the batch, and never between.
        """
        try:
            held.release()
            return self._future.result()
        except KeyboardInterrupt:
            self.cancel()
            try:
                self._future.result()
            except Exception as exc:  # a transaction's error: the interrupt is what the caller sees
                raise BatchInterrupted(self._run.result) from exc
            raise BatchInterrupted(self._run.result) from None

    def __repr__(self) -> str:
        state = "done" if self.done() else ("cancelling" if self._run.stop_reason else "running")
        return f"<BatchFuture {op_name(self._run.operation)} {state}>"


class BatchExecutor:
    """Runs one operation over many instances (see DESIGN §3 and the README).

    :param max_concurrency: operations running at once; ``<= 0`` means 1.
    :param timeout: per-operation limit in seconds (or a ``timedelta``); ``None`` for no limit.
        It bounds an operation as the executor sees it: a ``RetryOperation`` as a whole, validation
        included. A coroutine is cancelled at the limit; a plain function is reported
        ``OperationTimeout`` at the limit and left running in its worker thread, its late result
        ignored.
    :raises ValueError: ``timeout`` zero or negative.
    """

    def __init__(self, max_concurrency: int = 10, timeout: Seconds | None = 300.0) -> None:
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.last_result: PartialResult | None = None

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        self._max_concurrency = max(1, int(value))

    @property
    def timeout(self) -> float | None:
        """Per-operation limit in seconds (``None``: no limit)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: Seconds | None) -> None:
        self._timeout = check_timeout(value)

    def set_timeout(self, timeout: Seconds | None) -> None:
        """Set the per-operation limit (seconds, a ``timedelta``, or ``None``); ``ValueError`` for zero
        or negative."""
        self.timeout = timeout

    def _prepare(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None,
                 progress: Progress, deadline: Seconds | None) -> _Run:
        """Check the call in the caller's thread (nothing has run when it raises) and build the run;
        the bar is created here so a notebook shows it in the calling cell."""
        if isinstance(instances, (str, bytes)) or not isinstance(instances, Iterable):
            raise TypeError(f"instances must be an iterable of instances, got {instances!r}")
        items = list(instances)
        seen: dict[int, int] = {}
        for position, instance in enumerate(items):
            first = seen.setdefault(id(instance), position)
            if first != position:
                raise ValueError(f"instance '{instance_label(instance)}' is listed twice (positions "
                                 f"{first} and {position}); a batch runs each instance once")
        if not callable(getattr(operation, "execute", None)):
            raise TypeError(f"operation {operation!r} has no callable execute(instance)")
        check_progress(progress)
        deadline_at = None
        if deadline is not None:
            deadline_at = _loop.get_loop().time() + non_negative_seconds(deadline, "deadline")
        bar = make_bar(progress, len(items), op_name(operation)) if items else None
        return _Run(items, operation, tracker, bar, self._max_concurrency, self._timeout, deadline_at)

    async def _aexecute(self, run: _Run) -> PartialResult:
        try:
            return await run.run()
        finally:
            if run.result is not None:
                self.last_result = run.result

    def _atransaction(self, run: _Run, progress: Progress) -> Coroutine[Any, Any, PartialResult]:
        # Imported at call time: transaction.py builds on this module (TransactionManager wraps a
        # BatchExecutor), so importing it at the top would be a cycle.
        from squadnb.engine.transaction import arun_with_rollback

        return arun_with_rollback(self, run, progress)

    def submit(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
               *, progress: Progress = False, deadline: Seconds | None = None,
               transaction: bool = False) -> BatchFuture:
        """Start the batch on squadnb's loop and return a :class:`BatchFuture` at once (for widgets).

        ``transaction=True`` runs it like :meth:`execute_with_rollback`. Bad arguments raise here,
        before anything runs.
        """
        run = self._prepare(instances, operation, tracker, progress, deadline)
        coro = self._atransaction(run, progress) if transaction else self._aexecute(run)
        return BatchFuture(_loop.submit(coro), run)

    def execute(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
                *, progress: Progress = "auto", deadline: Seconds | None = None) -> PartialResult:
        """Run ``operation`` on every instance and return the :class:`PartialResult`.

        Never raises for an operation's failure: each instance gets a result (``validation failed:``
        → ``ValidationError``, over the limit → ``OperationTimeout``, cut short by ``deadline`` —
        seconds or a ``timedelta`` from this call — → ``Cancelled``; instances not started by then are
        ``Cancelled`` with ``attempts == 0``). Raises ``ValueError`` (an instance listed twice, a bad
        ``progress``/``deadline``) or ``TypeError`` before anything runs; ``BatchInterrupted``
        (carrying ``.result``) on Ctrl-C, after cancelling the batch; ``RuntimeError`` when called
        from squadnb's loop thread (await :meth:`aexecute` there).
        """
        _refuse_loop_thread()
        with _HeldInterrupts() as held:
            future = self.submit(instances, operation, tracker, progress=progress, deadline=deadline)
            return future._wait(held)

    async def aexecute(self, instances: Iterable[Any], operation: Any,
                       tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                       deadline: Seconds | None = None) -> PartialResult:
        """The async twin of :meth:`execute`, from any event loop; cancelling the awaiting task
        cancels the batch (``last_result`` keeps what it did)."""
        return await _loop.arun(self._aexecute(self._prepare(instances, operation, tracker, progress,
                                                              deadline)))

    def execute_with_rollback(self, instances: Iterable[Any], operation: Any,
                              tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                              deadline: Seconds | None = None) -> PartialResult:
        """Run the batch; if anything failed, roll back every success and raise.

        Returns the result when nothing failed (an empty instance list included). Otherwise rolls back
        each success (skips never; a failed composite has undone its own steps) under a fresh timeout
        — never the expired deadline — then raises :class:`~squadnb.errors.RolledBack` (also when
        nothing needed undoing) or, if some rollback failed, :class:`~squadnb.errors.RollbackIncomplete`;
        both carry ``.result`` and ``.rollback_result``. ``rolled_back`` is True only where the
        rollback succeeded. Rollback progress is its own bar; ``tracker`` sees only the batch.
        """
        _refuse_loop_thread()
        with _HeldInterrupts() as held:
            future = self.submit(instances, operation, tracker, progress=progress, deadline=deadline,
                                 transaction=True)
            return future._wait(held)

    async def aexecute_with_rollback(self, instances: Iterable[Any], operation: Any,
                                     tracker: ProgressTracker | None = None, *,
                                     progress: Progress = "auto",
                                     deadline: Seconds | None = None) -> PartialResult:
        """The async twin of :meth:`execute_with_rollback`."""
        run = self._prepare(instances, operation, tracker, progress, deadline)
        return await _loop.arun(self._atransaction(run, progress))

    def __repr__(self) -> str:
        return f"BatchExecutor(max_concurrency={self._max_concurrency}, timeout={self._timeout!r})"


class _HeldInterrupts:
    """Hold SIGINT (Ctrl-C, a kernel interrupt) in the main thread from the start of a sync call until
    ``release()``: an interrupt between drawing the bar and waiting on the batch would otherwise escape
    as a bare ``KeyboardInterrupt``, leaving the batch running unsupervised with no result kept. A
    held signal is delivered at ``release()``. Other threads never receive SIGINT: nothing to hold."""

    def __init__(self) -> None:
        self._previous: set[signal.Signals] | None = None

    def __enter__(self) -> _HeldInterrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def release(self) -> None:
        if self._previous is not None:
            previous, self._previous = self._previous, None
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _refuse_loop_thread() -> None:
    if _loop.in_loop_thread():
        raise RuntimeError("BatchExecutor.execute blocks, and was called from squadnb's own event loop "
                           "thread, where it would deadlock; await aexecute() there instead")
