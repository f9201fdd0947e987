"""squad.fan_out: one task to N new demo agents as one chain; the instances' group, persisted and
selectable (callable or table mask)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import wait_for

from squadnb import BatchExecutor, PartialResult
from squadnb.errors import DuplicateTitle, StateFileError
from squadnb.session import Squad, Status


def outputs(instance) -> list[str]:
    out = Path(instance.worktree_path) / "demo-output"
    return sorted(p.read_text() for p in out.glob("*.txt")) if out.is_dir() else []


def test_fan_out_starts_n_instances_and_prompts_each(squad: Squad, tmp_path: Path,
                                                     git_repo: Path, tmux_socket: str) -> None:
    squad.new("bystander")
    result = squad.fan_out("fix", 3, "fix the bug", executor=BatchExecutor(max_concurrency=2,
                                                                           timeout=60))
    assert isinstance(result, PartialResult)
    assert result.all_succeeded
    assert [r.instance.title for r in result.results] == ["fix-1", "fix-2", "fix-3"]
    assert result.to_dataframe()["operation"].tolist() == ["SendPrompt"] * 3
    group = squad.select(where=lambda i: i.group == "fix")
    assert [i.title for i in group] == ["fix-1", "fix-2", "fix-3"]
    for inst in group:
        assert inst.status is Status.RUNNING and inst.branch == f"test/{inst.title}"
        wait_for(lambda: outputs(inst) == ["fix the bug"], what=f"{inst.title}'s answer")

    frame = squad.to_dataframe()
    assert frame["group"].tolist() == ["", "fix", "fix", "fix"]
    assert [i.title for i in squad.select(where=frame["group"] == "fix")] == ["fix-1", "fix-2",
                                                                              "fix-3"]

    # the group survives a reload and a pause, and is written only where it is set
    again = Squad(home=tmp_path / "home", repo=git_repo, tmux_socket=tmux_socket)
    assert [i.group for i in again.instances] == ["", "fix", "fix", "fix"]
    again["fix-2"].pause()
    assert Squad(home=tmp_path / "home", repo=git_repo, tmux_socket=tmux_socket)["fix-2"].group == "fix"
    state = json.loads((tmp_path / "home" / "state.json").read_text())
    assert {e["title"]: e.get("group") for e in state["instances"]} == {
        "fix-1": "fix", "fix-2": "fix", "fix-3": "fix"}
    pending = json.loads((tmp_path / "home" / "pending.json").read_text())
    assert "group" not in pending["instances"][0]


def test_a_failed_start_shows_as_invalid_in_the_prompt_step(squad: Squad) -> None:
    result = squad.fan_out("bad", 2, "hello", program="sh -c 'exit 3'",
                           executor=BatchExecutor(timeout=60))
    assert [r.status for r in result.results] == ["invalid", "invalid"]
    assert "not started" in str(result.results[0].error)
    assert [i.status for i in squad.select(where=lambda i: i.group == "bad")] == [Status.NEW] * 2


def test_fan_out_refuses_bad_arguments_and_taken_titles_before_starting(squad: Squad) -> None:
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive number"):
            squad.fan_out("x", n, "p")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt is empty"):
        squad.fan_out("x", 2, "  ")
    squad.new("taken-2")
    with pytest.raises(DuplicateTitle, match="taken-2"):
        squad.fan_out("taken", 3, "p")
    assert [i.title for i in squad.instances] == ["taken-2"]  # taken-1 was forgotten again
    assert len(squad) == 1


def test_a_group_that_is_not_a_string_is_a_state_file_error(squad: Squad, tmp_path: Path,
                                                            git_repo: Path) -> None:
    squad.new("g", group="grp")
    pending = tmp_path / "home" / "pending.json"
    data = json.loads(pending.read_text())
    assert data["instances"][0]["group"] == "grp"
    good = pending.read_text()
    data["instances"][0]["group"] = 5
    pending.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match=r"group: 5 is not a string"):
        Squad(home=tmp_path / "home", repo=git_repo)
    pending.write_text(good)  # the fixture's teardown reads the home
