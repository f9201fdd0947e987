"""Crash tests: a child Python process runs real batches of demo agents (start, prompt, then pause and
resume over and over) and is SIGKILLed at a few delays, either alone (its git and tmux children run
on) or with every process it spawned (git children killed mid-write). A new Squad, as a fresh process
sees the home, must recover every instance with the next call, and every file a demo agent wrote must
be in its worktree or on its branch tip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import branches, git, tmux_sessions, wait_for

import squadnb
from squadnb._loop import run_sync
from squadnb.errors import InvalidState
from squadnb.session import Squad, Status
from squadnb.session._postconditions import agent_runs_in_worktree

DRIVER = """
import sys
from squadnb import BatchExecutor, BatchPauseOperation, BatchPromptOperation, BatchResumeOperation
from squadnb import BatchStartOperation, DiffOperation
from squadnb.session import Squad
squad = Squad(home=sys.argv[1], repo=sys.argv[2], tmux_socket=sys.argv[3])
batch = BatchExecutor(max_concurrency=4)
instances = squad.instances
batch.execute(instances, BatchStartOperation(), progress=False)
batch.execute(instances, BatchPromptOperation("write your file"), progress=False)
# a prompt returns once the agent has it; its file comes when the work is done
batch.execute(instances, DiffOperation(until_changed=True), progress=False)
while True:
    batch.execute(instances, BatchPauseOperation(), progress=False)
    batch.execute(instances, BatchResumeOperation(), progress=False)
"""

TITLES = ("crash-a", "crash-b", "crash-c")


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (git and tmux clients the driver spawned in their own
    sessions, which a killpg of its group would miss)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def spawn_driver(script: str, squad: Squad, tmux_socket: str) -> subprocess.Popen[bytes]:
    """Run ``script`` in a child Python process (its own session) on the squad's home, repository
    and tmux server (``sys.argv[1:4]``)."""
    env = {**os.environ, "PYTHONPATH": str(Path(squadnb.__file__).parent.parent)}
    return subprocess.Popen([sys.executable, "-c", script, str(squad.home), squad.repo, tmux_socket],
                            env=env, start_new_session=True)


def sigkill(driver: subprocess.Popen[bytes], kill: str) -> None:
    """SIGKILL the driver alone (``"driver"``: its git and tmux children run on) or with every
    process it spawned (``"group"``), and reap it."""
    victims = [driver.pid] + (descendants(driver.pid) if kill == "group" else [])
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    driver.wait()


def agents_done(squad: Squad, repo: Path) -> set[str]:
    """The titles whose agent has written demo-output/1.txt, in the worktree or (paused since) on
    the branch; the driver removes and re-adds worktrees meanwhile."""
    done = set()
    for title in TITLES:
        try:
            if any(squad.worktrees_dir.rglob(f"{title}_*/demo-output/1.txt")):
                done.add(title)
                continue
        except FileNotFoundError:
            pass  # a worktree removed while it was listed
        for branch in git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split():
            if branch.endswith(f"/{title}") and subprocess.run(
                    ["git", "-C", str(repo), "cat-file", "-e", f"{branch}:demo-output/1.txt"],
                    capture_output=True).returncode == 0:
                done.add(title)
    return done


def written(worktree: str) -> dict[str, str]:
    out = Path(worktree) / "demo-output"
    return {p.name: p.read_text() for p in sorted(out.glob("*.txt"))} if out.is_dir() else {}


def on_branch(repo: Path, branch: str) -> dict[str, str]:
    names = git(repo, "ls-tree", "-r", "--name-only", branch, "--", "demo-output").split()
    return {Path(n).name: git(repo, "show", f"{branch}:{n}") for n in names}


@pytest.mark.parametrize("delay", [0.1, 0.6, 1.4])
@pytest.mark.parametrize("kill", ["driver", "group"])
def test_a_batch_killed_at_any_point_is_recovered_without_losing_work(
        squad: Squad, git_repo: Path, tmux_socket: str, kill: str, delay: float) -> None:
    for title in TITLES:
        squad.new(title)
    driver = spawn_driver(DRIVER, squad, tmux_socket)
    try:
        # every agent has written its file: from here on the driver pauses and resumes
        wait_for(lambda: agents_done(squad, git_repo) == set(TITLES), timeout=180,
                 what="every agent's first file")
        time.sleep(delay)  # the point of the crash: a fixed point in the batch, not a wait for tmux
    finally:
        sigkill(driver, kill)
    fresh = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    for title in TITLES:
        inst = fresh[title]
        if inst.status is not Status.PAUSED:
            inst.pause()  # the next call: finishes whatever the driver was doing, then pauses
        assert inst.status is Status.PAUSED
        assert on_branch(git_repo, inst.branch).get("1.txt") == "write your file", title
        inst.resume()
        assert inst.status is Status.RUNNING and written(inst.worktree_path).get("1.txt") \
            == "write your file"
    assert not fresh._intents.load()


RESTART_DRIVER = """
import sys
from squadnb import BatchExecutor, BatchStartOperation
from squadnb.session import Squad
squad = Squad(home=sys.argv[1], repo=sys.argv[2], tmux_socket=sys.argv[3])
BatchExecutor(max_concurrency=3).execute(squad.instances, BatchStartOperation(first_time_setup=False),
                                         progress=False)
