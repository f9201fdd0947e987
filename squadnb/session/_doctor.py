"""``squad.doctor()``: compare a home's files with tmux, git and the disk, and repair what is safe.

Each check yields :class:`Finding` rows (kind, instance, path, detail, repaired). Repairs never delete
work: an orphan worktree's uncommitted changes are committed to its branch before it is removed, a
directory git does not know is moved to ``<home>/lost+found/``, an orphan session's pane history is
saved to ``<home>/logs/`` before it is ended, branches are never deleted, and an entry pointing
outside the home is only reported.

=======================  ===========================================  ==============================
kind                     what                                         repair
=======================  ===========================================  ==============================
outside the home         a recorded worktree path that is relative    none (reported only)
                         or outside ``<home>/worktrees/``
not its worktree         a recorded worktree path another instance    none (reported only; pause,
                         records too, or where git lists a worktree   resume, kill and restart
                         on another branch than the instance's        refuse it)
shared branch            a branch two started instances record        none (a kill of either
                                                                      keeps the branch)
half-done transition     a pause/resume/kill/restart/start a killed   finish it (the next call's
                         process left recorded                        recovery)
orphan session           a session with this squad's prefix that no   history saved, session ended
                         instance names
orphan worktree          a worktree git lists under ``worktrees/``    dirty work committed to its
                         that no instance records                     branch, worktree removed
stray directory          a directory under ``worktrees/`` that is     moved to ``lost+found/``
                         neither listed by git nor recorded
orphan branch            a branch under the squad's prefix that no    none: it may hold work
                         instance records and no worktree has
stale lock               a git lock file no live process holds        removed
=======================  ===========================================  ==============================
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from squadnb.errors import SessionError, UnsafePath
from squadnb.session import _proc
from squadnb.session._storage import private_dir, write_private
from squadnb.session.git import same_path
from squadnb.session.instance import pause_commit_message

if TYPE_CHECKING:
    from squadnb.session.instance import Instance
    from squadnb.session.squad import Squad

__all__ = ["COLUMNS", "Finding", "examine"]

COLUMNS = ("kind", "instance", "path", "detail", "repaired")


@dataclass(frozen=True)
class Finding:
    """One row of ``squad.doctor()``."""

    kind: str
    instance: str
    path: str
    detail: str
    repaired: bool = False


async def examine(squad: Squad, repair: bool) -> list[Finding]:
    """Every finding of the home, repaired where safe when ``repair``; the checks run in the
    table's order, so a repaired transition no longer shows up as an orphan."""
    squad._load()
    found: list[Finding] = []
    outside = _outside(squad)
    found += outside
    found += await _claims(squad, {row.instance for row in outside})
    found += await _transitions(squad, repair)
    found += await _sessions(squad, repair)
    repos = {os.path.realpath(i.repo_path) for i in squad.instances
             if i.repo_path and os.path.isdir(i.repo_path)}
    try:
        repos.add(os.path.realpath(await squad.git.toplevel(squad.repo)))
    except SessionError:
        pass
    for repo in sorted(repos):
        found += await _worktrees(squad, repo, repair)
        found += await _branches(squad, repo)
        found += await _locks(squad, repo, repair)
    found += await _strays(squad, repos, repair)
    return found


def _claims_now(squad: Squad) -> list[Instance]:
    """The instances the files hold now, read again after tmux or git was asked what exists:
    squadnb records an instance, and where its start puts the worktree and branch, before it makes
    them, so whatever existed when they were asked is recorded by now, while the files read at the
    start of the examination may predate a start or a new instance of another process."""
    squad._load()
    return squad.instances


def _recorded(squad: Squad) -> list[str]:
    """The worktree paths the files record now (:func:`_claims_now`)."""
    return [i.worktree_path for i in _claims_now(squad) if i.worktree_path]


