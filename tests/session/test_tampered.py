"""Issue 9 ("only what it created") against tampered state files: an entry edited between calls
to name another instance's worktree or branch, or a worktree squadnb did not make, is refused (or,
for a branch, kept) by a fresh Squad's pause, resume, kill and start, and ``doctor`` reports it.
Real git and tmux."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers import branches, git
from test_recovery import fresh, record

from squadnb.agents import scratch_repo
from squadnb.errors import InvalidState, UnsafePath
from squadnb.session import Instance, Squad, Status


def tamper(squad: Squad, title: str, *, pending: bool = False, **fields: Any) -> None:
    """Set ``fields`` of ``title``'s entry (top-level keys and ``worktree`` keys by name) in
    ``state.json`` (``pending.json`` with ``pending``), as a hand edit would."""
    path = squad.home / ("pending.json" if pending else "state.json")
    data = json.loads(path.read_text())
    entry = next(e for e in data["instances"] if e["title"] == title)
    for key, value in fields.items():
        target = entry if key in entry else entry["worktree"]
        assert key in target, key
        target[key] = value
    path.write_text(json.dumps(data))


@pytest.fixture
def restored(squad: Squad) -> Iterator[None]:
    """Put the state files back as they were before the test tampered them, so teardown's kills
    clean up what the test made."""
    files = {p: p.read_text() for p in (squad.home / "state.json", squad.home / "pending.json")
             if p.exists()}
    yield
    for path, text in files.items():
        path.write_text(text)


def with_work(squad: Squad, title: str) -> Instance:
    """A started instance with an uncommitted file ``<title>-work.txt`` in its worktree."""
    inst = squad.new(title)
    inst.start()
    (Path(inst.worktree_path) / f"{title}-work.txt").write_text(f"{title}'s work\n")
    return inst


def assert_untouched(squad: Squad, repo: Path, victim: Instance) -> None:
    """``victim``'s worktree is there, on its branch, with its uncommitted file, nothing committed,
    its agent running."""
    tree = Path(victim.worktree_path)
    assert (tree / f"{victim.title}-work.txt").read_text() == f"{victim.title}'s work\n"
    assert git(tree, "branch", "--show-current").strip() == victim.branch
    assert git(repo, "rev-list", "--count", f"main..{victim.branch}").strip() == "0"
    assert fresh(squad)[victim.title].tmux_alive()


def doctor_rows(squad: Squad, kind: str) -> list[tuple[str, str, str]]:
    report = fresh(squad).doctor()
    rows = report[report["kind"] == kind]
    return list(zip(rows["instance"], rows["path"], rows["detail"]))


@pytest.mark.parametrize("paused, call", [(False, "pause"), (False, "kill"), (False, "push"),
                                          (True, "resume"), (True, "kill")])
def test_a_worktree_path_naming_another_instances_worktree_is_refused(
        squad: Squad, git_repo: Path, restored: None, paused: bool, call: str) -> None:
    a, b = with_work(squad, "a"), with_work(squad, "b")
    if paused:
        a.pause()
    tamper(squad, "a", worktree_path=b.worktree_path)
    tampered = fresh(squad)["a"]
    with pytest.raises(UnsafePath, match=rf"instance 'a': {call} failed: its worktree path "
                                         rf"'{b.worktree_path}' is recorded by instance 'b' too"
                       ) as caught:
        getattr(tampered, call)()
    assert (caught.value.instance, caught.value.path) == ("a", b.worktree_path)
    assert_untouched(squad, git_repo, b)
    assert branches(git_repo) == {"main", "test/a", "test/b"}
    assert tampered.status is (Status.PAUSED if paused else Status.RUNNING)
    rows = doctor_rows(squad, "not its worktree")
    assert [(title, path) for title, path, _ in rows] == [("a", b.worktree_path),
                                                          ("b", b.worktree_path)]


def test_a_worktree_squadnb_did_not_make_is_refused_even_through_a_symlink(
        squad: Squad, git_repo: Path, restored: None) -> None:
    a = with_work(squad, "a")
    a.pause()
    # a worktree a user added by hand inside worktrees/, on a branch no instance records
    theirs = squad.worktrees_dir / "theirs"
    git(git_repo, "worktree", "add", "-q", "-b", "theirs", str(theirs))
    (theirs / "their-work.txt").write_text("theirs\n")
    link = squad.worktrees_dir / "link"
    link.symlink_to(theirs)
    for path in (str(theirs), str(link)):
        tamper(squad, "a", worktree_path=path)
        with pytest.raises(UnsafePath, match=rf"instance 'a': kill failed: the worktree at "
                                             rf"{path!r} has branch 'theirs' checked out, not "
                                             r"its branch 'test/a'"):
            fresh(squad)["a"].kill()
        assert (theirs / "their-work.txt").read_text() == "theirs\n" and link.is_symlink()
        assert {"test/a", "theirs"} <= branches(git_repo)
    [(title, path, detail)] = doctor_rows(squad, "not its worktree")
    assert (title, path) == ("a", str(link)) and "has branch 'theirs' checked out" in detail
    git(git_repo, "worktree", "remove", "--force", str(theirs))
    # a symlink to another instance's worktree is that instance's path
    b = with_work(squad, "b")
    link.unlink()
    link.symlink_to(b.worktree_path)
    with pytest.raises(UnsafePath, match=rf"instance 'a': kill failed: its worktree path "
                                         rf"'{link}' is recorded by instance 'b' too"):
        fresh(squad)["a"].kill()
    assert_untouched(squad, git_repo, b)
    link.unlink()


def test_a_branch_another_instance_records_is_kept_by_kill(squad: Squad, git_repo: Path,
                                                           restored: None) -> None:
    a, b = with_work(squad, "a"), with_work(squad, "b")
    b.pause()  # its work is now a commit on test/b, checked out nowhere
    a.pause()
    tamper(squad, "a", branch="test/b", branch_name="test/b")
    rows = doctor_rows(squad, "shared branch")
    assert [(title, path) for title, path, _ in rows] == [("a", "test/b"), ("b", "test/b")]
    assert "instance 'b' records branch 'test/b' too; a kill of either keeps it" in rows[0][2]
    fresh(squad)["a"].kill()
    assert "test/b" in branches(git_repo)
    again = fresh(squad)
    assert "a" not in again
    again["b"].resume()
    assert (Path(again["b"].worktree_path) / "b-work.txt").read_text() == "b's work\n"


def test_a_running_instance_whose_branch_names_another_is_refused(squad: Squad, git_repo: Path,
                                                                  restored: None) -> None:
    a, b = with_work(squad, "a"), with_work(squad, "b")
    b.pause()
    tamper(squad, "a", branch="test/b", branch_name="test/b")
    for call in ("pause", "kill"):
        with pytest.raises(UnsafePath, match=rf"instance 'a': {call} failed: the worktree at "
                                             r".* has branch 'test/a' checked out, not its branch "
                                             r"'test/b'"):
            getattr(fresh(squad)["a"], call)()
    assert branches(git_repo) == {"main", "test/a", "test/b"}
    assert (Path(a.worktree_path) / "a-work.txt").exists() and fresh(squad)["a"].tmux_alive()


def test_killing_an_instance_keeps_its_branch_when_another_instance_works_on_it(
        squad: Squad, git_repo: Path) -> None:
    b = with_work(squad, "b")
    b.pause()
    # no tampering: an instance started on the paused instance's branch, as new(branch=...) allows
    a = squad.new("a", branch="test/b")
    a.start()
    assert a.is_existing_branch and (Path(a.worktree_path) / "b-work.txt").exists()
    (Path(a.worktree_path) / "a-work.txt").write_text("a's work\n")
    a.pause()
    b.kill()
    assert "test/b" in branches(git_repo)
    a.resume()
    assert {"a-work.txt", "b-work.txt"} <= set(os.listdir(a.worktree_path))


@pytest.mark.parametrize("call", ["kill", "start"])
def test_a_pending_entry_naming_another_instances_worktree_and_branch_is_refused(
        squad: Squad, git_repo: Path, restored: None, call: str) -> None:
    b = with_work(squad, "b")
    squad.new("a")
    # what an interrupted start of 'a' would have recorded, pointed at b's worktree and branch
    tamper(squad, "a", pending=True, worktree_path=b.worktree_path, repo_path=str(git_repo),
           branch=b.branch, branch_name=b.branch)
    with pytest.raises(UnsafePath, match=rf"instance 'a': {call} failed: its worktree path "
                                         r".* is recorded by instance 'b' too"):
        getattr(fresh(squad)["a"], call)()
    assert_untouched(squad, git_repo, b)
    assert branches(git_repo) == {"main", "test/b"}


def test_a_repo_path_naming_another_repository_is_refused(squad: Squad, git_repo: Path,
                                                          tmp_path: Path, restored: None) -> None:
    a = with_work(squad, "a")
    other = scratch_repo(tmp_path / "other", files=1)
    git(other, "branch", "test/a")  # the other project has a branch of the same name
    tamper(squad, "a", repo_path=str(other))
    for call in ("pause", "kill"):
        with pytest.raises(UnsafePath, match=rf"instance 'a': {call} failed: the worktree at "
                                             rf"'{a.worktree_path}' is one of the repository at "
                                             rf"'{git_repo}', not of its repository '{other}'"):
            getattr(fresh(squad)["a"], call)()
    assert (Path(a.worktree_path) / "a-work.txt").exists() and fresh(squad)["a"].tmux_alive()
    assert "test/a" in branches(other) and "test/a" in branches(git_repo)
    assert not (squad.home / "lost+found").exists()


def test_kill_keeps_a_branch_that_does_not_hold_the_commit_it_was_cut_from(
        squad: Squad, git_repo: Path, tmp_path: Path, restored: None) -> None:
    # a user's branch made before the instance's base commit, and a same-named branch of another
    # repository: an entry edited to name either, with is_existing_branch false, claims to have
    # made it
    git(git_repo, "branch", "feature")
    (git_repo / "later.txt").write_text("later\n")
    git(git_repo, "add", "later.txt")
    git(git_repo, "commit", "-q", "-m", "later")
    other = scratch_repo(tmp_path / "other", files=1)
    git(other, "branch", "test/b")
    a, b = with_work(squad, "a"), with_work(squad, "b")
    a.pause()
    b.pause()
    tamper(squad, "a", branch="feature", branch_name="feature")
    tamper(squad, "b", repo_path=str(other))
    fresh(squad)["a"].kill()
    fresh(squad)["b"].kill()
    assert {"feature", "test/a", "test/b"} <= branches(git_repo) and "test/b" in branches(other)


def test_a_pending_entry_without_a_base_commit_never_loses_a_branch_to_kill(
        squad: Squad, git_repo: Path, restored: None) -> None:
    git(git_repo, "branch", "feature")
    squad.new("a")
    # an interrupted start's record edited to name a user's branch, with no base commit to check
    tamper(squad, "a", pending=True, worktree_path=str(squad.worktrees_dir / "feature_1"),
           repo_path=str(git_repo), branch="feature", branch_name="feature", base_commit_sha="")
    fresh(squad)["a"].kill()
    assert "feature" in branches(git_repo) and "a" not in fresh(squad)


@pytest.mark.parametrize("place", ["holding worktrees", "inside a worktree"])
@pytest.mark.parametrize("paused, call", [(False, "pause"), (True, "kill")])
def test_a_worktree_path_holding_or_inside_another_worktree_is_refused(
        squad: Squad, git_repo: Path, restored: None, place: str, paused: bool, call: str) -> None:
    """A directory that holds worktrees (``worktrees/test/``, the branch prefix's) or one inside
    another instance's checkout is never moved aside as a stray: the other's files would go."""
    a, b = with_work(squad, "a"), with_work(squad, "b")
    if paused:
        a.pause()
    if place == "holding worktrees":
        path = str(Path(b.worktree_path).parent)
        refusal = rf"the directory at '{path}' holds the worktree at '{path}/"
    else:
        inner = Path(b.worktree_path) / "src"
        inner.mkdir()
        (inner / "module.py").write_text("b's module\n")
        path = str(inner)
        refusal = rf"its worktree path '{path}' is inside the checkout at '{b.worktree_path}'"
    tamper(squad, "a", worktree_path=path)
    with pytest.raises(UnsafePath, match=rf"instance 'a': {call} failed: {refusal}"):
        getattr(fresh(squad)["a"], call)()
    if place == "inside a worktree":
        assert (inner / "module.py").read_text() == "b's module\n"
    assert_untouched(squad, git_repo, b)
    assert not (squad.home / "lost+found").exists()


def test_a_pause_is_refused_while_the_worktree_has_a_detached_head(squad: Squad,
                                                                   git_repo: Path) -> None:
    # no tampering: an agent that checked out a commit (or stopped in a rebase); a pause commit
    # there would be on no branch, and lost with the worktree
    a = with_work(squad, "a")
    git(a.worktree_path, "checkout", "-q", "--detach")
    with pytest.raises(InvalidState, match=r"instance 'a': pause failed: its worktree at .* has a "
                                           r"detached HEAD .*check out 'test/a' there"):
        a.pause()
    assert a.status is Status.RUNNING and a.tmux_alive()
    assert (Path(a.worktree_path) / "a-work.txt").exists()
    record(squad, "a", "pause")  # and a pause a killed process left, finished by the next call
    with pytest.raises(InvalidState, match=r"instance 'a': pause failed: .* detached HEAD"):
        fresh(squad)["a"].pause()
    assert (Path(a.worktree_path) / "a-work.txt").exists()
    git(a.worktree_path, "checkout", "-q", "test/a")
    fresh(squad)["a"].pause()
    assert git(git_repo, "show", "test/a:a-work.txt") == "a's work\n"


def test_doctor_reports_an_entry_whose_repository_is_gone(squad: Squad, tmp_path: Path,
                                                          restored: None) -> None:
    with_work(squad, "a")
    tamper(squad, "a", repo_path=str(tmp_path / "gone"))
    [(title, _, detail)] = doctor_rows(squad, "not its worktree")
    assert title == "a" and "could not be checked" in detail
