"""A cancel (Ctrl-C, a batch's deadline) that lands while ``git worktree add`` runs must leave nothing:
no worktree git lists, no branch, no lock file. Killed part-way, git leaves a worktree locked as
"initializing" with no ``.git`` file, which ``git worktree remove -f -f`` refuses ("validation
failed") and ``prune`` keeps, and can leave ``refs/heads/<branch>.lock``, which stops the branch's
deletion: the first run of the CLI's Ctrl-C test left such a worktree and its branch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import branches, git

from squadnb.session.git import Git

#: cancels land this many seconds after the add began: before, during and after git's own work
DELAYS = [0.002 * i for i in range(16)]


def test_a_cancelled_worktree_add_leaves_no_worktree_branch_or_lock(git_repo: Path,
                                                                     tmp_path: Path) -> None:
    async def cancel_after(delay: float, n: int) -> str:
        adding = asyncio.ensure_future(Git().add_worktree(str(git_repo), str(tmp_path / f"wt{n}"),
                                                          f"cut{n}", new_from="HEAD"))
        await asyncio.sleep(delay)
        adding.cancel()
        try:
            await adding
        except asyncio.CancelledError:
            return "cancelled"
        return "added"

    for n, delay in enumerate(DELAYS):
        outcome = asyncio.run(cancel_after(delay, n))
        listed = [line for line in git(git_repo, "worktree", "list", "--porcelain").splitlines()
                  if line.startswith("worktree ")]
        if outcome == "added":  # the cancel came after git was done: an ordinary worktree
            git(git_repo, "worktree", "remove", str(tmp_path / f"wt{n}"))
            git(git_repo, "branch", "-D", f"cut{n}")
            continue
        assert listed == [f"worktree {git_repo}"], (delay, listed)
        assert branches(git_repo) == {"main"}, delay
        assert not list((git_repo / ".git").rglob("*.lock")), delay
        assert not (tmp_path / f"wt{n}").exists(), delay
