"""Instance.changed_files and squad.compare over real worktrees: committed, uncommitted and untracked
work against the base commit, the worktree's index untouched; a command's exit code per instance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import git

from squadnb import BatchExecutor
from squadnb.session import Squad


def index_bytes(worktree: str) -> bytes:
    path = git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index").strip()
    return Path(path).read_bytes()


def work_in(worktree: Path) -> None:
    """A committed change, an uncommitted one, an untracked file, a deletion, a binary file and an
    ignored file."""
    (worktree / "module0.py").write_text('"""Module 0."""\n\nVALUE = 10\nOTHER = 1\n')
    git(worktree, "commit", "-qam", "agent: change module0")
    (worktree / "README.md").write_text("# rewritten\n")
    (worktree / "new file.txt").write_text("one\ntwo\n")
    (worktree / "module1.py").unlink()
    (worktree / "logo.bin").write_bytes(b"\x00\x01\x02")
    (worktree / "build.log").write_text("ignored\n")


def test_changed_files_covers_every_kind_of_work_without_touching_the_index(
        squad: Squad, git_repo: Path) -> None:
    for i in range(2):
        (git_repo / f"module{i}.py").write_text(f'"""Module {i}."""\n\nVALUE = {i}\n')
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "two modules")
    (git_repo / ".git" / "info" / "exclude").write_text("*.log\n")
    extra = squad.new("extra")
    inst = squad.new("judged")
    inst.start()
    worktree = Path(inst.worktree_path)
    work_in(worktree)
    before_index = index_bytes(inst.worktree_path)
    before_status = git(worktree, "status", "--porcelain")
    files = inst.changed_files()
    assert index_bytes(inst.worktree_path) == before_index
    assert git(worktree, "status", "--porcelain") == before_status
    assert list(files.columns) == ["path", "added", "removed", "status"]
    rows = {row.path: (row.added, row.removed, row.status) for row in files.itertuples()}
    assert rows == {
        "README.md": (1, 1, "modified"),
        "logo.bin": (0, 0, "added"),
        "module0.py": (2, 1, "modified"),
        "module1.py": (0, 3, "deleted"),
        "new file.txt": (2, 0, "added"),
    }
    assert files["path"].tolist() == sorted(rows)  # git's order
    assert str(files["added"].dtype) == "int64"

    inst.pause()  # paused: the branch's commits (pause committed the rest)
    paused = inst.changed_files()
    pd.testing.assert_frame_equal(paused, files)

    empty = extra.changed_files()  # not started
    assert empty.empty and list(empty.columns) == list(files.columns)


def test_compare_one_row_per_instance_and_a_command(squad: Squad) -> None:
    a, b, paused, new = (squad.new(t) for t in ("a", "b", "p", "n"))
    for inst in (a, b, paused):
        inst.start()
    Path(a.worktree_path, "fix.txt").write_text("1\n2\n3\n")
    git(a.worktree_path, "add", "fix.txt")
    git(a.worktree_path, "commit", "-qm", "fix")
    Path(a.worktree_path, "notes.txt").write_text("x\n")
    Path(b.worktree_path, "README.md").write_text("")
    Path(paused.worktree_path, "p.txt").write_text("p\n")
    paused.pause()

    frame = squad.compare()
    assert list(frame.columns) == ["title", "files_changed", "added", "removed", "commits_ahead"]
    assert frame.to_dict("list") == {
        "title": ["a", "b", "p", "n"], "files_changed": [2, 1, 1, 0], "added": [4, 0, 1, 0],
        "removed": [0, 1, 0, 0], "commits_ahead": [1, 0, 1, 0]}

    judged = squad.compare([b, a, paused], command="test -e fix.txt",
                           executor=BatchExecutor(max_concurrency=2, timeout=60))
    assert judged["title"].tolist() == ["b", "a", "p"]
    assert str(judged["exit_code"].dtype) == "Int64"
    assert judged["exit_code"].tolist()[:2] == [1, 0] and judged["exit_code"].isna().tolist() == [
        False, False, True]
    assert (judged["seconds"][:2] > 0).all() and pd.isna(judged["seconds"][2])
    assert new.changed_files().empty
