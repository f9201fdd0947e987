"""Squad: the instances of one home directory, its files, and selection.

A home holds ``config.json``, ``state.json`` (started instances, claude-squad's schema),
``pending.json`` (created, not started), ``worktrees/`` and ``logs/``. Loading never starts or touches
anything: statuses come from the files until :meth:`Squad.refresh` looks at the panes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Iterator

from squadnb._html import ATTENTION, BAD, GOOD, INFO, MUTED, WARN, row_style, status_table
from squadnb._loop import on_loop, run_sync, twin_docs
from squadnb.errors import DuplicateTitle, InvalidTitle, SessionError, UnknownInstance
from squadnb.session._storage import InstanceData, Store, resolve_program
from squadnb.session.git import Git
from squadnb.session.instance import Instance, Status
from squadnb.session.tmux import Tmux, claude_squad_session_name, squadnb_session_name

if TYPE_CHECKING:
    import pandas as pd

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
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, repo: str | os.PathLike[str] = ".",
                 program: str | None = None, tmux_socket: str | None = None,
                 branch_prefix: str | None = None) -> None:
        home = home if home is not None else os.environ.get("SQUADNB_HOME", "~/.squadnb")
        socket = tmux_socket or os.environ.get("SQUADNB_TMUX_SOCKET") or "squadnb"
        self._setup(Path(home), repo, program, Tmux(socket), branch_prefix, squadnb_session_name)

    @classmethod
    def claude_squad(cls, home: str | os.PathLike[str] | None = None,
                     repo: str | os.PathLike[str] = ".", tmux_socket: str | None = None, *,
                     program: str | None = None, branch_prefix: str | None = None) -> Squad:
        """The instances of claude-squad's ``~/.claude-squad``, on the default tmux server (or
        ``tmux_socket``, for tests) with claude-squad's session names (``claudesquad_<title>``): batch
        operations work on sessions made by the ``cs`` TUI, and instances made here show up in ``cs``.
        The private server's ``history-limit`` is not forced on the user's server. ``program`` and
        ``branch_prefix`` default to claude-squad's ``config.json``, as in ``Squad()``."""
        squad = cls.__new__(cls)
        squad._setup(Path(home if home is not None else "~/.claude-squad"), repo, program,
                     Tmux(tmux_socket), branch_prefix, claude_squad_session_name)
        return squad

    def _setup(self, home: Path, repo: str | os.PathLike[str], program: str | None, tmux: Tmux,
               branch_prefix: str | None, naming: Callable[[str], str]) -> None:
        self.home = home.expanduser().absolute()
        self.repo = str(Path(repo).expanduser().absolute())
        self.tmux = tmux
        self.git = Git()
        self.session_name_for = naming
        self.ready_timeout = 30.0
        self._store = Store(self.home)
        self.config = self._store.load_config()
        self.program = program or resolve_program(self.config)
        self.branch_prefix = (branch_prefix if branch_prefix is not None
                              else str(self.config.get("branch_prefix") or ""))
        self._instances: dict[str, Instance] = {}
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
        not busy in a call take the stored fields."""
        started, pending = self._store.load()
        seen: set[str] = set()
        for data, stored in [(d, True) for d in started] + [(d, False) for d in pending]:
            seen.add(data.title)
            current = self._instances.get(data.title)
            if current is not None and current._lock.locked():
                continue
            status = Status(min(data.status, int(Status.PAUSED))) if stored else Status.NEW
            if current is not None and current.status in (Status.DEAD, Status.NEEDS_INPUT) \
                    and status is Status.READY:
                status = current.status
            fresh = Instance(self, data, status)
            if current is None:
                self._instances[data.title] = fresh
            else:
                _copy_stored_fields(fresh, current)
        for title in [t for t, inst in self._instances.items() if t not in seen and not inst._lock.locked()]:
            del self._instances[title]

    def _save_instance(self, instance: Instance) -> None:
        self._store.upsert(instance.to_data(), started=instance.started)

    def _forget(self, instance: Instance) -> None:
        self._store.delete(instance.title)
        self._instances.pop(instance.title, None)

    def save(self) -> None:
        """Write every instance to the files (each change is already saved as it happens)."""
        for instance in self.instances:
            self._save_instance(instance)

    # ------------------------------------------------------------------ instances
    def new(self, title: str, program: str | None = None, branch: str | None = None,
            prompt: str | None = None) -> Instance:
        return run_sync(self.anew(title, program, branch, prompt))

    @on_loop
    async def anew(self, title: str, program: str | None = None, branch: str | None = None,
                   prompt: str | None = None) -> Instance:
        """A new instance, not started (saved to ``pending.json``); start it with ``inst.start()`` or
        :class:`~squadnb.ops.BatchStartOperation`. ``branch`` names an existing branch to work on
        (never deleted by kill) or a new one; ``prompt`` is sent once the agent is ready after start.

        Raises :class:`InvalidTitle` (empty, or a control character), :class:`DuplicateTitle` (an
        instance has that title or tmux session name, or a live tmux session has the name) and
        :class:`NotAGitRepo` (the repository is not a git work tree or has no commit), before anything
        is created.
        """
        if not isinstance(title, str) or not title.strip():
            raise InvalidTitle("an instance needs a non-empty title")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in title):
            raise InvalidTitle(f"instance {title!r}: the title has a control character")
        self._load()
        name = self.session_name_for(title)
        if title in self._instances:
            raise DuplicateTitle(f"instance {title!r} already exists")
        clash = next((i.title for i in self._instances.values() if i.session_name == name), None)
        if clash is not None:
            raise DuplicateTitle(f"instance {title!r}: its tmux session name {name!r} is taken by "
                                 f"instance {clash!r}")
        if await self.tmux.has_session(name):
            raise DuplicateTitle(f"instance {title!r}: a tmux session named {name!r} already exists")
        try:
            await self.git.head_sha(await self.git.toplevel(self.repo))
        except Exception as exc:
            exc.args = (f"instance {title!r}: {exc}", *exc.args[1:])
            raise
        data = InstanceData(title=title, path=self.repo, branch=branch or "",
                            program=program or self.program, prompt=prompt,
                            auto_yes=bool(self.config.get("auto_yes")))
        instance = Instance(self, data, Status.NEW)
        self._instances[title] = instance
        self._save_instance(instance)
        return instance

    @property
    def instances(self) -> list[Instance]:
        """Every instance, in creation order."""
        return sorted(self._instances.values(), key=lambda inst: inst.created_at)

    def __getitem__(self, title: str) -> Instance:
        try:
            return self._instances[title]
        except KeyError:
            raise UnknownInstance(f"no instance titled {title!r} in {self.home}") from None

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

    def to_dataframe(self) -> pd.DataFrame:
        """One row per instance, in creation order: ``title, status`` (lower-case name; ``new`` when
        not started), ``branch, program, worktree`` (strings), ``added, removed`` (int, from the last
        diff stats), ``created`` (UTC datetime), ``alive`` (bool, from the last refresh), the guard
        rails ``dirty`` (bool: uncommitted changes in the worktree; False without a worktree) and
        ``ahead`` (int: commits on the branch not on its base commit), both as of the last
        :meth:`refresh`, and ``pinned`` (bool, read now). The dtypes are the same for an empty squad."""
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
        one worktree (its last diff stats and guard rails are kept)."""
        self._load()
        await asyncio.gather(*(_refresh(inst) for inst in self.instances))

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


def _statuses(spec: StatusSpec) -> set[Status]:
    items = [spec] if isinstance(spec, (Status, str)) else list(spec)
    return {Status.parse(item) for item in items}


def _copy_stored_fields(source: Instance, target: Instance) -> None:
    for name in ("path", "branch", "program", "prompt", "auto_yes", "status", "created_at",
                 "updated_at", "repo_path", "worktree_path", "base_commit_sha", "is_existing_branch",
                 "diff"):
        setattr(target, name, getattr(source, name))
