"""Guard rails as data, on real demo instances (real git and tmux): the squad table's ``dirty``,
``ahead`` and ``pinned`` columns, pins that persist across processes, and Kill refusing pinned
instances and (``discard=False``) instances whose kill would lose work."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from helpers import branches, git, lock_held

from squadnb import BatchExecutor, StateFileError
from squadnb._loop import run_sync
from squadnb.errors import GitError, InvalidState, ValidationError
from squadnb.ops import BatchKillOperation, BatchPauseOperation, BatchStartOperation
from squadnb.session import Squad


def commit_in(worktree: str, name: str) -> None:
    Path(worktree, name).write_text(f"{name}\n")
    git(worktree, "add", name)
    git(worktree, "commit", "-q", "-m", f"add {name}")


def guards(squad: Squad) -> dict[str, tuple[bool, int, bool]]:
    frame = squad.to_dataframe().set_index("title")
    return {title: (row.dirty, row.ahead, row.pinned) for title, row in frame.iterrows()}


def test_refresh_computes_dirty_and_ahead(squad: Squad) -> None:
    new, work = squad.new("new"), squad.new("work")
    work.start()
    frame = squad.to_dataframe()
    assert list(frame.columns[-3:]) == ["dirty", "ahead", "pinned"]
    assert frame.dtypes[["dirty", "ahead", "pinned"]].astype(str).tolist() == ["bool", "int64", "bool"]
    squad.refresh()
    assert guards(squad) == {"new": (False, 0, False), "work": (False, 0, False)}

    Path(work.worktree_path, "draft.txt").write_text("untracked counts as dirty\n")
    squad.refresh()
    assert guards(squad)["work"] == (True, 0, False)
    commit_in(work.worktree_path, "one.txt")
    commit_in(work.worktree_path, "two.txt")
    squad.refresh()
    assert guards(squad)["work"] == (True, 2, False)  # draft.txt is still uncommitted

    work.pause()  # commits draft.txt; no worktree is left to be dirty
    squad.refresh()
    assert guards(squad)["work"] == (False, 3, False)
    assert new.refresh_work() == (False, 0)


def test_commits_ahead_reads_rev_list(squad: Squad, git_repo: Path) -> None:
    gits = squad.git
    head = git(git_repo, "rev-parse", "HEAD").strip()
    assert run_sync(gits.commits_ahead(str(git_repo), head, "no-such-branch")) == 0
    assert run_sync(gits.commits_ahead(str(git_repo), head, "main")) == 0
    with pytest.raises(GitError, match="rev-list"):
        run_sync(gits.commits_ahead(str(git_repo), "0" * 40, "main"))


def test_pins_persist_in_their_own_file(squad: Squad, git_repo: Path) -> None:
    a, b = squad.new("a"), squad.new("b")
    assert not a.pinned and not (squad.home / "pins.json").exists()
    a.pin()
    a.pin()  # idempotent
    other = Squad(home=squad.home, repo=git_repo, tmux_socket=squad.tmux_socket)
    assert other["a"].pinned and not other["b"].pinned  # another process sees it at once
    assert guards(other)["a"][2] and not guards(other)["b"][2]
    pins = squad.home / "pins.json"
    assert json.loads(pins.read_text()) == {"pinned": ["a"]}
    assert stat.S_IMODE(os.stat(pins).st_mode) == 0o600
    assert "pinned" not in (squad.home / "pending.json").read_text()  # claude-squad's files untouched

    run_sync(b.apin())
    run_sync(a.aunpin())
    assert [i.title for i in squad.instances if i.pinned] == ["b"]
    b.kill()  # a killed instance's pin goes with it: a new "b" starts unpinned
    assert not squad.new("b").pinned and json.loads(pins.read_text()) == {"pinned": []}


def test_an_unreadable_pins_file_is_reported_and_left_alone(squad: Squad) -> None:
    inst = squad.new("a")
    pins = squad.home / "pins.json"
    pins.write_text('{"pinned": "a"}')
    with pytest.raises(StateFileError, match="pins.json does not hold"):
        inst.pin()
    with pytest.raises(StateFileError):
        squad.to_dataframe()
    assert pins.read_text() == '{"pinned": "a"}'


def test_kill_refuses_pinned_instances_with_the_reason(squad: Squad) -> None:
    keep, drop = squad.new("keep"), squad.new("drop")
    executor = BatchExecutor(max_concurrency=2, timeout=120)
    assert executor.execute([keep, drop], BatchStartOperation(), progress=False).all_succeeded
    keep.pin()
    result = executor.execute([keep, drop], BatchKillOperation(), progress=False)
    assert [r.status for r in result.results] == ["invalid", "succeeded"]
    error = result.results[0].error
    assert isinstance(error, ValidationError) and isinstance(error.__cause__, InvalidState)
    assert "instance 'keep' is pinned; unpin it to kill it" in str(error)
    assert keep.started and "keep" in squad and "drop" not in squad
    # not destructive: a pinned instance still pauses
    assert executor.execute([keep], BatchPauseOperation(), progress=False).all_succeeded
    keep.unpin()
    assert executor.execute([keep], BatchKillOperation(), progress=False).all_succeeded


def test_kill_discard_false_keeps_work_and_discard_true_throws_it_away(
        squad: Squad, git_repo: Path) -> None:
    dirty, ahead, paused, clean = (squad.new(t) for t in ("dirty", "ahead", "paused", "clean"))
    executor = BatchExecutor(max_concurrency=4, timeout=120)
    assert executor.execute([dirty, ahead, paused, clean], BatchStartOperation(), progress=False).all_succeeded
    Path(dirty.worktree_path, "notes.txt").write_text("not committed\n")
    commit_in(ahead.worktree_path, "done.txt")
    Path(paused.worktree_path, "wip.txt").write_text("committed by the pause\n")
    paused.pause()

    keep = BatchKillOperation(discard=False)
    assert not keep.discard and BatchKillOperation().discard
    result = executor.execute([dirty, ahead, paused, clean], keep, progress=False)
    assert [r.status for r in result.results] == ["invalid", "invalid", "invalid", "succeeded"]
    errors = [str(r.error) for r in result.results[:3]]
    assert "instance 'dirty' has uncommitted changes in its worktree;" in errors[0]
    assert "instance 'ahead' has 1 commit on branch 'test/ahead' not on its base commit" in errors[1]
    assert "; kept (discard=True would throw the work away)" in errors[1]
    assert "instance 'paused' has 1 commit on branch 'test/paused'" in errors[2]
    assert branches(git_repo) == {"main", "test/dirty", "test/ahead", "test/paused"}
    assert Path(dirty.worktree_path, "notes.txt").exists()

    with pytest.raises(InvalidState, match="uncommitted changes"):
        run_sync(keep.validate(dirty))  # a direct caller awaits the git check
    result = executor.execute([dirty, ahead, paused], BatchKillOperation(discard=True),
                              progress=False)
    assert result.all_succeeded and branches(git_repo) == {"main"} and len(squad) == 0


def test_kill_discard_false_ignores_commits_of_a_branch_it_keeps(squad: Squad,
                                                                 git_repo: Path) -> None:
    git(git_repo, "branch", "feature")
    inst = squad.new("on-feature", branch="feature")
    inst.start()
    commit_in(inst.worktree_path, "kept.txt")
    assert inst.refresh_work() == (False, 1)
    result = BatchExecutor(timeout=120).execute([inst], BatchKillOperation(discard=False),
                                                progress=False)
    assert result.all_succeeded  # the branch survives the kill, and its commit with it
    assert "feature" in branches(git_repo)
    assert git(git_repo, "log", "-1", "--format=%s", "feature").strip() == "add kept.txt"


def test_reading_pins_never_waits_for_the_homes_lock(squad: Squad) -> None:
    """Kill's ``validate`` reads the pins on squadnb's loop thread for every instance: it must not
    wait while the state writer (or another process) holds the home's lock. ``pins.json`` is
    replaced atomically, so a read without the lock sees the old file or the new one, whole."""
    inst = squad.new("a")
    inst.pin()
    with lock_held(squad._store):
        begun = time.monotonic()
        assert inst.pinned
        assert squad.to_dataframe().set_index("title").loc["a", "pinned"]
        assert time.monotonic() - begun < 2.0
