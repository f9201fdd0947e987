"""Every exception squadnb raises.

Hierarchy::

    SquadError                      base of every squadnb error
    ├── ValidationError             an operation refused an instance before running
    ├── VerificationError           after an operation ran, its post-condition did not hold
    ├── OperationTimeout            (also TimeoutError) one operation ran past its timeout
    ├── Cancelled                   the batch was cancelled or its deadline passed
    ├── BatchError                  several instances failed; lists each failure
    ├── RollbackNotSupported        the operation cannot be undone
    ├── TransactionError            a transactional batch failed; carries .result, .rollback_result
    │   ├── RolledBack              ... and every success was rolled back
    │   └── RollbackIncomplete      ... and some rollback failed too
    ├── HostLost                    a Fleet host's Dask worker left the cluster mid-operation
    ├── JournalError                a batch journal (SQLite) cannot be opened, read or written
    │   └── UnknownBatch            (also KeyError) the journal has no batch with that id
    ├── SessionError                a real instance (git worktree + tmux session) misbehaved
    │   ├── InvalidTitle            empty or unusable title
    │   ├── InvalidPrompt           a prompt squadnb will not paste (empty, control characters)
    │   ├── PromptNotDelivered      the agent did not show that it received the whole prompt
    │   ├── DuplicateTitle          the title is taken by an instance or a live tmux session
    │   ├── NotAGitRepo             the path is not a git repository, or has no commit
    │   ├── CommandError            a CLI command failed (.argv, .returncode, .stderr)
    │   │   ├── GitError            ... a git command
    │   │   ├── TmuxError           ... a tmux command (also: the tmux server is gone)
    │   │   └── CommandFailed       ... a user's command in a worktree (RunCommand, setup)
    │   ├── ProgramExited           the agent program exited during start (.program, .exit_status)
    │   ├── BranchCheckedOut        the branch is checked out in another worktree
    │   ├── InvalidState            the instance is not in a state that allows the call
    │   ├── UnknownInstance         no instance has that title
    │   ├── UnsafePath              a recorded path is not a worktree squadnb made (.instance, .path)
    │   ├── ClaudeSquadRunning      a running claude-squad would undo a change to its state
    │   └── StateFileError          state.json / pending.json / config.json cannot be read
    │       └── StateWriteError     ... or written (full disk, unwritable home)
    └── (BatchInterrupted)          a KeyboardInterrupt, not a SquadError: Ctrl-C during a sync batch

``BatchInterrupted`` subclasses ``KeyboardInterrupt`` so that ``except Exception`` never swallows an
interrupt; it carries the batch's ``PartialResult`` as ``.result``.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = [
    "BatchError",
    "BatchInterrupted",
    "BranchCheckedOut",
    "Cancelled",
    "ClaudeSquadRunning",
    "CommandError",
    "CommandFailed",
    "DuplicateTitle",
    "GitError",
    "HostLost",
    "InvalidPrompt",
    "InvalidState",
    "InvalidTitle",
    "JournalError",
    "NotAGitRepo",
    "OperationTimeout",
    "ProgramExited",
    "PromptNotDelivered",
    "RollbackIncomplete",
    "RollbackNotSupported",
    "RolledBack",
    "SessionError",
    "SquadError",
    "StateFileError",
    "StateWriteError",
    "TmuxError",
    "TransactionError",
    "UnknownBatch",
    "UnknownInstance",
    "UnsafePath",
    "ValidationError",
    "VerificationError",
]


class SquadError(Exception):
    """Base class of every error squadnb raises (except :class:`BatchInterrupted`)."""


class ValidationError(SquadError):
    """An operation's ``validate`` refused an instance; recorded as that instance's failure.

    The message starts ``validation failed: `` and ``__cause__`` is the original exception.
    """


class VerificationError(SquadError):
    """An operation's ``verify`` found, after a successful ``execute``, that its post-condition does
    not hold (the message names the instance and what did not hold); recorded as that instance's
    failure. The built-in operations raise it from their ``verify``.
    """


class OperationTimeout(SquadError, TimeoutError):
    """One operation on one instance ran past the executor's per-operation timeout."""


class Cancelled(SquadError):
    """The batch was cancelled (interrupt, Cancel button) or its ``deadline`` passed before this
    instance's operation finished; instances never started get this too, with ``attempts == 0``."""


