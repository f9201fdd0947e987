"""squadnb's one background event loop, and the three ways into it.

All of squadnb's async work (tmux and git subprocesses, batches) runs on a single asyncio loop owned by
squadnb, in a daemon thread named ``squadnb-loop``. This is the pattern of jupyter_core's ``run_sync``,
nbclient and fsspec; it works the same in a plain script, in a Jupyter cell (whose kernel loop is already
running in the main thread), in a widget callback and under pytest, with no monkeypatching
(nest-asyncio is not used).

- :func:`run_sync` blocks the calling thread until a coroutine finishes on the loop (the sync API).
- :func:`arun` awaits it from any other loop (``await`` in a cell, an async app).
- :func:`submit` schedules it and returns a ``concurrent.futures.Future`` at once (widgets);
  ``future.cancel()`` cancels the task.

One loop for the whole process means asyncio locks, semaphores and subprocess transports are never
"bound to a different event loop" across calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine, ParamSpec, TypeVar

__all__ = ["arun", "get_loop", "in_loop_thread", "on_loop", "run_sync", "submit", "to_the_end",
           "twin_docs", "wait_interruptibly"]

T = TypeVar("T")
P = ParamSpec("P")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return squadnb's loop, starting its daemon thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="squadnb-loop", daemon=True)
            _thread.start()
        return _loop


def in_loop_thread() -> bool:
    """True when called from squadnb's loop thread (where blocking on the loop would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on squadnb's loop and return at once.

    The returned future's ``cancel()`` cancels the task on the loop.
    """
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on squadnb's loop and block until it finishes; return its result or raise its
    exception.

    On ``KeyboardInterrupt`` (Ctrl-C, a kernel interrupt) the task is cancelled and the interrupt is
    re-raised. Raises ``RuntimeError`` when called from the loop thread itself (it would deadlock):
    code running on the loop awaits the coroutine instead.
    """
    if in_loop_thread():
        coro.close()
        raise RuntimeError(
            "squadnb's sync API was called from squadnb's own event loop thread, where it would "
            "deadlock; await the async twin (the 'a'-prefixed method) instead"
        )
    future = submit(coro)
    try:
        wait_interruptibly(future, timeout)
        return future.result(0)  # TimeoutError when ``timeout`` passed first
    except KeyboardInterrupt:
        future.cancel()
        raise


#: seconds a blocking call waits on squadnb's loop between looks for a Ctrl-C
INTERRUPT_CHECK = 0.2


def wait_interruptibly(future: concurrent.futures.Future[Any], timeout: float | None = None) -> bool:
    """Block until ``future`` is done (True) or ``timeout`` seconds pass (False), waking every
    :data:`INTERRUPT_CHECK` seconds: CPython runs a signal's handler between bytecodes, so a Ctrl-C
    landing just before one long blocking wait began would only be seen when that wait ended.

    :raises KeyboardInterrupt: Ctrl-C (a kernel interrupt) while waiting.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = INTERRUPT_CHECK if deadline is None else min(INTERRUPT_CHECK,
                                                           deadline - time.monotonic())
        if concurrent.futures.wait((future,), timeout=max(left, 0.0)).done:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


async def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on squadnb's loop from any other event loop (or from squadnb's loop itself).

    Cancelling the awaiting task cancels the work on squadnb's loop.
    """
    if in_loop_thread():
        return await coro
    return await asyncio.wrap_future(submit(coro))


def on_loop(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Make a coroutine function run on squadnb's loop whichever loop awaits it (through :func:`arun`).

    For public ``a``-prefixed methods whose state lives on squadnb's loop (asyncio locks, subprocess
    transports): ``await inst.apause()`` in a notebook cell runs on the kernel's loop, and a lock that
    such a call and a sync batch both wait on would otherwise be bound to two loops and raise
    ``RuntimeError``. Raises whatever ``fn`` raises; cancelling the awaiting task cancels the work.
    """

    @functools.wraps(fn)
    async def on_squadnb_loop(*args: P.args, **kwargs: P.kwargs) -> T:
        return await arun(fn(*args, **kwargs))

    return on_squadnb_loop


C = TypeVar("C", bound=type)


def twin_docs(cls: C) -> C:
    """Give every sync method of ``cls`` that has no docstring its ``a``-prefixed async twin's
    (``pause`` gets ``apause``'s), so ``inst.pause?`` in a notebook shows what the call does.
    A class decorator: the docstring is written once, on the async twin."""
    for name, attribute in vars(cls).items():
        twin = getattr(cls, f"a{name}", None)
        if callable(attribute) and twin is not None and not attribute.__doc__:
            attribute.__doc__ = twin.__doc__
    return cls


async def to_the_end(step: Awaitable[T]) -> T:
    """Await ``step`` to its end even when the caller is cancelled meanwhile, then raise the cancel
    (the step's own outcome dropped): for a step that, cut short, leaves what no undo can clean."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancel is what the caller sees
        raise