def _outside(squad: Squad) -> list[Finding]:
    rows = []
    for inst in squad.instances:
        if inst.worktree_path or inst.started:
            try:
                inst._inside_home(inst.worktree_path)
            except UnsafePath as exc:
                rows.append(Finding("outside the home", inst.title, inst.worktree_path,
                                    f"{exc}; left alone"))
    return rows


async def _claims(squad: Squad, outside: set[str]) -> list[Finding]:
    """The started instances whose worktree path or branch is not theirs alone: what
    :meth:`Instance._own_worktree` refuses or cannot check (its repository gone; the titles in
    ``outside`` are already reported), and a branch another started instance records (kill keeps
    it)."""
    rows = []
    for inst in squad.instances:
        if not (inst.started and inst.repo_path):
            continue
        if inst.title not in outside:
            try:
                await inst._own_worktree(inst.repo_path, inst.worktree_path)
            except UnsafePath as exc:
                rows.append(Finding("not its worktree", inst.title, inst.worktree_path,
                                    f"{exc}; left alone"))
            except SessionError as exc:  # its repository is gone or unreadable
                rows.append(Finding("not its worktree", inst.title, inst.worktree_path,
                                    f"could not be checked ({exc}); left alone"))
        other = inst._branch_shared_with()
        if other is not None:
            rows.append(Finding("shared branch", inst.title, inst.branch,
                                f"instance {other!r} records branch {inst.branch!r} too; a kill "
                                "of either keeps it"))
    return rows


async def _transitions(squad: Squad, repair: bool) -> list[Finding]:
    rows = []
    intents = squad._intents.load()
    for title, intent in intents.items():
        inst = squad._instances.get(title)
        path = inst.worktree_path if inst else ""
        if inst is None:
            detail = f"a {intent.action} recorded for an instance no longer in the state files"
            if repair:
                squad._intents.end(title)
            rows.append(Finding("half-done transition", title, path, detail, repair))
        elif intent.running:
            rows.append(Finding("half-done transition", title, path,
                                f"its {intent.action} is still running in process {intent.pid}"))
        else:
            rows.append(await _repair(inst, f"an interrupted {intent.action}", repair))
    for inst in squad.instances:
        if not inst.started and inst.worktree_path and inst.title not in intents:
            rows.append(await _repair(inst, "an interrupted start left its worktree, branch or "
                                            "session", repair))
    return rows


async def _repair(inst: Instance, detail: str, repair: bool) -> Finding:
    done = False
    if repair:
        try:
            await inst._arecover()
            done = True
            detail += ": finished"
        except SessionError as exc:
            detail += f": not repaired ({exc})"
    return Finding("half-done transition", inst.title, inst.worktree_path, detail, done)


async def _sessions(squad: Squad, repair: bool) -> list[Finding]:
    prefix = squad.session_name_for("")
    listed = await squad.tmux.sessions()
    named = {i.session_name for i in _claims_now(squad)}
    rows = []
    for name in listed:
        if not name.startswith(prefix) or name in named:
            continue
        detail = "no instance names this tmux session"
        if repair:
            try:
                text = await squad.tmux.capture(name, full_history=True)
                log = squad.logs_dir / f"{name}_orphan.log"
                await asyncio.to_thread(write_private, log, text)
                await squad.tmux.kill_session(name)
                detail += f"; its history was saved to {log} and it was ended"
            except SessionError as exc:
                rows.append(Finding("orphan session", "", name, f"{detail}; not repaired ({exc})"))
                continue
        rows.append(Finding("orphan session", "", name, detail, repair))
    return rows


