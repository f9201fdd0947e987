"""What must hold after each lifecycle step, checked against real tmux and git (not against the
instance's own idea of its state): the ``verify`` of the built-in operations.

Each check raises :class:`~squadnb.errors.VerificationError` whose message names the instance and
what did not hold, e.g. ``instance 'a': after Pause, its worktree /… is still there``; it returns
None when the post-condition holds. Reads only: ``has-session``/``display-message``/``capture-pane``
and git's worktree list/``rev-parse``/``merge-base --is-ancestor``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from squadnb.errors import VerificationError

if TYPE_CHECKING:
    from squadnb.session.instance import Instance

__all__ = ["agent_runs_in_worktree", "branch_holds", "no_branch", "no_session", "no_worktree",
           "remote_has", "worktree_on_branch"]


def _failed(instance: Instance, action: str, what: str) -> VerificationError:
    return VerificationError(f"instance {instance.title!r}: after {action}, {what}")


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory + os.sep)


async def _listed(instance: Instance) -> str | None:
    """The branch git lists for the instance's worktree path ("" when detached); None when git does
    not list that path as a worktree (or the instance names no repository: ``git -C ''`` would
    list the worktrees of the process's current directory)."""
    if not instance.repo_path:
        return None
    tree = await instance.squad.git.listed(instance.repo_path, instance.worktree_path)
    return None if tree is None else tree.branch or ""


async def agent_runs_in_worktree(instance: Instance, action: str) -> None:
    """The instance's tmux session exists, its program still runs, and runs in the worktree."""
    tmux, name = instance.squad.tmux, instance.session_name
    # The path first: a pane whose program exits has no path, and is dead when its state is read.
    cwd = await tmux.pane_path(name)
    snap = await tmux.snapshot(name)  # not pane_state: a snapshot waits out tmux's late reaping
    if snap is None:
        raise _failed(instance, action, f"its tmux session {name!r} does not exist")
    state = snap[0]
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
