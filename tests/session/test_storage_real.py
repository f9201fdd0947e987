"""The home's files against real tmux and git: no lost updates between squads and processes, a full
disk and a read-only home, a write on disk before the call returns, and claude-squad alongside."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from helpers import git, tmux_sessions, wait_for

import squadnb
from squadnb.agents import demo_program
from squadnb.cli import main
from squadnb.errors import ClaudeSquadRunning, DuplicateTitle, InvalidState, StateWriteError
from squadnb.session import Squad, Status
from squadnb.session._claude_squad import claude_squad_pids
from squadnb.session._storage import DIFF_TEXT_LIMIT


def disk(home: Path, name: str = "state.json") -> dict[str, dict]:
    path = home / name
    if not path.exists():
        return {}
    return {e["title"]: e for e in json.loads(path.read_text())["instances"]}


def python(code: str, timeout: float = 300) -> subprocess.Popen[str]:
    root = str(Path(squadnb.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def twin(squad: Squad) -> Squad:
    """A second Squad object on the same home (another process, as far as the files go)."""
    return Squad(home=squad.home, repo=squad.repo, program=squad.program,
                 tmux_socket=squad.tmux_socket, branch_prefix="test/")


# ------------------------------------------------------------------ lost updates
def test_a_refresh_that_read_before_a_pause_never_reverts_it(squad: Squad) -> None:
    inst = squad.new("p")
    inst.start()
    other = twin(squad)  # reads RUNNING now
    assert other["p"].status is Status.RUNNING
    inst.pause()
    assert disk(squad.home)["p"]["status"] == 3
    # the other squad's pane look finds the session gone (DEAD) and saves what it saw
    assert other["p"].refresh_status() is Status.PAUSED  # it takes the newer status instead
    other.refresh()
    assert disk(squad.home)["p"]["status"] == 3 and other["p"].status is Status.PAUSED
    inst.resume()
    assert disk(squad.home)["p"]["status"] == 0


def test_a_write_changes_only_the_fields_its_caller_changed(squad: Squad) -> None:
    inst = squad.new("f")
    inst.start()
    other = twin(squad)
    inst.pause()
    other["f"].auto_yes = True  # a field only the other squad changes
    other.save()
    stored = disk(squad.home)["f"]
    assert stored["status"] == 3 and stored["auto_yes"] is True
    assert other["f"].status is Status.PAUSED  # it took the pause in with its write
    squad.refresh()
    assert squad["f"].auto_yes is True


def test_a_call_on_a_copy_read_before_another_process_acted_takes_what_the_files_hold(
        squad: Squad) -> None:
    """A lifecycle call first takes what the files hold now: the other process's pause is seen (no
    second pause), and an instance the other process killed is never acted on or written back."""
    inst = squad.new("k")
    inst.start()
    other = twin(squad)["k"]  # reads RUNNING now
    inst.pause()
    with pytest.raises(InvalidState, match="already paused"):
        other.pause()
    assert other.status is Status.PAUSED
    inst.resume()
    stale = [twin(squad)["k"] for _ in range(4)]  # each RUNNING
    inst.kill()
    branches_before = git(squad.repo, "branch", "--list")
    for copy, call in zip(stale, ("pause", "resume", "kill", "restart")):
        with pytest.raises(InvalidState, match="instance 'k': another process killed it"):
            getattr(copy, call)()
        assert "k" not in copy.squad  # the squad no longer lists it
    assert "k" not in disk(squad.home) and "k" not in disk(squad.home, "pending.json")
    assert git(squad.repo, "branch", "--list") == branches_before


def test_a_copy_still_acts_after_claude_squad_rewrote_its_times_in_its_own_format(
        squad: Squad) -> None:
    """cs rewrites state.json whole when it quits, each time in Go's format (nanoseconds, ``Z``):
    the same instant in other text is the same instance, not a new one of the title."""
    inst = squad.new("c")
    inst.start()
    copy = twin(squad)["c"]
    state = squad.home / "state.json"
    data = json.loads(state.read_text())
    created = datetime.fromisoformat(data["instances"][0]["created_at"])
    data["instances"][0]["created_at"] = (created.astimezone(timezone.utc)
                                          .strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z")
    state.write_text(json.dumps(data, indent=2))
    assert copy.pause() is not None and copy.status is Status.PAUSED
    assert disk(squad.home)["c"]["created_at"].endswith("000Z")  # kept as cs wrote it


def test_a_call_on_a_copy_of_an_instance_replaced_since_never_touches_the_new_one(
        squad: Squad) -> None:
    inst = squad.new("r")
    inst.start()
    stale = twin(squad)["r"]
    inst.kill()
    again = squad.new("r")
    again.start()
    with pytest.raises(InvalidState, match="another process killed it and made a new instance"):
        stale.pause()
    assert again.tmux_alive() and disk(squad.home)["r"]["status"] != 3
    again.kill()


def test_two_news_of_one_title_at_once_make_one_instance(squad: Squad) -> None:
    """Another process makes the title between this new()'s look at the files and its write: the
    write must not merge into (take over) that instance."""
    other = twin(squad)
    check = other.git.head_sha

    async def meanwhile(repo: str) -> str:
        await squad.anew("same", program="theirs")
        return await check(repo)

    other.git.head_sha = meanwhile  # type: ignore[method-assign]
    with pytest.raises(DuplicateTitle, match="instance 'same': .*another process made an instance "
                                             "of that title"):
        other.new("same", program="mine")
    stored = disk(squad.home, "pending.json")
    assert list(stored) == ["same"] and stored["same"]["program"] == "theirs"
    assert other["same"].program == "theirs"  # it keeps what the file holds


def test_two_processes_running_batches_on_one_home_and_repository(squad: Squad) -> None:
    """Every operation of both succeeds, and the files hold exactly what both did."""
    script = """
        import json, sys
        from squadnb import BatchExecutor
        from squadnb.ops import BatchKillOperation, BatchPauseOperation, BatchStartOperation
        from squadnb.session import Squad
        me = sys.argv[1] if len(sys.argv) > 1 else "{me}"
        squad = Squad(home={home!r}, repo={repo!r}, program={program!r}, tmux_socket={socket!r},
                      branch_prefix="test/")
        mine = [squad.new(f"{{me}} {{i}}") for i in range(6)]
        ex = BatchExecutor(max_concurrency=3, timeout=120)
        results = [ex.execute(mine, BatchStartOperation(), progress=False),
                   ex.execute(mine[:4], BatchPauseOperation(), progress=False),
                   ex.execute(mine[4:5], BatchKillOperation(), progress=False)]
        squad.refresh()
        print(json.dumps([[r.total, len(r.successes), str(r.error())] for r in results]))
    """
    fields = dict(home=str(squad.home), repo=squad.repo, program=squad.program,
                  socket=squad.tmux_socket)
    procs = [python(script.format(me=me, **fields)) for me in ("one", "two")]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert json.loads(out) == [[6, 6, "None"], [4, 4, "None"], [1, 1, "None"]], err
    state = disk(squad.home)
    titles = {f"{me} {i}" for me in ("one", "two") for i in (0, 1, 2, 3, 5)}
    assert set(state) == titles and disk(squad.home, "pending.json") == {}
    for title, stored in state.items():
        paused = int(title[-1]) < 4
        assert stored["status"] == 3 if paused else stored["status"] in (0, 1), (title, stored)
        assert os.path.isdir(stored["worktree"]["worktree_path"]) is not paused, title
    squad.refresh()
    assert {i.title for i in squad.instances} == titles


# ------------------------------------------------------------------ on disk before the call returns
def test_a_change_is_on_disk_when_the_call_returns(squad: Squad) -> None:
    """SIGKILL right after pause() returns: the pause is in the file."""
    squad.new("k")
    proc = python(f"""
        import os, signal
        from squadnb.session import Squad
        squad = Squad(home={str(squad.home)!r}, repo={squad.repo!r}, program={squad.program!r},
                      tmux_socket={squad.tmux_socket!r}, branch_prefix="test/")
        inst = squad["k"]
        inst.start()
        inst.pause()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    assert disk(squad.home)["k"]["status"] == 3
    squad.refresh()
    assert squad["k"].status is Status.PAUSED
    squad["k"].resume()


