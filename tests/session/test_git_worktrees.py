"""squadnb reads the worktree list from git's administrative files instead of running ``git worktree
list`` (a process and a ref-store set-up per worktree, and a command that fails while another
process adds one). These tests hold the reader to what git itself lists, in every shape a worktree
can be in, and while another process adds and removes worktrees."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import git

from squadnb._loop import run_sync
from squadnb.errors import GitError
from squadnb.session.git import Git, Worktree


def porcelain(repo: Path) -> list[Worktree]:
    """What ``git worktree list --porcelain`` says, as :class:`Worktree` entries."""
    found = []
    for block in git(repo, "worktree", "list", "--porcelain").strip().split("\n\n"):
        fields = dict((line.split(" ", 1) + [""])[:2] for line in block.splitlines())
        ref = fields.get("branch")
        found.append(Worktree(fields["worktree"], ref.removeprefix("refs/heads/") if ref else None))
    return found


def test_the_list_is_what_git_lists_in_every_shape(git_repo: Path, tmp_path: Path) -> None:
    trees = tmp_path / "trees"
    git(git_repo, "worktree", "add", "-q", "-b", "on-branch", str(trees / "a"))
    git(git_repo, "worktree", "add", "-q", "--detach", str(trees / "detached"))
    git(git_repo, "worktree", "add", "-q", "-b", "half", str(trees / "half"))
    (trees / "half" / ".git").unlink()  # a removal stopped half-way: git still lists it
    git(git_repo, "worktree", "add", "-q", "-b", "gone", str(trees / "gone"))
    shutil.rmtree(trees / "gone")  # deleted by hand: listed (prunable) until a prune
    git(git_repo, "worktree", "add", "-q", "-b", "locked", str(trees / "locked"))
    git(git_repo, "worktree", "lock", str(trees / "locked"))
    git(git_repo, "worktree", "add", "-q", "-b", "deep/name.x", str(trees / "deep"))

    listed = run_sync(Git().worktrees(str(git_repo)))

    assert listed == porcelain(git_repo)
    assert {t.branch for t in listed} == {git(git_repo, "branch", "--show-current").strip(),
                                          "on-branch", None, "half", "gone", "locked", "deep/name.x"}


def test_a_worktree_is_found_through_a_symlinked_path_and_by_its_own_entry(
        git_repo: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    git(git_repo, "worktree", "add", "-q", "-b", "feature", str(real / "w"))
    g = Git()

    found = run_sync(g.listed(str(git_repo), str(tmp_path / "link" / "w")))

    assert found == Worktree(str(real / "w"), "feature")
    assert run_sync(g.checked_out_at(str(git_repo), "feature", besides=str(tmp_path / "link" / "w"))) \
        is None
    assert run_sync(g.checked_out_at(str(git_repo), "feature")) == str(real / "w")


def test_a_gitdir_file_pointing_elsewhere_does_not_make_a_directory_a_worktree(
        git_repo: Path, tmp_path: Path) -> None:
    git(git_repo, "worktree", "add", "-q", "-b", "real", str(tmp_path / "real"))
    fake = tmp_path / "fake"
    fake.mkdir()
    # a planted .git file naming another worktree's entry: that entry does not point back here
    shutil.copy(tmp_path / "real" / ".git", fake / ".git")

    assert run_sync(Git().listed(str(git_repo), str(fake))) is None


def test_the_main_checkout_counts_as_checked_out_and_is_never_removed(git_repo: Path) -> None:
    main = git(git_repo, "branch", "--show-current").strip()
    g = Git()

    assert run_sync(g.checked_out_at(str(git_repo), main)) == os.path.realpath(git_repo)
    assert run_sync(g.listed(str(git_repo), str(git_repo))) == Worktree(os.path.realpath(git_repo),
                                                                        main)
    with pytest.raises(GitError, match="main checkout"):
        run_sync(g.remove_worktree(str(git_repo), str(git_repo)))
    assert (git_repo / ".git").is_dir()


def test_removing_leaves_a_directory_git_does_not_list_and_clears_a_half_removed_one(
        git_repo: Path, tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    (stray / "sub").mkdir(parents=True)
    (stray / "work.txt").write_text("not git's")
    git(git_repo, "worktree", "add", "-q", "-b", "half", str(tmp_path / "half"))
    (tmp_path / "half" / ".git").unlink()
    g = Git()

    assert run_sync(g.remove_worktree(str(git_repo), str(stray))) is True
    assert run_sync(g.remove_worktree(str(git_repo), str(tmp_path / "half"))) is False

    assert (stray / "work.txt").read_text() == "not git's"
    assert not (tmp_path / "half").exists()
    assert porcelain(git_repo) == [Worktree(os.path.realpath(git_repo), git(
        git_repo, "branch", "--show-current").strip())]


def test_deleting_a_branch_removes_its_reflog_and_settings_and_refuses_a_checked_out_one(
        git_repo: Path, tmp_path: Path) -> None:
    git(git_repo, "branch", "pushed")
    git(git_repo, "config", "branch.pushed.remote", "origin")
    git(git_repo, "worktree", "add", "-q", "-b", "busy", str(tmp_path / "busy"))
    g = Git()

    run_sync(g.delete_branch(str(git_repo), "pushed"))
    run_sync(g.delete_branch(str(git_repo), "pushed"))  # already gone: not an error

    assert not git(git_repo, "branch", "--list", "pushed")
    assert not (git_repo / ".git" / "logs" / "refs" / "heads" / "pushed").exists()
    assert "branch.pushed" not in git(git_repo, "config", "--list")
    with pytest.raises(GitError, match="checked out at"):
        run_sync(g.delete_branch(str(git_repo), "busy"))
    assert git(git_repo, "branch", "--list", "busy")


CHURN = """
import subprocess, sys
repo, where = sys.argv[1], sys.argv[2]
for i in range(40):
    path = f"{where}/churn-{i}"
    subprocess.run(["git", "-C", repo, "worktree", "add", "-q", "--detach", path], check=True)
    subprocess.run(["git", "-C", repo, "worktree", "remove", "-f", path], check=True)
