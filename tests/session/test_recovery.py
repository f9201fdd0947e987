"""Issue 9's faults, each reproduced against real git and tmux: interrupted transitions, stale git locks,
half-removed worktrees, ignored files across pause, the cross-process repository lock, a cancelled
start, and paths squadnb did not make."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import branches, git, tmux, tmux_sessions, wait_for

from squadnb import BatchExecutor
from squadnb._loop import run_sync
from squadnb.agents import demo_program
from squadnb.errors import GitError, InvalidState, UnsafePath
from squadnb.ops import BatchPauseOperation, BatchStartOperation
from squadnb.session import PauseReport, Squad, Status
from squadnb.session import _archive


def fresh(squad: Squad) -> Squad:
    """The same home seen by a new Squad, as a new process would."""
    return Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux.socket)


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def record(squad: Squad, title: str, action: str) -> None:
    """Write the transition a killed process would have left."""
    squad._intents.begin(title, action)
    path = squad._intents.path
    data = json.loads(path.read_text())
    data["transitions"][title]["pid"] = dead_pid()
    path.write_text(json.dumps(data))


def on_branch(repo: Path, branch: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", branch).split())


def admin_lock(worktree: str) -> Path:
    return Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index.lock").strip())


def test_an_interrupted_resume_is_finished_by_resume_and_its_own_worktree_is_not_elsewhere(
        squad: Squad, git_repo: Path) -> None:
    inst = squad.new("resumed")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("kept\n")
    inst.pause()
    # a resume killed after re-adding the worktree (the agent wrote more meanwhile):
    record(squad, "resumed", "resume")
    git(git_repo, "worktree", "add", "-q", inst.worktree_path, inst.branch)
    (Path(inst.worktree_path) / "after.txt").write_text("new work\n")
    again = fresh(squad)["resumed"]
    assert again.status is Status.PAUSED
    again.resume()
    assert again.status is Status.RUNNING and again.tmux_alive()
    assert (Path(again.worktree_path) / "after.txt").read_text() == "new work\n"  # kept, not re-made
    assert (Path(again.worktree_path) / "work.txt").exists()
    assert not fresh(squad)._intents.load()


@pytest.mark.parametrize("then", ["pause", "kill"])
def test_an_interrupted_resume_is_finished_by_any_next_call(squad: Squad, git_repo: Path,
                                                            then: str) -> None:
    inst = squad.new("next")
    inst.start()
    inst.pause()
    record(squad, "next", "resume")
    git(git_repo, "worktree", "add", "-q", inst.worktree_path, inst.branch)
    (Path(inst.worktree_path) / "late.txt").write_text("late\n")
    again = fresh(squad)["next"]
    getattr(again, then)()
    if then == "pause":
        assert again.status is Status.PAUSED and "late.txt" in on_branch(git_repo, again.branch)
    else:
        assert branches(git_repo) == {"main"} and "next" not in fresh(squad)


def test_a_stale_worktree_index_lock_from_a_killed_pause_is_removed(squad: Squad, git_repo: Path) -> None:
    inst = squad.new("locked")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("work\n")
    record(squad, "locked", "pause")
    admin_lock(inst.worktree_path).write_text("")
    again = fresh(squad)["locked"]
    report = again.pause()
    assert again.status is Status.PAUSED and isinstance(report, PauseReport)
    assert "work.txt" in on_branch(git_repo, again.branch)
    assert not any((git_repo / ".git").rglob("*.lock"))


def test_a_lock_a_live_process_holds_is_never_removed(squad: Squad, git_repo: Path) -> None:
    inst = squad.new("held")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("work\n")
    record(squad, "held", "pause")
    lock = admin_lock(inst.worktree_path)
    holder = subprocess.Popen([sys.executable, "-c", f"import sys,time; f=open({str(lock)!r},'w'); "
                               "print('ok', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        with pytest.raises(GitError, match="instance 'held': pause failed: .*index.lock"):
            fresh(squad)["held"].pause()
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    again = fresh(squad)["held"]
    again.pause()  # the holder is gone: now it is stale
    assert again.status is Status.PAUSED and "work.txt" in on_branch(git_repo, again.branch)


def test_a_stale_packed_refs_lock_from_a_killed_kill_is_removed(squad: Squad, git_repo: Path) -> None:
    inst = squad.new("refs")
    inst.start()
    record(squad, "refs", "kill")
    (git_repo / ".git" / "packed-refs.lock").write_text("")
    fresh(squad)["refs"].kill()
    assert branches(git_repo) == {"main"} and not (git_repo / ".git" / "packed-refs.lock").exists()


@pytest.mark.parametrize("dot_git", ["kept", "removed"])
def test_a_half_removed_worktree_is_never_committed_as_deletions(squad: Squad, git_repo: Path,
                                                                 dot_git: str) -> None:
    inst = squad.new("half")
    inst.start()
    out = Path(inst.worktree_path) / "demo-output"
    out.mkdir()
    for n in range(4):
        (out / f"{n}.txt").write_text(f"{n}\n")
    git(inst.worktree_path, "add", "-A")
    git(inst.worktree_path, "commit", "-q", "-m", "agent work")
    (out / "4.txt").write_text("uncommitted\n")
    # what `git worktree remove` killed part-way leaves: some files gone, maybe .git too
    record(squad, "half", "pause")
    (out / "0.txt").unlink()
    (Path(inst.worktree_path) / "README.md").unlink()
    if dot_git == "removed":
        (Path(inst.worktree_path) / ".git").unlink()
    again = fresh(squad)["half"]
    report = again.pause()
    assert again.status is Status.PAUSED
    tip = on_branch(git_repo, again.branch)
    assert {"README.md", "demo-output/0.txt", "demo-output/4.txt"} <= tip
    assert set(report.not_deleted) == {"README.md", "demo-output/0.txt"}
    assert "not committed as deletions" in str(report)
    again.resume()
    assert (out / "0.txt").read_text() == "0\n" and (out / "4.txt").exists()


def test_a_plain_pause_commits_the_agents_deletions(squad: Squad, git_repo: Path) -> None:
    inst = squad.new("plain")
    inst.start()
    (Path(inst.worktree_path) / "README.md").unlink()
    (Path(inst.worktree_path) / "new.txt").write_text("new\n")
    report = inst.pause()
    assert report.not_deleted == ()
    tip = on_branch(git_repo, inst.branch)
    assert "new.txt" in tip and "README.md" not in tip


def ignore(repo: Path, patterns: str) -> None:
    """Commit a .gitignore with ``patterns`` to the repository the instances branch from."""
    (repo / ".gitignore").write_text(patterns)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore")


def test_ignored_files_survive_pause_and_resume(squad: Squad, git_repo: Path) -> None:
    ignore(git_repo, ".env\nbuild/\n")
    inst = squad.new("ignored")
    inst.start()
    wt = Path(inst.worktree_path)
    (wt / ".env").write_text("SECRET=1\n")
    (wt / "build").mkdir()
    (wt / "build" / "out.bin").write_bytes(b"\0" * 1000)
    report = inst.pause()
    assert set(report.archived) == {".env", "build/out.bin"} and not report.dropped
    assert Path(report.archive).is_file() and not wt.exists()
    inst.resume()
    assert (wt / ".env").read_text() == "SECRET=1\n" and (wt / "build" / "out.bin").stat().st_size == 1000
    assert not Path(report.archive).exists()


def test_ignored_files_over_the_limit_are_named_in_the_result(squad: Squad, git_repo: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_archive, "LIMIT", 100)
    ignore(git_repo, "*.log\n")
    inst = squad.new("big")
    inst.start()
    wt = Path(inst.worktree_path)
    (wt / "small.log").write_text("s\n")
    (wt / "huge.log").write_text("x" * 500)
    result = BatchExecutor().execute([inst], BatchPauseOperation())
    report = result.results[0].value
    assert report.archived == ("small.log",) and report.dropped == ("huge.log",)
    assert "DROPPED 1 ignored file" in str(report) and "huge.log" in str(report)
    assert "huge.log" in result.to_dataframe()["value"].astype(str)[0]
    assert (squad.home / "archives" / f"{inst.session_name}.dropped.txt").read_text() == "huge.log\n"


def test_the_repository_lock_is_held_across_processes(squad: Squad, git_repo: Path) -> None:
    git(git_repo, "branch", "doomed")
    lock = git_repo / ".git" / "squadnb.flock"
    holder = subprocess.Popen([sys.executable, "-c", f"import fcntl,time; f=open({str(lock)!r},'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"

        async def deleting() -> object:
            return await asyncio.wait_for(squad.git.delete_branch(str(git_repo), "doomed"), 1.0)

        with pytest.raises(asyncio.TimeoutError):
            run_sync(deleting())  # a ref write waits for the other process
        assert git(git_repo, "branch", "--list", "doomed")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    run_sync(deleting())  # released with its process, and nothing left held here
    assert not git(git_repo, "branch", "--list", "doomed")


def test_a_start_cancelled_right_after_new_session_leaves_no_session(
        squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    inst = squad.new("cancelled", program="sleep 30")
    real = squad.tmux.runner

    async def cancel_after_new_session(argv, **kwargs):  # type: ignore[no-untyped-def]
        done = await real(argv, **kwargs)
        if "new-session" in argv:
            raise asyncio.CancelledError
        return done

    squad.tmux.runner = cancel_after_new_session
    with pytest.raises(concurrent.futures.CancelledError):
        run_sync(inst.astart())
    squad.tmux.runner = real
    assert inst.session_name not in tmux_sessions(tmux_socket)
    assert inst.status is Status.NEW and branches(git_repo) == {"main"}
    assert not any(squad.worktrees_dir.rglob("README.md"))


def test_a_batch_start_cut_by_its_deadline_is_cancelled_and_leaves_nothing(
        squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    instances = [squad.new(f"slow-{i}", program="sleep 30") for i in range(3)]
    result = BatchExecutor(max_concurrency=3).execute(instances, BatchStartOperation(), deadline=0.5)
    assert {r.status for r in result.results} == {"cancelled"}
    assert not tmux_sessions(tmux_socket) & {i.session_name for i in instances}
    assert branches(git_repo) == {"main"} and all(i.status is Status.NEW for i in instances)


@pytest.mark.parametrize("where", ["outside", "relative"])
def test_a_worktree_path_squadnb_did_not_make_is_refused(squad: Squad, tmp_path: Path, where: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    inst = squad.new("tampered")
    inst.start()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine\n")
    state = squad.home / "state.json"
    data = json.loads(state.read_text())
    data["instances"][0]["worktree"]["worktree_path"] = str(victim) if where == "outside" else "victim"
    state.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)  # a relative path resolves here; restored after the test
    again = fresh(squad)["tampered"]
    for call in (again.pause, again.kill):
        with pytest.raises(UnsafePath, match="instance 'tampered': .*victim.* is not inside") as caught:
            call()
        assert caught.value.instance == "tampered"
    assert (victim / "precious.txt").read_text() == "mine\n"
    data["instances"][0]["worktree"]["worktree_path"] = inst.worktree_path
    state.write_text(json.dumps(data))


def test_a_transition_still_running_in_a_live_process_is_not_touched(squad: Squad) -> None:
    inst = squad.new("busy")
    inst.start()
    squad._intents.begin("busy", "pause")
    data = json.loads(squad._intents.path.read_text())
    data["transitions"]["busy"]["pid"] = os.getppid()
    squad._intents.path.write_text(json.dumps(data))
    with pytest.raises(InvalidState, match=f"its pause is still running in process {os.getppid()}"):
        fresh(squad)["busy"].pause()
    squad._intents.end("busy")


def test_a_record_whose_pid_a_later_process_took_is_finished_not_refused(squad: Squad) -> None:
    """After a reboot the recorder's pid may belong to a new process: one that started after the
    record was written is not the recorder, so the pause is finished instead of refused forever."""
    inst = squad.new("rebooted")
    inst.start()
    squad._intents.begin("rebooted", "pause")
    data = json.loads(squad._intents.path.read_text())
    time.sleep(1.5)  # past the second of slack /proc's rounded boot time needs
    later = subprocess.Popen(["sleep", "30"])
    try:
        data["transitions"]["rebooted"]["pid"] = later.pid
        squad._intents.path.write_text(json.dumps(data))
        again = fresh(squad)["rebooted"]
        assert again.pause() is not None and again.status is Status.PAUSED
    finally:
        later.kill()
        later.wait()
    assert squad._intents.load() == {}


def test_a_session_left_alive_by_claude_squads_pause_is_ended_on_resume(
        squad: Squad, tmux_socket: str) -> None:
    inst = squad.new("cs paused")
    inst.start()
    inst.pause()
    tmux(tmux_socket, "new-session", "-d", "-s", inst.session_name, "sleep 60")
    inst.resume()
    assert inst.status is Status.RUNNING
    wait_for(lambda: "demo>" in inst.preview(), what="the resumed demo agent")


def test_doctor_reports_then_repairs_without_deleting_work(squad: Squad, git_repo: Path,
                                                           tmux_socket: str) -> None:
    healthy = squad.new("healthy")
    healthy.start()
    half = squad.new("half paused")
    half.start()
    (Path(half.worktree_path) / "half.txt").write_text("half\n")
    record(squad, "half paused", "pause")
    # a worktree no instance records, with uncommitted work on its own branch
    orphan = squad.worktrees_dir / "test" / "orphan_1"
    git(git_repo, "worktree", "add", "-q", "-b", "test/orphan", str(orphan))
    (orphan / "orphan-work.txt").write_text("precious\n")
    git(git_repo, "branch", "test/leftover")
    stray = squad.worktrees_dir / "junk_2"
    stray.mkdir(parents=True)
    (stray / "note.txt").write_text("keep me\n")
    tmux(tmux_socket, "new-session", "-d", "-s", squad.session_name_for("ghost"), "sleep 60")
    (git_repo / ".git" / "packed-refs.lock").write_text("")

    report = squad.doctor()
    assert list(report.columns) == ["kind", "instance", "path", "detail", "repaired"]
    kinds = set(zip(report["kind"], report["instance"]))
    assert ("half-done transition", "half paused") in kinds
    assert {"orphan worktree", "orphan branch", "stray directory", "orphan session",
            "stale lock"} <= set(report["kind"])
    assert not report["repaired"].any()
    assert "leftover" in " ".join(report["path"]) and orphan.is_dir()  # nothing touched

    fixed = squad.doctor(repair=True)
    repaired = dict(zip(fixed["kind"], fixed["repaired"]))
    assert repaired["half-done transition"] and repaired["orphan worktree"]
    assert repaired["stray directory"] and repaired["orphan session"]
    assert not (git_repo / ".git" / "packed-refs.lock").exists()  # by the finished pause, or by itself
    assert not repaired["orphan branch"]
    assert fresh(squad)["half paused"].status is Status.PAUSED
    assert "half.txt" in on_branch(git_repo, "test/half-paused")
    assert not orphan.exists() and git(git_repo, "show", "test/orphan:orphan-work.txt") == "precious\n"
    assert {"test/leftover", "test/orphan"} <= branches(git_repo)
    assert (squad.home / "lost+found" / "junk_2" / "note.txt").read_text() == "keep me\n"
    assert squad.session_name_for("ghost") not in tmux_sessions(tmux_socket)
    assert healthy.tmux_alive()
    again = squad.doctor()
    assert set(again["kind"]) <= {"orphan branch"}


def test_doctor_reports_an_entry_outside_the_home_and_leaves_it(squad: Squad, tmp_path: Path) -> None:
    inst = squad.new("elsewhere")
    inst.start()
    state = squad.home / "state.json"
    data = json.loads(state.read_text())
    real = data["instances"][0]["worktree"]["worktree_path"]
    data["instances"][0]["worktree"]["worktree_path"] = str(tmp_path)
    state.write_text(json.dumps(data))
    report = fresh(squad).doctor(repair=True)
    row = report[report["kind"] == "outside the home"].iloc[0]
    assert row["instance"] == "elsewhere" and row["path"] == str(tmp_path) and not row["repaired"]
    data["instances"][0]["worktree"]["worktree_path"] = real
    state.write_text(json.dumps(data))


def test_doctor_removes_only_stale_locks(squad: Squad, git_repo: Path) -> None:
    squad.new("one").start()
    stale = git_repo / ".git" / "packed-refs.lock"
    stale.write_text("")
    held = git_repo / ".git" / "config.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"import time; f=open({str(held)!r},'w'); "
                               "print('ok', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        report = squad.doctor(repair=True)
        locks = report[report["kind"] == "stale lock"]
        assert locks["path"].tolist() == [str(stale)] and locks["repaired"].all()
        assert not stale.exists() and held.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
        held.unlink()


def test_a_resume_killed_between_worktree_add_and_checkout_is_finished(squad: Squad,
                                                                        git_repo: Path) -> None:
    inst = squad.new("unchecked")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("kept\n")
    inst.pause()
    record(squad, "unchecked", "resume")
    git(git_repo, "worktree", "add", "-q", "--no-checkout", inst.worktree_path, inst.branch)
    again = fresh(squad)["unchecked"]
    again.resume()
    assert (Path(again.worktree_path) / "work.txt").read_text() == "kept\n"
    assert git(again.worktree_path, "status", "--porcelain") == ""
    again.pause()
    assert {"README.md", "work.txt"} <= on_branch(git_repo, again.branch)


@pytest.mark.parametrize("then", ["restart", "doctor", "pause", "kill", "resume"])
def test_a_restart_killed_before_its_session_is_finished_or_dropped_by_the_next_call(
        squad: Squad, git_repo: Path, tmux_socket: str, then: str) -> None:
    inst = squad.new("restarted")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("kept\n")
    inst.stop()
    record(squad, "restarted", "restart")  # killed before tmux new-session
    again = fresh(squad)["restarted"]
    if then == "restart":
        again.restart()
    elif then == "doctor":
        report = again.squad.doctor(repair=True)
        assert report[report["kind"] == "half-done transition"]["repaired"].tolist() == [True]
        again = fresh(squad)["restarted"]
    elif then == "resume":
        with pytest.raises(InvalidState, match="instance 'restarted': resume failed: it is not paused"):
            again.resume()
    else:
        getattr(again, then)()
    assert not fresh(squad)._intents.load()
    if then in ("restart", "doctor"):  # started again, with its continue flag, in its worktree
        assert again.status is Status.RUNNING and fresh(squad)["restarted"].status is Status.RUNNING
        wait_for(lambda: "continuing after" in again.preview(), what="the continue flag's line")
        assert tmux(tmux_socket, "display-message", "-p", "-t", f"={again.session_name}:",
                    "#{pane_current_path}").stdout.strip() == again.worktree_path
    else:  # a pause or kill does not start the program only to stop it; a resume is refused
        assert not list(squad.logs_dir.glob(f"{again.session_name}_*.log"))
        assert again.session_name not in tmux_sessions(tmux_socket)
        assert again.status is {"pause": Status.PAUSED, "kill": Status.DEAD,
                                "resume": Status.DEAD}[then]
    if then == "pause":
        assert "work.txt" in on_branch(git_repo, again.branch)
    if then == "kill":
        assert branches(git_repo) == {"main"} and "restarted" not in fresh(squad)


@pytest.mark.parametrize("pane", ["alive", "dead"])
def test_a_restart_killed_after_its_session_keeps_a_live_program_and_relaunches_a_dead_one(
        squad: Squad, tmux_socket: str, pane: str) -> None:
    inst = squad.new("half restarted")
    inst.start()
    inst.stop()
    record(squad, "half restarted", "restart")  # killed after tmux new-session
    program = "sleep 60" if pane == "alive" else "true"
    tmux(tmux_socket, "new-session", "-d", "-s", inst.session_name, "-c", inst.worktree_path, program,
         ";", "set-option", "-w", "-t", f"={inst.session_name}:", "remain-on-exit", "on")
    again = fresh(squad)["half restarted"]
    again.restart()
    assert again.status is Status.RUNNING and not fresh(squad)._intents.load()
    command = tmux(tmux_socket, "display-message", "-p", "-t", f"={again.session_name}:",
                   "#{pane_current_command}").stdout.strip()
    if pane == "alive":
        assert command == "sleep"  # adopted, not started twice
    else:
        wait_for(lambda: "continuing after" in again.preview(), what="the relaunched agent")


def test_a_record_left_by_an_earlier_instance_of_the_title_is_not_applied_to_a_new_one(
        squad: Squad, git_repo: Path) -> None:
    squad.new("reused").start()
    squad["reused"].kill()
    record(squad, "reused", "kill")  # a kill killed after it removed the instance from the files
    inst = squad.new("reused")
    inst.start()
    (Path(inst.worktree_path) / "work.txt").write_text("new work\n")
    inst.pause()
    assert inst.status is Status.PAUSED and "work.txt" in on_branch(git_repo, inst.branch)
    assert not fresh(squad)._intents.load()


@pytest.mark.parametrize("then", ["pause", "resume"])
def test_an_interrupted_kill_is_finished_by_pause_or_resume_which_say_it_is_gone(
        squad: Squad, git_repo: Path, tmux_socket: str, then: str) -> None:
    inst = squad.new("killed")
    inst.start()
    if then == "resume":
        inst.pause()
    record(squad, "killed", "kill")
    with pytest.raises(InvalidState, match=f"instance 'killed': {then} failed: an interrupted kill "
                                           "of it was finished: it is gone"):
        getattr(fresh(squad)["killed"], then)()
    again = fresh(squad)
    assert "killed" not in again and not again._intents.load() and branches(git_repo) == {"main"}
    assert inst.session_name not in tmux_sessions(tmux_socket) and not os.path.lexists(inst.worktree_path)
    assert again.doctor().empty


@pytest.mark.parametrize("late", ["start", "new and start"])
def test_doctor_never_repairs_what_another_process_made_after_it_read_the_files(
        squad: Squad, tmux_socket: str, late: str) -> None:
    """doctor reads the files first and then asks tmux and git; an instance another process makes
    or starts in between looks like an orphan session, an orphan worktree and a stray directory.
    Before repairing any of them, doctor reads the files again: the instance is there."""
    other = fresh(squad)
    if late == "start":
        other.new("late", program=demo_program())
    doctor = fresh(squad)
    real_sessions = doctor.tmux.sessions

    async def sessions_after_the_other_started() -> list[str]:
        inst = (await other.anew("late", program=demo_program()) if late != "start"
                else other["late"])
        await inst.astart()
        Path(inst.worktree_path, "work.txt").write_text("the agent's\n")
        return await real_sessions()

    doctor.tmux.sessions = sessions_after_the_other_started  # type: ignore[method-assign]
    findings = doctor.doctor(repair=True)
    assert findings.empty, findings.to_dict("records")
    inst = fresh(squad)["late"]
    assert inst.status is Status.RUNNING and inst.tmux_alive()
    assert Path(inst.worktree_path, "work.txt").read_text() == "the agent's\n"
    assert not (squad.home / "lost+found").exists()


def test_a_start_killed_after_it_saved_running_leaves_a_record_the_next_call_drops(
        squad: Squad) -> None:
    """SIGKILL between a start's last state write (RUNNING) and the removal of its record."""
    inst = squad.new("started")
    inst.start()
    squad._intents.begin("started", "start")
    data = json.loads(squad._intents.path.read_text())
    data["transitions"]["started"]["pid"] = dead_pid()
    squad._intents.path.write_text(json.dumps(data))
    again = fresh(squad)["started"]
    assert again.status is Status.RUNNING
    again.pause()
    assert again.status is Status.PAUSED and squad._intents.load() == {}
