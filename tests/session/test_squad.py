"""Squad as a table: selection, to_dataframe, its HTML, and pending instances shared across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import wait_for

import squadnb
from squadnb.session import Squad, Status
from squadnb.session.squad import STATUS_STYLES


def test_select_by_status_callable_and_pandas_mask(squad: Squad) -> None:
    a, b, c = (squad.new(t) for t in ("a", "b", "c"))
    b.start()
    c.start()
    c.pause()
    assert squad.select() == [a, b, c]
    assert squad.select(status="NEW") == [a] and squad.select(status=Status.PAUSED) == [c]
    assert squad.select(where=lambda inst: inst.title != "b") == [a, c]
    frame = squad.to_dataframe()
    assert squad.select(where=frame["status"] != "new") == [b, c]
    assert squad.select(status="paused", where=frame["title"].isin(["a", "c"])) == [c]
    with pytest.raises(ValueError, match="mask has 2 rows but the squad has 3 instances"):
        squad.select(where=frame["alive"][:2])
    with pytest.raises(ValueError, match="unknown status 'asleep'"):
        squad.select(status="asleep")


def test_to_dataframe_columns_and_html(squad: Squad) -> None:
    pending = squad.new("<pending & co>")
    running = squad.new("running")
    running.start()
    running.diff_stats()
    frame = squad.to_dataframe()
    assert list(frame.columns) == ["title", "status", "branch", "program", "worktree", "added",
                                   "removed", "created", "alive", "group", "dirty", "ahead",
                                   "pinned"]
    assert frame["title"].tolist() == ["<pending & co>", "running"]  # creation order
    assert frame["status"].tolist()[0] == "new" and frame["status"].tolist()[1] in ("running", "ready")
    assert frame["alive"].tolist() == [False, True]
    assert frame["worktree"].tolist()[1] == running.worktree_path
    assert frame["branch"].tolist()[1] == "test/running"
    assert frame["added"].tolist() == [0, 0] and frame["removed"].tolist() == [0, 0]
    assert frame.dtypes.astype(str).to_dict() == {
        "title": "str", "status": "str", "branch": "str", "program": "str", "worktree": "str",
        "added": "int64", "removed": "int64", "created": "datetime64[ns, UTC]", "alive": "bool",
        "group": "str", "dirty": "bool", "ahead": "int64", "pinned": "bool"}
    assert frame["created"].tolist()[0] == pd.Timestamp(pending.created_at)
    empty = Squad(home=squad.home / "empty", repo=squad.repo, tmux_socket=squad.tmux_socket)
    assert empty.to_dataframe().dtypes.equals(frame.dtypes) and len(empty.to_dataframe()) == 0
    html = squad._repr_html_()
    assert "&lt;pending &amp; co&gt;" in html and "<pending" not in html
    assert all(f">{column}</th>" in html for column in frame.columns)
    background = STATUS_STYLES[frame["status"].tolist()[1]].split(";")[0]
    assert f"{background};" in html  # the started row is coloured by its status
    assert html == squad._repr_html_()  # stable for the same content


def _other_process(home: Path, squad: Squad, code: str) -> str:
    """Run ``code`` with ``squad`` bound to a fresh Squad on the same home, in a new interpreter."""
    setup = (f"from squadnb.session import Squad; squad = Squad(home={str(home)!r}, "
             f"repo={squad.repo!r}, program={squad.program!r}, tmux_socket={squad.tmux_socket!r}, "
             "branch_prefix='test/'); ")
    root = str(Path(squadnb.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", setup + code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_new_in_one_process_and_start_in_another(squad: Squad) -> None:
    _other_process(squad.home, squad, "squad.new('made there', prompt='from there')")
    squad.refresh()
    there = squad["made there"]
    assert there.status is Status.NEW and there.prompt == "from there"
    there.start()
    wait_for(lambda: "done: from there" in there.preview(), what="the stored prompt's output")

    squad.new("made here")
    out = _other_process(squad.home, squad, "inst = squad['made here']; inst.start(); "
                                            "print(inst.status.name, inst.worktree_path)")
    status, worktree = out.split()
    assert status == "RUNNING" and Path(worktree).is_dir()
    squad.refresh()
    assert squad["made here"].started and squad["made here"].worktree_path == worktree
    state = json.loads((squad.home / "state.json").read_text())["instances"]
    assert [e["title"] for e in state] == ["made there", "made here"]
    assert json.loads((squad.home / "pending.json").read_text())["instances"] == []


def test_save_writes_fields_changed_in_memory(squad: Squad) -> None:
    pending, started = squad.new("pending"), squad.new("started")
    started.start()
    pending.auto_yes = started.auto_yes = True
    squad.save()
    assert [e["auto_yes"] for e in json.loads((squad.home / "pending.json").read_text())["instances"]] \
        == [True]
    assert [e["auto_yes"] for e in json.loads((squad.home / "state.json").read_text())["instances"]] \
        == [True]
    reloaded = Squad(home=squad.home, repo=squad.repo, tmux_socket=squad.tmux_socket)
    assert reloaded["pending"].auto_yes and reloaded["started"].auto_yes
