"""Squad: the instances of one home directory, its files, and selection.

A home holds ``config.json``, ``state.json`` (started instances, claude-squad's schema),
``pending.json`` (created, not started), ``worktrees/`` and ``logs/``. Loading never starts or touches
anything: statuses come from the files until :meth:`Squad.refresh` looks at the panes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Iterator, Sequence

from squadnb._html import ATTENTION, BAD, GOOD, INFO, MUTED, WARN, row_style, status_table
from squadnb._loop import on_loop, run_sync, twin_docs
from squadnb.errors import (DuplicateTitle, InvalidState, InvalidTitle, SessionError,
                            StateFileError, StateWriteError, UnknownInstance)
from squadnb.session._claude_squad import refuse_if_running
from squadnb.session._intents import Intents
from squadnb.session._storage import (Change, InstanceData, Store, Stored, change_summary, parse_time,
                                      resolve_program, same_instance)
from squadnb.session.git import Git
from squadnb.session.instance import Instance, Status
from squadnb.session._input import check_prompt, check_title, shown
from squadnb.session.tmux import (Tmux, claude_squad_session_name, session_name_problem,
                                  squadnb_session_name)

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.engine.executor import BatchExecutor
    from squadnb.engine.journal import Journal
    from squadnb.engine.result import PartialResult

__all__ = ["Squad"]

StatusSpec = Status | str | Collection[Status | str]


@twin_docs
class Squad:
    """The set of instances of one home directory.

    ``home`` defaults to ``$SQUADNB_HOME`` or ``~/.squadnb``; ``tmux_socket`` to
    ``$SQUADNB_TMUX_SOCKET`` or ``"squadnb"`` (a private tmux server started without the user's
    config); ``program`` to the config's ``default_program`` (resolved through its profiles) and
    ``branch_prefix`` to the config's. Raises :class:`~squadnb.errors.StateFileError` when a file of
    the home cannot be read (the file is left as is).

    ``setup`` (default: the config's ``setup``, else none) is a list of shell command strings run in
    each new worktree, in order, after its checkout and before the agent starts (``sh -c``, in the
    worktree, with the main checkout's path in ``$SQUADNB_MAIN``: ``cp "$SQUADNB_MAIN/.env" .``,
    ``npm ci``). A command that exits non-zero fails the start with
    :class:`~squadnb.errors.CommandFailed` quoting its output's last lines, and the start leaves no
    session, worktree or branch; resume and restart do not run it again. Raises ``TypeError`` when
    ``setup`` is not a list of non-empty strings (:class:`~squadnb.errors.StateFileError` for the
    config's).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, repo: str | os.PathLike[str] = ".",
                 program: str | None = None, tmux_socket: str | None = None,
                 branch_prefix: str | None = None, *, setup: Sequence[str] | None = None) -> None:
        home = home if home is not None else os.environ.get("SQUADNB_HOME", "~/.squadnb")
        socket = tmux_socket or os.environ.get("SQUADNB_TMUX_SOCKET") or "squadnb"
        self._setup(Path(home), repo, program, Tmux(socket), branch_prefix, squadnb_session_name,
                    setup)

    @classmethod
    def claude_squad(cls, home: str | os.PathLike[str] | None = None,
                     repo: str | os.PathLike[str] = ".", tmux_socket: str | None = None, *,
                     program: str | None = None, branch_prefix: str | None = None,
                     force: bool = False, setup: Sequence[str] | None = None) -> Squad:
        """The instances of claude-squad's ``~/.claude-squad``, on the default tmux server (or
        ``tmux_socket``, for tests) with claude-squad's session names (``claudesquad_<title>``): batch
        operations work on sessions made by the ``cs`` TUI, and instances made here show up in ``cs``.
        The private server's ``history-limit`` is not forced on the user's server. ``program`` and
        ``branch_prefix`` (and ``setup``) default to claude-squad's ``config.json``, as in
        ``Squad()``.

        While a ``cs`` / ``claude-squad`` process runs, start, pause, resume, kill, stop and
        :meth:`save` raise :class:`~squadnb.errors.ClaudeSquadRunning` before acting: ``cs`` keeps its
        instances in memory and rewrites ``state.json`` when it exits, which would undo the change.
        ``force=True`` (or setting ``squad.force``) goes on anyway. Reading and refreshing are never
        refused. Times ``cs`` wrote (nanoseconds) are kept as written unless they change."""
        squad = cls.__new__(cls)
        squad._setup(Path(home if home is not None else "~/.claude-squad"), repo, program,
                     Tmux(tmux_socket), branch_prefix, claude_squad_session_name, setup)
        squad.guards_claude_squad = True
        squad.force = force
        return squad

    def _setup(self, home: Path, repo: str | os.PathLike[str], program: str | None, tmux: Tmux,
               branch_prefix: str | None, naming: Callable[[str], str],
               setup: Sequence[str] | None = None) -> None:
        #: True for ``claude_squad()`` homes: lifecycle calls refuse while ``cs`` runs (see ``force``)
        self.guards_claude_squad = False
        #: go on beside a running ``cs`` (``claude_squad(force=True)``)
        self.force = False
        self._stored: dict[str, Stored] = {}
        self._queued: dict[str, _Queued] = {}
        self.home = home.expanduser().absolute()
        self.repo = str(Path(repo).expanduser().absolute())
        self.tmux = tmux
        self.git = Git()
        self.session_name_for = naming
        self.ready_timeout = 30.0
        #: seconds a pasted prompt has to show up (the demo agent's receipt, or a change of the pane)
        self.delivery_timeout = 30.0
        self._store = Store(self.home)
        self._intents = Intents(self._store)
        self.config = self._store.load_config()
        self.program = program or resolve_program(self.config)
        self.setup = (_setup_commands(setup, "setup=") if setup is not None
                      else _config_setup(self.config, self._store.config_path))
        self.branch_prefix = (branch_prefix if branch_prefix is not None
                              else str(self.config.get("branch_prefix") or ""))
        self._instances: dict[str, Instance] = {}
        self._journal: Journal | None = None
        self._load()

    # ------------------------------------------------------------------ files
    @property
    def tmux_socket(self) -> str | None:
        """The private server's socket name; None for the default server (``claude_squad()``)."""
        return self.tmux.socket

    @property
    def worktrees_dir(self) -> Path:
        return self.home / "worktrees"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def journal(self) -> Journal:
        """The batch journal of this home: a :class:`~squadnb.Journal` at ``<home>/history.sqlite``,
        opened on first use (the file is created 0600: it holds titles, prompts and errors) and then
        kept. Pass it as ``executor.execute(..., journal=squad.journal)``; the ``squadnb`` command
        journals every state-changing batch there. Raises :class:`~squadnb.errors.JournalError` when
        the file cannot be opened or is not a journal."""
        if self._journal is None:
            from squadnb.engine.journal import Journal

            self._journal = Journal(self.home / "history.sqlite")
        return self._journal

    def worktree_path_for(self, branch: str) -> str:
        """``<home>/worktrees/<branch>_<hex nanoseconds>`` (claude-squad's layout)."""
        return str(self.worktrees_dir / f"{branch}_{time.time_ns():x}")

    def remove_empty_parents(self, worktree: str) -> None:
        """Remove the empty directories left between a removed worktree and ``worktrees/`` (a branch
        prefix such as ``alice/`` nests them)."""
        parent = Path(worktree).parent
        while parent != self.worktrees_dir and self.worktrees_dir in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _load(self) -> None:
        """Merge the files into memory: new titles appear, titles deleted elsewhere go, and instances
        not busy (in a call, or with a change not written yet) take the stored fields."""
        stored = self._store.load()
        seen: set[str] = set()
        for item in stored:
            title = item.entry["title"]
            seen.add(title)
            current = self._instances.get(title)
            if current is not None and self._busy(current):
                continue
            self._stored[title] = item
            self._take(item, current)
        for title, instance in list(self._instances.items()):
            if title not in seen and not self._busy(instance):
                del self._instances[title]
                self._stored.pop(title, None)

    def _take(self, item: Stored, current: Instance | None) -> Instance:
        """Set ``current`` (or a new instance) to the stored entry ``item``. DEAD and NEEDS_INPUT,
        written as READY, are kept."""
        data = InstanceData.from_json(item.entry, self._store.state_path if item.started
                                      else self._store.pending_path)
        status = Status(data.status) if item.started else Status.NEW
        if current is not None and current.status in (Status.DEAD, Status.NEEDS_INPUT) \
                and status is Status.READY:
            status = current.status
        fresh = Instance(self, data, status)
        if current is None:
            current = fresh
        else:
            _copy_stored_fields(fresh, current)
        self._instances[data.title] = current
        return current

    def _busy(self, instance: Instance) -> bool:
        """True while a call holds the instance or a change of it is not written yet."""
        self._collect(instance.title)
        return instance._lock.locked() or instance.title in self._queued

    async def _arevise(self, instance: Instance) -> None:
        """Before a call acts on ``instance``: take what the files hold for it now (another process
        may have paused, resumed or restarted it since this squad read it), unless a change of this
        process is still on its way to them. Raises :class:`InvalidState` naming the instance when
        another process removed it from the files (killed it), or killed it and made a new instance
        of the title, since this squad read it: the copy here is of an instance that is gone, and
        acting on it would act on the new one's session and worktree, or write the dead one back."""
        title = instance.title
        self._collect(title)
        known = self._stored.get(title)
        if known is None or title in self._queued:
            return
        found = await asyncio.to_thread(self._store.peek, title)
        if found is False:
            return
        if found is None or not same_instance(found.entry, known.entry):
            self._instances.pop(title, None)
            self._stored.pop(title, None)
            what = "killed it" if found is None else "killed it and made a new instance of the title"
            raise InvalidState(f"instance {shown(title)}: another process {what} since this squad "
                               "read it; nothing was done")
        if found.entry != known.entry or found.started != known.started:
            self._stored[title] = found
            self._take(found, instance)

    def _call_lock(self, instance: Instance) -> asyncio.Lock:
        """The lock every lifecycle call of ``instance`` holds; see :class:`_CallLock`."""
        return _CallLock(self, instance)

    def _entry(self, instance: Instance) -> dict[str, Any]:
        """``instance`` as a file entry; a time that did not change keeps the text it was read as
        (claude-squad writes nanoseconds, Python keeps microseconds)."""
        entry = instance.to_data().to_json()
        stored = self._stored.get(instance.title)
        if stored is not None:
            for key in ("created_at", "updated_at"):
                text = stored.entry.get(key)
                if isinstance(text, str) and parse_time(text) == getattr(instance, key):
                    entry[key] = text
        return entry

    def _save_instance(self, instance: Instance, *, observed: bool | None = None) -> None:
        """Queue a write of ``instance``'s fields. Only the fields it changed since this squad read or
        wrote it are written (:func:`~squadnb.session._storage.merge_entry`). ``observed`` (default:
        True when no call holds the instance, i.e. a refresh) marks an observation, which never
        overwrites a status another process wrote meanwhile. A lifecycle call's writes are on disk
        before the call returns (its lock waits for them); :meth:`_aflush` waits at once."""
        if observed is None:
            observed = not instance._lock.locked()
        self._submit(instance.title, self._entry(instance), instance.started, observed)

    def _forget(self, instance: Instance) -> None:
        """Queue the removal of ``instance`` from the files and drop it from the squad."""
        self._submit(instance.title, None, instance.started, False)
        self._instances.pop(instance.title, None)

    def _submit(self, title: str, entry: dict[str, Any] | None, started: bool, observed: bool) -> None:
        self._collect(title)
        previous = self._queued.get(title)
        stored = self._stored.get(title)
        base = previous.base if previous is not None else (stored.entry if stored else None)
        future = self._store.submit(Change(title, entry, base, started, observed))
        self._queued[title] = _Queued(entry, base, future)

    async def _aflush(self, instance: Instance) -> None:
        """Wait until ``instance``'s queued changes are on disk, then take what the file holds.
        Raises :class:`StateWriteError` (naming the instance and the change) when the write failed;
        the instance then holds what the file still holds."""
        queued = self._queued.get(instance.title)
        if queued is None:
            return
        with contextlib.suppress(Exception):  # the future's error is raised by _settle
            await asyncio.shield(asyncio.wrap_future(queued.future))
        self._settle(instance, queued)

    def _settle(self, instance: Instance, queued: _Queued) -> None:
        """Take the outcome of a finished write of ``instance`` (see :meth:`_aflush`)."""
        error = queued.future.exception()
        if error is None:
            self._collect(instance.title)
            return
        if self._queued.get(instance.title) is queued:
            del self._queued[instance.title]
        try:
            on_disk: Stored | None = next((item for item in self._store.load()
                                           if item.entry["title"] == instance.title), None)
        except StateFileError:
            on_disk = self._stored.get(instance.title)
        if on_disk is None:
            self._instances.pop(instance.title, None)
            self._stored.pop(instance.title, None)
            held = "no entry"
        else:
            self._stored[instance.title] = on_disk
            self._take(on_disk, instance)
            held = f"status {instance.status.name.lower()}"
        kind = type(error) if isinstance(error, (StateFileError, DuplicateTitle)) else StateWriteError
        raise kind(f"instance {instance.title!r}: saving {change_summary(queued.entry, queued.base)} "
                   f"failed: {error}; the instance keeps what the file holds ({held})") from error

    def _collect(self, title: str) -> None:
        """Take the outcome of the last write of ``title`` if it has finished: the entry the file now
        holds (fields another process changed come in). A failed observation is dropped (the next
        load takes the file's value)."""
        queued = self._queued.get(title)
        if queued is None or not queued.future.done():
            return
        del self._queued[title]
        if queued.future.exception() is not None:
            return
        stored = queued.future.result()
        instance = self._instances.get(title)
        if stored is None:
            self._stored.pop(title, None)
            if instance is not None and not instance._lock.locked():
                del self._instances[title]
            return
        self._stored[title] = stored
        sent = queued.entry or {}
        if instance is not None and any(stored.entry.get(key) != value for key, value in sent.items()
                                        if key != "prompt"):
            self._take(stored, instance)

    def guard_claude_squad(self) -> None:
        """Before changing claude-squad's state: raise :class:`~squadnb.errors.ClaudeSquadRunning`
        while a ``cs`` process runs, unless ``force``. Only ``Squad.claude_squad()`` homes are
        guarded (``cs`` never writes squadnb's own home). Every lifecycle call and :meth:`save` call
        it; the command calls it once before a batch, so a refused batch changes nothing."""
        if self.guards_claude_squad and not self.force:
            refuse_if_running()

    async def _aguard_claude_squad(self) -> None:
        await asyncio.to_thread(self.guard_claude_squad)

    def save(self) -> None:
        """Write every instance's fields changed in memory (each lifecycle change is already saved as
        it happens) and wait until they are on disk. Raises :class:`StateWriteError` (the first;
        the others as notes) and, beside a running ``cs``, :class:`ClaudeSquadRunning`."""
        self.guard_claude_squad()
        instances = self.instances
        for instance in instances:
            self._save_instance(instance, observed=False)
        _raise_first(self._settle_all(instances))

    def _settle_all(self, instances: list[Instance]) -> list[StateFileError]:
        errors: list[StateFileError] = []
        for instance in instances:
            queued = self._queued.get(instance.title)
            if queued is None:
                continue
            concurrent.futures.wait([queued.future])
            try:
                self._settle(instance, queued)
            except StateFileError as exc:
                errors.append(exc)
        return errors

    # ------------------------------------------------------------------ instances
    def new(self, title: str, program: str | None = None, branch: str | None = None,
            prompt: str | None = None, *, group: str | None = None) -> Instance:
        return run_sync(self.anew(title, program, branch, prompt, group=group))

    @on_loop
    async def anew(self, title: str, program: str | None = None, branch: str | None = None,
                   prompt: str | None = None, *, group: str | None = None) -> Instance:
        """A new instance, not started (saved to ``pending.json``); start it with ``inst.start()`` or
        :class:`~squadnb.ops.BatchStartOperation`. ``branch`` names an existing branch to work on
        (never deleted by kill) or a new one; ``prompt`` is sent once the agent is ready after start;
        ``group`` is kept as the instance's ``group`` (:meth:`fan_out` sets it to its title).

        Raises, before anything is created: :class:`InvalidTitle` (not a string, blank, longer than
        100 characters, or holding a control, format, private-use, unassigned or line-separator
        character — see
        ``squadnb.session._input.check_title`` — or, under :meth:`claude_squad`, a title whose
        claude-squad session name would hold a character tmux treats specially, such as ``#`` or
        ``;``), :class:`InvalidPrompt` (a ``prompt`` the prompt policy refuses),
        :class:`DuplicateTitle` (an instance has that title or tmux session name, or a live tmux
        session has the name) and :class:`NotAGitRepo` (the repository is not a git work tree or has
        no commit).
        """
        check_title(title)
        name = self.session_name_for(title)
        problem = session_name_problem(name)
        if problem is not None:
            raise InvalidTitle(f"title {shown(title)}: its tmux session name {shown(name)} cannot be "
                               f"used: {problem}")
        if prompt:
            prompt = check_prompt(prompt, title)
        if branch is not None and not isinstance(branch, str):
            raise InvalidTitle(f"instance {shown(title)}: branch must be a string, not "
                               f"{type(branch).__name__}")
        if branch and not await self.git.valid_branch_name(branch):
            raise InvalidTitle(f"instance {shown(title)}: {shown(branch)} is not a valid git branch "
                               "name")
        self._load()
        if title in self._instances:
            raise DuplicateTitle(f"instance {shown(title)} already exists")
        clash = next((i.title for i in self._instances.values() if i.session_name == name), None)
        if clash is not None:
            raise DuplicateTitle(f"instance {shown(title)}: its tmux session name {shown(name)} is "
                                 f"taken by instance {shown(clash)}")
        if await self.tmux.has_session(name):
            raise DuplicateTitle(f"instance {shown(title)}: a tmux session named {shown(name)} "
                                 "already exists")
        try:
            await self.git.head_sha(await self.git.toplevel(self.repo))
        except Exception as exc:
            exc.args = (f"instance {shown(title)}: {exc}", *exc.args[1:])
            raise
        data = InstanceData(title=title, path=self.repo, branch=branch or "",
                            program=program or self.program, prompt=prompt, group=group or "",
                            auto_yes=bool(self.config.get("auto_yes")))
        instance = Instance(self, data, Status.NEW)
        self._instances[title] = instance
        self._save_instance(instance, observed=False)
        await self._aflush(instance)
        return instance

    @property
    def instances(self) -> list[Instance]:
        """Every instance, in creation order."""
        return sorted(self._instances.values(), key=lambda inst: inst.created_at)

    def __getitem__(self, title: str) -> Instance:
        try:
            return self._instances[title]
        except KeyError:
            raise UnknownInstance(f"no instance titled {shown(title)} in {self.home}") from None

    def __contains__(self, title: object) -> bool:
        return title in self._instances

    def __len__(self) -> int:
        return len(self._instances)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def select(self, status: StatusSpec | None = None,
               where: Callable[[Instance], bool] | pd.Series | None = None) -> list[Instance]:
        """The instances (creation order) whose status is ``status`` (a :class:`Status`, its name in any
        case such as ``"paused"``, or a collection of them) and for which ``where`` holds (a callable,
        or a boolean pandas Series aligned with :meth:`to_dataframe`, row for row). Raises
        ``ValueError`` for an unknown status name, or a mask whose length is not the number of
        instances (a mask of an older or filtered table would pick the wrong rows)."""
        chosen = self.instances
        if status is not None:
            wanted = _statuses(status)
            chosen = [inst for inst in chosen if inst.status in wanted]
        if where is None:
            return chosen
        if callable(where):
            return [inst for inst in chosen if where(inst)]
        titles = [inst.title for inst in self.instances]  # the rows of to_dataframe(), in order
        if len(where) != len(titles):
            raise ValueError(f"where= mask has {len(where)} rows but the squad has {len(titles)} "
                             "instances; build it from a fresh squad.to_dataframe()")
        mask = dict(zip(titles, list(where)))
        return [inst for inst in chosen if bool(mask[inst.title])]

    # ------------------------------------------------------------------ judging the work
    # The two methods below run batches of the built-in operations, which sit below this layer
    # (squadnb.ops imports the session); they import squadnb._judge when called.
    def fan_out(self, title: str, n: int, prompt: str, *, program: str | None = None,
                executor: BatchExecutor | None = None) -> PartialResult:
        return run_sync(self.afan_out(title, n, prompt, program=program, executor=executor))

    @on_loop
    async def afan_out(self, title: str, n: int, prompt: str, *, program: str | None = None,
                       executor: BatchExecutor | None = None) -> PartialResult:
        """Give one task to ``n`` new agents: create ``<title>-1`` … ``<title>-<n>`` (``program``
        default the squad's; each instance's ``group`` is ``title``, so
        ``squad.select(where=lambda i: i.group == title)`` picks them), start them and send each
        ``prompt``, as one :class:`~squadnb.OperationChain` (Start, then SendPrompt, with
        ``executor``; default all ``n`` at once with the default timeout). Returns the prompt step's
        :class:`~squadnb.PartialResult`: one row per instance, and an instance whose start failed
        is ``invalid`` there (it stays NEW in the squad).

        :raises ValueError: ``n`` is not a positive int, or the prompt is empty (before anything
            is created).
        :raises DuplicateTitle: one of the titles is taken; the instances this call created are
            forgotten again (same for :class:`InvalidTitle`).
        """
        from squadnb._judge import afan_out

        return await afan_out(self, title, n, prompt, program=program, executor=executor)

    def compare(self, instances: Iterable[Instance] | None = None,
                command: str | Sequence[str] | None = None, *,
                executor: BatchExecutor | None = None) -> pd.DataFrame:
        return run_sync(self.acompare(instances, command, executor=executor))

    @on_loop
    async def acompare(self, instances: Iterable[Instance] | None = None,
                       command: str | Sequence[str] | None = None, *,
                       executor: BatchExecutor | None = None) -> pd.DataFrame:
        """The work of ``instances`` (default all, creation order) side by side, one row each:
        ``title``, ``files_changed``, ``added``, ``removed`` (lines; see
        :meth:`Instance.changed_files`: committed, uncommitted and untracked work against the base
        commit), ``commits_ahead`` (commits on the branch since its base commit). With ``command``
        (a string for ``sh -c``, or an argv), it runs in each worktree through
        :class:`~squadnb.RunCommand` ``(command, check=False)`` on ``executor`` (default: all at once,
        the default timeout), adding ``exit_code`` (nullable Int64: NA where it did not finish:
        paused, not started, timed out) and ``seconds``.

        :raises GitError: git fails on an instance (e.g. its base commit is gone).
        """
        from squadnb._judge import acompare

        return await acompare(self, instances, command, executor=executor)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per instance, in creation order: ``title, status`` (lower-case name; ``new`` when
        not started), ``branch, program, worktree`` (strings), ``added, removed`` (int, from the last
        diff stats), ``created`` (UTC datetime), ``alive`` (bool, from the last refresh), ``group``
        (the :meth:`fan_out` that made it, else ``""``), the guard rails ``dirty`` (bool: uncommitted
        changes in the worktree; False without a worktree) and ``ahead`` (int: commits on the branch
        not on its base commit), both as of the last :meth:`refresh`, and ``pinned`` (bool, read
        now). The dtypes are the same for an empty squad."""
        import pandas as pd

        instances = self.instances
        pins = self._store.load_pins()

        def column(values: list[object], dtype: str) -> pd.Series:
            return pd.Series(values, dtype=dtype)

        return pd.DataFrame({
            "title": column([i.title for i in instances], "str"),
            "status": column([i.status.label for i in instances], "str"),
            "branch": column([i.branch for i in instances], "str"),
            "program": column([i.program for i in instances], "str"),
            "worktree": column([i.worktree_path for i in instances], "str"),
            "added": column([i.diff.added for i in instances], "int64"),
            "removed": column([i.diff.removed for i in instances], "int64"),
            "created": pd.to_datetime(column([i.created_at for i in instances], "object"), utc=True)
                         .astype("datetime64[ns, UTC]"),
            "alive": column([i.started and i.status not in (Status.PAUSED, Status.DEAD)
                             for i in instances], "bool"),
            "group": column([i.group for i in instances], "str"),
            "dirty": column([i.dirty for i in instances], "bool"),
            "ahead": column([i.ahead for i in instances], "int64"),
            "pinned": column([i.title in pins for i in instances], "bool"),
        })

    def _repr_html_(self) -> str:
        """The :meth:`to_dataframe` table under the text summary, every cell escaped, each row coloured
        by status (dead red, needs_input amber, running green, ready blue, paused grey)."""
        frame = self.to_dataframe()
        shown = frame.astype(object)
        shown["created"] = [t.strftime("%Y-%m-%d %H:%M:%S") for t in frame["created"]]
        return status_table(repr(self), shown.astype(str), STATUS_STYLES, "squadnb-squad")

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for inst in self._instances.values():
            counts[inst.status.label] = counts.get(inst.status.label, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no instances"
        return f"Squad({str(self.home)!r}: {summary})"

    # ------------------------------------------------------------------ tmux
    def refresh(self) -> None:
        return run_sync(self.arefresh())

    @on_loop
    async def arefresh(self) -> None:
        """Re-read the files (instances made or killed by other processes) and recompute every
        started, unpaused instance's status from its pane and its diff stats, as claude-squad's tick
        does, and every started instance's ``dirty`` and ``ahead`` (two git reads each). Never
        raises because the tmux server is gone (those instances become DEAD) or because git fails on
        one worktree (its last diff stats and guard rails are kept). Raises
        :class:`StateWriteError` when a changed status cannot be saved (full disk, read-only home).
        A status another process wrote after this squad read it is never overwritten by what this
        refresh saw."""
        self._load()
        instances = self.instances
        outcomes = await asyncio.gather(*(_refresh(inst) for inst in instances), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, StateFileError):
                raise outcome
        _raise_first([outcome for outcome in outcomes if isinstance(outcome, StateFileError)])

    def doctor(self, repair: bool = False) -> pd.DataFrame:
        return run_sync(self.adoctor(repair))

    @on_loop
    async def adoctor(self, repair: bool = False) -> pd.DataFrame:
        """Compare the home's files with tmux sessions, git worktrees and branches and the disk: one
        row per finding (``kind, instance, path, detail, repaired``) — orphan session, orphan
        worktree, stray directory, orphan branch, half-done transition, stale lock, outside the
        home, not its worktree (a path another instance records too, or a worktree on another
        branch), shared branch (the table and the rules are in :mod:`squadnb.session._doctor`).

        With ``repair=True`` it fixes what it can without deleting work: interrupted transitions are
        finished, an orphan worktree's uncommitted changes are committed to its branch before it is
        removed, unknown directories go to ``<home>/lost+found/``, an orphan session's history is
        saved before it is ended, stale git locks (no live holder) are removed; branches and paths
        outside the home are only reported. Raises :class:`StateFileError` when a file of the home
        cannot be read."""
        import pandas as pd

        from squadnb.session._doctor import COLUMNS, examine

        rows = await examine(self, repair)
        return pd.DataFrame([[getattr(r, c) for c in COLUMNS] for r in rows],
                            columns=list(COLUMNS)).astype({"repaired": "bool"})

    def kill_server(self) -> None:
        return run_sync(self.akill_server())

    @on_loop
    async def akill_server(self) -> None:
        """Kill this squad's private tmux server (every session on it). Refuses the default server
        (:class:`~squadnb.errors.TmuxError`)."""
        await self.tmux.kill_server()


#: row colours of a squad's table, by status
STATUS_STYLES = {
    "running": row_style(GOOD),
    "ready": row_style(INFO),
    "loading": row_style(WARN),
    "needs_input": row_style(ATTENTION),
    "paused": row_style(MUTED),
    "dead": row_style(BAD),
}


async def _refresh(instance: Instance) -> None:
    await instance.arefresh_status()
    with contextlib.suppress(SessionError):
        await instance.adiff_stats()
    with contextlib.suppress(SessionError):
        await instance.arefresh_work()


def _setup_commands(value: object, where: str) -> list[str]:
    """``value`` as a list of setup commands; ``TypeError`` naming ``where`` when it is not a list
    (or tuple) of non-empty strings."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{where} must be a list of shell command strings, not {value!r}")
    for command in value:
        if not isinstance(command, str) or not command.strip():
            raise TypeError(f"{where} must be a list of non-empty shell command strings; "
                            f"{command!r} is not one")
    return list(value)


