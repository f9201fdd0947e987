"""BatchPushOperation with a local bare repository as the remote: commit the work, push the branch
with its upstream, the pushed sha as the value; running and paused instances; failures named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import git

from squadnb import BatchExecutor, BatchPushOperation
from squadnb._loop import run_sync
from squadnb.errors import GitError, InvalidState, RollbackNotSupported, VerificationError
from squadnb.session import Squad


@pytest.fixture
def origin(tmp_path: Path, git_repo: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(git_repo, "remote", "add", "origin", str(bare))
    return bare


def test_push_commits_the_work_and_pushes_running_and_paused_instances(
        squad: Squad, git_repo: Path, origin: Path) -> None:
    running, paused, clean = (squad.new(t) for t in ("running", "paused", "clean"))
    for inst in (running, paused, clean):
        inst.start()
    Path(running.worktree_path, "work.txt").write_text("done\n")
    Path(paused.worktree_path, "later.txt").write_text("paused work\n")
    paused.pause()

    result = BatchExecutor(max_concurrency=3, timeout=60).execute(
        [running, paused, clean], BatchPushOperation(), progress=False)
    assert result.all_succeeded, result.error()
    assert result.to_dataframe()["operation"].tolist() == ["Push"] * 3
    assert [r.verified for r in result.results] == [True] * 3  # ls-remote saw each pushed sha
    for inst, r in zip((running, paused, clean), result.results):
        assert git(origin, "rev-parse", f"refs/heads/{inst.branch}").strip() == r.value
        assert git(git_repo, "rev-parse", inst.branch).strip() == r.value
        assert git(git_repo, "config", f"branch.{inst.branch}.remote").strip() == "origin"
        assert git(git_repo, "config", f"branch.{inst.branch}.merge").strip() == \
            f"refs/heads/{inst.branch}"
    assert git(running.worktree_path, "status", "--porcelain") == ""
    assert git(origin, "show", f"{running.branch}:work.txt") == "done\n"
    assert git(origin, "log", "-1", "--format=%s", running.branch).startswith(
        "[claudesquad] update from 'running' on ")
    assert git(origin, "show", f"{paused.branch}:later.txt") == "paused work\n"
    assert result.results[2].value == git(git_repo, "rev-parse", "main").strip()  # nothing to commit


def test_push_with_a_message_to_a_remote_given_by_path(squad: Squad, origin: Path) -> None:
    inst = squad.new("msg")
    inst.start()
    Path(inst.worktree_path, "a.txt").write_text("a\n")
    sha = run_sync(BatchPushOperation(str(origin), message="agent: add a").execute(inst))
    assert git(origin, "log", "-1", "--format=%H %s", inst.branch).strip() == f"{sha} agent: add a"
    Path(inst.worktree_path, "a.txt").write_text("b\n")
    again = inst.push(str(origin))
    assert again != sha and git(origin, "rev-parse", inst.branch).strip() == again


def test_push_refuses_new_instances_and_names_the_instance_when_git_fails(squad: Squad) -> None:
    fresh = squad.new("fresh")
    with pytest.raises(InvalidState, match="'fresh' is not started"):
        BatchPushOperation().validate(fresh)
    with pytest.raises(ValueError, match="remote is empty"):
        BatchPushOperation(" ")
    with pytest.raises(RollbackNotSupported, match="'fresh'"):
        run_sync(BatchPushOperation().rollback(fresh))
    fresh.start()
    with pytest.raises(GitError, match="instance 'fresh': push failed: git push failed: .*nowhere"):
        fresh.push("nowhere")


def test_verify_asks_the_remote(squad: Squad, origin: Path) -> None:
    inst = squad.new("checked")
    inst.start()
    Path(inst.worktree_path, "work.txt").write_text("work\n")
    op = BatchPushOperation()
    sha = run_sync(op.execute(inst))
    run_sync(op.verify(inst))  # holds
    assert run_sync(op.execute(inst)) == sha  # nothing new to commit
    git(origin, "update-ref", f"refs/heads/{inst.branch}", f"{sha}^")  # the remote moved back
    with pytest.raises(VerificationError, match=r"instance 'checked': after Push, branch "
                                                r"'test/checked' on remote 'origin' is at \w{12}, "
                                                r"not at the pushed \w{12}"):
        run_sync(op.verify(inst))
    git(origin, "update-ref", "-d", f"refs/heads/{inst.branch}")
    with pytest.raises(VerificationError, match="remote 'origin' has no branch 'test/checked'"):
        run_sync(op.verify(inst))
