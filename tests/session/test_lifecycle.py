"""Real lifecycles of demo agents: real git worktrees in temp repositories, real tmux on the test run's
private socket."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from helpers import branches, git, tmux, tmux_sessions, wait_for

from squadnb import BatchExecutor
from squadnb._loop import run_sync
from squadnb.errors import InvalidState
from squadnb.ops import BatchStartOperation
from squadnb.session import Instance, Squad, Status

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


def output_files(instance) -> list[str]:
    out = Path(instance.worktree_path) / "demo-output"
    return sorted(p.name for p in out.glob("*.txt")) if out.is_dir() else []


def test_full_lifecycle_of_one_instance(squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    inst = squad.new("fix login")
    assert inst.status is Status.NEW and not inst.started
    inst.start()
    assert inst.status is Status.RUNNING and inst.started and not inst.paused
    assert inst.branch == "test/fix-login"
    assert inst.base_commit_sha == git(git_repo, "rev-parse", "HEAD").strip()
    assert inst.session_name == "squadnb_fix_login" and inst.session_name in tmux_sessions(tmux_socket)
    assert Path(inst.worktree_path).parent == squad.worktrees_dir / "test"
    assert (Path(inst.worktree_path) / "README.md").read_text().startswith("# scratch")  # checked out

    inst.send_prompt("write the fix")
    wait_for(lambda: output_files(inst) == ["1.txt"], what="the demo agent's output file")
    wait_for(lambda: "done: write the fix" in inst.preview(), what="the agent to finish")
    (Path(inst.worktree_path) / "README.md").write_text("changed\n")
    index = Path(git(inst.worktree_path, "rev-parse", "--path-format=absolute", "--git-path",
                     "index").strip())
    before = index.read_bytes()
    stats = inst.diff_stats()
    assert index.read_bytes() == before  # diff stats never write the worktree's index
    assert (stats.added, stats.removed) == (2, 1)  # the untracked output file counts
    assert "demo-output/1.txt" in stats.content
    assert git(inst.worktree_path, "status", "--porcelain").count("??") == 1  # index not touched

    inst.pause()
    assert inst.status is Status.PAUSED and not Path(inst.worktree_path).exists()
    assert inst.session_name not in tmux_sessions(tmux_socket)
    assert inst.branch in branches(git_repo)
    message = git(git_repo, "log", "-1", "--format=%s", inst.branch).strip()
    assert re.fullmatch(r"\[claudesquad\] update from 'fix login' on .+ \(paused\)", message)
    assert set(git(git_repo, "show", "--name-only", "--format=", inst.branch).split()) == {
        "demo-output/1.txt", "README.md"}
    logs = list(squad.logs_dir.glob("squadnb_fix_login_*.log"))
    assert len(logs) == 1 and "done: write the fix" in logs[0].read_text()
    assert inst.diff_stats() == stats  # paused: the last stats are kept
    assert inst.worktree_path not in git(git_repo, "worktree", "list", "--porcelain")

    inst.resume()
    assert inst.status is Status.RUNNING and Path(inst.worktree_path).is_dir()
    wait_for(lambda: "continuing after 1 earlier prompt(s)" in inst.preview(),
             what="the agent to restart with --continue")
    assert output_files(inst) == ["1.txt"]
    inst.send_prompt("second")
    wait_for(lambda: output_files(inst) == ["1.txt", "2.txt"], what="the second output")

    worktree = inst.worktree_path
    inst.kill()
    assert not Path(worktree).exists() and inst.branch not in branches(git_repo)
    assert inst.session_name not in tmux_sessions(tmux_socket)
    assert "fix login" not in squad and len(squad) == 0
    assert list(squad.worktrees_dir.iterdir()) == []
    assert json.loads((squad.home / "state.json").read_text())["instances"] == []


def test_status_from_the_pane(squad: Squad) -> None:
    inst = squad.new("status")
    inst.start()
    wait_for(lambda: inst.refresh_status() is Status.READY, what="READY")
    inst.send_prompt("!ask permission")
    wait_for(lambda: inst.refresh_status() is Status.NEEDS_INPUT, what="NEEDS_INPUT")
    assert json.loads((squad.home / "state.json").read_text())["instances"][0]["status"] == 1
    run_sync(squad.tmux.send_keys(inst.session_name, "y", "Enter"))
    wait_for(lambda: output_files(inst) == ["1.txt"], what="the allowed action")
    wait_for(lambda: inst.refresh_status() is Status.READY, what="READY again")
    inst.send_prompt("exit 5")
    # tmux shows the pane dead a moment before it knows the exit status
    wait_for(lambda: inst.refresh_status() is Status.DEAD and inst.exit_status == 5,
             what="DEAD with exit status 5")
    assert not inst.tmux_alive()
    inst.kill()


def test_a_fresh_process_sees_an_idle_agent_as_ready_on_its_first_look(squad: Squad) -> None:
    """A new Squad (another process, a fresh ``squadnb ls``) has no earlier look to compare with."""
    demo = squad.new("demo idle")
    idle = squad.new("shell idle", program="sh -c 'echo idle; exec sleep 600'")
    busy = squad.new("shell busy", program="sh -c 'while :; do date +%s%N; sleep 0.02; done'")
    for instance in (demo, idle, busy):
        instance.start()
    fresh = Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux.socket)
    fresh.refresh()
    assert fresh["demo idle"].status is Status.READY  # its own ready prompt
    assert fresh["shell idle"].status is Status.READY  # unchanged across the two looks
    assert fresh["shell busy"].status is Status.RUNNING  # changed between them
    for instance in (demo, idle, busy):
        instance.kill()


def test_several_instances_start_concurrently_and_go_through_the_lifecycle(
        squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    titles = [f"agent {i}" for i in range(10)]
    instances = [squad.new(t) for t in titles]

    async def all_of(method: str, *args: object) -> None:
        import asyncio
        await asyncio.gather(*(getattr(inst, method)(*args) for inst in instances))

    run_sync(all_of("astart"))
    assert {i.session_name for i in instances} <= tmux_sessions(tmux_socket)
    assert [i.title for i in squad.instances] == titles
    run_sync(all_of("asend_prompt", "work"))
    for inst in instances:
        wait_for(lambda inst=inst: output_files(inst) == ["1.txt"], what=f"{inst.title}'s output")
    run_sync(all_of("apause"))
    assert all(i.status is Status.PAUSED for i in instances)
    assert squad.select(status="paused") == instances
    state = json.loads((squad.home / "state.json").read_text())
    assert [e["status"] for e in state["instances"]] == [3] * 10
    run_sync(all_of("aresume"))
    assert squad.select(status=[Status.RUNNING, "ready"]) == instances
    run_sync(all_of("akill"))
    assert branches(git_repo) == {"main"} and len(squad) == 0
    assert not tmux_sessions(tmux_socket) & {i.session_name for i in instances}


def test_a_twins_run_on_squadnbs_loop_whichever_loop_awaits_them(squad: Squad) -> None:
    """A notebook cell awaits on the kernel's loop (here: asyncio.run's); the repository lock such calls
    contend for must stay usable by sync batches on squadnb's loop, and the other way round."""
    for name in ("start", "pause", "resume", "kill", "send_prompt", "preview", "tmux_alive",
                 "diff_stats", "refresh_status", "has_unsaved_work"):
        assert inspect.iscoroutinefunction(getattr(Instance, "a" + name)), name
    a, b, c, d = (squad.new(t) for t in "abcd")
    asyncio.run(_gather(a.astart(), b.astart()))
    assert BatchExecutor().execute([c, d], BatchStartOperation(), progress=False).all_succeeded
    asyncio.run(_gather(*(i.apause() for i in (a, b, c, d))))
    assert squad.select(status="paused") == [a, b, c, d]
    asyncio.run(a.aresume())
    asyncio.run(a.asend_prompt("twin"))

    async def observe() -> tuple[str, bool, int, bool]:
        return (await a.apreview(), await a.atmux_alive(), (await a.adiff_stats()).added,
                await a.ahas_unsaved_work())

    wait_for(lambda: "done: twin" in asyncio.run(observe())[0], what="the prompt's output")
    assert asyncio.run(observe())[1:] == (True, 1, True)
    assert asyncio.run(a.arefresh_status()) in (Status.RUNNING, Status.READY)
    asyncio.run(_gather(*(i.akill() for i in (a, b, c, d))))
    assert len(squad) == 0


