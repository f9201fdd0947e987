"""Two squadnb processes on one home and one repository at the same moment, in three rounds of one
batch each (five demo instances, concurrency 4): both start their own instances; one kills its five
while the other starts five more (its ``git worktree prune`` runs while the other's adds do); both
kill theirs. The home's files
are shared (state.json, pending.json, transitions), and so is the repository: git's worktree
commands are serialised across processes by the fcntl lock on ``<git common dir>/squadnb.flock``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import branches, git, tmux, tmux_sessions, wait_for

from squadnb.agents import demo_program
from squadnb.errors import InvalidState
from squadnb.session import Squad, Status

PREFIX = "two/"

#: one process: open the squad, wait at the barrier, then create (start) or take (kill) its titles
#: and run the batch at concurrency 4; prints each instance's [title, status, error]
CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from squadnb import BatchExecutor, BatchKillOperation, BatchStartOperation, Squad
    home, repo, socket, program, barrier, action, *titles = sys.argv[1:]
    squad = Squad(home=home, repo=repo, program=program, tmux_socket=socket, branch_prefix="two/")
    Path(f"{barrier}.{os.getpid()}").touch()
    while not os.path.exists(barrier):
        time.sleep(0.001)
    if action == "start":
        instances, operation = [squad.new(t) for t in titles], BatchStartOperation()
    else:
        instances, operation = [squad[t] for t in titles], BatchKillOperation()
    result = BatchExecutor(max_concurrency=4).execute(instances, operation, progress=False)
    print(json.dumps([[r.instance.title, r.status, str(r.error)] for r in result.results]))
""")


