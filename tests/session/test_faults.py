"""Bad input and faults: each a clear error naming the instance and the cause, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import branches, git, tmux, tmux_sessions, wait_for

import squadnb
from squadnb.errors import (BranchCheckedOut, DuplicateTitle, GitError, InvalidState, InvalidTitle,
                            NotAGitRepo, ProgramExited, StateFileError)
from squadnb.session import Squad, Status


def leftovers(squad: Squad, repo: Path, socket: str) -> tuple[set[str], list[Path], set[str]]:
    sessions = {s for s in tmux_sessions(socket) if s.startswith("squadnb_")}
    trees = list(squad.worktrees_dir.rglob("*")) if squad.worktrees_dir.exists() else []
    return branches(repo) - {"main"}, trees, sessions


@pytest.mark.parametrize("title", ["", "   "])
def test_empty_title(squad: Squad, title: str) -> None:
    with pytest.raises(InvalidTitle, match="non-empty title"):
        squad.new(title)
    assert len(squad) == 0


def test_duplicate_titles(squad: Squad, tmux_socket: str) -> None:
    squad.new("twin")
    with pytest.raises(DuplicateTitle, match="instance 'twin' already exists"):
        squad.new("twin")
    squad.new("a b")
    with pytest.raises(DuplicateTitle, match="'squadnb_a_b' is taken by instance 'a b'"):
        squad.new("a.b")
    assert tmux(tmux_socket, "new-session", "-d", "-s", "squadnb_taken", "sleep 300").returncode == 0
    try:
        with pytest.raises(DuplicateTitle, match="instance 'taken': a tmux session named"):
            squad.new("taken")
        # a live session appearing between new() and start() is caught before anything is created
        squad.new("late")
        tmux(tmux_socket, "new-session", "-d", "-s", "squadnb_late", "sleep 300")
        with pytest.raises(DuplicateTitle, match="instance 'late': start failed: a tmux session"):
            squad["late"].start()
        assert squad["late"].status is Status.NEW and list(squad.worktrees_dir.glob("*")) == []
    finally:
        tmux(tmux_socket, "kill-session", "-t", "=squadnb_taken")
        tmux(tmux_socket, "kill-session", "-t", "=squadnb_late")
    assert [i.title for i in squad.instances] == ["twin", "a b", "late"]


@pytest.mark.parametrize("title, session, branch", [
    ("fix the login", "squadnb_fix_the_login", "test/fix-the-login"),
    ("v1.2.", "squadnb_v1_2_", "test/v1.2"),
    ("a:b", "squadnb_a_b", "test/ab"),
    ("feat/x..y", "squadnb_feat_x__y", "test/feat/x.y"),
    ("修正", "squadnb___", "test/t-"),
])
def test_awkward_titles_work_end_to_end(squad: Squad, git_repo: Path, tmux_socket: str, title: str,
                                        session: str, branch: str) -> None:
    inst = squad.new(title)
    inst.start()
    assert inst.session_name == session and session in tmux_sessions(tmux_socket)
    assert inst.branch.startswith(branch) and inst.branch in branches(git_repo)
    inst.send_prompt("go")
    wait_for(lambda: (Path(inst.worktree_path) / "demo-output" / "1.txt").exists(), what="output")
    inst.pause()
    inst.resume()
    inst.kill()
    assert leftovers(squad, git_repo, tmux_socket) == (set(), [], set())


def test_killing_one_of_two_prefix_titles_never_touches_the_other(squad: Squad,
                                                                  tmux_socket: str) -> None:
    short, long = squad.new("foo"), squad.new("foobar")
    short.start()
    long.start()
    # with foo's session already gone, a prefix target would hit foobar
    tmux(tmux_socket, "kill-session", "-t", "=squadnb_foo")
    assert short.refresh_status() is Status.DEAD
    assert short.preview() == ""  # never foobar's pane
    short.kill()
    assert "squadnb_foobar" in tmux_sessions(tmux_socket) and long.tmux_alive()
    assert long.refresh_status() is not Status.DEAD
    long.kill()


def test_not_a_git_repo_and_repo_without_commit(tmp_path: Path, tmux_socket: str) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotAGitRepo, match=r"instance 'x': .*not inside a git repository"):
        Squad(home=tmp_path / "h1", repo=plain, tmux_socket=tmux_socket).new("x")
    with pytest.raises(NotAGitRepo, match="not a directory"):
        Squad(home=tmp_path / "h2", repo=tmp_path / "missing", tmux_socket=tmux_socket).new("x")
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    with pytest.raises(NotAGitRepo, match="brand new repository: please create an initial commit"):
        Squad(home=tmp_path / "h3", repo=empty, tmux_socket=tmux_socket).new("x")


@pytest.mark.parametrize("program, status, shown", [
    ("no-such-agent-program-zz", 127, "not found"),
    # nothing shown (tmux 3.3a drops a dying pane's last output now and then): the status says it
    ("sh -c 'exit 127'", 127, "command not found"),
    ("python3 -c 'import sys; print(\"boom\"); sys.exit(3)'", 3, "boom"),
])
def test_a_program_that_exits_at_start_leaves_nothing(squad: Squad, git_repo: Path, tmux_socket: str,
                                                      program: str, status: int, shown: str) -> None:
    inst = squad.new("doomed", program=program)
    with pytest.raises(ProgramExited) as info:
        inst.start()
    assert info.value.program == program and info.value.exit_status == status
    assert "instance 'doomed': start failed: program" in str(info.value)
    assert program in str(info.value) and f"exit status {status}" in str(info.value)
    assert shown in str(info.value)
    assert leftovers(squad, git_repo, tmux_socket) == (set(), [], set())
    assert inst.status is Status.NEW and "doomed" in squad
    assert git(git_repo, "worktree", "list").count("\n") == 1


def test_branch_checked_out_in_another_worktree(squad: Squad, git_repo: Path, tmp_path: Path) -> None:
    git(git_repo, "branch", "feature")
    git(git_repo, "worktree", "add", "-q", str(tmp_path / "elsewhere"), "feature")
    with pytest.raises(BranchCheckedOut, match=r"instance 'f': start failed: branch 'feature' is "
                                               r"checked out in the worktree at .*elsewhere"):
        squad.new("f", branch="feature").start()
    with pytest.raises(BranchCheckedOut, match="branch 'main'"):
        squad.new("m", branch="main").start()
    assert list(squad.worktrees_dir.glob("*")) == []
    # resume refuses while the paused branch is checked out in the main checkout
    inst = squad.new("r")
    inst.start()
    inst.pause()
    git(git_repo, "checkout", "-q", inst.branch)
    with pytest.raises(BranchCheckedOut, match="instance 'r': resume failed"):
        inst.resume()
    assert inst.status is Status.PAUSED
    with pytest.raises(BranchCheckedOut, match="instance 'r': kill failed"):
        inst.kill()
    git(git_repo, "checkout", "-q", "main")
    inst.resume()
    inst.kill()
    assert inst.branch not in branches(git_repo)


def test_dead_tmux_server_makes_instances_dead_and_kill_still_cleans(
        tmp_path: Path, git_repo: Path) -> None:
    from squadnb.agents import demo_program

    socket = f"squadnb-test-dead-{os.getpid()}-{tmp_path.name}"
    squad = Squad(home=tmp_path / "home", repo=git_repo, program=demo_program(0.1),
                  tmux_socket=socket, branch_prefix="test/")
    try:
        a, b = squad.new("a"), squad.new("b")
        a.start()
        b.start()
        b.pause()
        squad.kill_server()
        squad.refresh()  # never raises
        assert a.status is Status.DEAD and b.status is Status.PAUSED
        # DEAD never reaches a claude-squad file: written as READY (1), recomputed on load
        entries = json.loads((squad.home / "state.json").read_text())["instances"]
        assert {e["title"]: e["status"] for e in entries} == {"a": 1, "b": 3}
        reloaded = Squad(home=squad.home, repo=git_repo, tmux_socket=socket)
        assert reloaded["a"].status is Status.READY
        reloaded.refresh()
        assert reloaded["a"].status is Status.DEAD and reloaded["b"].status is Status.PAUSED
        assert squad.to_dataframe().set_index("title")["alive"].to_dict() == {"a": False, "b": False}
        with pytest.raises(InvalidState, match="instance 'a': send prompt failed: .*DEAD"):
            a.send_prompt("hello")
        worktree = a.worktree_path
        a.kill()
        b.kill()
        assert not Path(worktree).exists() and branches(git_repo) == {"main"}
        assert len(squad) == 0
    finally:
        tmux(socket, "kill-server")


def test_a_session_killed_behind_our_back_is_dead_while_the_server_lives(squad: Squad,
                                                                         tmux_socket: str) -> None:
    gone, alive = squad.new("gone"), squad.new("alive")
    gone.start()
    alive.start()
    tmux(tmux_socket, "kill-session", "-t", f"={gone.session_name}")
    assert not gone.tmux_alive() and alive.tmux_alive()
    squad.refresh()
    assert gone.status is Status.DEAD and alive.status is not Status.DEAD
    gone.kill()
    alive.kill()


def test_kill_server_removes_its_socket_file(tmp_path: Path, git_repo: Path) -> None:
    from squadnb.agents import demo_program

    squad = Squad(home=tmp_path / "home", repo=git_repo, program=demo_program(0.1),
                  tmux_socket=f"squadnb-test-sock-{os.getpid()}-{tmp_path.name}")
    squad.new("a").start()
    assert squad.tmux.socket_path.exists()
    squad["a"].kill()
    squad.kill_server()
    assert not squad.tmux.socket_path.exists()


def test_worktree_deleted_by_hand(squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    paused, killed = squad.new("pause me"), squad.new("kill me")
    paused.start()
    killed.start()
    shutil.rmtree(paused.worktree_path)
    shutil.rmtree(killed.worktree_path)
    paused.pause()  # nothing to commit; the worktree record is pruned
    assert paused.status is Status.PAUSED
    paused.resume()  # re-created from the branch
    assert (Path(paused.worktree_path) / "README.md").exists()
    killed.kill()
    assert killed.branch not in branches(git_repo)
    assert "kill me" not in git(git_repo, "worktree", "list")
    paused.kill()
    assert leftovers(squad, git_repo, tmux_socket) == (set(), [], set())


def test_a_failed_pause_commit_restores_the_instance(squad: Squad, git_repo: Path,
                                                     tmux_socket: str) -> None:
    inst = squad.new("stuck")
    inst.start()
    (Path(inst.worktree_path) / "new.txt").write_text("work\n")
    lock = Path(git(inst.worktree_path, "rev-parse", "--path-format=absolute", "--git-path",
                    "index.lock").strip())
    # held open by a live process: not stale, so git add fails on it
    holder = subprocess.Popen([sys.executable, "-c", f"import time; f=open({str(lock)!r},'w'); "
                               "print('ok', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        with pytest.raises(GitError, match="instance 'stuck': pause failed: git add failed"):
            inst.pause()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert inst.status is Status.RUNNING and (Path(inst.worktree_path) / "new.txt").exists()
    assert inst.session_name in tmux_sessions(tmux_socket) and inst.tmux_alive()
    inst.pause()  # the lock is stale now that its holder is gone: removed before the commit
    assert not lock.exists()
    assert "new.txt" in git(git_repo, "show", "--name-only", "--format=", inst.branch)
    inst.kill()


def test_corrupt_state_file_is_reported_and_kept(squad: Squad) -> None:
    squad.new("one")
    state = squad.home / "state.json"
    state.write_text("{not json")
    with pytest.raises(StateFileError, match=r"state.json is not valid JSON .*left as is"):
        Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux_socket)
    with pytest.raises(StateFileError):
        squad.new("two")
    assert state.read_text() == "{not json"
    state.write_text(json.dumps({"instances": [{"status": 1}]}))
    with pytest.raises(StateFileError, match=r"state.json: instances\[0\].title: is missing"):
        Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux_socket)
    state.unlink()


def test_operations_in_the_wrong_state_are_refused(squad: Squad) -> None:
    inst = squad.new("early")
    with pytest.raises(InvalidState, match="instance 'early': pause failed: .*not started"):
        inst.pause()
    with pytest.raises(InvalidState, match="instance 'early': resume failed: it is not started"):
        inst.resume()
    with pytest.raises(ValueError, match="the prompt is empty"):
        inst.send_prompt("  ")
    inst.start()
    with pytest.raises(InvalidState, match="already started"):
        inst.start()
    inst.pause()
    with pytest.raises(InvalidState, match="instance 'early': pause failed: it is already paused"):
        inst.pause()
    assert inst.preview() == ""
    inst.kill()


def _crash_during_start(squad: Squad, title: str) -> None:
    """Start ``title`` in another process and SIGKILL it once the worktree and session exist (the
    program, silent ``sleep``, keeps the start waiting for it to settle)."""
    code = (f"from squadnb.session import Squad; Squad(home={str(squad.home)!r}, repo={squad.repo!r}, "
            f"tmux_socket={squad.tmux.socket!r})[{title!r}].start()")
    env = {**os.environ, "PYTHONPATH": str(Path(squadnb.__file__).parent.parent)}
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        wait_for(lambda: list(squad.worktrees_dir.rglob("README.md")), what="the worktree's files")
        wait_for(lambda: squad.session_name_for(title) in tmux_sessions(squad.tmux.socket),
                 what="the session of the start")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("then", ["start", "kill"])
def test_a_start_killed_part_way_is_cleaned_up_by_the_next_start_or_kill(
        squad: Squad, git_repo: Path, then: str) -> None:
    squad.new("crash", program="sleep 30")
    _crash_during_start(squad, "crash")
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux.socket)
    inst = again["crash"]
    assert inst.status is Status.NEW and Path(inst.worktree_path).is_dir()  # what it left is named
    assert again._intents.get("crash").action == "start"  # and its record, by a dead process
    left_behind, branch = inst.worktree_path, inst.branch
    assert branch in branches(git_repo)
    if then == "start":
        inst.start()
        assert inst.status is Status.RUNNING and inst.branch == branch  # the same branch, made again
        assert not Path(left_behind).exists() and Path(inst.worktree_path).is_dir()
        assert len(git(git_repo, "worktree", "list").splitlines()) == 2
        assert tmux_sessions(squad.tmux.socket) >= {inst.session_name}
    inst.kill()
    assert branches(git_repo) == {"main"} and not Path(left_behind).exists()
    assert len(git(git_repo, "worktree", "list").splitlines()) == 1
    assert inst.session_name not in tmux_sessions(squad.tmux.socket) and len(again) == 0
    assert again._intents.load() == {}  # the start's record went with what it left


def test_a_pause_cut_short_after_removing_the_worktree_is_finished_by_pausing_again(
        squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    inst = squad.new("half paused")
    inst.start()
    # What a pause killed between its worktree removal and its state save leaves behind:
    (Path(inst.worktree_path) / "work.txt").write_text("kept\n")
    git(inst.worktree_path, "add", "-A")
    git(inst.worktree_path, "commit", "-q", "-m", "[claudesquad] update (paused)")
    tmux(tmux_socket, "kill-session", "-t", f"={inst.session_name}")
    git(git_repo, "worktree", "remove", "-f", inst.worktree_path)
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
    again.refresh()
    assert again["half paused"].status is Status.DEAD
    again["half paused"].pause()
    assert again["half paused"].status is Status.PAUSED
    again["half paused"].resume()
    assert (Path(again["half paused"].worktree_path) / "work.txt").read_text() == "kept\n"
    again["half paused"].kill()