def test_diff_text_in_the_state_file_is_capped(squad: Squad) -> None:
    inst = squad.new("big")
    inst.start()
    Path(inst.worktree_path, "big.txt").write_text("".join(f"line {i}\n" for i in range(20_000)))
    stats = inst.diff_stats()
    assert stats.added == 20_000 and len(stats.content) > 100_000
    stored = disk(squad.home)["big"]["diff_stats"]
    assert stored["added"] == 20_000 and len(stored["content"]) < DIFF_TEXT_LIMIT + 100


# ------------------------------------------------------------------ full disk, read-only home
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (unmounted at teardown)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path) -> Path:
    """Write ``mount/filler`` until the disk is full."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        return filler
    finally:
        os.close(fd)


def test_a_full_disk_names_the_instance_and_keeps_memory_as_the_disk(small_disk: Path,
                                                                     git_repo: Path,
                                                                     tmux_socket: str) -> None:
    home = small_disk / "home"
    squad = Squad(home=home, repo=git_repo, program=demo_program(0.1), tmux_socket=tmux_socket,
                  branch_prefix="test/")
    inst = squad.new("full")
    inst.start()
    wait_for(lambda: "demo>" in inst.preview(), what="the demo prompt")
    inst.send_prompt("write a file")
    wait_for(lambda: list(Path(inst.worktree_path, "demo-output").glob("*.txt")), what="its file")
    before = (home / "state.json").read_bytes()
    filler = fill(small_disk)
    try:
        with pytest.raises(StateWriteError, match=r"instance 'full': pause failed: writing "
                                                  r".*(\.log|transitions\.json) failed: No space "
                                                  r"left on device"):
            inst.pause()  # its first step (recording the transition, saving the pane's history)
            # finds the disk full
        assert inst.status is Status.RUNNING and inst.tmux_alive()
        inst.auto_yes = True
        with pytest.raises(StateWriteError, match=r"instance 'full': saving its auto_yes failed: "
                                                  r"writing .*state.json failed: No space left"):
            squad.save()
        assert inst.auto_yes is False  # memory holds what the file holds
        assert (home / "state.json").read_bytes() == before
        # no temporary file is left behind: only the lock files
        assert {p.name for p in home.iterdir() if p.name.startswith(".")} <= {".squadnb.lock",
                                                                              ".transitions.lock"}
    finally:
        filler.unlink()
    inst.pause()
    assert disk(home)["full"]["status"] == 3
    assert "demo-output/1.txt" in git(git_repo, "show", "--name-only", "--format=", inst.branch)
    inst.kill()


def test_ls_on_a_read_only_home_exits_with_a_message(small_disk: Path, git_repo: Path,
                                                     tmux_socket: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    home = small_disk / "home"
    squad = Squad(home=home, repo=git_repo, program=demo_program(0.1), tmux_socket=tmux_socket,
                  branch_prefix="test/")
    inst = squad.new("ro")
    inst.start()
    subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t", f"={inst.session_name}"],
                   check=True)  # the next look sees it DEAD and saves READY over RUNNING
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        before = (home / "state.json").read_bytes()
        code = main(["ls", "--home", str(home), "--socket", tmux_socket])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "instance 'ro'" in err and "Read-only file system" in err
        assert (home / "state.json").read_bytes() == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    squad.refresh()
    squad["ro"].kill()


# ------------------------------------------------------------------ claude-squad alongside
@contextlib.contextmanager
def running_claude_squad(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose executable is named ``claude-squad`` (a copy of ``sleep``), ended on exit."""
    binary = tmp_path / "bin" / "claude-squad"
    binary.parent.mkdir()
    shutil.copy(shutil.which("sleep"), binary)  # type: ignore[arg-type]
    proc = subprocess.Popen([str(binary), "600"])
    try:
        wait_for(lambda: proc.pid in claude_squad_pids(), what="the fake claude-squad")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def cs_squad(tmp_path: Path, git_repo: Path, tmux_socket: str, **kwargs: object) -> Squad:
    return Squad.claude_squad(home=tmp_path / "cs-home", repo=git_repo, tmux_socket=tmux_socket,
                              program=demo_program(0.1), branch_prefix="cs/", **kwargs)  # type: ignore[arg-type]


