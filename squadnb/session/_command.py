"""Commands a user runs in an instance's worktree: ``RunCommand`` and the ``setup`` of new worktrees.

One place for what such a command means, over the one process runner (:mod:`._run`): a string runs
under ``sh -c``, a sequence runs as is (no shell); it runs in the worktree, in its own process group
(a timeout or a cancel kills the group, children included), with ``$SQUADNB_MAIN`` set to the main
checkout; stdout and stderr keep their last :data:`OUTPUT_LIMIT` bytes each, flagged when cut.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from squadnb.errors import CommandError, CommandFailed, OperationTimeout
from squadnb.session._run import run_command

__all__ = ["OUTPUT_LIMIT", "CommandRun", "command_argv", "command_label", "failure",
           "run_in_worktree"]

#: bytes of stdout and of stderr a :class:`CommandRun` keeps (the last ones)
OUTPUT_LIMIT = 64 * 1024
#: lines of output an error message quotes
TAIL_LINES = 10


@dataclass(frozen=True, repr=False)
class CommandRun:
    """One finished command: ``exit_code``, ``stdout`` and ``stderr`` (decoded; each only its last
    64 KB when ``stdout_truncated`` / ``stderr_truncated``) and ``seconds`` it ran."""

    exit_code: int
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of stderr, or of stdout when stderr is empty."""
        text = self.stderr if self.stderr.strip() else self.stdout
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def __repr__(self) -> str:
        # short: the value column of a result table shows this, and output can be 64 KB
        def size(text: str, cut: bool) -> str:
            return f"{len(text)} chars" + (" (cut)" if cut else "")
        return (f"CommandRun(exit_code={self.exit_code}, seconds={self.seconds:.2f}, "
                f"stdout={size(self.stdout, self.stdout_truncated)}, "
                f"stderr={size(self.stderr, self.stderr_truncated)})")


def command_argv(command: str | Sequence[str]) -> tuple[str, ...]:
    """``("sh", "-c", command)`` for a string, the sequence itself otherwise; ``ValueError`` when
    it is empty."""
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("the command is empty")
        return ("sh", "-c", command)
    argv = tuple(str(part) for part in command)
    if not argv:
        raise ValueError("the command is empty")
    return argv


def command_label(command: str | Sequence[str]) -> str:
    """How messages quote a command: a string as given, a sequence shell-quoted."""
    return repr(command) if isinstance(command, str) else repr(shlex.join(command_argv(command)))


async def run_in_worktree(command: str | Sequence[str], worktree: str, *, main: str,
                          timeout: float | None = None, env: Mapping[str, str] | None = None,
                          who: str = "") -> CommandRun:
    """Run ``command`` in ``worktree`` and return its :class:`CommandRun` (whatever its exit code).

    :param main: the main checkout's path, given to the command as ``$SQUADNB_MAIN``.
    :param timeout: seconds before the command's process group is killed; None: no limit.
    :param env: variables added to (or replacing those of) squadnb's environment.
    :param who: prefix of error messages (``"instance 'x': "``).
    :raises OperationTimeout: the command ran past ``timeout`` (its process group was killed).
    :raises CommandError: the program cannot be run (not found, not executable).
    """
    argv = command_argv(command)
    full_env = {**os.environ, **(env or {}), "SQUADNB_MAIN": main}
    began = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            done = await run_command(argv, cwd=worktree, env=full_env, limit=OUTPUT_LIMIT)
    except TimeoutError:
        raise OperationTimeout(f"{who}command {command_label(command)} timed out after "
                               f"{timeout:g}s; its processes were killed") from None
    except OSError as exc:
        raise CommandError(f"{who}cannot run command {command_label(command)}: "
                           f"{exc.strerror or exc}", argv) from exc
    return CommandRun(done.returncode, done.stdout, done.stderr, done.stdout_truncated,
                      done.stderr_truncated, time.monotonic() - began)


def failure(run: CommandRun, command: str | Sequence[str], what: str) -> CommandFailed:
    """The error of a failed ``run``: ``"<what> <command> exited with <code>: <tail>"``."""
    tail = run.tail()
    message = f"{what} {command_label(command)} exited with {run.exit_code}"
    return CommandFailed(message + (f":\n{tail}" if tail else " (no output)"), command_argv(command),
                         run.exit_code, tail, run)
