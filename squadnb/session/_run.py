"""The one subprocess runner under tmux.py, git.py and the commands users run in worktrees.

Every tmux and git call goes through a :class:`Runner`: ``await runner(argv, cwd=, env=, input=)``
returns a :class:`Completed` and never raises for a non-zero exit (the caller decides what a failure
means). The default, :func:`run_command`, uses ``asyncio.create_subprocess_exec`` (never a shell) and
starts each child in its own session, so its process group is its own: a terminal's Ctrl-C reaches
squadnb only, and a cancel (timeout, Ctrl-C, Cancel button) kills the whole group (the child and
anything it spawned) before the cancellation goes on, so no process outlives the operation that
started it. Tests inject a recording runner to assert exact command lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["Completed", "Runner", "run_command"]

_CHUNK = 64 * 1024
#: seconds a killed command's pipes get to close before squadnb stops reading them
_SETTLE = 2.0


@dataclass(frozen=True)
class Completed:
    """A finished command: its argv, exit status and decoded output; ``stdout_truncated`` /
    ``stderr_truncated`` say that only the last ``limit`` bytes of that stream were kept."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(Protocol):
    async def __call__(self, argv: Sequence[str], *, cwd: str | None = None,
                       env: Mapping[str, str] | None = None,
                       input: bytes | None = None) -> Completed: ...


async def run_command(argv: Sequence[str], *, cwd: str | None = None,
                      env: Mapping[str, str] | None = None, input: bytes | None = None,
                      limit: int | None = None) -> Completed:
    """Run ``argv`` (no shell) in its own process group and return its :class:`Completed`.

    :param limit: keep only the last ``limit`` bytes of stdout and of stderr (the rest is read and
        dropped, so a chatty command never fills memory); ``None`` keeps everything.
    :raises FileNotFoundError: the executable does not exist.
    :raises asyncio.CancelledError: the awaiting task was cancelled; the child's whole process group
        was killed (SIGKILL) and the child reaped first.
    """
    spawning = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    ))
    try:
        proc = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # Cancelled while the child was starting (it may already run, and have started others):
        # asyncio would kill the child alone, so let the start finish and kill its group.
        await asyncio.shield(_kill_once_started(spawning, limit))
        raise
    # Shielded: on a cancel the readers go on to the pipes' end (at once, once the group is
    # killed), so no pipe transport is left open.
    reading = _reading(proc, input, limit)
    try:
        (out, out_cut), (err, err_cut), _ = await asyncio.shield(reading)
        returncode = await proc.wait()
    except BaseException:
        _kill_group(proc)
        await asyncio.shield(_settle(proc, reading))
        raise
    return Completed(tuple(argv), returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"), out_cut, err_cut)


def _reading(proc: asyncio.subprocess.Process, input: bytes | None,
             limit: int | None) -> asyncio.Future[list[Any]]:
    assert proc.stdout is not None and proc.stderr is not None
    return asyncio.ensure_future(asyncio.gather(
        _drain(proc.stdout, limit), _drain(proc.stderr, limit), _feed(proc, input)))


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group. The group outlives its leader while a child it spawned
    lives, so this works even when the leader has exited (its id cannot be reused meanwhile)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _kill_once_started(spawning: asyncio.Future[asyncio.subprocess.Process],
                             limit: int | None) -> None:
    try:
        proc = await spawning
    except Exception:  # it never started: nothing to kill
        return
    _kill_group(proc)
    await _settle(proc, _reading(proc, b"", limit))  # b"": close its stdin pipe, if it has one


async def _settle(proc: asyncio.subprocess.Process, reading: asyncio.Future[object]) -> None:
    """Reap a killed child and let its readers see the pipes close; a process that escaped the
    group (it made its own session) may hold a pipe: stop reading after ``_SETTLE`` seconds."""
    await proc.wait()
    await asyncio.wait([reading], timeout=_SETTLE)
    if not reading.done():
        reading.cancel()
    elif not reading.cancelled():
        reading.exception()  # retrieved: the caller's own exception is the one that matters


async def _drain(stream: asyncio.StreamReader, limit: int | None) -> tuple[bytes, bool]:
    """Read ``stream`` to its end; keep its last ``limit`` bytes (all when None) and whether some
    were dropped."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(_CHUNK):
        kept += chunk
        if limit is not None and len(kept) > limit:
            del kept[:len(kept) - limit]
            cut = True
    return bytes(kept), cut


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if data is None or proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()
