"""BatchExecutor: one operation over many instances, with bounded concurrency, a per-operation timeout,
a batch deadline, a failure cutoff, paced starts, cancellation, progress, verified outcomes, a journal
that outlives the process (and resumes from it), dry-run plans, and transaction-like rollback.

The batch runs on squadnb's loop (:mod:`squadnb._loop`) as a fixed pool of ``max_concurrency`` worker
tasks pulling the next instance from the list, so the hot path per instance is one coroutine call (or
one hand-off to a worker thread for a plain ``execute``) and one result object. The per-operation
timeout is one re-armed timer per worker rather than one per operation: it fires at the running
operation's deadline and cancels just that operation.

Stopping comes in two strengths: a *halt* (a failure cutoff, a journal that cannot write) starts
nothing new and lets the running operations finish; a *stop* (cancel, Ctrl-C, the deadline) also
cancels them. Either way every instance gets a result.

An instance whose type defines ``__squadnb_run__(instance, phase, operation)`` runs its phases itself:
the executor (and a plan) awaits that, with ``phase`` one of ``"validate"``, ``"execute"``,
``"verify"``, instead of calling the operation's method on it, and keeps everything else (timeout,
cancellation, results; a rollback is the ``execute`` of its rollback batch). The hook runs the phase
as the engine would, ``verify`` through ``verify_op`` (which records ``verified``). ``squadnb.distributed.RemoteInstance`` uses it
to run the operation on the instance's own host; the engine stays ignorant of Dask.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Iterable

from squadnb import _loop
from squadnb.engine._invoke import Tally, operation_timeout, run_in_thread, tally
from squadnb.engine._seconds import Seconds, check_timeout, non_negative_seconds
from squadnb.engine.operation import Operation, Skip, op_name, validate_op, validation_error, verify_op
from squadnb.engine.progress import Bar, Progress, ProgressTracker, check_progress, make_bar
from squadnb.engine.result import OperationResult, PartialResult, instance_label
from squadnb.errors import BatchInterrupted, Cancelled, JournalError, OperationTimeout

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.engine.journal import Journal

__all__ = ["BatchExecutor", "BatchFuture"]

_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution
_CANCELLED = "batch cancelled"
_DEADLINE = "batch deadline passed"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class _Limits:
    """What bounds a batch besides its deadline (checked by :class:`BatchExecutor`)."""

    concurrency: int
    timeout: float | None
    max_failures: int | None = None
    max_failure_rate: float | None = None
    rate: float | None = None


class _Pacer:
    """At most ``rate`` starts per second across a batch: a start waits until ``1 / rate`` seconds
    have passed since the previous one (the first goes at once), unless the batch halts meanwhile.
    Starts take turns (FIFO), and each is measured from the previous start as it really happened, so
    a waiter the loop woke late never lets the next one in early."""

    __slots__ = ("interval", "last", "turns")

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.last: float | None = None
        self.turns = asyncio.Lock()

    async def wait_turn(self, run: _Run) -> None:
        async with self.turns:
            if run.halted is not None:
                return
            if self.last is not None:
                wait = self.last + self.interval - run.loop.time()
                if wait > 0:
                    await asyncio.wait((run.halted_signal,), timeout=wait)
            self.last = run.loop.time()


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
            while run.halted is None and run.next < run.total:
                if run.pacer is not None:
                    await run.pacer.wait_turn(run)
                    if run.halted is not None or run.next >= run.total:
                        break
                index = run.next
                run.next += 1
                result = await self.one(run.instances[index])
                run.record(index, result)
                if run.journal is not None:  # committed before this worker starts another
                    await run.journal_record(index, result)
        finally:
            if self.timer is not None:
                self.timer.cancel()

    async def one(self, instance: Any) -> OperationResult:
        run = self.run
        start = _now()
        counter = Tally()
        tally.set(counter)
        self.started = run.loop.time()
        self.expired = self.stopped = False
        if run.timeout is not None and self.timer is None:
            self.timer = run.loop.call_at(self.started + run.timeout, self.on_timer)
        error: BaseException | None = None
        value = None
        skipped = False
        # An instance that runs operations elsewhere (a Fleet's RemoteInstance) gets each phase.
        remote = getattr(type(instance), "__squadnb_run__", None)
        try:
            if run.validate is not None:
                try:
                    if remote is None:
                        checked = run.validate(instance)
                    else:
                        checked = remote(instance, "validate", run.operation)
                    if inspect.isawaitable(checked):
                        await checked
                except Skip:
                    skipped = True
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:
                    error = validation_error(exc)
            if error is None and not skipped:
                counter.attempts = 1
                # _invoke.call inlined on purpose: it would ask iscoroutinefunction and add a
                # coroutine frame for every instance; here that is decided once per batch
                # (_Run.execute_async), which keeps the per-instance overhead (benchmarks/
                # engine_overhead.py) at one coroutine call.
                if remote is not None:
                    value = await remote(instance, "execute", run.operation)
                elif run.execute_async:
                    value = await run.execute(instance)
                else:
                    value = await run_in_thread(run.execute, instance)
                    if inspect.isawaitable(value):
                        value = await value
                if run.verify:
                    if remote is None:
                        await verify_op(run.operation, instance)
                    else:
                        await remote(instance, "verify", run.operation)
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
                               end_time=_now(), attempts=counter.attempts, skipped=skipped,
                               verified=counter.verified)


class _Run:
    """The state of one batch on the loop."""

    def __init__(self, instances: list[Any], operation: Any, tracker: ProgressTracker | None,
                 bar: Bar | None, limits: _Limits, deadline: float | None,
                 journal: Journal | None = None, resumed_from: str | None = None) -> None:
        self.instances = instances
        self.limits = limits
        self.concurrency = limits.concurrency
        self.timeout = limits.timeout
        self.pacer = _Pacer(limits.rate) if limits.rate is not None else None
        self.total = len(instances)
        self.operation = operation
        self.tracker = tracker
        self.bar = bar
        self.deadline = deadline  # time.monotonic() value, the loop's clock
        self.journal = journal
        self.resumed_from = resumed_from
        self.batch_id: str | None = None
        validate = getattr(operation, "validate", None)
        # The base class's validate accepts everything: skip the call.
        self.validate = None if getattr(validate, "__func__", None) is Operation.validate else validate
        self.execute = operation.execute
        self.execute_async = inspect.iscoroutinefunction(self.execute)
        self.verify = getattr(operation, "verify", None) is not None
        self.results: list[OperationResult | None] = [None] * self.total
        self.successes: list[OperationResult] = []
        self.failures: list[OperationResult] = []
        self.skipped: list[OperationResult] = []
        self.next = 0
        self.halted: str | None = None  # why nothing new starts: the error of instances not started
        self.stop_reason: str | None = None  # why running operations were cancelled
        self.workers: list[_Worker] = []
        self.notify_error: BaseException | None = None
        self.result: PartialResult | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set on the loop
        self.halted_signal: asyncio.Future[None] = None  # type: ignore[assignment]  # set on the loop

    def record(self, index: int, result: OperationResult) -> None:
        self.results[index] = result
        if result.skipped:
            self.skipped.append(result)
        elif result.error is None:
            self.successes.append(result)
        else:
            self.failures.append(result)
            self._check_cutoff()
        if self.tracker is not None or self.bar is not None:
            try:
                if self.tracker is not None:
                    self.tracker.update(result)
                if self.bar is not None:
                    self.bar.update(result)
            except Exception as exc:  # e.g. the callback warning under -W error: raised after the batch
                self.notify_error = self.notify_error or exc

    def _check_cutoff(self) -> None:
        limits = self.limits
        if self.halted is not None or (limits.max_failures is None and limits.max_failure_rate is None):
            return
        failed = len(self.failures)
        finished = failed + len(self.successes)
        if (limits.max_failures is not None and failed >= limits.max_failures) or (
                limits.max_failure_rate is not None and finished >= self.concurrency
                and failed / finished > limits.max_failure_rate):
            self.halt(f"failure cutoff reached: {failed} of {self.total} failed")

    async def journal_record(self, index: int, result: OperationResult) -> None:
        """Commit one outcome to the journal; when that fails, halt the batch (raised after it)."""
        try:
            await self.journal.arecord(self.batch_id, index, result)  # type: ignore[union-attr]
        except JournalError as exc:
            self.notify_error = self.notify_error or exc
            self.halt(f"cancelled before it started (the journal failed: {exc})")

    def halt(self, message: str) -> None:
        """Start nothing new; running operations finish. Instances not started are recorded
        ``Cancelled(message)``."""
        if self.halted is not None:
            return
        self.halted = message
        if self.halted_signal is not None and not self.halted_signal.done():
            self.halted_signal.set_result(None)

    def stop(self, reason: str) -> None:
        """Start nothing new; cancel the operations running now (they are recorded ``Cancelled``)."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self.halt(f"cancelled before it started ({reason})")
        for worker in self.workers:
            if worker.started is not None and worker.task is not None:
                worker.stopped = True
                worker.task.cancel()

    async def run(self) -> PartialResult:
        """Run every instance (or until stopped) and return the result; on cancellation of the calling
        task, stop, settle, keep the result in ``self.result`` and re-raise."""
        self.loop = loop = asyncio.get_running_loop()
        self.halted_signal = loop.create_future()
        start = _now()
        if self.journal is not None:
            self.batch_id = await self.journal.abegin(self.operation, self.instances, start,
                                                      self.resumed_from)
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
            unstarted = [i for i, result in enumerate(self.results) if result is None]
            self.result = self._finish(start)
            if self.journal is not None:
                await self._journal_finish(unstarted)
        if self.notify_error is not None:
            raise self.notify_error
        return self.result

    async def _journal_finish(self, unstarted: list[int]) -> None:
        try:
            await self.journal.afinish(  # type: ignore[union-attr]
                self.batch_id, self.result.end_time,  # type: ignore[arg-type, union-attr]
                [(i, self.results[i]) for i in unstarted])  # type: ignore[misc]
        except JournalError as exc:
            self.notify_error = self.notify_error or exc

    def _finish(self, start: datetime) -> PartialResult:
        now = _now()
        message = self.halted or f"cancelled before it started ({_CANCELLED})"
        for index, result in enumerate(self.results):
            if result is None:  # never started
                self.record(index, OperationResult(
                    self.instances[index], self.operation, error=Cancelled(message),
                    start_time=now, end_time=now))
        result = PartialResult(successes=self.successes, failures=self.failures, total=self.total,
                               start_time=start, end_time=_now(),
                               results=self.results,  # type: ignore[arg-type]  # all set by now
                               skipped=self.skipped, operation=self.operation,
                               batch_id=self.batch_id)
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
            _loop.wait_interruptibly(self._future)
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
        and ``verify`` included. A coroutine is cancelled at the limit; a plain function is reported
        ``OperationTimeout`` at the limit and left running in its worker thread, its late result
        ignored.
    :param max_failures: once this many operations of a batch have failed, start no new one; the
        running ones finish, and the instances not started are recorded ``Cancelled`` reading
        ``"failure cutoff reached: <failed> of <total> failed"``. ``None``: no cutoff.
    :param max_failure_rate: the same cutoff when the failed fraction (0–1) of the operations
        finished (skips aside) exceeds it, judged once at least ``max_concurrency`` have finished.
    :param rate: at most this many operation starts per second across the batch (on top of the
        concurrency bound): starts are spaced ``1 / rate`` seconds apart, the first at once. The wait
        for a start is not part of the operation's timeout. ``None``: no pacing.
    :raises ValueError: ``timeout`` zero, negative, NaN or infinite; ``max_failures`` below 1;
        ``max_failure_rate`` outside 0–1; ``rate`` not a positive finite number.
    """

    def __init__(self, max_concurrency: int = 10, timeout: Seconds | None = 300.0, *,
                 max_failures: int | None = None, max_failure_rate: float | None = None,
                 rate: float | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_failures = max_failures
        self.max_failure_rate = max_failure_rate
        self.rate = rate
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
        """Set the per-operation limit (seconds, a ``timedelta``, or ``None``); ``ValueError`` for zero,
        negative, NaN or infinite."""
        self.timeout = timeout

    @property
    def max_failures(self) -> int | None:
        """Failures after which a batch starts nothing new (``None``: no cutoff)."""
        return self._max_failures

    @max_failures.setter
    def max_failures(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"max_failures must be a whole number of at least 1 or None, got {value!r}")
        self._max_failures = None if value is None else int(value)

    @property
    def max_failure_rate(self) -> float | None:
        """Failed fraction (0–1) above which a batch starts nothing new (``None``: no cutoff)."""
        return self._max_failure_rate

    @max_failure_rate.setter
    def max_failure_rate(self, value: float | None) -> None:
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"max_failure_rate must be a fraction from 0 to 1 or None, got {value!r}")
        self._max_failure_rate = None if value is None else float(value)

    @property
    def rate(self) -> float | None:
        """Operation starts per second across a batch (``None``: as fast as concurrency allows)."""
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                      and value > 0):
            raise ValueError(f"rate must be a positive finite number of starts per second or None, "
                             f"got {value!r}")
        self._rate = None if value is None else float(value)

    def _limits(self) -> _Limits:
        return _Limits(self._max_concurrency, self._timeout, self._max_failures,
                       self._max_failure_rate, self._rate)

    def _prepare(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None,
                 progress: Progress, deadline: Seconds | None, journal: Journal | None = None,
                 resumed_from: str | None = None) -> _Run:
        """Check the call in the caller's thread (nothing has run when it raises) and build the run;
        the bar is created here so a notebook shows it in the calling cell."""
        items = _instance_list(instances, operation)
        check_progress(progress)
        deadline_at = None
        if deadline is not None:
            deadline_at = _loop.get_loop().time() + non_negative_seconds(deadline, "deadline")
        if journal is not None and not callable(getattr(journal, "arecord", None)):
            raise TypeError(f"journal must be a squadnb.Journal, got {journal!r}")
        bar = make_bar(progress, len(items), op_name(operation)) if items else None
        return _Run(items, operation, tracker, bar, self._limits(), deadline_at, journal, resumed_from)

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

    def _start(self, run: _Run, progress: Progress, transaction: bool) -> BatchFuture:
        coro = self._atransaction(run, progress) if transaction else self._aexecute(run)
        return BatchFuture(_loop.submit(coro), run)

    def submit(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
               *, progress: Progress = False, deadline: Seconds | None = None,
               transaction: bool = False, journal: Journal | None = None) -> BatchFuture:
        """Start the batch on squadnb's loop and return a :class:`BatchFuture` at once (for widgets).

        ``transaction=True`` runs it like :meth:`execute_with_rollback`; ``journal`` as in
        :meth:`execute`. Bad arguments raise here, before anything runs.
        """
        run = self._prepare(instances, operation, tracker, progress, deadline, journal)
        return self._start(run, progress, transaction)

    def execute(self, instances: Iterable[Any], operation: Any, tracker: ProgressTracker | None = None,
                *, progress: Progress = "auto", deadline: Seconds | None = None,
                journal: Journal | None = None) -> PartialResult:
        """Run ``operation`` on every instance and return the :class:`PartialResult`.

        Never raises for an operation's failure: each instance gets a result (``validation failed:``
        → ``ValidationError``, over the limit → ``OperationTimeout``, ``verify`` not holding →
        ``VerificationError``, cut short by ``deadline`` — seconds or a ``timedelta`` from this call —
        → ``Cancelled``; instances not started by then, or after the failure cutoff, are ``Cancelled``
        with ``attempts == 0``). With a :class:`~squadnb.Journal`, the batch and each outcome are
        recorded there as they happen (``result.batch_id`` names it; :meth:`resume` runs it again).
        Raises ``ValueError`` (an instance listed twice, a bad ``progress``/``deadline``) or
        ``TypeError`` before anything runs; ``BatchInterrupted`` (carrying ``.result``) on Ctrl-C,
        after cancelling the batch; ``JournalError`` when the journal cannot record (the batch
        started nothing new from then on; ``last_result`` keeps it); ``RuntimeError`` when called
        from squadnb's loop thread (await :meth:`aexecute` there).
        """
        _refuse_loop_thread()
        with _HeldInterrupts() as held:
            future = self.submit(instances, operation, tracker, progress=progress, deadline=deadline,
                                 journal=journal)
            return future._wait(held)

    async def aexecute(self, instances: Iterable[Any], operation: Any,
                       tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                       deadline: Seconds | None = None, journal: Journal | None = None) -> PartialResult:
        """The async twin of :meth:`execute`, from any event loop; cancelling the awaiting task
        cancels the batch (``last_result`` keeps what it did)."""
        run = self._prepare(instances, operation, tracker, progress, deadline, journal)
        return await _loop.arun(self._aexecute(run))

    def execute_with_rollback(self, instances: Iterable[Any], operation: Any,
                              tracker: ProgressTracker | None = None, *, progress: Progress = "auto",
                              deadline: Seconds | None = None,
                              journal: Journal | None = None) -> PartialResult:
        """Run the batch; if anything failed, roll back every success and raise.

        Returns the result when nothing failed (an empty instance list included). Otherwise rolls back
        each success (skips never; a failed composite has undone its own steps) under a fresh timeout
        — never the expired deadline — then raises :class:`~squadnb.errors.RolledBack` (also when
        nothing needed undoing) or, if some rollback failed, :class:`~squadnb.errors.RollbackIncomplete`;
        both carry ``.result`` and ``.rollback_result``. ``rolled_back`` is True only where the
        rollback succeeded (and a journal marks those outcomes ``rolled back``). Rollback progress is
        its own bar; ``tracker`` sees only the batch.
        """
        _refuse_loop_thread()
        with _HeldInterrupts() as held:
            future = self.submit(instances, operation, tracker, progress=progress, deadline=deadline,
                                 transaction=True, journal=journal)
            return future._wait(held)

    async def aexecute_with_rollback(self, instances: Iterable[Any], operation: Any,
                                     tracker: ProgressTracker | None = None, *,
                                     progress: Progress = "auto", deadline: Seconds | None = None,
                                     journal: Journal | None = None) -> PartialResult:
        """The async twin of :meth:`execute_with_rollback`."""
        run = self._prepare(instances, operation, tracker, progress, deadline, journal)
        return await _loop.arun(self._atransaction(run, progress))

    def plan(self, instances: Iterable[Any], operation: Any) -> pd.DataFrame:
        """What :meth:`execute` would do, without doing it: only ``validate`` is called.

        One row per instance, in input order: ``instance`` (title, else ``str``), ``operation``
        (name), ``would_run`` (bool), ``reason`` (why not — the text the result's ``error`` would
        have, ``"validation failed: <cause>"``; ``"would be skipped: <operation>'s condition is
        false"`` where a :class:`~squadnb.ConditionalOperation`'s predicate is false; ``""`` where
        it would run). Validations run ``max_concurrency`` at a time, each bounded by the timeout.
        A plan is a snapshot: the state may change before an execute. Imports pandas.

        :raises ValueError: an instance listed twice.
        :raises TypeError: ``operation`` has no ``execute``.
        """
        return _loop.run_sync(self.aplan(instances, operation))

    async def aplan(self, instances: Iterable[Any], operation: Any) -> pd.DataFrame:
        """The async twin of :meth:`plan`."""
        items = _instance_list(instances, operation)
        reasons = await _loop.arun(self._reasons(items, operation))
        import pandas as pd

        name = op_name(operation)
        return pd.DataFrame({
            "instance": pd.Series([instance_label(i) for i in items], dtype="str"),
            "operation": pd.Series([name] * len(items), dtype="str"),
            "would_run": pd.Series([not reason for reason in reasons], dtype="bool"),
            "reason": pd.Series(reasons, dtype="str"),
        }, columns=["instance", "operation", "would_run", "reason"])

    async def _reasons(self, items: list[Any], operation: Any) -> list[str]:
        """Validate each instance; ``""`` where it would run, else why not."""
        slots = asyncio.Semaphore(self._max_concurrency)

        async def reason(instance: Any) -> str:
            async with slots:
                try:
                    async with asyncio.timeout(self._timeout):
                        remote = getattr(type(instance), "__squadnb_run__", None)
                        if remote is None:
                            await validate_op(operation, instance)
                        else:
                            await remote(instance, "validate", operation)
                except Skip:
                    return f"would be skipped: {op_name(operation)}'s condition is false"
                except TimeoutError:
                    return f"validation timed out after {self._timeout:g}s"
                except Exception as exc:
                    return str(validation_error(exc))
                return ""

        return list(await asyncio.gather(*(reason(i) for i in items)))

    def resume(self, journal: Journal, batch_id: str, instances: Iterable[Any],
               operation: Any = None, tracker: ProgressTracker | None = None, *,
               progress: Progress = "auto", deadline: Seconds | None = None) -> PartialResult:
        """Run a journaled batch again on only its instances without a recorded success (pending —
        its process died —, failed, cancelled, skipped, rolled back), as a new batch in the same
        journal whose ``resumed_from`` is ``batch_id``.

        The instances are found by label (title) among ``instances`` (a Squad or any iterable). The
        operation is the one the journal stored (when it pickled) unless ``operation`` is given.

        :raises UnknownBatch: the journal has no batch ``batch_id``.
        :raises JournalError: no operation given and none stored, or the stored one cannot be
            unpickled.
        :raises ValueError: a label of the batch matches no instance, or several.
        """
        _refuse_loop_thread()
        run = self._prepare_resume(journal, batch_id, instances, operation, tracker, progress,
                                   deadline)
        with _HeldInterrupts() as held:
            return self._start(run, progress, False)._wait(held)

    async def aresume(self, journal: Journal, batch_id: str, instances: Iterable[Any],
                      operation: Any = None, tracker: ProgressTracker | None = None, *,
                      progress: Progress = "auto", deadline: Seconds | None = None) -> PartialResult:
        """The async twin of :meth:`resume`."""
        run = await asyncio.to_thread(self._prepare_resume, journal, batch_id, instances, operation,
                                      tracker, progress, deadline)
        return await _loop.arun(self._aexecute(run))

    def _prepare_resume(self, journal: Journal, batch_id: str, instances: Iterable[Any],
                        operation: Any, tracker: ProgressTracker | None, progress: Progress,
                        deadline: Seconds | None) -> _Run:
        labels, stored = journal.unfinished(batch_id)
        if operation is None:
            if stored is None:
                raise JournalError(f"batch {batch_id!r} stored no operation (it could not be "
                                   f"pickled); pass operation=")
            operation = stored
        by_label: dict[str, list[Any]] = {}
        for instance in _instance_list(instances, operation):
            by_label.setdefault(instance_label(instance), []).append(instance)
        missing = [label for label in labels if label not in by_label]
        ambiguous = [label for label in labels if len(by_label.get(label, ())) > 1]
        if missing or ambiguous:
            problems = ([f"no instance titled {', '.join(map(repr, missing[:5]))}"] if missing else []) \
                + ([f"several titled {', '.join(map(repr, ambiguous[:5]))}"] if ambiguous else [])
            raise ValueError(f"cannot resume batch {batch_id!r}: {'; '.join(problems)} among the "
                             f"given instances")
        return self._prepare([by_label[label][0] for label in labels], operation, tracker, progress,
                             deadline, journal, batch_id)

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value!r}" for name, value in (
            ("max_failures", self._max_failures), ("max_failure_rate", self._max_failure_rate),
            ("rate", self._rate)) if value is not None)
        return (f"BatchExecutor(max_concurrency={self._max_concurrency}, "
                f"timeout={self._timeout!r}{extra})")


def _instance_list(instances: Iterable[Any], operation: Any) -> list[Any]:
    """``instances`` as a list, each object once, for an ``operation`` with an ``execute``.

    :raises TypeError: not an iterable of instances, or no callable ``execute``.
    :raises ValueError: the same object listed twice.
    """
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
    return items


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
