"""RunCommand over real demo instances: where and how a command runs, its checked exit, its capped
output, and a hung command killed with every process it started (checked by pid)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import wait_for

from squadnb import BatchExecutor, CommandFailed, CommandRun, OperationTimeout, RunCommand
from squadnb._loop import run_sync
from squadnb.errors import CommandError, InvalidState
from squadnb.session import Squad, Status
from squadnb.session._command import OUTPUT_LIMIT
from squadnb.session._run import run_command
from squadnb.session._status import refusal


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()] if path.exists() else []


@pytest.fixture
def running(squad: Squad):
    inst = squad.new("runner")
    inst.start()
    return inst


def test_a_string_runs_under_sh_in_the_worktree_with_squadnb_main(running, git_repo: Path) -> None:
    run = run_sync(RunCommand('pwd; echo "main=$SQUADNB_MAIN"; echo "x=$X" >&2',
                              env={"X": "42"}).execute(running))
    assert isinstance(run, CommandRun)
    assert run.exit_code == 0 and run.ok
    assert run.stdout.splitlines() == [os.path.realpath(running.worktree_path), f"main={git_repo}"]
    assert run.stderr == "x=42\n"
    assert not run.stdout_truncated and not run.stderr_truncated
    assert 0 < run.seconds < 30
    assert "stdout=" in repr(run) and "main=" not in repr(run)  # short repr: output can be 64 KB


def test_a_sequence_runs_without_a_shell(running) -> None:
    run = run_sync(RunCommand(["echo", "$HOME", "a;b"]).execute(running))
    assert run.stdout == "$HOME a;b\n"


def test_check_turns_a_non_zero_exit_into_command_failed(running) -> None:
    command = "echo out; for i in $(seq 1 30); do echo err$i >&2; done; exit 3"
    result = BatchExecutor(timeout=60).execute([running], RunCommand(command), progress=False)
    assert result.results[0].status == "failed"
    error = result.results[0].error
    assert isinstance(error, CommandFailed) and isinstance(error, CommandError)
    assert error.exit_code == 3 == error.returncode
    assert error.stderr_tail.splitlines() == [f"err{i}" for i in range(21, 31)]
    assert str(error).startswith("instance 'runner': command ")
    assert "exited with 3" in str(error) and "err30" in str(error) and "err20" not in str(error)
    assert error.run.stdout == "out\n"

    unchecked = BatchExecutor(timeout=60).execute([running], RunCommand(command, check=False),
                                                  progress=False)
    assert unchecked.all_succeeded and unchecked.results[0].value.exit_code == 3


def test_a_missing_program_is_a_command_error_naming_the_instance(running) -> None:
    with pytest.raises(CommandError, match="instance 'runner': cannot run command 'no-such-prog-x'"):
        run_sync(RunCommand(["no-such-prog-x"]).execute(running))


def test_validation_refuses_instances_without_a_worktree(squad: Squad, running) -> None:
    fresh = squad.new("fresh")
    with pytest.raises(InvalidState, match="instance 'fresh' is not started"):
        RunCommand("true").validate(fresh)
    running.pause()
    with pytest.raises(InvalidState, match="instance 'runner' is paused: it has no worktree"):
        RunCommand("true").validate(running)
    result = BatchExecutor().execute([fresh, running], RunCommand("true"), progress=False)
    assert [r.status for r in result.results] == ["invalid", "invalid"]


def test_an_empty_command_or_a_bad_timeout_is_refused_at_once() -> None:
    for command in ("", "  ", []):
        with pytest.raises(ValueError, match="empty"):
            RunCommand(command)
    for timeout in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="RunCommand's timeout must be"):
            RunCommand("true", timeout=timeout)
    assert RunCommand("true", timeout=timedelta(minutes=2)).timeout == 120.0


HANG = ("sleep 300 & echo $! >> {pids}; "          # a child that hangs, holding the output pipe
        "(sleep 300; echo late) & echo $! >> {pids}; "
        "echo $$ >> {pids}; wait")


@pytest.mark.parametrize("by", ["its timeout", "the executor's timeout"])
def test_a_hung_command_is_killed_with_its_children(running, tmp_path: Path, by: str) -> None:
    pids = tmp_path / "pids"
    command = HANG.format(pids=pids)
    if by == "its timeout":
        op, executor = RunCommand(command, timeout=1.0), BatchExecutor(timeout=60)
    else:
        op, executor = RunCommand(command), BatchExecutor(timeout=1.0)
    result = executor.execute([running], op, progress=False)
    assert result.results[0].status == "timed out"
    assert isinstance(result.results[0].error, OperationTimeout)
    if by == "its timeout":
        assert "instance 'runner': command" in str(result.results[0].error)
    started = read_pids(pids)
    assert len(started) == 3  # sh and its two children
    wait_for(lambda: not any(alive(pid) for pid in started), timeout=10,
             what=f"every process of the command ({started}) to be gone")


def test_a_cancelled_command_leaves_no_process_even_after_its_leader_exited(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def main() -> None:
        # the leader exits at once; its child keeps the output pipe open
        task = asyncio.create_task(run_command(
            ["sh", "-c", f"(sleep 300; echo late) & echo $! > {pids}"], limit=10))
        deadline = asyncio.get_running_loop().time() + 30
        while not read_pids(pids):
            assert asyncio.get_running_loop().time() < deadline, "the command did not start"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    child = read_pids(pids)[0]
    wait_for(lambda: not alive(child), timeout=10, what=f"the child {child} to be gone")


def test_a_command_cancelled_while_it_starts_leaves_no_process(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    async def main() -> None:
        task = asyncio.create_task(run_command(
            ["sh", "-c", f"(sleep 300; echo late) & echo $! > {pids}; sleep 300"]))
        for _ in range(2):  # the run starts its child (fork + exec happen in these steps) ...
            await asyncio.sleep(0)
        # ... and, the loop blocked, cannot go past waiting for the child's pipes: the cancel lands
        # while asyncio is still starting the child
        deadline = time.monotonic() + 30
        while not read_pids(pids):
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    child = read_pids(pids)[0]
    wait_for(lambda: not alive(child), timeout=10, what=f"the child {child} to be gone")


def test_output_larger_than_the_cap_keeps_its_end_and_is_flagged(running) -> None:
    size = OUTPUT_LIMIT * 3
    script = (f"import sys; sys.stdout.write('a' * {size} + 'END'); "
              "sys.stderr.write('small')")
    run = run_sync(RunCommand([os.sys.executable, "-c", script]).execute(running))
    assert run.stdout_truncated and len(run.stdout) == OUTPUT_LIMIT
    assert run.stdout.endswith("aEND")
    assert not run.stderr_truncated and run.stderr == "small"
    at_cap = run_sync(RunCommand([os.sys.executable, "-c",
                                  f"print('b' * {OUTPUT_LIMIT - 1})"]).execute(running))
    assert not at_cap.stdout_truncated and len(at_cap.stdout) == OUTPUT_LIMIT


def test_a_batch_over_several_instances_and_its_table(squad: Squad) -> None:
    instances = [squad.new(f"t{i}") for i in range(3)]
    for inst in instances:
        inst.start()
    (Path(instances[1].worktree_path) / "broken").write_text("")
    result = BatchExecutor(max_concurrency=3, timeout=60).execute(
        instances, RunCommand("test ! -e broken", check=False), progress=False)
    frame = result.to_dataframe(values=True)
    assert frame["instance"].tolist() == ["t0", "t1", "t2"]
    assert frame["exit_code"].tolist() == [0, 1, 0]
    assert frame["stdout_truncated"].tolist() == [False, False, False]
    assert (frame["seconds"] > 0).all()


@pytest.mark.parametrize(("action", "status", "reason"), [
    ("command", Status.NEW, "is not started"), ("command", Status.PAUSED, "is paused: it has no worktree"),
    ("command", Status.RUNNING, None), ("command", Status.DEAD, None),
    ("push", Status.NEW, "is not started"), ("push", Status.PAUSED, None), ("push", Status.DEAD, None),
])
def test_the_rules_of_run_command_and_push(action: str, status: Status, reason: str | None) -> None:
    assert refusal(action, status) == reason


def test_a_pause_waits_for_a_running_command_instead_of_removing_its_worktree(running,
                                                                              tmp_path: Path) -> None:
    started = tmp_path / "started"
    batch = BatchExecutor(timeout=60).submit(
        [running], RunCommand(f"touch {started}; sleep 1; cat README.md > seen.txt"))
    wait_for(started.exists, what="the command to start")
    running.pause()  # held until the command ends; before, it removed the worktree under it
    result = batch.result(60)
    assert result.all_succeeded, result.error()
    assert result.results[0].value.exit_code == 0
    running.resume()
    assert Path(running.worktree_path, "seen.txt").read_text().strip()