def test_a_running_claude_squad_is_detected_before_its_state_changes(
        tmp_path: Path, git_repo: Path, tmux_socket: str) -> None:
    squad = cs_squad(tmp_path, git_repo, tmux_socket)
    inst = squad.new("cs a")
    inst.start()
    with running_claude_squad(tmp_path) as running:
        before = (squad.home / "state.json").read_bytes()
        for call in (inst.pause, inst.kill, inst.stop, inst.restart, squad.save):
            with pytest.raises(ClaudeSquadRunning, match=rf"claude-squad is running \(pid "
                               rf"{running.pid}\); quit it first: it rewrites state.json when it "
                               "exits and would undo this") as caught:
                call()
            assert caught.value.pid == running.pid
        assert (squad.home / "state.json").read_bytes() == before and inst.tmux_alive()
        squad.refresh()  # reading and looking are never refused
        squad.force = True
        inst.pause()
        cs_squad(tmp_path, git_repo, tmux_socket, force=True)["cs a"].resume()
    wait_for(lambda: running.pid not in claude_squad_pids(), what="the fake to end")
    squad.refresh()
    squad["cs a"].kill()  # not refused once it has quit
    assert "cs a" not in disk(squad.home)


def test_the_command_refuses_while_claude_squad_runs_unless_forced(
        tmp_path: Path, git_repo: Path, tmux_socket: str, capsys: pytest.CaptureFixture[str]) -> None:
    squad = cs_squad(tmp_path, git_repo, tmux_socket)
    squad.new("cs b").start()
    argv = ["--claude-squad", "--home", str(squad.home), "--repo", str(git_repo), "--socket",
            tmux_socket, "pause", "cs b"]
    with running_claude_squad(tmp_path) as running:
        capsys.readouterr()
        assert main(argv) == 2
        assert f"claude-squad is running (pid {running.pid})" in capsys.readouterr().err
        assert cs_squad(tmp_path, git_repo, tmux_socket)["cs b"].status is not Status.PAUSED
        assert main([*argv, "--force", "--json"]) == 0
    assert cs_squad(tmp_path, git_repo, tmux_socket)["cs b"].status is Status.PAUSED


