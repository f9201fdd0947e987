"""The built-in operations over :class:`~squadnb.session.Instance`, with the seed's names, validation
rules and rollbacks.

=================  ======================================================  =========================
operation          validation (raises :class:`~squadnb.errors.InvalidState`)  rollback
=================  ======================================================  =========================
``Start``          not already started; title not empty                    Kill
``Pause``          started and not paused                                  Resume
``Resume``         started and paused                                      Pause
``Kill``           started                                                 not supported
``SendPrompt``     started, not paused; the prompt is not empty            not supported
=================  ======================================================  =========================

All are async (``async def execute``): they run on squadnb's loop under the executor's concurrency
limit, and a timeout or cancel stops their git/tmux child processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from squadnb.engine.operation import ConditionalOperation, Operation, RetryOperation
from squadnb.errors import InvalidState, InvalidTitle, RollbackNotSupported
from squadnb.session.instance import Instance, Status

__all__ = ["BatchKillOperation", "BatchPauseOperation", "BatchPromptOperation",
           "BatchResumeOperation", "BatchStartOperation", "DiffOperation", "status_name",
           "with_batch_options"]


def _require_started(instance: Instance) -> None:
    if not instance.started:
        raise InvalidState(f"instance {instance.title!r} is not started")


def _require_not_paused(instance: Instance) -> None:
    _require_started(instance)
    if instance.paused:
        raise InvalidState(f"instance {instance.title!r} is already paused")


class BatchStartOperation(Operation):
    """Start each new instance; rolled back by killing it.

    ``first_time_setup=False`` restarts instead (claude-squad's restore, as a recovery): the program
    of each DEAD instance (its tmux session gone) starts again in its existing worktree with its
    continue flag; validation wants a started, unpaused instance, and the rollback only stops the
    restarted session again (the worktree and branch were there before and stay).
    """

    name = "Start"

    def __init__(self, first_time_setup: bool = True) -> None:
        self.first_time_setup = first_time_setup

    def validate(self, instance: Instance) -> None:
        if not instance.title.strip():
            raise InvalidTitle("the instance's title is empty")
        if not self.first_time_setup:
            _require_not_paused(instance)
        elif instance.started:
            raise InvalidState(f"instance {instance.title!r} is already started")

    async def execute(self, instance: Instance) -> None:
        await instance.astart(self.first_time_setup)

    async def rollback(self, instance: Instance) -> None:
        if self.first_time_setup:
            await instance.akill()
        else:
            await instance.astop()


class BatchPauseOperation(Operation):
    """Pause each instance (commit, remove the worktree, keep the branch). Rolled back by resuming."""

    name = "Pause"

    def validate(self, instance: Instance) -> None:
        _require_not_paused(instance)

    async def execute(self, instance: Instance) -> None:
        await instance.apause()

    async def rollback(self, instance: Instance) -> None:
        await instance.aresume()


class BatchResumeOperation(Operation):
    """Resume each paused instance. Rolled back by pausing it again."""

    name = "Resume"

    def validate(self, instance: Instance) -> None:
        _require_started(instance)
        if not instance.paused:
            raise InvalidState(f"instance {instance.title!r} is not paused")

    async def execute(self, instance: Instance) -> None:
        await instance.aresume()

    async def rollback(self, instance: Instance) -> None:
        await instance.apause()


class BatchKillOperation(Operation):
    """Kill each instance (session, worktree, and the branch if squadnb created it). Terminal: no
    rollback."""

    name = "Kill"

    def validate(self, instance: Instance) -> None:
        _require_started(instance)

    async def execute(self, instance: Instance) -> None:
        await instance.akill()

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"Kill cannot be rolled back (instance {instance.title!r})")


class BatchPromptOperation(Operation):
    """Send ``prompt`` to each instance once its agent is ready (waits at most ``timeout`` seconds;
    default the squad's ``ready_timeout``). A prompt cannot be unsent: no rollback."""

    name = "SendPrompt"

    def __init__(self, prompt: str, timeout: float | None = None) -> None:
        self.prompt = prompt
        self.timeout = timeout

    def validate(self, instance: Instance) -> None:
        _require_not_paused(instance)
        if not self.prompt or not self.prompt.strip():
            raise ValueError("the prompt is empty")

    async def execute(self, instance: Instance) -> None:
        await instance.asend_prompt(self.prompt, self.timeout)

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"SendPrompt cannot be rolled back (instance {instance.title!r})")


def status_name(instance: Any) -> str:
    """The instance's status as the tables and the status filters spell it (``"paused"``)."""
    status = getattr(instance, "status", None)
    return status.name.lower() if isinstance(status, Status) else str(status)


class _StatusIs:
    """Predicate of the "only instances whose status is …" wrapper (a named class, so the
    operation's repr stays readable)."""

    def __init__(self, status: str) -> None:
        self.status = status

    def __call__(self, instance: Any) -> bool:
        return status_name(instance) == self.status

    def __repr__(self) -> str:
        return f"status == {self.status!r}"


def with_batch_options(operation: Any, *, retries: int = 0, retry_delay: float = 1.0,
                       only_status: str | None = None) -> Any:
    """``operation`` as the batch options of the CLI and the BatchForm describe it: wrapped in
    :class:`~squadnb.RetryOperation` when ``retries`` > 0, and in :class:`~squadnb.ConditionalOperation`
    when ``only_status`` (a lower-case status name) is given — outermost, so the condition is checked
    once, before any attempt. Raises ``ValueError`` when retrying with a negative ``retry_delay``."""
    if retries > 0:
        operation = RetryOperation(operation, max_retries=retries, delay=retry_delay)
    if only_status:
        operation = ConditionalOperation(operation, _StatusIs(only_status))
    return operation


class DiffOperation(Operation):
    """Read each instance's :class:`~squadnb.session.git.DiffStats` (its result's ``value``): lines
    added and removed against the base commit, and the diff text. Reads only: no validation, no
    rollback needed.

    With ``until_changed=True`` (name ``"AwaitWork"``) it polls every ``poll_seconds`` until the
    worktree has changes: the executor's timeout bounds the wait, and an instance whose agent never
    changed anything is reported timed out.
    """

    def __init__(self, until_changed: bool = False, poll_seconds: float = 0.1) -> None:
        self.until_changed = until_changed
        self.poll_seconds = poll_seconds
        self.name = "AwaitWork" if until_changed else "Diff"

    async def execute(self, instance: Instance) -> Any:
        while True:
            stats = await instance.adiff_stats()
            if not self.until_changed or stats.added or stats.removed:
                return stats
            await asyncio.sleep(self.poll_seconds)