def _config_setup(config: dict[str, object], path: Path) -> list[str]:
    value = config.get("setup")
    try:
        return _setup_commands([] if value is None else value, f"'setup' in {path}")
    except TypeError as exc:
        raise StateFileError(f"{exc}; the file was left as is") from None


def _raise_first(errors: list[StateFileError]) -> None:
    if errors:
        for other in errors[1:]:
            errors[0].add_note(str(other))
        raise errors[0]


@dataclass
class _Queued:
    """A change of one instance handed to the store: what was sent, on which base, and its future."""

    entry: dict[str, Any] | None
    base: dict[str, Any] | None
    future: concurrent.futures.Future[Stored | None]


class _CallLock(asyncio.Lock):
    """The lock of an instance's lifecycle calls. Once acquired, it brings the instance up to what
    the files hold (:meth:`Squad._arevise`). On release it first waits until the call's state
    changes are on disk (fsync'd), so a change is saved before the call returns (a SIGKILL right
    after loses nothing), while the changes of concurrent calls share one file write. A failed write
    raises :class:`StateWriteError`, or is added as a note to the error the call already raises."""

    def __init__(self, squad: Squad, instance: Instance) -> None:
        super().__init__()
        self._squad, self._instance = squad, instance

    async def __aenter__(self) -> None:
        await self.acquire()
        try:
            await self._squad._arevise(self._instance)
        except BaseException:
            self.release()
            raise

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            await self._squad._aflush(self._instance)
        except StateFileError as error:
            if exc is None:
                raise
            exc.add_note(str(error))
        finally:
            self.release()


def _statuses(spec: StatusSpec) -> set[Status]:
    items = [spec] if isinstance(spec, (Status, str)) else list(spec)
    return {Status.parse(item) for item in items}


def _copy_stored_fields(source: Instance, target: Instance) -> None:
    for name in ("path", "branch", "program", "prompt", "auto_yes", "status", "created_at",
                 "updated_at", "repo_path", "worktree_path", "base_commit_sha", "is_existing_branch",
                 "diff", "group"):
        setattr(target, name, getattr(source, name))
