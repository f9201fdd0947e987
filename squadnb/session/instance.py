"""One real instance: a git worktree on its own branch plus a tmux session running an agent program.

This module owns the order of steps of each lifecycle call and the status; the command lines live in
``tmux.py`` and ``git.py`` and the files in ``_storage.py``. Every lifecycle call is all-or-nothing:
on failure it undoes what it did (a failed start leaves no session, worktree or branch; a failed pause
leaves the worktree and restarts the agent) and raises a :mod:`squadnb.errors` type whose message
starts ``instance '<title>': <action> failed:``. Every state change is saved to the squad's files at
once. Calls on one instance are serialised by a per-instance lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Generator, Iterator, Mapping, Sequence, TypeVar

from squadnb._loop import on_loop, run_sync, to_the_end, twin_docs
from squadnb._receipt import receipt_for
from squadnb.errors import (BranchCheckedOut, DuplicateTitle, InvalidState, InvalidTitle,
                            ProgramExited, PromptNotDelivered, SessionError, TmuxError,
                            UnsafePath)
from squadnb.session import _archive, _pane
from squadnb.session._command import CommandRun, failure, run_in_worktree
from squadnb.session._input import check_prompt
from squadnb.session._programs import profile_for, with_continue
from squadnb.session._status import Status, StatusFlags, refusal
from squadnb.session._storage import DiffStatsData, InstanceData, WorktreeData, write_private
from squadnb.session.git import DiffStats, FileChange, branch_name, same_path

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.session.squad import Squad

__all__ = ["Instance", "PauseReport", "Status", "pause_commit_message"]

T = TypeVar("T")



def _now() -> datetime:
    return datetime.now().astimezone()


def pause_commit_message(title: str) -> str:
    """The message of the commit pause makes of dirty work (claude-squad's):
    ``[claudesquad] update from '<title>' on <time> (paused)``."""
    stamp = _now().strftime("%d %b %y %H:%M %Z")
    return f"[claudesquad] update from '{title}' on {stamp} (paused)"


def _same_place(path: str, others: list[tuple[str, str]]) -> str | None:
    """The title of the first ``(title, path)`` of ``others`` naming the place ``path`` names: the
    same text once normalised, or ``path``'s real path (a path through a symlink to another
    instance's worktree; the paths squadnb records are real ones). One ``realpath``, then text
    only: this runs before every pause, resume and kill, over every instance, and a ``stat`` of
    each made a kill's cost grow with their number. A path that another instance records through
    a symlink to this one is refused in that instance's own calls (its real path is this
    instance's)."""
    mine = {os.path.normpath(path), os.path.realpath(path)}
    return next((title for title, other in others if os.path.normpath(other) in mine), None)


def _enclosing_checkout(path: str, root: str) -> str | None:
    """The nearest directory above ``path`` and below ``root`` (both real) holding a ``.git`` (a
    worktree's file or a repository's directory), or None."""
    parent = os.path.dirname(path)
    while parent.startswith(root + os.sep):
        if os.path.lexists(os.path.join(parent, ".git")):
            return parent
        parent = os.path.dirname(parent)
    return None


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return _now()


@dataclasses.dataclass(frozen=True)
class PauseReport:
    """What a pause kept beyond its commit, and what it could not keep: the value of
    ``pause()`` and of :class:`~squadnb.ops.BatchPauseOperation` (its text is the result table's
    ``value`` cell), so nothing is dropped silently.

    ``archive``: the tar holding the worktree's ignored files (None when there were none);
    ``archived``: their paths; ``dropped``: ignored files not kept, over the 100 MB limit
    (also listed in ``<archive>.dropped.txt``); ``not_deleted``: files missing from the worktree
    but still in git's index, not committed as deletions (they stay on the branch);
    ``set_aside``: where a directory git did not list at the worktree path was moved.
    """

    archive: str | None = None
    archived: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    not_deleted: tuple[str, ...] = ()
    set_aside: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.archived:
            parts.append(f"kept {_count(self.archived, 'ignored file')} in {self.archive}")
        if self.dropped:
            parts.append(f"DROPPED {_count(self.dropped, 'ignored file')} over the "
                         f"{_archive.LIMIT // 2**20} MB archive limit: {_some(self.dropped)}")
        if self.not_deleted:
            parts.append(f"{_count(self.not_deleted, 'file')} missing from the worktree not "
                         f"committed as deletions (kept on the branch): {_some(self.not_deleted)}")
        if self.set_aside:
            parts.append(f"a directory git did not list was moved to {self.set_aside}")
        return "; ".join(parts) or "paused"


def _count(items: tuple[str, ...], word: str) -> str:
    return f"{len(items)} {word}{'' if len(items) == 1 else 's'}"


def _some(items: tuple[str, ...], shown: int = 5) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


@twin_docs
class Instance(StatusFlags):
    """One instance of a :class:`~squadnb.session.squad.Squad`; create it with ``squad.new(...)``.

    Attributes follow claude-squad: ``title, path, branch, worktree_path, status, program,
    created_at, updated_at, auto_yes, prompt``, plus ``repo_path``, ``base_commit_sha``,
    ``is_existing_branch`` (True: squadnb did not create the branch and never deletes it), ``group``
    (the title given to :meth:`Squad.fan_out <squadnb.session.squad.Squad.fan_out>` that made it, else
    ``""``) and ``squad``.
    Every method has an ``a``-prefixed coroutine twin that runs on squadnb's loop whichever loop awaits
    it (a notebook cell's included); the sync one blocks on squadnb's loop.
    """

    def __init__(self, squad: Squad, data: InstanceData, status: Status) -> None:
        self.squad = squad
        self.title = data.title
        self.path = data.path
        self.branch = data.branch
        self.program = data.program
        self.prompt = data.prompt
        self.group = data.group
        self.auto_yes = data.auto_yes
        self.status = status
        self.created_at = _parse_time(data.created_at) if data.created_at else _now()
        self.updated_at = _parse_time(data.updated_at) if data.updated_at else self.created_at
        self.repo_path = data.worktree.repo_path
        self.worktree_path = data.worktree.worktree_path
        self.base_commit_sha = data.worktree.base_commit_sha
        self.is_existing_branch = data.worktree.is_existing_branch
        self.diff = DiffStats(data.diff_stats.added, data.diff_stats.removed, data.diff_stats.content)
        self.exit_status: int | None = None
        #: what the last pause finished by recovery reported (returned by that pause() call)
        self.last_report: PauseReport | None = None
        #: set by a transition's body when, failing, it must stay recorded for the next call
        self._unfinished = False
        #: uncommitted changes in the worktree, and commits on the branch not on its base commit, as
        #: of the last :meth:`refresh_work` (``squad.refresh()`` calls it)
        self.dirty = False
        self.ahead = 0
        self._lock = squad._call_lock(self)  # on release it waits until the call's writes are on disk
        self._last_hash: str | None = None

    # ------------------------------------------------------------------ state
    @property
    def session_name(self) -> str:
        """The tmux session name (``squadnb_<title>``, or claude-squad's under ``claude_squad()``)."""
        return self.squad.session_name_for(self.title)

    def __repr__(self) -> str:
        return f"<Instance {self.title!r} {self.status.label} branch={self.branch!r}>"

    def to_data(self) -> InstanceData:
        """This instance as claude-squad's DTO (status as the on-disk integer)."""
        diff = self.diff
        return InstanceData(
            title=self.title, path=self.path, branch=self.branch,
            status=Status.READY.to_disk() if self.status is Status.NEW else self.status.to_disk(),
            created_at=self.created_at.isoformat(), updated_at=self.updated_at.isoformat(),
            auto_yes=self.auto_yes, program=self.program,
            worktree=WorktreeData(self.repo_path, self.worktree_path, self.title, self.branch,
                                  self.base_commit_sha, self.is_existing_branch),
            diff_stats=DiffStatsData(diff.added, diff.removed, diff.content),
            prompt=self.prompt if self.status is Status.NEW else None, group=self.group)

    def _set(self, status: Status) -> None:
        self.status = status
        self.updated_at = _now()
        self.squad._save_instance(self)

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        """Prefix a session error's message with this instance and the action."""
        try:
            yield
        except SessionError as exc:
            prefix = f"instance {self.title!r}: "
            message = str(exc)
            if not message.startswith(prefix):
                exc.args = (f"{prefix}{action} failed: {message}", *exc.args[1:])
            raise

    def check(self, action: str) -> None:
        """Refuse ``action`` (``"start"``, ``"restart"``, ``"pause"``, ``"resume"``, ``"kill"``,
        ``"prompt"``, ``"stop"``) when the status does not allow it; the built-in operations'
        ``validate`` calls this.

        :raises InvalidState: ``instance '<title>' is already paused`` (or ``is not started``, ``is
            not paused``, ``is already started``).
        """
        reason = refusal(action, self.status)
        if reason is not None:
            raise InvalidState(f"instance {self.title!r} {reason}")

    def _require(self, action: str) -> None:
        """:meth:`check`'s rule inside a lifecycle call, whose error already names the instance
        (``instance 'x': pause failed: it is already paused``)."""
        reason = refusal(action, self.status)
        if reason is not None:
            raise InvalidState(f"it {reason}")

    # ------------------------------------------------------------------ start
    def start(self, first_time_setup: bool = True) -> None:
        return run_sync(self.astart(first_time_setup))

    def restart(self) -> None:
        return run_sync(self.arestart())

    @on_loop
    async def astart(self, first_time_setup: bool = True) -> None:
        """Create the branch (``sanitize(prefix + title)`` from the repository's HEAD, recorded as
        ``base_commit_sha``) and the worktree, then start the program in a new tmux session, and send
        the instance's ``prompt`` if it has one. The squad's ``setup`` commands run in the new
        worktree before the program starts.

        Succeeds only once the program is running. Raises :class:`InvalidTitle`,
        :class:`DuplicateTitle` (a live tmux session has the name), :class:`NotAGitRepo`,
        :class:`BranchCheckedOut`, :class:`CommandFailed` (a setup command exited non-zero; its output's
        tail in the message), :class:`ProgramExited` (with the program and its exit status),
        :class:`GitError` or :class:`TmuxError`; then no session, worktree or branch is left.

        ``first_time_setup=False`` is claude-squad's spelling of :meth:`arestart`.
        """
        if not first_time_setup:
            return await self.arestart()
        async with self._lock:
            with self._failing("start"):
                await self.squad._aguard_claude_squad()
                if not self.title.strip():
                    raise InvalidTitle("the title is empty")
                self._require("start")
                if self.prompt:
                    self.prompt = check_prompt(self.prompt, self.title)
                await self._setup_and_launch()

    @on_loop
    async def arestart(self) -> None:
        """Restart the program (with its continue flag, so the conversation goes on) of a started,
        unpaused instance whose tmux session is gone (DEAD: a reboot, a killed server), in its
        existing worktree, without touching git. claude-squad's restore, made a recovery; also
        spelled ``start(first_time_setup=False)``. A restart an earlier, killed call left half-done
        is finished: a program it started that still runs is kept, else the program starts again.

        Raises :class:`InvalidState` for an instance that is not started, is paused (resume it), whose
        session is alive, or whose worktree is gone; a program that exits raises
        :class:`ProgramExited` and the instance stays DEAD, and :class:`UnsafePath` when its
        worktree path is not its own (:meth:`apause` says when).
        """
        async with self._transition("restart") as done:
            if not done:
                await self._restart_in_worktree()

    async def _setup_and_launch(self) -> None:
        """Start's steps, recorded in ``transitions.json`` while they run: what a start records in
        the state files before it acts looks the same whether its process died or is still at work,
        and the record's pid tells which (:meth:`_clean_interrupted_start`)."""
        await self._clean_interrupted_start()
        await self._begin_record("start")
        try:
            await self._start_steps()
        except BaseException:
            await self._drop_record()
            raise
        await self._end_record()

    async def _start_steps(self) -> None:
        git, tmux = self.squad.git, self.squad.tmux
        repo = await git.toplevel(self.path)
        head = await git.head_sha(repo)
        if await tmux.has_session(self.session_name):
            raise DuplicateTitle(f"a tmux session named {self.session_name!r} already exists")
        branch, base, created = await self._choose_branch(repo, head)
        worktree = self.squad.worktree_path_for(branch)
        requested = self.branch
        # Written down before git and tmux run: if the process dies from here on, the instance is
        # still NEW but names what this start made, and its next start (or kill) removes it.
        self._record_setup(repo, worktree, branch, base, existing_branch=not created)
        await self.squad._aflush(self)
        try:
            await asyncio.to_thread(Path(worktree).parent.mkdir, parents=True, exist_ok=True)
            await git.add_worktree(repo, worktree, branch, new_from=head if created else None)
            try:
                await self._run_setup(repo, worktree)
                await self._launch(self.program, worktree)
            except BaseException:
                await asyncio.shield(self._undo_setup(repo, worktree, branch if created else None))
                raise
        except BaseException:
            # git.add_worktree's own undo leaves the directories made above (a prefix's `alice/`)
            await asyncio.shield(asyncio.to_thread(self.squad.remove_empty_parents, worktree))
            self._record_setup(branch=requested)
            raise
        self._set(Status.RUNNING)
        if self.prompt:
            try:
                await self._send(self.prompt, self.squad.ready_timeout)
            except BaseException:
                await asyncio.shield(self._teardown(delete_branch=created))
                self.status = Status.NEW
                self._record_setup(branch=requested)
                raise

    async def _run_setup(self, repo: str, worktree: str) -> None:
        """Run the squad's ``setup`` commands in the new worktree, in order; the first one that exits
        non-zero raises :class:`CommandFailed` with its output's tail (the caller undoes the start)."""
        for command in self.squad.setup:
            run = await run_in_worktree(command, worktree, main=repo)
            if not run.ok:
                raise failure(run, command, "setup command")

    def _record_setup(self, repo: str = "", worktree: str = "", branch: str = "", base: str = "", *,
                      existing_branch: bool = False) -> None:
        """Set (or, with no arguments but ``branch``, clear) where a start puts this still-NEW
        instance, and save it to ``pending.json``."""
        self.repo_path, self.worktree_path, self.branch = repo, worktree, branch
        self.base_commit_sha, self.is_existing_branch = base, existing_branch
        self.squad._save_instance(self)

    async def _clean_interrupted_start(self) -> None:
        """A NEW instance that names a worktree is one whose start died part-way (the process was
        killed): remove the session, worktree and created branch that start left, then forget them,
        after removing the git lock files its killed git children left (those no live process
        holds). The branch name is kept, so the next start makes the same branch again. Raises
        :class:`InvalidState` while the start is recorded by a live process: it is not dead but
        still at work, and undoing it would pull its worktree out from under it."""
        if self.started:
            return
        intent = self.squad._intents.get(self.title)
        recorded = intent is not None and intent.action == "start"
        if recorded and intent.running:
            raise InvalidState(f"its start is still running in process {intent.pid}")
        if self.worktree_path:
            self._inside_home(self.worktree_path)
            if self.repo_path and os.path.isdir(self.repo_path):
                await self.squad.git.remove_stale_locks(self.repo_path, self.worktree_path,
                                                        self.branch)
            await self.squad.tmux.kill_session(self.session_name)
            await self._undo_setup(self.repo_path, self.worktree_path,
                                   None if self.is_existing_branch else self.branch)
            self._record_setup(branch=self.branch)
        if recorded:
            await self._end_record()

    async def _choose_branch(self, repo: str, head: str) -> tuple[str, str, bool]:
        """(branch, base commit, created): the requested existing branch, or a new one."""
        git = self.squad.git
        wanted = self.branch
        if wanted and await git.branch_exists(repo, wanted):
            where = await git.checked_out_at(repo, wanted)
            if where is not None:
                raise BranchCheckedOut(f"branch {wanted!r} is checked out in the worktree at {where}")
            return wanted, await git.merge_base(repo, head, wanted), False
        branch = wanted or branch_name(self.squad.branch_prefix, self.title)
        if not wanted and await git.branch_exists(repo, branch):
            # never reuse (and later delete) a branch squadnb did not create (claude-squad §2.4)
            branch = f"{branch}-{hashlib.sha1(self.title.encode()).hexdigest()[:8]}"
            if await git.branch_exists(repo, branch):
                raise DuplicateTitle(f"branch {branch!r} already exists")
        if not await git.valid_branch_name(branch):
            raise InvalidTitle(f"{branch!r} is not a valid git branch name")
        return branch, head, True

    async def _restart_in_worktree(self) -> None:
        if not os.path.isdir(self.worktree_path):
            raise InvalidState(f"its worktree {self.worktree_path!r} does not exist")
        state = await self.squad.tmux.pane_state(self.session_name)
        if state is not None and not state.dead:
            raise InvalidState("its program is still running")
        if state is not None:  # a dead pane kept by remain-on-exit: make room for the new session
            await self.squad.tmux.kill_session(self.session_name)
        await self._launch(with_continue(self.program), self.worktree_path)
        self._set(Status.RUNNING)

    async def _launch(self, program: str, cwd: str) -> None:
        """Start ``program`` in a new session and wait until it runs (:func:`_pane.launch_flow`); a
        program that exits meanwhile raises :class:`ProgramExited` and its session is killed."""
        tmux, name = self.squad.tmux, self.session_name
        try:
            # inside the try: a cancel that lands while tmux creates the session still kills it
            await tmux.new_session(name, cwd, program)
            ended = await self._watch(_pane.launch_flow(profile_for(program)))
            if ended is not None:
                history = await tmux.capture(name, full_history=True) if ended.session_exists else ""
                last = _pane.last_words(history) or _pane.SHELL_STATUS.get(ended.exit_status, "")
                raise ProgramExited(f"program '{program}' exited at start with exit status "
                                    f"{ended.exit_status}" + (f": {last}" if last else ""),
                                    program, ended.exit_status)
        except BaseException:
            await asyncio.shield(tmux.kill_session(name))
            raise
        self._last_hash = None
        self.exit_status = None

    async def _watch(self, flow: Generator[float, _pane.Look, T]) -> T:
        """Drive a :mod:`_pane` flow: wait what it asks, look at the pane, hand it the look, until it
        returns its verdict."""
        loop = asyncio.get_running_loop()
        delay = next(flow)
        while True:
            if delay:
                await asyncio.sleep(delay)
            snap = await self.squad.tmux.snapshot(self.session_name)
            look = _pane.Look(snap[0] if snap else None, snap[1] if snap else "", loop.time())
            try:
                delay = flow.send(look)
            except StopIteration as done:
                return done.value

    async def _undo_setup(self, repo: str, worktree: str, created_branch: str | None) -> None:
        await self._own_worktree(repo, worktree)
        await self._remove_worktree(repo, worktree)
        if created_branch is not None and await self._may_delete_branch(repo, created_branch):
            await self.squad.git.delete_branch(repo, created_branch)

    # ------------------------------------------------------------------ trust
    def _inside_home(self, path: str) -> str:
        """``path`` if squadnb may delete or commit there: absolute and, symlinks resolved, inside
        the home's ``worktrees/``. Raises :class:`UnsafePath` naming the instance and the path."""
        root = os.path.realpath(self.squad.worktrees_dir)
        if not path or not os.path.isabs(path) or not os.path.realpath(path).startswith(root + os.sep):
            raise UnsafePath(f"instance {self.title!r}: its worktree path {path!r} is not inside "
                             f"{root}; squadnb deletes and commits only in worktrees it made there",
                             self.title, path)
        return path

    async def _own_worktree(self, repo: str, path: str) -> str:
        """``path`` if squadnb may delete or commit there for this instance (issue 9's contract):
        inside the home's ``worktrees/`` (:meth:`_inside_home`), recorded by no other instance of
        the squad (the same path, or the same directory through a symlink), not inside a checkout
        (a worktree's subdirectory), not a worktree of another repository nor a directory holding
        worktrees, and, when git lists a worktree of ``repo`` there, one on this instance's
        branch. A detached HEAD passes: an add cut short leaves one, and so does a rebase in
        progress. Raises :class:`UnsafePath` naming the instance, the path and the cause; checked
        before a call touches anything, since a state file edited between calls can name any of
        these."""
        self._inside_home(path)
        checkout = _enclosing_checkout(os.path.realpath(path),
                                       os.path.realpath(self.squad.worktrees_dir))
        if checkout is not None:
            raise UnsafePath(f"its worktree path {path!r} is inside the checkout at {checkout!r}; "
                             "squadnb deletes and commits only in a worktree of its own",
                             self.title, path)
        other = _same_place(path, [(i.title, i.worktree_path) for i in self.squad.instances
                                    if i is not self and i.worktree_path])
        if other is not None:
            raise UnsafePath(f"its worktree path {path!r} is recorded by instance {other!r} too; "
                             "squadnb deletes and commits only in a worktree one instance records",
                             self.title, path)
        git = self.squad.git
        tree = await git.listed(repo, path) if os.path.lexists(path) else None
        if tree is None and os.path.isdir(path):
            # a directory git does not list is moved aside whole: never another repository's
            # worktree, nor one holding worktrees (a branch prefix's `alice/`)
            theirs = await git.foreign_owner(repo, path)
            if theirs is not None:
                raise UnsafePath(f"the worktree at {path!r} is one of the repository at "
                                 f"{theirs!r}, not of its repository {repo!r}", self.title, path)
            inside = os.path.realpath(path) + os.sep
            held = next((t.path for t in await git.worktrees(repo) if t.path.startswith(inside)),
                        None)
            if held is not None:
                raise UnsafePath(f"the directory at {path!r} holds the worktree at {held!r}; "
                                 "squadnb moves aside only a directory that holds no worktree",
                                 self.title, path)
        if tree is not None and tree.branch is not None and tree.branch != self.branch:
            raise UnsafePath(f"the worktree at {path!r} has branch {tree.branch!r} checked out, "
                             f"not its branch {self.branch!r}; squadnb deletes and commits only in "
                             "the instance's own worktree (if its agent switched branches there, "
                             f"switch back to {self.branch!r})", self.title, path)
        return path

    async def _may_delete_branch(self, repo: str, branch: str) -> bool:
        """Whether kill, or the undo of a start, may delete ``branch``, which the state says squadnb
        created: no other started instance records it (:meth:`_branch_shared_with`), and it still
        holds the commit it was cut from (``base_commit_sha``, which every start records). A branch
        of another repository, or one a user made before that commit, does not, and an edited
        state file can name either; squadnb keeps such a branch rather than delete what it may not
        have made (a branch whose history an agent rewrote below its base is kept too, and so is
        the branch of an entry with no base commit, e.g. from a claude-squad older than the
        field)."""
        if self._branch_shared_with() is not None or not self.base_commit_sha:
            return False
        return await self.squad.git.is_ancestor(repo, self.base_commit_sha, f"refs/heads/{branch}")

    def _branch_shared_with(self) -> str | None:
        """The title of another started instance of the squad that records this instance's branch
        (of the same repository), or None. Kill and an undone start never delete such a branch:
        it holds that instance's work too (``new(branch=...)`` starts an instance on a paused
        one's branch; an edited state file can name any)."""
        for other in self.squad.instances:
            if (other is not self and other.started and other.branch == self.branch
                    and (not other.repo_path or same_path(other.repo_path, self.repo_path))):
                return other.title
        return None

    async def _worktree_state(self) -> str:
        """What is at this instance's worktree path: ``"live"`` (a worktree git lists, with its
        ``.git`` file), ``"damaged"`` (the same, once its ``.git`` file, gone because a removal
        stopped half-way, is written back, or once the checkout an add cut short never made is
        made), ``"stray"`` (a directory git does not know) or
        ``"gone"``. Raises :class:`UnsafePath` for a path outside the home."""
        path = self._inside_home(self.worktree_path)
        if not os.path.lexists(path):
            return "gone"
        git = self.squad.git
        if not os.path.isdir(path) or await git.listed(self.repo_path, path) is None:
            return "stray"
        if not os.path.isfile(os.path.join(path, ".git")):
            if not await git.repair_dot_git(self.repo_path, path):
                return "stray"
            return "damaged"
        if not await git.checked_out(path):
            # an add cut short before its checkout: without this, every file would read as deleted
            await git.finish_checkout(path)
            return "damaged"
        return "live"

    async def _remove_worktree(self, repo: str, worktree: str) -> str | None:
        """Remove the worktree (git's own ``worktree remove``: only what git lists), prune, and move a
        directory git does not know aside to ``<home>/lost+found/`` instead of deleting it. Returns
        where such a directory went, or None."""
        stray = await self.squad.git.remove_worktree(repo, worktree)
        moved = await asyncio.to_thread(self._set_aside, worktree) if stray else None
        await asyncio.to_thread(self.squad.remove_empty_parents, worktree)
        return moved

    def _set_aside(self, path: str) -> str:
        target = self.squad.home / "lost+found" / f"{self.session_name}_{_now():%Y%m%dT%H%M%S%f}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
        return str(target)

    @property
    def _archive(self) -> Path:
        """Where pause keeps the worktree's ignored files (:mod:`._archive`)."""
        return self.squad.home / "archives" / f"{self.session_name}.tar"

    # ------------------------------------------------------------------ transitions
    @contextlib.asynccontextmanager
    async def _transition(self, action: str) -> AsyncIterator[bool]:
        """One lifecycle call: under the instance lock and the error prefix, first finish what an
        interrupted call left (:meth:`_recover`), then check ``action`` is allowed, record it in
        ``transitions.json`` and run the body. The body gets True when recovery already did this
        very action (then there is nothing left to do). The record is removed when the body
        returns; when it raises, the record stays only if the body says so (``self._unfinished``)."""
        async with self._lock:
            with self._failing(action):
                await self.squad._aguard_claude_squad()
                if self.started and self.repo_path:
                    await self._own_worktree(self.repo_path, self.worktree_path)
                finished = await self._recover(action)
                if finished == "kill" and action != "kill":
                    raise InvalidState("an interrupted kill of it was finished: it is gone")
                if finished == action:
                    yield True
                    return
                self._require(action)
                await self._begin_record(action)
                self._unfinished = False
                try:
                    yield False
                except BaseException:
                    if not self._unfinished:
                        await self._drop_record()
                    raise
                await self._end_record()

    async def _begin_record(self, action: str) -> None:
        """Record ``action`` in ``transitions.json``, in a thread: the write waits for its lock
        file (another process's record, a slow disk), and the loop thread must not. A cancel while
        the record is written lets the write finish and removes the record again: the call never
        began."""
        try:
            await to_the_end(asyncio.to_thread(self.squad._intents.begin, self.title, action))
        except asyncio.CancelledError:
            await self._drop_record()
            raise

    async def _drop_record(self) -> None:
        """Remove this instance's record from ``transitions.json`` (in a thread, as
        :meth:`_begin_record` writes it), to its end even when the call is being cancelled."""
        await asyncio.shield(asyncio.to_thread(self.squad._intents.end, self.title))

    async def _end_record(self) -> None:
        """Forget this instance's recorded transition once the call's state changes are on disk (the
        state writer runs in its own thread): a process killed in between must leave either the
        record, so the next call finishes the transition, or the new state, never the old state
        without the record."""
        await self.squad._aflush(self)
        await self._drop_record()

    async def _recover(self, action: str | None = None) -> str | None:
        """Finish the transition an earlier call recorded and did not complete (its process died),
        after removing the git lock files its killed git children left (only those no live process
        can hold), before ``action`` (None: ``doctor(repair=True)``). Returns the action finished,
        or None when there was none.

        A pause is finished (its work committed, never its missing files as deletions), a resume
        too (the worktree it re-added is kept, the agent started if it is not running), a kill is
        finished. A restart is finished when its program runs (it is kept); otherwise a restart or
        the doctor starts the program again, and any other call finds the instance DEAD (a pause
        or a kill would only stop it again) and None is returned. A record made before this
        instance was created (an earlier instance of the title, whose kill was killed after
        removing it from the files) is dropped, never applied to it.

        Raises :class:`InvalidState` while the process that began it is still alive; a restart
        whose program fails to start raises what :meth:`arestart` raises, and is over (the
        instance is DEAD)."""
        intent = self.squad._intents.get(self.title)
        if intent is None or not self.started:
            return None
        if _parse_time(intent.at) < self.created_at:
            # an earlier instance of this title, whose kill died after removing it from the files
            await self._drop_record()
            return None
        if intent.running:
            raise InvalidState(f"its {intent.action} is still running in process {intent.pid}")
        if self.repo_path and os.path.isdir(self.repo_path):
            worktree = self.worktree_path if os.path.isabs(self.worktree_path) else ""
            await self.squad.git.remove_stale_locks(self.repo_path, worktree, self.branch)
        self.last_report = None
        if intent.action == "pause":
            await self._require_on_branch()
            self.last_report = await self._pause_steps(recovering=True)
        elif intent.action == "resume":
            await self._resume_steps(recovering=True)
        elif intent.action == "kill":
            await self._kill_steps()
        elif intent.action == "restart":
            try:
                runs = await self._finish_restart(relaunch=action in (None, "restart"))
            finally:  # a failed launch kills its session: nothing is left half-done
                await asyncio.shield(self._end_record())
            return "restart" if runs else None
        await self._end_record()
        return intent.action

    async def _finish_restart(self, *, relaunch: bool) -> bool:
        """Finish a restart a killed process began: a program it started that still runs is kept
        once it settles (what the restart itself waited for); else, when ``relaunch``, the program
        starts again (:meth:`_restart_in_worktree`), or the instance is left DEAD. Returns whether
        its program runs."""
        state = await self.squad.tmux.pane_state(self.session_name)
        if state is not None and not state.dead \
                and await self._watch(_pane.launch_flow(profile_for(self.program))) is None:
            self._set(Status.RUNNING)
            return True
        if relaunch:
            await self._restart_in_worktree()
            return True
        self._set(Status.DEAD)
        return False

    async def _arecover(self) -> None:
        """``squad.doctor(repair=True)``'s repair of this instance: finish an interrupted
        transition, or remove what an interrupted start left."""
        async with self._lock:
            with self._failing("recover"):
                await self.squad._aguard_claude_squad()
                if self.started:
                    if self.repo_path:
                        await self._own_worktree(self.repo_path, self.worktree_path)
                    await self._recover()
                else:
                    await self._clean_interrupted_start()

    # ------------------------------------------------------------------ pause / resume
    def pause(self) -> PauseReport | None:
        return run_sync(self.apause())

    @on_loop
    async def apause(self) -> PauseReport | None:
        """Save the pane's full history to ``<home>/logs/``, stop the agent (kill its session), keep
        the worktree's ignored files in ``<home>/archives/<session>.tar`` (at most 100 MB, smallest
        first; resume puts them back), commit dirty work (untracked files included) as
        ``[claudesquad] update from '<title>' on <time> (paused)``, remove and prune the worktree;
        the branch is kept. Returns a :class:`PauseReport` (what was archived, and what was dropped
        or not committed and why).

        Before committing, the worktree must be one git lists, with its ``.git`` file; files missing
        from disk but still in the index (what a removal cut short leaves) are never committed as
        deletions: they stay on the branch and the report names them. A pause that an earlier,
        killed call left half-done is finished, and returns that report.

        If the commit or the removal fails, the worktree stays, the agent is started again (with its
        continue flag) and the error is raised: never a half-paused instance. Raises
        :class:`InvalidState` when not started or already paused, :class:`UnsafePath` (before
        anything is touched) when the worktree path is not the instance's own: outside the home's
        ``worktrees/``, recorded by another instance too, or a worktree on another branch
        (:meth:`_own_worktree`), and :class:`InvalidState` (before anything is touched too) while
        the worktree has a detached HEAD, whose commit would be on no branch.
        """
        async with self._transition("pause") as done:
            if done:
                return self.last_report
            self._inside_home(self.worktree_path)
            await self._require_on_branch()
            try:
                return await self._pause_steps(recovering=False)
            except BaseException as exc:
                await asyncio.shield(self._after_failed_pause(exc))
                raise

    async def _require_on_branch(self) -> None:
        """Refuse a pause, before it touches anything, while the worktree git lists at the path
        has a detached HEAD (the agent checked out a commit, or stopped in a rebase): its commit
        would be on no branch, and lost with the worktree. :class:`InvalidState` says what to do."""
        path = self.worktree_path
        tree = await self.squad.git.listed(self.repo_path, path) if os.path.isdir(path) else None
        if tree is not None and tree.branch is None:
            raise InvalidState(f"its worktree at {path!r} has a detached HEAD (a checkout of a "
                               "commit, or a rebase in progress), so a pause commit would be on no "
                               f"branch and lost with the worktree; check out {self.branch!r} "
                               "there (or finish the rebase) first")

    async def _pause_steps(self, *, recovering: bool) -> PauseReport:
        """The pause itself. Files missing from disk are the agent's deletions in a plain pause,
        and are committed; in a worktree whose removal may have stopped half-way (a pause or kill
        being recovered, or a ``.git`` file that had to be written back) they are not: they stay on
        the branch and the report names them."""
        git, tmux, path = self.squad.git, self.squad.tmux, self.worktree_path
        await self._save_history()
        await tmux.kill_session(self.session_name)
        report = PauseReport()
        state = await self._worktree_state()
        if state in ("live", "damaged"):
            ignored = await git.ignored_files(path)
            packed = await asyncio.to_thread(_archive.pack, path, ignored, self._archive)
            suspect = recovering or state == "damaged"
            missing = await git.missing_files(path) if suspect else []
            if await git.is_dirty(path):
                await git.commit_all(self.repo_path, path, pause_commit_message(self.title),
                                     keep_removed=suspect)
            report = PauseReport(str(self._archive) if packed.archived else None,
                                 tuple(packed.archived), tuple(packed.dropped), tuple(missing))
        set_aside = await self._remove_worktree(self.repo_path, path)
        if set_aside is not None:
            report = dataclasses.replace(report, set_aside=set_aside)
        self._set(Status.PAUSED)
        return report

    async def _after_failed_pause(self, cause: BaseException) -> None:
        """A pause that failed (an error, a cancel) and still has its worktree starts the agent
        again; one that lost it stays recorded, so the next call finishes it. A cancelled pause
        killed its git child, so the lock files no live process holds are removed (never after a
        plain error: a lock that made git fail belongs to someone else)."""
        if self.repo_path and not isinstance(cause, Exception):
            with contextlib.suppress(SessionError):
                await self.squad.git.remove_stale_locks(self.repo_path, self.worktree_path, self.branch)
        try:
            state = await self._worktree_state()
        except SessionError:
            state = "stray"
        if state not in ("live", "damaged"):
            self._unfinished = True
            self._set(Status.DEAD)
            return
        try:
            await self._launch(with_continue(self.program), self.worktree_path)
        except SessionError as again:
            cause.add_note(f"restarting the agent after the failed pause failed too: {again}")
            self._set(Status.DEAD)

    async def _save_history(self) -> None:
        tmux = self.squad.tmux
        try:
            text = await tmux.capture(self.session_name, full_history=True)
        except TmuxError:
            return  # the session is gone (a DEAD instance): nothing left to save
        stamp = _now().strftime("%Y%m%dT%H%M%S%f")
        log = self.squad.logs_dir / f"{self.session_name}_{stamp}.log"
        await asyncio.to_thread(write_private, log, text)

    def resume(self) -> None:
        return run_sync(self.aresume())

    @on_loop
    async def aresume(self) -> None:
        """Re-add the worktree at its stored path from the branch, put back the ignored files pause
        archived, and start the program again with its continue flag (``claude --continue``). A
        stray directory at that path is moved to ``<home>/lost+found/``; a tmux session still alive
        under the instance's name (claude-squad's pause leaves one) has its history saved and is
        ended first. A resume that an earlier, killed call left half-done is finished: the worktree
        it re-added is kept as it is.

        Raises :class:`InvalidState` when not paused, :class:`BranchCheckedOut` when the branch is
        checked out in another worktree (its own never counts), :class:`UnsafePath` when the stored
        path is not the instance's own (:meth:`apause` says when); if the program fails to start,
        the worktree is removed again and the instance stays PAUSED.
        """
        async with self._transition("resume") as done:
            if not done:
                await self._resume_steps(recovering=False)

    async def _resume_steps(self, *, recovering: bool) -> None:
        git, tmux, path = self.squad.git, self.squad.tmux, self.worktree_path
        self._inside_home(path)
        where = await git.checked_out_at(self.repo_path, self.branch, besides=path)
        if where is not None:
            raise BranchCheckedOut(f"branch {self.branch!r} is checked out in the worktree at "
                                   f"{where}; switch it to another branch first")
        state = await self._worktree_state()
        if state == "stray":
            await asyncio.to_thread(self._set_aside, path)
        created = state not in ("live", "damaged")
        if created:
            await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
            await git.add_worktree(self.repo_path, path, self.branch, new_from=None)
        try:
            await asyncio.to_thread(_archive.unpack, self._archive, path)
            pane = await tmux.pane_state(self.session_name)
            if not (recovering and not created and pane is not None and not pane.dead):
                if pane is not None:  # not ours to adopt: keep its history, then end it
                    await self._save_history()
                    await tmux.kill_session(self.session_name)
                await self._launch(with_continue(self.program), path)
        except BaseException:
            if created:
                await asyncio.shield(self._remove_worktree(self.repo_path, path))
            else:
                self._unfinished = True
            raise
        self._set(Status.RUNNING)
        await asyncio.to_thread(self._archive.unlink, missing_ok=True)

    # ------------------------------------------------------------------ kill
    def kill(self) -> None:
        return run_sync(self.akill())

    @on_loop
    async def akill(self) -> None:
        """Kill the session, remove the worktree, delete the branch if squadnb created it, and drop the
        instance from its squad's files (its archive of ignored files too). A DEAD instance (session
        or server gone) or one whose worktree was deleted by hand is cleaned up the same way; a
        directory at its path that git does not list is moved to ``<home>/lost+found/``, never
        deleted. A never-started instance is forgotten (after removing what an interrupted start of
        it left). A kill an earlier, killed call left half-done is finished.

        The branch is deleted only when the state says squadnb created it (``is_existing_branch``
        false: claude-squad's record, as git keeps no mark of who made a branch), no other started
        instance of the squad records it (it holds that instance's work too: one started with
        ``new(branch=...)`` on a paused instance's branch, or a state file edited to name it), and
        it still holds the commit it was cut from (``base_commit_sha``): otherwise it is kept
        (:meth:`_may_delete_branch`). What is left: a user's branch that holds that commit and is
        checked out nowhere, named by a hand-edited entry with ``is_existing_branch`` false, is
        deleted.

        Raises :class:`BranchCheckedOut` (before touching anything) when the branch it would delete
        is checked out in another worktree (the main checkout's current branch included),
        :class:`UnsafePath` (before touching anything) when its worktree path is not its own
        (:meth:`apause` says when); if a cleanup step fails, the others still run and the first
        error is raised with the rest as notes.
        """
        if not self.started:
            async with self._lock:
                with self._failing("kill"):
                    await self.squad._aguard_claude_squad()
                    await self._clean_interrupted_start()
                    self.squad._forget(self)
            return
        async with self._transition("kill") as done:
            if not done:
                await self._kill_steps()

    async def _kill_steps(self) -> None:
        delete_branch = (not self.is_existing_branch and bool(self.repo_path)
                         and await self._may_delete_branch(self.repo_path, self.branch))
        if self.repo_path:
            self._inside_home(self.worktree_path)
            if delete_branch:
                where = await self.squad.git.checked_out_at(self.repo_path, self.branch,
                                                            besides=self.worktree_path)
                if where is not None:
                    raise BranchCheckedOut(f"branch {self.branch!r} is checked out in the worktree "
                                           f"at {where}")
        self._unfinished = True  # from here on, a kill cut short is finished, never undone
        await self._teardown(delete_branch=delete_branch)
        await asyncio.to_thread(self._archive.unlink, missing_ok=True)
        self.squad._forget(self)
        self.status = Status.DEAD

    def stop(self) -> None:
        return run_sync(self.astop())

    @on_loop
    async def astop(self) -> None:
        """Stop the agent: kill its tmux session and keep the worktree and the branch. The instance
        is then DEAD; :meth:`restart` starts it again. Raises :class:`InvalidState` when it is not
        started or is paused (a paused instance has no agent running)."""
        async with self._lock:
            with self._failing("stop"):
                await self.squad._aguard_claude_squad()
                self._require("stop")
                await self.squad.tmux.kill_session(self.session_name)
                self._set(Status.DEAD)

    async def _teardown(self, *, delete_branch: bool) -> None:
        if self.repo_path:
            self._inside_home(self.worktree_path)
        errors: list[SessionError] = []
        steps = [self.squad.tmux.kill_session(self.session_name)]
        if self.repo_path:
            steps.append(self._remove_worktree(self.repo_path, self.worktree_path))
            if delete_branch:
                steps.append(self.squad.git.delete_branch(self.repo_path, self.branch))
        for step in steps:
            try:
                await step
            except SessionError as exc:
                errors.append(exc)
        if errors:
            for other in errors[1:]:
                errors[0].add_note(str(other))
            raise errors[0]

    # ------------------------------------------------------------------ prompt
    def send_prompt(self, text: str, timeout: float | None = None) -> None:
        return run_sync(self.asend_prompt(text, timeout))

    @on_loop
    async def asend_prompt(self, text: str, timeout: float | None = None) -> None:
        """Wait until the agent is ready (at most ``timeout`` seconds, default the squad's
        ``ready_timeout``), paste ``text`` into its pane as one bracketed paste and press Enter, then
        wait (at most the squad's ``delivery_timeout``) until the agent shows it received the prompt
        whole: the demo agent's receipt must give the size and digest of the text sent; for any other
        program the pane must change.

        Raises :class:`InvalidPrompt` (a ``ValueError``) before anything is sent for a prompt the
        policy refuses (empty, a paste marker, a control character other than newline and tab; see
        ``squadnb.session._input``), :class:`InvalidState` when the instance is not started, paused,
        dead, waiting on a permission prompt or not ready in time, and :class:`PromptNotDelivered`
        when the agent did not show it received the whole prompt (DEAD when it exited).
        """
        text = check_prompt(text, self.title)
        async with self._lock:
            with self._failing("send prompt"):
                self._require("prompt")
                await self._send(text, self.squad.ready_timeout if timeout is None else timeout)

    async def _send(self, text: str, timeout: float) -> None:
        await self._wait_ready(timeout)
        tmux = self.squad.tmux
        snap = await tmux.snapshot(self.session_name)
        await tmux.paste(self.session_name, text)
        verdict = await self._watch(_pane.delivery_flow(
            profile_for(self.program), receipt_for(text.encode()), snap[1] if snap else "",
            self.squad.delivery_timeout))
        if isinstance(verdict, _pane.Exited):
            self.exit_status = verdict.exit_status
            self._set(Status.DEAD)
            raise PromptNotDelivered("the agent exited before it showed it received the prompt")
        if verdict is not None:
            raise PromptNotDelivered(verdict)
        self._set(Status.RUNNING)

    async def _wait_ready(self, timeout: float) -> None:
        seen = await self._watch(_pane.ready_flow(profile_for(self.program), timeout))
        if isinstance(seen, _pane.Exited):
            self.exit_status = seen.exit_status
            self._set(Status.DEAD)
            raise InvalidState("the agent is not running (DEAD)")
        if seen is Status.NEEDS_INPUT:
            self._set(Status.NEEDS_INPUT)
            raise InvalidState("the agent waits on a permission prompt; answer it first")
        if seen is None:
            raise InvalidState(f"the agent did not become ready within {timeout:g}s")

    # ------------------------------------------------------------------ observe
    def refresh_status(self) -> Status:
        return run_sync(self.arefresh_status())

    @on_loop
    async def arefresh_status(self) -> Status:
        """Recompute the status from the pane: gone or dead → DEAD; a known permission prompt →
        NEEDS_INPUT; the program's own ready prompt on the last line → READY; otherwise changed since
        the last look → RUNNING, unchanged → READY. The first look in a process (no last look to
        compare with, e.g. a fresh ``squadnb ls``) looks twice, ``FIRST_LOOK_GAP`` apart. New and
        paused instances, and instances busy in another call, keep their status. Never raises because
        the tmux server is gone (that is DEAD). A change is saved before this returns
        (:class:`StateWriteError` when it cannot be); it never overwrites a status another process
        wrote after this one read it (that status is taken instead)."""
        if not self.started or self.paused or self._lock.locked():
            return self.status
        status = await self._pane_status()
        if status is not self.status and not self._lock.locked() and self.started and not self.paused:
            self._set(status)
            await self.squad._aflush(self)  # on disk before returning; a newer status written by
            # another process meanwhile is kept, and taken here
        return self.status

    async def _pane_status(self) -> Status:
        seen, self._last_hash = await self._watch(
            _pane.status_flow(profile_for(self.program), self._last_hash))
        if isinstance(seen, _pane.Exited):
            self.exit_status = seen.exit_status
            return Status.DEAD
        return seen

    def preview(self, full_history: bool = False) -> str:
        return run_sync(self.apreview(full_history))

    @on_loop
    async def apreview(self, full_history: bool = False) -> str:
        """The pane's text (no escape sequences; the whole scroll-back with ``full_history``); ``""``
        when the instance is not started, paused, or its session is gone."""
        if not self.started or self.paused:
            return ""
        try:
            text = await self.squad.tmux.capture(self.session_name, full_history=full_history)
        except TmuxError:
            return ""
        return text.rstrip() + "\n" if text.strip() else ""

    def tmux_alive(self) -> bool:
        return run_sync(self.atmux_alive())

    @on_loop
    async def atmux_alive(self) -> bool:
        """True when the session exists and its program still runs."""
        state = await self.squad.tmux.pane_state(self.session_name)
        return state is not None and not state.dead

    def diff_stats(self) -> DiffStats:
        return run_sync(self.adiff_stats())

    @on_loop
    async def adiff_stats(self) -> DiffStats:
        """Lines added/removed against ``base_commit_sha`` (untracked files included, the index left
        alone); the last stats when paused, not started or the worktree is gone. Saved when changed."""
        if (self.started and not self.paused and self.base_commit_sha
                and os.path.isdir(self.worktree_path)):
            with self._failing("diff"):
                stats = await self.squad.git.diff_stats(self.worktree_path, self.base_commit_sha)
            if stats != self.diff:
                self.diff = stats
                self.squad._save_instance(self)
                await self.squad._aflush(self)
        return self.diff

    def refresh_work(self) -> tuple[bool, int]:
        return run_sync(self.arefresh_work())

    @on_loop
    async def arefresh_work(self) -> tuple[bool, int]:
        """Recompute and return ``(dirty, ahead)``: whether the worktree has uncommitted changes
        (untracked files included; False when there is no worktree, e.g. paused or not started), and
        how many commits the branch has that its base commit has not (the repository's HEAD when no
        base is recorded; 0 when not started or the branch is gone). Reads only (``status
        --no-optional-locks``, ``rev-list --count``). Raises :class:`GitError` when git fails."""
        dirty, ahead = False, 0
        if self.started and self.repo_path:
            git = self.squad.git
            with self._failing("check its work"):
                if os.path.isdir(self.worktree_path):
                    dirty = await git.is_dirty(self.worktree_path)
                if self.branch:
                    ahead = await git.commits_ahead(self.repo_path, self.base_commit_sha or "HEAD",
                                                    self.branch)
        self.dirty, self.ahead = dirty, ahead
        return dirty, ahead

    # ------------------------------------------------------------------ pins
    @property
    def pinned(self) -> bool:
        """True when the instance is pinned: destructive batch operations (Kill) refuse it. Read from
        ``<home>/pins.json`` each time, so a pin made by another process counts at once."""
        return self.title in self.squad._store.load_pins()

    def pin(self) -> None:
        return run_sync(self.apin())

    @on_loop
    async def apin(self) -> None:
        """Pin the instance: destructive batch operations (:class:`~squadnb.ops.BatchKillOperation`)
        refuse it in ``validate`` until :meth:`unpin`. Kept in squadnb's own ``<home>/pins.json``
        (claude-squad's state has no field for it), written atomically under the home's lock; a
        killed instance's pin is dropped. Raises :class:`StateFileError` when ``pins.json`` is
        unreadable (it is left as is)."""
        await asyncio.to_thread(self.squad._store.set_pinned, self.title, True)

    def unpin(self) -> None:
        return run_sync(self.aunpin())

    @on_loop
    async def aunpin(self) -> None:
        """Remove the pin set by :meth:`pin` (nothing happens when it is not pinned). Raises
        :class:`StateFileError` when ``pins.json`` is unreadable (it is left as is)."""
        await asyncio.to_thread(self.squad._store.set_pinned, self.title, False)

    def run_command(self, command: str | Sequence[str], *, timeout: float | None = None,
                    env: Mapping[str, str] | None = None) -> CommandRun:
        return run_sync(self.arun_command(command, timeout=timeout, env=env))

    @on_loop
    async def arun_command(self, command: str | Sequence[str], *, timeout: float | None = None,
                           env: Mapping[str, str] | None = None) -> CommandRun:
        """Run ``command`` in the worktree (a string under ``sh -c``, a sequence without a shell,
        ``$SQUADNB_MAIN`` set) and return its :class:`CommandRun`, whatever its exit code. The
        instance is held meanwhile: a pause, resume or kill waits until the command ends, so no
        worktree is removed under a running command.

        :raises InvalidState: the instance has no worktree (not started, or paused).
        """
        async with self._lock:
            self.check("command")
            return await run_in_worktree(command, self.worktree_path, main=self.repo_path,
                                         timeout=timeout, env=env, who=f"instance {self.title!r}: ")

    def changed_files(self) -> pd.DataFrame:
        return run_sync(self.achanged_files())

    @on_loop
    async def achanged_files(self) -> pd.DataFrame:
        """The files this instance changed against its base commit, one row per path (git's
        order): ``path`` (str), ``added``, ``removed`` (int lines; 0 for a binary file), ``status``
        (``added``, ``modified``, ``deleted``, ``type changed``; a rename is a deletion and an
        addition). With a worktree: committed, uncommitted and untracked (non-ignored) changes, read
        without touching the worktree's index; paused (no worktree): the branch's commits. Empty when
        not started. Raises :class:`GitError` when git fails (e.g. the base commit is gone)."""
        import pandas as pd

        changes: list[FileChange] = []
        if self.started and self.base_commit_sha:
            git = self.squad.git
            with self._failing("list changed files"):
                if not self.paused and os.path.isdir(self.worktree_path):
                    changes = await git.changed_files(self.worktree_path, self.base_commit_sha)
                elif await git.branch_exists(self.repo_path, self.branch):
                    changes = await git.changed_files_on_branch(self.repo_path, self.base_commit_sha,
                                                                self.branch)
        return pd.DataFrame({
            "path": pd.Series([c.path for c in changes], dtype="str"),
            "added": pd.Series([c.added for c in changes], dtype="int64"),
            "removed": pd.Series([c.removed for c in changes], dtype="int64"),
            "status": pd.Series([c.status for c in changes], dtype="str"),
        })

    def push(self, remote: str = "origin", message: str | None = None) -> str:
        return run_sync(self.apush(remote, message))

    @on_loop
    async def apush(self, remote: str = "origin", message: str | None = None) -> str:
        """Commit the worktree's changes on the branch (untracked files included; the commit pause
        makes, or ``message``; nothing when clean) and push the branch to ``remote`` with its
        upstream set; return the pushed commit's sha. A paused instance (no worktree) pushes its
        branch as it is. Raises :class:`InvalidState` when not started, :class:`UnsafePath` before
        committing in a worktree that is not its own (:meth:`apause` says when), :class:`GitError`
        when the commit or the push fails (the commit, if made, stays on the branch)."""
        async with self._lock:
            with self._failing("push"):
                self._require("push")
                git = self.squad.git
                if (not self.paused
                        and os.path.isdir(await self._own_worktree(self.repo_path,
                                                                   self.worktree_path))
                        and await git.is_dirty(self.worktree_path)):
                    await git.commit_all(self.repo_path, self.worktree_path,
                                         message or pause_commit_message(self.title))
                await git.push(self.repo_path, remote, self.branch)
                return await git.branch_sha(self.repo_path, self.branch)

    def has_unsaved_work(self) -> bool:
        return run_sync(self.ahas_unsaved_work())

    @on_loop
    async def ahas_unsaved_work(self) -> bool:
        """True when the worktree is dirty or the branch has commits not in the repository's HEAD."""
        if not self.started:
            return False
        git = self.squad.git
        with self._failing("check for unsaved work"):
            if os.path.isdir(self.worktree_path) and await git.is_dirty(self.worktree_path):
                return True
            if self.branch and await git.branch_exists(self.repo_path, self.branch):
                return await git.commits_not_in_head(self.repo_path, self.branch) > 0
        return False