"""


def test_listing_while_another_process_adds_and_removes_worktrees_never_fails(
        git_repo: Path, tmp_path: Path) -> None:
    for name in ("x", "y"):
        git(git_repo, "worktree", "add", "-q", "-b", name, str(tmp_path / name))
    churn = subprocess.Popen([sys.executable, "-c", CHURN, str(git_repo), str(tmp_path)])
    g = Git()
    try:
        rounds = 0
        while churn.poll() is None or rounds == 0:
            listed = run_sync(g.worktrees(str(git_repo)))
            assert {"x", "y"} <= {t.branch for t in listed}
            rounds += 1
    finally:
        churn.wait()
    assert churn.returncode == 0
    assert rounds > 5


def test_adding_refuses_a_branch_checked_out_elsewhere_or_made_meanwhile_and_leaves_it(
        git_repo: Path, tmp_path: Path) -> None:
    git(git_repo, "worktree", "add", "-q", "-b", "busy", str(tmp_path / "busy"))
    git(git_repo, "branch", "theirs")
    (git_repo / "more.txt").write_text("more")
    git(git_repo, "add", "more.txt")
    git(git_repo, "commit", "-qm", "more")
    theirs = git(git_repo, "rev-parse", "theirs").strip()
    g = Git()

    with pytest.raises(GitError, match="checked out at"):
        run_sync(g.add_worktree(str(git_repo), str(tmp_path / "again"), "busy", new_from=None))
    with pytest.raises(GitError, match="already exists"):
        run_sync(g.add_worktree(str(git_repo), str(tmp_path / "new"), "theirs",
                                new_from=git(git_repo, "rev-parse", "HEAD").strip()))

    assert git(git_repo, "rev-parse", "theirs").strip() == theirs  # not reset, not deleted
    assert not (tmp_path / "again").exists() and not (tmp_path / "new").exists()
    assert len(porcelain(git_repo)) == 2