def test_an_instance_paused_by_claude_squad_resumes(tmp_path: Path, git_repo: Path,
                                                    tmux_socket: str) -> None:
    """claude-squad's pause: commit, remove the worktree, status 3, and the session left running."""
    squad = cs_squad(tmp_path, git_repo, tmux_socket)
    inst = squad.new("cs paused")
    inst.start()
    wait_for(lambda: "demo>" in inst.preview(), what="the demo prompt")
    Path(inst.worktree_path, "work.txt").write_text("work\n")
    git(inst.worktree_path, "add", "-A")
    git(inst.worktree_path, "commit", "-q", "-m", "[claudesquad] update (paused)")
    git(git_repo, "worktree", "remove", "-f", inst.worktree_path)
    git(git_repo, "worktree", "prune")
    state = json.loads((squad.home / "state.json").read_text())
    state["instances"][0]["status"] = 3
    (squad.home / "state.json").write_text(json.dumps(state, indent=2))
    old_pane = subprocess.run(["tmux", "-L", tmux_socket, "display-message", "-p", "-t",
                               f"={inst.session_name}:", "#{pane_pid}"], capture_output=True,
                              text=True, check=True).stdout.strip()

    reopened = cs_squad(tmp_path, git_repo, tmux_socket)
    again = reopened["cs paused"]
    assert again.status is Status.PAUSED and inst.session_name in tmux_sessions(tmux_socket)
    again.resume()
    assert again.status is Status.RUNNING and Path(again.worktree_path, "work.txt").exists()
    new_pane = subprocess.run(["tmux", "-L", tmux_socket, "display-message", "-p", "-t",
                               f"={again.session_name}:", "#{pane_pid}"], capture_output=True,
                              text=True, check=True).stdout.strip()
    assert new_pane != old_pane  # a fresh agent, in the re-added worktree
    logs = list((reopened.home / "logs").glob(f"{again.session_name}_*.log"))
    assert logs and "demo>" in logs[0].read_text()  # the old pane's history was kept
    assert oct(logs[0].stat().st_mode & 0o777) == "0o600"
    assert disk(reopened.home)["cs paused"]["status"] == 0
    again.kill()


def test_pane_logs_and_archives_are_0600_under_umask_022(squad: Squad, git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text("*.env\n")
    git(git_repo, "add", ".gitignore")
    git(git_repo, "commit", "-q", "-m", "ignore env files")
    old = os.umask(0o022)
    try:
        inst = squad.new("private")
        inst.start()
        Path(inst.worktree_path, "secret.env").write_text("TOKEN=x\n")
        inst.pause()
    finally:
        os.umask(old)
    made = [p for p in squad.home.rglob("*") if p.is_file() and "worktrees" not in p.parts]
    assert any(p.suffix == ".tar" for p in made) and any(p.suffix == ".log" for p in made)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in made} == {p.name: "0o600" for p in made}
    assert oct(squad.home.stat().st_mode & 0o777) == "0o700"
    inst.resume()
    assert Path(inst.worktree_path, "secret.env").read_text() == "TOKEN=x\n"
