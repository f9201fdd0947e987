"""The built-in operations over :class:`~squadnb.session.Instance`, with the seed's names, validation
rules and rollbacks.

=================  ======================================================  =========================
operation          validation (raises :class:`~squadnb.errors.InvalidState`)  rollback
=================  ======================================================  =========================
``Start``          not already started; title not empty                    Kill
``Pause``          started and not paused                                  Resume
``Resume``         started and paused                                      Pause
``Kill``           started; not pinned; with ``discard=False``, no          not supported
                   uncommitted changes and no commits the kill would delete
``SendPrompt``     started, not paused; the prompt passes the prompt policy  not supported
``RunCommand``     started, not paused, its worktree exists                not supported
``Push``           started (running or paused)                             not supported
=================  ======================================================  =========================

All are async (``async def execute``): they run on squadnb's loop under the executor's concurrency
limit, and a timeout or cancel stops their git/tmux child processes.

Verified outcomes: each operation's ``verify(instance)``, which the executor calls after a
successful ``execute``, checks its post-condition against real tmux and git and raises
:class:`~squadnb.errors.VerificationError` naming what did not hold (the instance is then a
failure). Start: the session is alive and its agent runs in the worktree, which git lists on the
branch. Pause: the session and the worktree are gone, and the branch holds the work (its tip is the
tip before the pause or a descendant, and a new commit if the worktree had uncommitted changes).
Resume: the worktree is back on the branch and the agent runs in it. Kill: no session, no worktree
and no branch squadnb created are left. SendPrompt: that the agent received the prompt is checked
once, by ``send_prompt`` itself (the demo agent's receipt of the exact bytes, else a change in the
pane; :class:`~squadnb.errors.PromptNotDelivered` otherwise), so its ``verify`` checks what is left:
the agent still runs in its worktree after taking the prompt. Pause remembers, per instance, the
branch tip and whether the worktree was dirty when ``execute`` began; that memory is not pickled with
the operation.

Guard rails: a pinned instance (:meth:`~squadnb.session.Instance.pin`) is refused by every
destructive operation (one with a true ``destructive`` attribute: Kill), with the reason in its
result; Pause, Resume, Start and SendPrompt lose nothing and run on pinned instances too.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any, Awaitable, Mapping, Sequence

from squadnb.engine._seconds import Seconds, check_timeout
from squadnb.engine.operation import ConditionalOperation, Operation, RetryOperation
from squadnb.errors import InvalidState, InvalidTitle, RollbackNotSupported
from squadnb.session import _postconditions as hold
from squadnb.session._command import CommandRun, command_argv, failure
from squadnb.session._input import check_prompt
from squadnb.session.instance import Instance, PauseReport, Status

__all__ = ["BatchKillOperation", "BatchPauseOperation", "BatchPromptOperation",
           "BatchPushOperation", "BatchResumeOperation", "BatchStartOperation", "CommandRun",
           "DiffOperation", "RunCommand", "status_name", "with_batch_options"]


class _RemembersBefore:
    """For an operation whose ``verify`` compares with what ``execute`` saw first: one value per
    instance (weakly held, taken once by :meth:`_recall`), left out when the operation is pickled
    (a journal stores the operation of a batch)."""

    def _remember(self, instance: Instance, value: Any) -> None:
        self.__dict__.setdefault("_before", weakref.WeakKeyDictionary())[instance] = value

    def _recall(self, instance: Instance) -> Any:
        return self.__dict__.get("_before", {}).pop(instance, None)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_before"}


def _refuse_pinned(instance: Instance, action: str) -> None:
    """The check of every destructive operation: ``InvalidState`` naming the pin."""
    if instance.pinned:
        raise InvalidState(f"instance {instance.title!r} is pinned; unpin it to {action} it")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
        instance.check("start" if self.first_time_setup else "restart")

    async def execute(self, instance: Instance) -> None:
        await instance.astart(self.first_time_setup)

    async def verify(self, instance: Instance) -> None:
        await hold.worktree_on_branch(instance, self.name)
        await hold.agent_runs_in_worktree(instance, self.name)

    async def rollback(self, instance: Instance) -> None:
        if self.first_time_setup:
            await instance.akill()
        else:
            await instance.astop()


class BatchPauseOperation(_RemembersBefore, Operation):
    """Pause each instance (commit, remove the worktree, keep the branch). Rolled back by resuming.
    Its value is the instance's :class:`~squadnb.session.PauseReport`: the ignored files archived,
    and any dropped or not committed as deletions."""

    name = "Pause"

    def validate(self, instance: Instance) -> None:
        instance.check("pause")

    async def execute(self, instance: Instance) -> PauseReport | None:
        git = instance.squad.git
        tip = await git.branch_tip(instance.repo_path, instance.branch)
        dirty = os.path.isdir(instance.worktree_path) and await git.is_dirty(instance.worktree_path)
        self._remember(instance, (tip, dirty))
        return await instance.apause()

    async def verify(self, instance: Instance) -> None:
        tip, dirty = self._recall(instance) or (None, False)
        await hold.no_session(instance, self.name)
        await hold.no_worktree(instance, self.name)
        await hold.branch_holds(instance, self.name, tip, dirty)

    async def rollback(self, instance: Instance) -> None:
        await instance.aresume()


class BatchResumeOperation(Operation):
    """Resume each paused instance. Rolled back by pausing it again."""

    name = "Resume"

    def validate(self, instance: Instance) -> None:
        instance.check("resume")

    async def execute(self, instance: Instance) -> None:
        await instance.aresume()

    async def verify(self, instance: Instance) -> None:
        await hold.worktree_on_branch(instance, self.name)
        await hold.agent_runs_in_worktree(instance, self.name)

    async def rollback(self, instance: Instance) -> None:
        await instance.apause()


class BatchKillOperation(Operation):
    """Kill each instance (session, worktree, and the branch if squadnb created it). Terminal: no
    rollback. Pinned instances are refused.

    ``discard=True`` (the default, the seed's behaviour) throws away whatever the instance holds.
    ``discard=False`` keeps instances whose kill would lose work: uncommitted changes in the worktree
    (``dirty``), or commits on a branch squadnb created that its base commit has not (``ahead``;
    a branch squadnb did not create survives the kill, so its commits do not count). Each refusal is
    that instance's ``invalid`` result, saying what would be lost. That check runs git, so with
    ``discard=False`` :meth:`validate` returns a coroutine after its quick checks (the engine awaits
    it; a direct caller awaits it too).
    """

    name = "Kill"
    destructive = True

    def __init__(self, discard: bool = True) -> None:
        self.discard = discard

    def validate(self, instance: Instance) -> Awaitable[None] | None:
        instance.check("kill")
        _refuse_pinned(instance, "kill")
        return None if self.discard else self._refuse_unsaved(instance)

    @staticmethod
    async def _refuse_unsaved(instance: Instance) -> None:
        dirty, ahead = await instance.arefresh_work()
        lost = ["uncommitted changes in its worktree"] if dirty else []
        if ahead and not instance.is_existing_branch:
            lost.append(f"{_plural(ahead, 'commit')} on branch {instance.branch!r} not on its base "
                        "commit")
        if lost:
            raise InvalidState(f"instance {instance.title!r} has {' and '.join(lost)}; kept "
                               "(discard=True would throw the work away)")

    async def execute(self, instance: Instance) -> None:
        await instance.akill()

    async def verify(self, instance: Instance) -> None:
        await hold.no_session(instance, self.name)
        if instance.repo_path:
            await hold.no_worktree(instance, self.name)
            if not instance.is_existing_branch:
                await hold.no_branch(instance, self.name)

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"Kill cannot be rolled back (instance {instance.title!r})")


class BatchPromptOperation(Operation):
    """Send ``prompt`` to each instance once its agent is ready (waits at most ``timeout`` seconds;
    default the squad's ``ready_timeout``) as one paste, and succeed only once the agent shows it
    received it whole (``Instance.send_prompt``). ``validate`` applies the prompt policy
    (``squadnb.session._input.check_prompt``: an :class:`~squadnb.errors.InvalidPrompt` naming the
    instance). A prompt cannot be unsent: no rollback."""

    name = "SendPrompt"

    def __init__(self, prompt: str, timeout: float | None = None) -> None:
        self.prompt = prompt
        self.timeout = timeout

    def validate(self, instance: Instance) -> None:
        instance.check("prompt")
        check_prompt(self.prompt, instance.title)

    async def execute(self, instance: Instance) -> None:
        await instance.asend_prompt(self.prompt, self.timeout)

    async def verify(self, instance: Instance) -> None:
        # Delivery itself was checked by send_prompt (one check, kept there for direct callers too).
        await hold.agent_runs_in_worktree(instance, self.name)

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"SendPrompt cannot be rolled back (instance {instance.title!r})")


def status_name(instance: Any) -> str:
    """The instance's status as the tables and the status filters spell it (``"paused"``)."""
    status = getattr(instance, "status", None)
    return status.label if isinstance(status, Status) else str(status)


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


class RunCommand(Operation):
    """Run a command in each instance's worktree (not in the agent's pane); the value is its
    :class:`CommandRun` (``exit_code``, ``stdout``, ``stderr``, ``seconds``; each stream only its last
    64 KB, with ``stdout_truncated`` / ``stderr_truncated`` saying so).

    :param command: a string runs under ``sh -c``; a sequence (argv) runs as is, with no shell.
    :param timeout: seconds (or a ``timedelta``) after which the command and every process it
        started are killed (its own process group), and the instance fails with
        :class:`~squadnb.errors.OperationTimeout`; None: no limit of its own (the executor's timeout
        or a cancel kill the group the same way). Zero, negative, NaN or infinite: ``ValueError``.
    :param env: variables added to the environment (which also has ``$SQUADNB_MAIN``, the main
        checkout's path).
    :param check: a non-zero exit is the instance's failure, a
        :class:`~squadnb.errors.CommandFailed` holding the exit code and the last lines of stderr;
        with ``check=False`` every finished command is a success and ``exit_code`` tells.

    Validation refuses instances without a worktree (new, paused). A command cannot be undone: no
    rollback. The operation's name is ``"RunCommand"``.
    """

    name = "RunCommand"

    def __init__(self, command: str | Sequence[str], *, timeout: Seconds | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True) -> None:
        command_argv(command)  # refuse an empty command now, not once per instance
        self.command = command
        self.timeout = check_timeout(timeout, "RunCommand's timeout")
        self.env = dict(env) if env is not None else None
        self.check = check

    def validate(self, instance: Instance) -> None:
        instance.check("command")
        if not os.path.isdir(instance.worktree_path):
            raise InvalidState(f"instance {instance.title!r} has no worktree: "
                               f"{instance.worktree_path!r} does not exist")

    async def execute(self, instance: Instance) -> CommandRun:
        run = await instance.arun_command(self.command, timeout=self.timeout, env=self.env)
        if self.check and run.exit_code != 0:
            raise failure(run, self.command, f"instance {instance.title!r}: command")
        return run

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"RunCommand cannot be rolled back (instance {instance.title!r})")

    def __repr__(self) -> str:
        return f"RunCommand({self.command!r})"


class BatchPushOperation(_RemembersBefore, Operation):
    """Commit each instance's worktree changes on its branch (the commit pause makes, or
    ``message``) and push the branch to ``remote`` with its upstream set; the value is the pushed
    commit's sha. Works on running instances and on paused ones (no worktree: the branch is pushed as
    it is). ``verify`` asks the remote (``ls-remote``) that it has the branch at that sha. A push
    cannot be taken back from a remote: no rollback. The operation's name is ``"Push"``.

    :param remote: a remote's name or URL (a path to a bare repository works too).
    :param message: the commit message of uncommitted work; default pause's
        ``[claudesquad] update from '<title>' on <time> (paused)``.
    """

    name = "Push"

    def __init__(self, remote: str = "origin", *, message: str | None = None) -> None:
        if not remote or not remote.strip():
            raise ValueError("the remote is empty")
        self.remote = remote
        self.message = message

    def validate(self, instance: Instance) -> None:
        instance.check("push")

    async def execute(self, instance: Instance) -> str:
        sha = await instance.apush(self.remote, self.message)
        self._remember(instance, sha)
        return sha

    async def verify(self, instance: Instance) -> None:
        await hold.remote_has(instance, self.name, self.remote, self._recall(instance))

    async def rollback(self, instance: Instance) -> None:
        raise RollbackNotSupported(f"Push cannot be rolled back (instance {instance.title!r})")


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
