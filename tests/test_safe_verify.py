"""The built-in operations verify their post-conditions against real tmux and git: each ``verify``
passes after a real step, and fails, naming what did not hold, when the step was broken (the
lifecycle call, or one git/tmux step of it, patched to do nothing)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from helpers import git, wait_for

from squadnb import BatchExecutor
from squadnb._loop import run_sync
from squadnb.errors import PromptNotDelivered, VerificationError
from squadnb.ops import (BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                         BatchResumeOperation, BatchStartOperation)
from squadnb.session import Squad


async def nothing(*args, **kwargs) -> None:
    """A lifecycle call that does nothing (and says it succeeded)."""


def step(op, instance) -> None:
    """Run ``op`` on ``instance`` as the executor does: validate, execute, verify."""
    checked = op.validate(instance)
    if checked is not None:
        run_sync(checked)
    run_sync(op.execute(instance))
    run_sync(op.verify(instance))


def broken(op, instance, match: str) -> None:
    run_sync(op.execute(instance))
    with pytest.raises(VerificationError, match=match):
        run_sync(op.verify(instance))


def test_every_verify_passes_after_the_real_step(squad: Squad) -> None:
    inst = squad.new("real")
    step(BatchStartOperation(), inst)
    step(BatchPromptOperation("write it down"), inst)
    wait_for(lambda: list(Path(inst.worktree_path, "demo-output").glob("*.txt")), 30,
             "the demo agent's output")
    step(BatchPauseOperation(), inst)
    step(BatchResumeOperation(), inst)
    inst.stop()
    step(BatchStartOperation(first_time_setup=False), inst)
    step(BatchKillOperation(), inst)


def test_start_verify_fails_when_nothing_started(squad: Squad, monkeypatch) -> None:
    inst = squad.new("a")
    monkeypatch.setattr(inst, "astart", nothing)
    broken(BatchStartOperation(), inst, "instance 'a': after Start, git lists no worktree at")


def test_start_verify_fails_when_the_agent_runs_elsewhere(squad: Squad, git_repo: Path,
                                                          monkeypatch) -> None:
    inst = squad.new("elsewhere")
    inst.start()
    monkeypatch.setattr(inst, "worktree_path", str(git_repo))  # git lists the main checkout
    monkeypatch.setattr(inst, "branch", "main")
    with pytest.raises(VerificationError, match=r"after Start, its agent runs in .*, not in its "
                                                r"worktree"):
        run_sync(BatchStartOperation().verify(inst))


def test_start_verify_fails_when_the_agent_is_dead(squad: Squad) -> None:
    inst = squad.new("dies")
    inst.start()
    inst.send_prompt("exit 3")
    wait_for(lambda: not inst.tmux_alive(), 30, "the agent to quit")
    with pytest.raises(VerificationError, match=r"after Start, its agent is not running \(exit "
                                                r"status 3\)"):
        run_sync(BatchStartOperation().verify(inst))


def test_pause_verify_fails_when_nothing_paused(squad: Squad, monkeypatch) -> None:
    inst = squad.new("a")
    inst.start()
    monkeypatch.setattr(inst, "apause", nothing)
    broken(BatchPauseOperation(), inst, "instance 'a': after Pause, its tmux session 'squadnb_a' "
                                        "still exists")


def test_pause_verify_fails_when_the_work_was_not_committed(squad: Squad, monkeypatch) -> None:
    inst = squad.new("lost")
    inst.start()
    Path(inst.worktree_path, "work.txt").write_text("the agent's work\n")
    monkeypatch.setattr(squad.git, "commit_all", nothing)
    broken(BatchPauseOperation(), inst,
           "branch 'test/lost' holds no commit of the uncommitted changes its worktree had")


def test_pause_verify_fails_when_the_branch_lost_commits(squad: Squad, git_repo: Path,
                                                         monkeypatch) -> None:
    inst = squad.new("reset")
    inst.start()
    Path(inst.worktree_path, "one.txt").write_text("one\n")
    git(inst.worktree_path, "add", "one.txt")
    git(inst.worktree_path, "commit", "-q", "-m", "one")
    pause = BatchPauseOperation()
    real_pause = inst.apause

    async def pause_then_rewind() -> None:
        await real_pause()
        git(git_repo, "branch", "-f", "test/reset", "main")

    monkeypatch.setattr(inst, "apause", pause_then_rewind)
    broken(pause, inst, "branch 'test/reset' lost commit")


def test_resume_verify_fails_when_nothing_resumed(squad: Squad, monkeypatch) -> None:
    inst = squad.new("a")
    inst.start()
    inst.pause()
    monkeypatch.setattr(inst, "aresume", nothing)
    broken(BatchResumeOperation(), inst, "after Resume, git lists no worktree at")


def test_kill_verify_fails_when_something_is_left(squad: Squad, monkeypatch) -> None:
    a, b = squad.new("a"), squad.new("b")
    a.start()
    b.start()
    monkeypatch.setattr(a, "akill", nothing)
    broken(BatchKillOperation(), a, "after Kill, its tmux session 'squadnb_a' still exists")
    monkeypatch.setattr(squad.git, "delete_branch", nothing)
    broken(BatchKillOperation(), b, "after Kill, its branch 'test/b' still exists")


def test_prompt_verify_fails_when_the_agent_exits_after_the_prompt(squad: Squad) -> None:
    inst = squad.new("quits")
    inst.start()
    prompt = BatchPromptOperation("exit 4")
    run_sync(prompt.execute(inst))  # delivered: the agent printed its receipt, then quits
    wait_for(lambda: not inst.tmux_alive(), 30, "the agent to quit")
    with pytest.raises(VerificationError, match=r"instance 'quits': after SendPrompt, its agent is "
                                                r"not running \(exit status 4\)"):
        run_sync(prompt.verify(inst))


def test_a_prompt_the_agent_never_got_fails_once_not_twice(squad: Squad, monkeypatch) -> None:
    """Delivery is checked by send_prompt itself; the batch reports it as the failure of the
    execute, and verify (which runs only after a successful execute) does not repeat it."""
    inst = squad.new("deaf")
    inst.start()
    monkeypatch.setattr(squad, "delivery_timeout", 1.0)
    monkeypatch.setattr(squad.tmux, "paste", nothing)
    [result] = BatchExecutor(timeout=60).execute([inst], BatchPromptOperation("hello?"),
                                                 progress=False).results
    assert result.status == "failed" and isinstance(result.error, PromptNotDelivered)
    assert result.verified is None


def test_pause_pickles_without_what_it_remembers(squad: Squad) -> None:
    inst = squad.new("a")
    inst.start()
    pause = BatchPauseOperation()
    run_sync(pause.execute(inst))
    copy = pickle.loads(pickle.dumps(pause))
    assert "_before" not in vars(copy) and "_before" in vars(pause)
    run_sync(copy.verify(inst))  # nothing remembered: the branch need only exist
    run_sync(pause.verify(inst))
    assert pickle.loads(pickle.dumps(BatchKillOperation(discard=False))).discard is False
