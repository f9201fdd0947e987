"""The built-in operations over real demo instances: validate/execute/rollback called directly, and the
five operations through BatchExecutor (plain and transactional)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import branches, tmux, tmux_sessions, wait_for

from squadnb import BatchExecutor, RolledBack
from squadnb._loop import run_sync
from squadnb.agents import demo_program
from squadnb.errors import InvalidState, RollbackNotSupported
from squadnb.ops import (BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                         BatchResumeOperation, BatchStartOperation)
from squadnb.session import Squad, Status


def outputs(instance) -> int:
    out = Path(instance.worktree_path) / "demo-output"
    return len(list(out.glob("*.txt"))) if out.is_dir() else 0


def test_names() -> None:
    assert [op.name for op in (BatchStartOperation(), BatchPauseOperation(), BatchResumeOperation(),
                               BatchKillOperation(), BatchPromptOperation("x"))] == [
        "Start", "Pause", "Resume", "Kill", "SendPrompt"]


def test_validation_execute_and_rollback_called_directly(squad: Squad, git_repo: Path) -> None:
    start, pause, resume = BatchStartOperation(), BatchPauseOperation(), BatchResumeOperation()
    kill, prompt = BatchKillOperation(), BatchPromptOperation("hello")
    inst = squad.new("direct")
    for op in (pause, resume, kill, prompt):
        with pytest.raises(InvalidState, match="not started"):
            op.validate(inst)
    start.validate(inst)
    run_sync(start.execute(inst))
    with pytest.raises(InvalidState, match="already started"):
        start.validate(inst)
    with pytest.raises(InvalidState, match="not paused"):
        resume.validate(inst)
    with pytest.raises(ValueError, match="empty"):
        BatchPromptOperation("  ").validate(inst)
    prompt.validate(inst)
    run_sync(prompt.execute(inst))
    wait_for(lambda: outputs(inst) == 1, what="the prompt's output")
    with pytest.raises(RollbackNotSupported):
        run_sync(prompt.rollback(inst))
    pause.validate(inst)
    run_sync(pause.execute(inst))
    assert inst.paused
    with pytest.raises(InvalidState, match="already paused"):
        pause.validate(inst)
    with pytest.raises(InvalidState):
        prompt.validate(inst)
    run_sync(pause.rollback(inst))  # Pause is undone by Resume
    assert inst.status is Status.RUNNING
    run_sync(pause.execute(inst))
    resume.validate(inst)
    run_sync(resume.execute(inst))
    run_sync(resume.rollback(inst))  # Resume is undone by Pause
    assert inst.paused
    run_sync(resume.execute(inst))
    kill.validate(inst)
    with pytest.raises(RollbackNotSupported):
        run_sync(kill.rollback(inst))
    run_sync(start.rollback(inst))  # Start is undone by Kill
    assert "direct" not in squad and branches(git_repo) == {"main"}


def test_the_five_operations_over_five_instances_through_the_executor(
        squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    executor = BatchExecutor(max_concurrency=3, timeout=60)
    instances = [squad.new(f"batch {i}") for i in range(5)]

    def run(op):
        result = executor.execute(instances, op, progress=False)
        assert result.all_succeeded, result.error()
        return result

    run(BatchStartOperation())
    assert {i.session_name for i in instances} <= tmux_sessions(tmux_socket)
    run(BatchPromptOperation("do the work"))
    for inst in instances:
        wait_for(lambda inst=inst: outputs(inst) == 1, what=f"{inst.title}'s output")
    run(BatchPauseOperation())
    assert squad.select(status="paused") == instances
    assert [e["status"] for e in json.loads((squad.home / "state.json").read_text())["instances"]] \
        == [3] * 5
    again = executor.execute(instances, BatchPauseOperation(), progress=False)
    assert len(again.failures) == 5 and all(r.status == "invalid" for r in again.failures)
    run(BatchResumeOperation())
    assert all(i.status is Status.RUNNING for i in instances)
    frame = run(BatchKillOperation()).to_dataframe()
    assert list(frame["status"]) == ["succeeded"] * 5
    assert branches(git_repo) == {"main"} and len(squad) == 0


def test_a_failed_transactional_pause_resumes_the_others(squad: Squad, tmux_socket: str) -> None:
    executor = BatchExecutor(max_concurrency=4, timeout=60)
    instances = [squad.new(f"tx {i}") for i in range(3)]
    assert executor.execute(instances, BatchStartOperation(), progress=False).all_succeeded
    lost = squad.new("never started")
    with pytest.raises(RolledBack) as info:
        executor.execute_with_rollback(instances + [lost], BatchPauseOperation(), progress=False)
    assert len(info.value.result.failures) == 1
    assert all(r.rolled_back for r in info.value.result.successes)
    assert all(i.status is Status.RUNNING for i in instances)
    assert {i.session_name for i in instances} <= tmux_sessions(tmux_socket)
    with pytest.raises(RolledBack):  # a failed start is undone by killing the started ones
        executor.execute_with_rollback([squad.new("ok"), squad.new("bad", program="no-such-zz")],
                                       BatchStartOperation(), progress=False)
    assert "ok" not in squad and squad["bad"].status is Status.NEW


def test_restart_brings_dead_instances_back_in_their_worktrees(tmp_path: Path, git_repo: Path,
                                                               tmux_socket: str) -> None:
    """BatchStartOperation(first_time_setup=False): claude-squad's restore as a recovery after the
    tmux server died (#216): the program starts again, with its continue flag, in the same worktree."""
    squad = Squad(home=tmp_path / "home", repo=git_repo, program=demo_program(0.1),
                  tmux_socket=f"{tmux_socket}-restart")
    try:
        alive, dead, paused, new = (squad.new(t) for t in ("alive", "dead", "paused", "new"))
        for instance in (alive, dead, paused):
            instance.start()
        paused.pause()
        (Path(dead.worktree_path) / "work.txt").write_text("uncommitted\n")
        dead.stop()
        assert dead.status is Status.DEAD and not dead.tmux_alive()
        restart = BatchStartOperation(first_time_setup=False)
        result = BatchExecutor().execute([alive, dead, paused, new], restart, progress=False)
        assert [r.status for r in result.results] == ["failed", "succeeded", "invalid", "invalid"]
        assert "instance 'alive': restart failed: its program is still running" in str(
            result.results[0].error)
        assert dead.status is Status.RUNNING and dead.tmux_alive()
        assert "--continue" in tmux(squad.tmux.socket, "display-message", "-p", "-t",
                                    f"={dead.session_name}:", "#{pane_start_command}").stdout
        assert (Path(dead.worktree_path) / "work.txt").read_text() == "uncommitted\n"  # same worktree
        run_sync(restart.rollback(dead))  # a restart is undone by stopping it again, never by a kill
        assert dead.status is Status.DEAD and Path(dead.worktree_path).is_dir()
        squad.kill_server()  # every session gone at once
        squad.refresh()
        assert {i.title: i.status for i in squad.instances} == {
            "alive": Status.DEAD, "dead": Status.DEAD, "paused": Status.PAUSED, "new": Status.NEW}
        result = BatchExecutor().execute(squad.select(status="dead"), restart, progress=False)
        assert result.all_succeeded and alive.tmux_alive() and dead.tmux_alive()
        for instance in squad.instances:
            instance.kill()
    finally:
        squad.kill_server()