def test_state_files_use_claude_squads_schema(squad: Squad) -> None:
    squad.new("pending one", prompt="hello")
    started = squad.new("started one")
    started.start()
    state = json.loads((squad.home / "state.json").read_text())
    assert set(state) == {"help_screens_seen", "instances"}
    (entry,) = state["instances"]
    assert set(entry) == {"title", "path", "branch", "status", "height", "width", "created_at",
                          "updated_at", "auto_yes", "program", "worktree", "diff_stats"}
    assert entry["title"] == "started one" and entry["status"] in (0, 1)
    assert RFC3339.match(entry["created_at"]) and RFC3339.match(entry["updated_at"])
    assert datetime.fromisoformat(entry["created_at"]).tzinfo is not None
    assert set(entry["worktree"]) == {"repo_path", "worktree_path", "session_name", "branch_name",
                                      "base_commit_sha", "is_existing_branch"}
    assert entry["worktree"]["session_name"] == "started one"
    assert entry["worktree"]["is_existing_branch"] is False
    assert set(entry["diff_stats"]) == {"added", "removed", "content"}
    waiting = json.loads((squad.home / "pending.json").read_text())["instances"]
    assert [(e["title"], e["prompt"]) for e in waiting] == [("pending one", "hello")]
    config = json.loads((squad.home / "config.json").read_text())
    assert set(config) >= {"default_program", "auto_yes", "daemon_poll_interval", "branch_prefix",
                           "profiles"}
    # a fresh Squad loads both without touching tmux, and the prompt is sent after start
    again = Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux_socket)
    assert again["started one"].status in (Status.RUNNING, Status.READY)
    assert again["pending one"].status is Status.NEW and again["pending one"].prompt == "hello"
    again["pending one"].start()
    wait_for(lambda: output_files(again["pending one"]) == ["1.txt"], what="the stored prompt")
    assert [e["title"] for e in json.loads((squad.home / "state.json").read_text())["instances"]] == [
        "started one", "pending one"]
    assert json.loads((squad.home / "pending.json").read_text())["instances"] == []


