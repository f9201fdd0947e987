"""What must hold after each lifecycle step, checked against real tmux and git (not against the
instance's own idea of its state): the ``verify`` of the built-in operations.

Each check raises :class:`~squadnb.errors.VerificationError` whose message names the instance and
what did not hold, e.g. ``instance 'a': after Pause, its worktree /… is still there``; it returns
None when the post-condition holds. Reads only: ``has-session``/``display-message`` and
``worktree list``/``rev-parse``/``merge-base --is-ancestor``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from squadnb.errors import VerificationError

if TYPE_CHECKING:
    from squadnb.session.instance import Instance

__all__ = ["agent_runs_in_worktree", "branch_holds", "no_branch", "no_session", "no_worktree",
           "pane_changed", "pane_text", "remote_has", "worktree_on_branch"]

#: how often pane_changed looks at the pane
POLL = 0.05


def _failed(instance: Instance, action: str, what: str) -> VerificationError:
    return VerificationError(f"instance {instance.title!r}: after {action}, {what}")


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory + os.sep)


async def _listed(instance: Instance) -> str | None:
    """The branch git lists for the instance's worktree path ("" when detached); None when git does
    not list that path as a worktree."""
    for tree in await instance.squad.git.worktrees(instance.repo_path):
        if os.path.realpath(tree.path) == os.path.realpath(instance.worktree_path):
            return tree.branch or ""
    return None


async def agent_runs_in_worktree(instance: Instance, action: str) -> None:
    """The instance's tmux session exists, its program still runs, and runs in the worktree."""
    tmux, name = instance.squad.tmux, instance.session_name
    # The path first: a pane whose program exits has no path, and is dead when its state is read.
    cwd = await tmux.pane_path(name)
    state = await tmux.pane_state(name)
    if state is None:
        raise _failed(instance, action, f"its tmux session {name!r} does not exist")
    if state.dead:
        raise _failed(instance, action, f"its agent is not running (exit status "
                                        f"{state.exit_status})")
    if cwd is None or not _inside(cwd, instance.worktree_path):
        raise _failed(instance, action, f"its agent runs in {cwd}, not in its worktree "
                                        f"{instance.worktree_path}")


async def worktree_on_branch(instance: Instance, action: str) -> None:
    """The worktree directory exists and git lists it, on the instance's branch."""
    branch = await _listed(instance)
    if branch is None or not os.path.isdir(instance.worktree_path):
        raise _failed(instance, action, f"git lists no worktree at {instance.worktree_path}")
    if branch != instance.branch:
        raise _failed(instance, action, f"its worktree is on {branch or 'a detached HEAD'}, not "
                                        f"on branch {instance.branch!r}")


async def no_worktree(instance: Instance, action: str) -> None:
    """Neither git nor the file system knows the worktree path any more."""
    if os.path.lexists(instance.worktree_path) or await _listed(instance) is not None:
        raise _failed(instance, action, f"its worktree {instance.worktree_path} is still there")


async def no_session(instance: Instance, action: str) -> None:
    """The tmux session is gone."""
    if await instance.squad.tmux.has_session(instance.session_name):
        raise _failed(instance, action, f"its tmux session {instance.session_name!r} still exists")


async def no_branch(instance: Instance, action: str) -> None:
    """The branch is gone."""
    if await instance.squad.git.branch_exists(instance.repo_path, instance.branch):
        raise _failed(instance, action, f"its branch {instance.branch!r} still exists")


async def branch_holds(instance: Instance, action: str, before: str | None, changed: bool) -> None:
    """The branch exists and holds the work: its tip is ``before`` (the tip when the step began) or
    a descendant of it, and a new commit when the worktree had ``changed`` files then."""
    git = instance.squad.git
    tip = await git.branch_tip(instance.repo_path, instance.branch)
    if tip is None:
        raise _failed(instance, action, f"its branch {instance.branch!r} does not exist")
    if before is None:
        return
    if not await git.is_ancestor(instance.repo_path, before, tip):
        raise _failed(instance, action, f"branch {instance.branch!r} lost commit {before[:12]}")
    if changed and tip == before:
        raise _failed(instance, action, f"branch {instance.branch!r} holds no commit of the "
                                        "uncommitted changes its worktree had")


async def remote_has(instance: Instance, action: str, remote: str, sha: str | None) -> None:
    """``remote`` has the instance's branch at commit ``sha`` (what the push reported)."""
    found = await instance.squad.git.remote_branch_sha(instance.repo_path, remote, instance.branch)
    if found is None:
        raise _failed(instance, action, f"remote {remote!r} has no branch {instance.branch!r}")
    if sha is not None and found != sha:
        raise _failed(instance, action, f"branch {instance.branch!r} on remote {remote!r} is at "
                                        f"{found[:12]}, not at the pushed {sha[:12]}")


async def pane_text(instance: Instance) -> str:
    """The pane's visible text now, as :func:`pane_changed` compares it ("" when the session is
    gone)."""
    snap = await instance.squad.tmux.snapshot(instance.session_name)
    return snap[1] if snap else ""


async def pane_changed(instance: Instance, action: str, before: str, wait: float) -> None:
    """The pane's text differs from ``before`` within ``wait`` seconds (the agent shows the prompt
    or works on it); its program must still run."""
    deadline = time.monotonic() + wait
    while True:
        snap = await instance.squad.tmux.snapshot(instance.session_name)
        if snap is None or snap[0].dead:
            raise _failed(instance, action, "its agent is not running")
        if snap[1] != before:
            return
        if time.monotonic() >= deadline:
            raise _failed(instance, action, f"its pane did not change within {wait:g}s: the agent "
                                            "shows no sign of the prompt")
        await asyncio.sleep(POLL)
