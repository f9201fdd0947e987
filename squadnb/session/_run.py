"""The one subprocess runner under tmux.py and git.py.

Every tmux and git call goes through a :class:`Runner`: ``await runner(argv, cwd=, env=, input=)``
returns a :class:`Completed` and never raises for a non-zero exit (the caller decides what a failure
means). The default, :func:`run_command`, uses ``asyncio.create_subprocess_exec`` (never a shell), and
a cancel (timeout, Ctrl-C, Cancel button) kills the child before the cancellation goes on, so no git or
tmux process outlives the operation that started it. Tests inject a recording runner to assert exact
command lines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

__all__ = ["Completed", "Runner", "run_command"]


@dataclass(frozen=True)
class Completed:
    """A finished command: its argv, exit status and decoded output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(Protocol):
    async def __call__(self, argv: Sequence[str], *, cwd: str | None = None,
                       env: Mapping[str, str] | None = None,
                       input: bytes | None = None) -> Completed: ...


async def run_command(argv: Sequence[str], *, cwd: str | None = None,
                      env: Mapping[str, str] | None = None, input: bytes | None = None) -> Completed:
    """Run ``argv`` (no shell) and return its :class:`Completed`.

    Raises ``FileNotFoundError`` when the executable does not exist. When the awaiting task is
    cancelled, the child is killed and reaped, then ``CancelledError`` propagates.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(input)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return Completed(tuple(argv), proc.returncode if proc.returncode is not None else -1,
                     out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