class BatchError(SquadError):
    """Several operations failed; ``PartialResult.error()`` returns it.

    The message reads ``"<n> operations failed:\\n  - <Op> on instance '<title>': <err>"``;
    ``.errors`` holds the individual exceptions in failure order.
    """

    def __init__(self, message: str, errors: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class RollbackNotSupported(SquadError):
    """The operation has no rollback (Kill, SendPrompt, or the default ``Operation.rollback``)."""


class TransactionError(SquadError):
    """A transactional batch (``execute_with_rollback``, ``TransactionManager``) had failures.

    ``.result`` is the batch's ``PartialResult``; ``.rollback_result`` the ``PartialResult`` of the
    rollback phase (over the instances that had succeeded).
    """

    def __init__(self, message: str, result: Any, rollback_result: Any) -> None:
        super().__init__(message)
        self.result = result
        self.rollback_result = rollback_result


class RolledBack(TransactionError):
    """Some operations failed, and every success was rolled back (also when there was none)."""


class RollbackIncomplete(TransactionError):
    """Some operations failed and at least one rollback failed too: state is mixed; read
    ``.rollback_result`` to see which instances were not restored."""


class JournalError(SquadError):
    """A :class:`~squadnb.Journal` cannot be opened, read or written (the message names its path
    and the cause), or a batch's stored operation cannot be unpickled. A batch whose outcome cannot
    be recorded starts nothing new and raises it once the running operations finish."""


class UnknownBatch(JournalError, KeyError):
    """The journal holds no batch with the id given to ``resume`` or ``results``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (a kernel interrupt) arrived while a sync ``execute`` was blocking.

    The batch was cancelled cleanly; ``.result`` is its ``PartialResult`` (every instance has a
    result; the ones cut short are ``Cancelled``).
    """

    def __init__(self, result: Any) -> None:
        super().__init__(f"batch interrupted: {result!r}")
        self.result = result


class HostLost(SquadError):
    """The Dask worker of a :class:`~squadnb.distributed.Fleet` host left the cluster (its process died,
    its machine went away) while an operation on one of its instances was running or about to run.

    ``.host`` names the host (the worker's name). What the operation did on that host before the
    worker died is unknown: its agent sessions keep running in their tmux server; look again with
    ``fleet.refresh()`` once the worker is back.
    """

    def __init__(self, message: str, host: str = "") -> None:
        super().__init__(message)
        self.host = host


class SessionError(SquadError):
    """Base of errors about a real instance (git worktree + tmux session)."""


class InvalidTitle(SessionError, ValueError):
    """The title is empty, or sanitises to nothing usable as a branch or tmux name."""


class InvalidPrompt(SessionError, ValueError):
    """A prompt squadnb refuses to paste: empty, not text, or holding a bracketed-paste marker or a
    control character other than newline and tab (see ``squadnb.session._input``). Raised before
    anything is sent; the message names the instance (when there is one), the character and its
    position."""


class PromptNotDelivered(SessionError):
    """A prompt was pasted but the agent did not show, within the squad's ``delivery_timeout``, that
    it received it whole: the demo agent's receipt gave another size or digest, or any other
    program's pane neither changed nor went busy, or the agent exited."""


class DuplicateTitle(SessionError, ValueError):
    """Another instance, or a live tmux session, already uses this title (or its session name)."""


class NotAGitRepo(SessionError):
    """The repository path is not inside a git work tree, or the repository has no commit."""


class CommandError(SessionError):
    """A CLI command exited non-zero; keeps the argv, exit status and stderr."""

    def __init__(self, message: str, argv: Sequence[str] = (), returncode: int | None = None,
                 stderr: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class GitError(CommandError):
    """A git command failed."""


class TmuxError(CommandError):
    """A tmux command failed (including: the tmux server is not running)."""


class CommandFailed(CommandError):
    """A command run in an instance's worktree (:class:`~squadnb.RunCommand` with ``check=True``, or
    a ``setup`` command of a new worktree) exited non-zero.

    ``.exit_code`` is its exit status (also ``.returncode``), ``.stderr_tail`` the last lines of its
    stderr (of its stdout when stderr is empty), ``.run`` the whole
    :class:`~squadnb.ops.CommandRun` (output capped as it was captured).
    """

    def __init__(self, message: str, argv: Sequence[str], exit_code: int, stderr_tail: str,
                 run: Any = None) -> None:
        super().__init__(message, argv, exit_code, getattr(run, "stderr", stderr_tail))
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.run = run


class ProgramExited(SessionError):
    """The agent program exited while the instance was starting (not found, crashed)."""

    def __init__(self, message: str, program: str, exit_status: int | None) -> None:
        super().__init__(message)
        self.program = program
        self.exit_status = exit_status


class BranchCheckedOut(SessionError):
    """The branch is checked out in another worktree (the main checkout included)."""


class InvalidState(SessionError):
    """The instance's state does not allow the call (pause a paused instance, prompt a stopped one)."""


class UnknownInstance(SessionError, KeyError):
    """No instance of the squad has that title."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnsafePath(SessionError):
    """A path recorded for an instance is not one squadnb may delete or commit in: relative, outside
    the home's ``worktrees/``, recorded by another instance of the home too (a symlink to its
    worktree included), or where git lists a worktree on another branch than the instance's.
    Raised before anything is touched; ``.instance`` is the title, ``.path`` the path."""

    def __init__(self, message: str, instance: str, path: str) -> None:
        super().__init__(message)
        self.instance = instance
        self.path = path


class ClaudeSquadRunning(SessionError):
    """A ``cs`` / ``claude-squad`` process is running while squadnb was about to change claude-squad's
    state (``Squad.claude_squad()``): it keeps its instances in memory and rewrites ``state.json`` when
    it exits, which would undo the change. ``.pid`` is the process found. Pass ``force=True`` to go on.
    """

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class StateFileError(SessionError):
    """A state or config file cannot be read (corrupt JSON, invalid UTF-8, a field of the wrong type
    or out of range); the message names the file and the field. The file is left as is."""


class StateWriteError(StateFileError):
    """A file of the home could not be written (full disk, unwritable or read-only home). The message
    names the instance and the change; the file, and the instance in memory, keep what they held."""