def at_once(home: Path, repo: Path, socket: str, batches: list[tuple[str, list[str]]],
            barrier: Path) -> list[list[str]]:
    """Run one child per (action, titles), released together once every one has imported squadnb
    and opened the squad; return their records, in order. A child that fails fails the test with its
    stderr."""
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(repo), socket,
                                  demo_program(work_seconds=0.1), str(barrier), action, *titles],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for action, titles in batches]
    try:
        wait_for(lambda: all(Path(f"{barrier}.{c.pid}").exists() or c.poll() is not None
                             for c in children), what="both processes at the barrier")
        barrier.touch()
        outputs = [c.communicate(timeout=60) for c in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
    return [record for out, _ in outputs for record in json.loads(out)]


def listed_worktrees(repo: Path) -> dict[str, str]:
    """git's worktrees but the main checkout: path → branch."""
    trees: dict[str, str] = {}
    path = ""
    for line in git(repo, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = line.split(" ", 1)[1]
        elif line.startswith("branch "):
            trees[path] = line.split(" ", 1)[1].removeprefix("refs/heads/")
    trees.pop(str(repo), None)
    return trees


def stored(home: Path) -> dict[str, dict]:
    return {i["title"]: i for i in json.loads((home / "state.json").read_text())["instances"]}


def assert_started(home: Path, repo: Path, socket: str, titles: list[str]) -> None:
    """Each title is in state.json, on its own branch, in its own worktree under the home that git
    lists on that branch, its agent running in that worktree."""
    state, trees = stored(home), listed_worktrees(repo)
    for title in titles:
        entry = state[title]
        path, branch = entry["worktree"]["worktree_path"], entry["branch"]
        assert branch == entry["worktree"]["branch_name"] == f"{PREFIX}{title}"
        assert Path(path).parent == home / "worktrees" / PREFIX.rstrip("/")
        assert trees[path] == branch
        shown = tmux(socket, "display-message", "-p", "-t", f"=squadnb_{title}:",
                     "#{pane_dead} #{pane_current_path}").stdout.split(" ", 1)
        assert shown == ["0", f"{os.path.realpath(path)}\n"], (title, shown)


@pytest.mark.timeout(120)
def test_two_processes_start_and_kill_instances_at_once(tmp_path: Path, git_repo: Path,
                                                        tmux_socket: str) -> None:
    home = tmp_path / "home"
    squad = Squad(home=home, repo=git_repo, program=demo_program(), tmux_socket=tmux_socket,
                  branch_prefix=PREFIX)
    bystander = squad.new("two-bystander")  # started before, and never touched by the children
    bystander.start()
    git(git_repo, "branch", "users-own")
    a, b, c = ([f"two-{group}{i}" for i in range(5)] for group in "abc")
    ours = {f"squadnb_{t}" for t in a + b + c}
    others = tmux_sessions(tmux_socket) - ours
    try:
        records = at_once(home, git_repo, tmux_socket, [("start", a), ("start", b)], tmp_path / "go1")
        assert [r[:2] for r in records] == [[t, "succeeded"] for t in a + b], records
        assert sorted(stored(home)) == sorted([*a, *b, bystander.title])
        assert len(listed_worktrees(git_repo)) == 11  # the ten and the bystander's (main apart)
        assert_started(home, git_repo, tmux_socket, a + b)
        assert not [i for i in Squad(home=home, repo=git_repo).instances if not i.started]

        records = at_once(home, git_repo, tmux_socket, [("kill", a), ("start", c)], tmp_path / "go2")
        assert [r[:2] for r in records] == [[t, "succeeded"] for t in a + c], records
        assert sorted(stored(home)) == sorted([*b, *c, bystander.title])
        assert len(listed_worktrees(git_repo)) == 11
        assert_started(home, git_repo, tmux_socket, b + c)

        records = at_once(home, git_repo, tmux_socket, [("kill", b), ("kill", c)], tmp_path / "go3")
        assert [r[:2] for r in records] == [[t, "succeeded"] for t in b + c], records
        assert sorted(stored(home)) == [bystander.title]
        assert list(listed_worktrees(git_repo)) == [bystander.worktree_path]
        assert branches(git_repo) == {"main", "users-own", bystander.branch}
        assert tmux_sessions(tmux_socket) == others | {bystander.session_name}
        assert sorted(p.name for p in (home / "worktrees" / PREFIX.rstrip("/")).iterdir()) == \
            [Path(bystander.worktree_path).name]
    finally:
        for instance in Squad(home=home, repo=git_repo, tmux_socket=tmux_socket).instances:
            instance.kill()


#: one process: start one instance whose setup command keeps the start in flight for a while
STARTER = textwrap.dedent("""
    import sys
    from squadnb import Squad
    home, repo, socket, program, title = sys.argv[1:]
    squad = Squad(home=home, repo=repo, program=program, tmux_socket=socket, branch_prefix="two/",
                  setup=["sleep 4"])
    squad[title].start()
""")


def test_a_start_in_flight_in_another_process_is_left_to_it(squad: Squad, git_repo: Path,
                                                            tmux_socket: str) -> None:
    """While another live process starts an instance, its worktree and branch look like what a
    killed start leaves; a start, a kill or ``doctor(repair=True)`` here must refuse or report, not
    undo it under that process."""
    squad.new("in flight", program=demo_program())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    child = subprocess.Popen([sys.executable, "-c", STARTER, str(squad.home), str(git_repo),
                              tmux_socket, demo_program(), "in flight"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: list(squad.worktrees_dir.rglob("README.md")), what="the child's worktree")
        here = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)
        running = f"its start is still running in process {child.pid}"
        for call in (here["in flight"].start, here["in flight"].kill):
            with pytest.raises(InvalidState, match=running):
                call()
        findings = here.doctor(repair=True)
        mine = findings[findings["instance"] == "in flight"]
        assert mine["detail"].tolist() == [running] and not mine["repaired"].any()
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    after = Squad(home=squad.home, repo=squad.repo, tmux_socket=tmux_socket)["in flight"]
    assert after.status is Status.RUNNING and after.tmux_alive()
    assert after.session_name in tmux_sessions(tmux_socket)
    after.kill()
    assert branches(git_repo) == {"main"}
