"""How the engine calls an operation's methods: coroutines are awaited on the loop, plain functions
run in a daemon worker thread (``execute``/``rollback``) or inline (``validate``).

Worker threads are daemons on purpose: a plain function that timed out keeps running, and the executor
does not wait for it; a non-daemon pool (``asyncio.to_thread``, ``ThreadPoolExecutor``) would also make
the interpreter wait for it at exit.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from contextvars import ContextVar
from typing import Any, Callable

__all__ = ["Tally", "call", "call_inline", "operation_timeout", "run_in_thread", "tally"]


class Tally:
    """What the executor records about the instance being run besides its value: ``attempts``, the
    ``execute`` calls made, and ``verified``, whether a ``verify`` held (None when none ran)."""

    __slots__ = ("attempts", "verified")

    def __init__(self) -> None:
        self.attempts = 0
        self.verified: bool | None = None


#: The tally of the instance the current task is running; ``RetryOperation`` counts its attempts
#: there, and every ``verify`` (the executor's, a composite's step, a retry's attempt) its outcome.
tally: ContextVar[Tally] = ContextVar("squadnb_tally")

#: The executor's per-operation timeout in the current worker (None: no limit); an operation that
#: cleans up after being cut short bounds its cleanup with a fresh one of the same length.
operation_timeout: ContextVar[float | None] = ContextVar("squadnb_operation_timeout", default=None)


def _deliver(future: asyncio.Future[Any], ok: bool, outcome: Any) -> None:
    # A future cancelled by a timeout or a cancel stays cancelled: a late completion is dropped.
    if future.done():
        return
    if ok:
        future.set_result(outcome)
    else:
        future.set_exception(outcome)


class _DaemonPool:
    """Reuses idle daemon threads; starts a new one when none is idle, so a thread stuck in a timed-out
    function never delays the next call."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any],
                                            Callable[[Any], Any], Any]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, arg))
        if not self._idle.acquire(blocking=False):
            threading.Thread(target=self._work, name="squadnb-worker", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            loop, future, fn, arg = self._jobs.get()
            try:
                outcome, ok = fn(arg), True
            except BaseException as exc:  # any exception is the operation's failure, reported on the loop
                outcome, ok = exc, False
            try:
                loop.call_soon_threadsafe(_deliver, future, ok, outcome)
            except RuntimeError:  # the loop was closed meanwhile; nobody is waiting any more
                pass
            del loop, future, fn, arg, outcome
            self._idle.release()


_pool = _DaemonPool()


def run_in_thread(fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
    """Run ``fn(arg)`` in a daemon worker thread; the returned loop future holds its outcome."""
    return _pool.submit(fn, arg)


async def call(fn: Callable[[Any], Any], instance: Any) -> Any:
    """``await fn(instance)`` for a coroutine function; otherwise run it in a worker thread.

    An awaitable returned by a plain function is awaited too. Raises whatever ``fn`` raises.
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(instance)
    value = await run_in_thread(fn, instance)
    if inspect.isawaitable(value):
        value = await value
    return value


async def call_inline(fn: Callable[[Any], Any], instance: Any) -> Any:
    """Call ``fn(instance)`` on the loop (a quick check), awaiting the result when it is awaitable."""
    value = fn(instance)
    if inspect.isawaitable(value):
        value = await value
    return value
