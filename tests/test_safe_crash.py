"""Issue 11's crash tests, with real processes and real demo agents: a child process runs a journaled
batch and is SIGKILLed halfway; a new process resumes the batch from the journal; every instance
ends succeeded and each operation took effect exactly once (the journal, the agents' ``demo-output/``
files, git's branches and worktrees and tmux's sessions say so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
from helpers import branches, git, tmux_sessions, wait_for

from squadnb import BatchExecutor, BatchStartOperation
from squadnb.session import Squad, Status

PROMPT = "write the release notes"

#: The batch the child runs: one prompt per instance, paced (``rate``) so that the parent's SIGKILL
#: lands between two operations rather than while one is pasting.
CHILD = """
import sys
from squadnb import BatchExecutor, BatchPromptOperation, Squad
home, repo, socket, prompt = sys.argv[1:5]
squad = Squad(home=home, repo=repo, tmux_socket=socket, branch_prefix="test/")
BatchExecutor(max_concurrency=1, timeout=120, rate=0.25).execute(
    squad.instances, BatchPromptOperation(prompt), journal=squad.journal, progress=False)
"""

#: The resume, from a process that never saw the batch: the journal names the batch, its operation
#: and the instances left.
RESUME = """
import json, sys
from squadnb import BatchExecutor, Squad
home, repo, socket, batch_id = sys.argv[1:5]
squad = Squad(home=home, repo=repo, tmux_socket=socket, branch_prefix="test/")
result = BatchExecutor(max_concurrency=4, timeout=120).resume(squad.journal, batch_id, squad,
                                                              progress=False)
print(json.dumps([[r.instance.title, r.status, r.verified] for r in result.results]))
"""


def python(script: str, *args: object) -> list[str]:
    return [sys.executable, "-c", script, *map(str, args)]


def prompts_received(instance) -> list[bytes]:
    out = Path(instance.worktree_path, "demo-output")
    return [path.read_bytes() for path in sorted(out.glob("*.txt"))] if out.is_dir() else []


def test_a_prompt_batch_killed_halfway_is_resumed_from_a_new_process(squad: Squad) -> None:
    titles = [f"crash-{i}" for i in range(6)]
    instances = [squad.new(title) for title in titles]
    assert BatchExecutor(max_concurrency=3, timeout=120).execute(
        instances, BatchStartOperation(), progress=False).all_succeeded
    where = (squad.home, squad.repo, squad.tmux_socket)

    child = subprocess.Popen(python(CHILD, *where, PROMPT))
    journal = squad.journal
    try:
        batch = wait_for(lambda: _batch_with(journal, succeeded=3), 120,
                         "the child to record 3 successes")
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    batch_id = batch["batch_id"]
    killed = journal.batches().set_index("batch_id").loc[batch_id]
    assert pd.isna(killed["finished"])  # it never finished
    assert (killed["total"], killed["succeeded"], killed["pending"]) == (6, 3, 3)
    left = journal.results(batch_id).query("status != 'succeeded'")["instance"].tolist()
    assert left == titles[3:]

    done = subprocess.run(python(RESUME, *where, batch_id), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[title, "succeeded", True] for title in titles[3:]]

    history = journal.results()
    assert set(history["batch_id"]) == {batch_id, *journal.batches()["batch_id"]}
    successes = history[history["status"] == "succeeded"]["instance"].tolist()
    assert sorted(successes) == sorted(titles)  # each instance succeeded exactly once
    assert history["verified"].dropna().all()
    for instance in squad.instances:
        wait_for(lambda: prompts_received(instance), 60, f"{instance.title}'s demo-output")
        assert prompts_received(instance) == [PROMPT.encode()], instance.title


#: A start batch whose starts each spend 2 s in a setup command, so the SIGKILL lands inside one.
START_CHILD = """
import sys
from squadnb import BatchExecutor, BatchStartOperation, Squad
home, repo, socket = sys.argv[1:4]
squad = Squad(home=home, repo=repo, tmux_socket=socket, branch_prefix="test/", setup=["sleep 2"])
BatchExecutor(max_concurrency=1, timeout=120).execute(
    squad.instances, BatchStartOperation(), journal=squad.journal, progress=False)
"""


def test_a_start_batch_killed_inside_a_start_is_resumed_cleanly(squad: Squad, git_repo: Path,
                                                                tmux_socket: str) -> None:
    titles = [f"s{i}" for i in range(4)]
    for title in titles:
        squad.new(title)
    where = (squad.home, squad.repo, squad.tmux_socket)
    worktrees = squad.home / "worktrees" / "test"

    child = subprocess.Popen(python(START_CHILD, *where))
    journal = squad.journal
    try:
        wait_for(lambda: _batch_with(journal, succeeded=2), 120, "two starts")
        # the third start has made its worktree and is in its 2 s setup: kill it there
        wait_for(lambda: len(list(worktrees.glob("s2_*"))) == 1, 30, "the third worktree")
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    [batch_id] = journal.batches()["batch_id"]
    assert journal.results(batch_id)["status"].tolist() == ["succeeded"] * 2 + ["pending"] * 2
    left = Squad(home=squad.home, repo=git_repo, tmux_socket=tmux_socket)
    assert left["s2"].status is Status.NEW and left["s2"].worktree_path  # it names its leftovers

    done = subprocess.run(python(RESUME, *where, batch_id), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["s2", "succeeded", True], ["s3", "succeeded", True]]

    successes = journal.results().query("status == 'succeeded'")["instance"].tolist()
    assert sorted(successes) == titles  # each start succeeded exactly once
    assert branches(git_repo) == {"main", *(f"test/{t}" for t in titles)}  # no '-<hash>' twins
    assert sorted(p.name.split("_")[0] for p in worktrees.iterdir()) == titles  # no leftovers
    assert len(git(git_repo, "worktree", "list").splitlines()) == 1 + len(titles)
    squad.refresh()
    assert {f"squadnb_{t}" for t in titles} == tmux_sessions(tmux_socket) & {
        f"squadnb_{t}" for t in titles}
    assert all(inst.tmux_alive() for inst in squad.instances)


def _batch_with(journal, succeeded: int):
    batches = journal.batches()
    if len(batches) == 1 and batches["succeeded"].iloc[0] >= succeeded:
        return batches.iloc[0].to_dict()
    return None