"""


def crash_during(action: str, script: str, squad: Squad, tmux_socket: str, kill: str,
                 delay: float) -> None:
    """Run ``script`` in a child process, and SIGKILL it (alone, or with every process it spawned)
    ``delay`` seconds after it first recorded ``action`` in ``transitions.json`` (or once it ended)."""
    driver = spawn_driver(script, squad, tmux_socket)
    path = squad.home / "transitions.json"
    deadline = time.monotonic() + 60
    try:
        # polled tightly (not wait_for's 50 ms): a delay of 0 must land before the first tmux step
        while action not in (path.read_text() if path.exists() else "") and driver.poll() is None:
            assert time.monotonic() < deadline, f"the driver never recorded a {action}"
            time.sleep(0.002)
        time.sleep(delay)
    finally:
        sigkill(driver, kill)


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("kill", ["driver", "group"])
def test_a_restart_batch_killed_at_any_point_is_finished_by_the_next_restart(
        squad: Squad, tmux_socket: str, kill: str, delay: float) -> None:
    for title in TITLES:
        inst = squad.new(title)
        inst.start()
        inst.stop()  # DEAD: worktree and branch kept, no session
    crash_during("restart", RESTART_DRIVER, squad, tmux_socket, kill, delay)
    fresh = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    left = fresh._intents.load()
    for title in TITLES:
        inst = fresh[title]
        try:
            inst.restart()  # finishes a restart cut short, or restarts one the driver never began
        except InvalidState as refused:  # the driver restarted it whole
            assert title not in left and "its program is still running" in str(refused)
        assert inst.status is Status.RUNNING, title
        run_sync(agent_runs_in_worktree(inst, "restart"))
        wait_for(lambda: "continuing after" in inst.preview(), what="the continue flag's line")
    assert not fresh._intents.load()
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    assert {again[t].status for t in TITLES} == {Status.RUNNING}


KILL_DRIVER = """
import sys
from squadnb import BatchExecutor, BatchKillOperation
from squadnb.session import Squad
squad = Squad(home=sys.argv[1], repo=sys.argv[2], tmux_socket=sys.argv[3])
BatchExecutor(max_concurrency=3).execute(squad.instances, BatchKillOperation(), progress=False)
"""

#: the call each instance gets after the crash: a running one is paused, a paused one resumed
NEXT_CALL = {"crash-a": "pause", "crash-b": "resume", "crash-c": "pause"}


def outside_the_home(root: Path, home: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file under ``root`` but outside ``home`` and the repository's own
    ``.git`` (where git keeps the worktrees' and branches' records)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and home not in p.parents
            and ".git" not in p.relative_to(root).parts}


@pytest.mark.parametrize("then", ["calls", "doctor"])
@pytest.mark.parametrize("delay", [0.0, 0.08])
@pytest.mark.parametrize("kill", ["driver", "group"])
def test_a_kill_batch_killed_at_any_point_is_finished_by_pause_resume_or_doctor(
        squad: Squad, git_repo: Path, tmp_path: Path, tmux_socket: str, kill: str, delay: float,
        then: str) -> None:
    for title in NEXT_CALL:
        squad.new(title).start()
    squad["crash-b"].pause()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "mine.txt").write_text("not squadnb's\n")
    before = outside_the_home(tmp_path, squad.home)
    main_tip = git(git_repo, "rev-parse", "main")
    crash_during("kill", KILL_DRIVER, squad, tmux_socket, kill, delay)
    fresh = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    left = fresh._intents.load()
    killed = set(NEXT_CALL) - {i.title for i in fresh.instances} | set(left)
    if then == "doctor":
        report = fresh.doctor(repair=True)
        assert set(report["instance"]) == set(left) and report["repaired"].all()
    for title, call in NEXT_CALL.items():
        if title not in killed:  # the kill had not begun: the call does its own work
            inst = fresh[title]
            getattr(inst, call)()
            assert inst.status is (Status.PAUSED if call == "pause" else Status.RUNNING)
            assert git(git_repo, "rev-parse", "--verify", "-q", inst.branch)
        elif title in fresh:  # a kill cut short, recorded: the next call finishes it
            with pytest.raises(InvalidState, match=f"instance '{title}': {call} failed: an "
                               "interrupted kill of it was finished: it is gone"):
                getattr(fresh[title], call)()
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    # a kill killed after removing its instance from the files (its last step) leaves only its
    # record, which no call of the instance can end any more: the doctor names it and drops it
    report = again.doctor()
    assert set(report["kind"]) <= {"half-done transition"} and set(report["instance"]) <= killed
    assert report["detail"].str.contains("no longer in the state files").all()
    again.doctor(repair=True)
    assert again.doctor().empty
    assert not again._intents.load() and {i.title for i in again.instances} == set(NEXT_CALL) - killed
    state = json.loads((squad.home / "state.json").read_text())
    assert {e["title"] for e in state["instances"]} == set(NEXT_CALL) - killed
    assert not {squad.session_name_for(t) for t in killed} & tmux_sessions(tmux_socket)
    assert not {f"test/{t}" for t in killed} & branches(git_repo)
    assert not [p for t in killed for p in squad.worktrees_dir.rglob(f"{t}_*")]
    assert outside_the_home(tmp_path, squad.home) == before
    assert git(git_repo, "rev-parse", "main") == main_tip and not git(git_repo, "status", "--porcelain")


ENDS_THEN_DIES = """
import os, signal, sys, time
from squadnb.session import Squad, _intents, _storage
real_end, real_write = _intents.Intents.end, _storage.Store._write_batch