def test_two_squads_on_one_home_keep_each_others_writes(squad: Squad) -> None:
    other = Squad(home=squad.home, repo=squad.repo, program=squad.program,
                  tmux_socket=squad.tmux_socket)
    a = squad.new("from one")
    b = other.new("from two")
    run_sync(_gather(a.astart(), b.astart()))
    titles = [e["title"] for e in json.loads((squad.home / "state.json").read_text())["instances"]]
    assert sorted(titles) == ["from one", "from two"]
    squad.refresh()
    assert "from two" in squad
    a.pause()
    other.refresh()
    assert other["from one"].status is Status.PAUSED
    b.kill()
    squad.refresh()
    assert "from two" not in squad and "from one" in squad


async def _gather(*coros):
    import asyncio
    return await asyncio.gather(*coros)


def test_existing_branch_is_used_and_never_deleted(squad: Squad, git_repo: Path) -> None:
    git(git_repo, "branch", "mine")
    inst = squad.new("on mine", branch="mine")
    inst.start()
    assert inst.branch == "mine" and inst.is_existing_branch
    inst.send_prompt("x")
    wait_for(lambda: output_files(inst) == ["1.txt"], what="output")
    assert inst.has_unsaved_work()
    inst.pause()
    assert inst.has_unsaved_work()  # the pause commit is not in main
    inst.resume()
    inst.kill()
    assert "mine" in branches(git_repo)


def test_a_generated_branch_name_that_exists_is_not_reused(squad: Squad, git_repo: Path) -> None:
    git(git_repo, "branch", "test/taken")
    inst = squad.new("taken")
    inst.start()
    assert inst.branch.startswith("test/taken-") and not inst.is_existing_branch
    inst.kill()
    assert branches(git_repo) == {"main", "test/taken"}


def test_claude_squad_flavour_uses_its_names_and_home(tmp_path: Path, git_repo: Path,
                                                      tmux_socket: str) -> None:
    from squadnb.agents import demo_program

    cs = Squad.claude_squad(home=tmp_path / "cs", repo=git_repo, tmux_socket=tmux_socket)
    assert cs.program == "claude"  # claude-squad's default program
    inst = cs.new("My Task.v2", program=demo_program(0.1))
    inst.start()
    assert inst.session_name == "claudesquad_MyTask_v2"
    assert "claudesquad_MyTask_v2" in tmux_sessions(tmux_socket)
    entry = json.loads((tmp_path / "cs" / "state.json").read_text())["instances"][0]
    assert entry["worktree"]["session_name"] == "My Task.v2"
    inst.kill()
    assert Squad.claude_squad(home=tmp_path / "cs", repo=git_repo, tmux_socket=tmux_socket,
                              program=demo_program(0.1)).program == demo_program(0.1)


def test_preview_full_history_reaches_past_the_screen(squad: Squad) -> None:
    inst = squad.new("long output", program="seq 1 200; exec cat")
    inst.start()
    wait_for(lambda: "200" in inst.preview(), what="the program's output")
    screen, full = inst.preview().split(), inst.preview(full_history=True).split()
    assert "1" not in screen and screen[-1] == "200"  # the 50-row screen shows only the end
    assert full == [str(n) for n in range(1, 201)]


def test_every_sync_twin_has_its_async_twins_docstring() -> None:
    for cls in (Instance, Squad):
        twins = [name for name in vars(cls) if callable(getattr(cls, f"a{name}", None))]
        assert {"pause", "resume", "kill", "restart", "start", "refresh", "new"} & set(twins)
        for name in twins:
            assert getattr(cls, name).__doc__ == getattr(cls, f"a{name}").__doc__, name
            assert getattr(cls, name).__doc__


def test_restart_is_start_without_first_time_setup(squad: Squad, tmux_socket: str) -> None:
    inst = squad.new("again")
    inst.start()
    tmux(tmux_socket, "kill-session", "-t", f"={inst.session_name}")
    inst.restart()
    assert inst.status is Status.RUNNING and inst.tmux_alive()
    assert squad.session_name_for("again") == inst.session_name
    tmux(tmux_socket, "kill-session", "-t", f"={inst.session_name}")
    inst.start(first_time_setup=False)
    assert inst.tmux_alive()
    with pytest.raises(InvalidState, match="instance 'again': restart failed: its program is still running"):
        inst.restart()