async def _worktrees(squad: Squad, repo: str, repair: bool) -> list[Finding]:
    root = os.path.realpath(squad.worktrees_dir)
    trees = await squad.git.worktrees(repo)
    recorded = _recorded(squad)
    rows = []
    for tree in trees:
        real = os.path.realpath(tree.path)
        if not real.startswith(root + os.sep) or any(same_path(real, p) for p in recorded):
            continue
        detail = f"git lists this worktree (branch {tree.branch or 'detached'}) but no instance " \
                 "records it"
        done = False
        if repair and tree.branch and os.path.isdir(real):
            try:
                if await squad.git.is_dirty(real):
                    await squad.git.commit_all(repo, real, pause_commit_message(Path(real).name))
                    detail += f"; its uncommitted changes were committed to {tree.branch}"
                await squad.git.remove_worktree(repo, real)
                await asyncio.to_thread(squad.remove_empty_parents, real)
                detail += "; removed (the branch is kept)"
                done = True
            except SessionError as exc:
                detail += f"; not repaired ({exc})"
        elif repair:
            detail += "; not repaired (no branch to keep its work on)"
        rows.append(Finding("orphan worktree", "", tree.path, detail, done))
    return rows


async def _branches(squad: Squad, repo: str) -> list[Finding]:
    if not squad.branch_prefix.strip("/"):
        return []  # without a prefix every branch of the repository would look like an orphan
    listed = await squad.git.branches(repo, squad.branch_prefix)
    checked_out = {t.branch for t in await squad.git.worktrees(repo) if t.branch}
    recorded = {i.branch for i in _claims_now(squad) if i.branch}
    return [Finding("orphan branch", "", branch, "no instance records this branch and no worktree has "
                    "it; kept (it may hold work: delete it with git branch -D if not)")
            for branch in listed if branch not in recorded and branch not in checked_out]


async def _locks(squad: Squad, repo: str, repair: bool) -> list[Finding]:
    worktrees = [i.worktree_path for i in squad.instances if i.repo_path and os.path.isabs(
        i.worktree_path) and same_path(i.repo_path, repo)]
    paths: set[str] = set()
    for tree in [""] + worktrees:
        paths.update(await squad.git.lock_files(repo, tree))
    common = await squad.git.common_dir(repo)
    stale = [p for p in sorted(paths) if _proc.can_prove()
             and not await asyncio.to_thread(_proc.holders, p, [repo, common, *worktrees])]
    if repair and stale:
        for tree in [""] + worktrees:
            await squad.git.remove_stale_locks(repo, tree)
    return [Finding("stale lock", "", path, "a git lock file no live process holds"
                    + ("; removed" if repair else ""), repair and not os.path.lexists(path))
            for path in stale]


async def _strays(squad: Squad, repos: set[str], repair: bool) -> list[Finding]:
    root = squad.worktrees_dir
    if not root.is_dir():
        return []
    known_real = await _known(squad, repos)
    found: list[Path] = []
    todo = [root]
    while todo:
        for entry in sorted(todo.pop().iterdir()):
            real = os.path.realpath(entry)
            if real in known_real:
                continue
            if entry.is_dir() and not entry.is_symlink() and any(
                    k.startswith(real + os.sep) for k in known_real):
                todo.append(entry)  # a branch prefix directory (alice/) holding worktrees
                continue
            found.append(entry)
    # asked again once the directories were seen: a start of another process records its worktree
    # before it makes the directory
    known_real = await _known(squad, repos)
    rows = []
    for entry in found:
        real = os.path.realpath(entry)
        if real in known_real or any(k.startswith(real + os.sep) for k in known_real):
            continue
        detail = "neither git nor any instance knows this directory"
        done = False
        if repair:
            target = squad.home / "lost+found" / entry.name
            private_dir(target.parent)
            target = target.with_name(f"{entry.name}_{os.getpid()}_{len(rows)}") \
                if target.exists() else target
            os.rename(entry, target)
            detail += f"; moved to {target}"
            done = True
        rows.append(Finding("stray directory", "", str(entry), detail, done))
    return rows


async def _known(squad: Squad, repos: set[str]) -> list[str]:
    """The real paths of every worktree git lists or an instance records, now."""
    known = [t.path for repo in repos for t in await squad.git.worktrees(repo)]
    return [os.path.realpath(p) for p in known + _recorded(squad)]
