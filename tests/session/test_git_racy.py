"""Diff stats and changed files read a copy of the worktree's index: the copy must keep git's
"racily clean" rule, or a same-size edit made in the second of the index's last write is missed
(notebook 09 once compared a fixed calc.py as unchanged)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from helpers import git

from squadnb.session.git import Git


def test_a_same_size_edit_in_the_second_of_the_last_index_write_is_seen(git_repo: Path) -> None:
    git(git_repo, "config", "core.trustctime", "false")  # stat data then matches on mtime and size
    tracked = git_repo / "calc.py"
    tracked.write_text("return a - b\n")
    git(git_repo, "add", "calc.py")
    git(git_repo, "commit", "-q", "-m", "calc")
    base = git(git_repo, "rev-parse", "HEAD").strip()
    second = (int(time.time()) - 10) * 1_000_000_000
    os.utime(tracked, ns=(second, second))
    git(git_repo, "update-index", "--refresh")  # the index records that mtime, unsmudged
    index = git_repo / ".git" / "index"
    os.utime(index, ns=(second + 500_000_000,) * 2)  # ... and was written in that same second
    tracked.write_text("return a + b\n")  # an agent's edit: same size, same second
    os.utime(tracked, ns=(second, second))
    assert "M calc.py" in git(git_repo, "--no-optional-locks", "status", "--porcelain")

    stats = asyncio.run(Git().diff_stats(str(git_repo), base))
    changes = asyncio.run(Git().changed_files(str(git_repo), base))
    assert (stats.added, stats.removed) == (1, 1)
    assert [(c.path, c.added, c.removed) for c in changes] == [("calc.py", 1, 1)]