def end_then_die(self, title):
    real_end(self, title)
    os.kill(os.getpid(), signal.SIGKILL)

def slow_write(self, batch):
    time.sleep(0.3)  # a slow disk: the state write is still on its way when the record ends
    real_write(self, batch)

_intents.Intents.end, _storage.Store._write_batch = end_then_die, slow_write
squad = Squad(home=sys.argv[1], repo=sys.argv[2], tmux_socket=sys.argv[3])
getattr(squad[sys.argv[4]], sys.argv[5])()
"""


@pytest.mark.parametrize("action", ["pause", "kill"])
def test_a_call_killed_right_after_it_ends_its_record_has_saved_its_state(
        squad: Squad, git_repo: Path, tmux_socket: str, action: str) -> None:
    inst = squad.new("ended")
    inst.start()
    env = {**os.environ, "PYTHONPATH": str(Path(squadnb.__file__).parent.parent)}
    died = subprocess.run([sys.executable, "-c", ENDS_THEN_DIES, str(squad.home), squad.repo,
                           tmux_socket, "ended", action], env=env, capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    assert not again._intents.load()
    if action == "kill":
        assert "ended" not in again and branches(git_repo) == {"main"}
    else:
        assert again["ended"].status is Status.PAUSED
        again["ended"].resume()
        assert again["ended"].status is Status.RUNNING
