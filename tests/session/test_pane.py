"""The pane rules of session/_pane.py, driven by hand with made-up looks: no tmux, no clock."""

from __future__ import annotations

from typing import Generator, TypeVar

import pytest

from squadnb.session import _pane
from squadnb.session._pane import Exited, Look
from squadnb.session._programs import profile_for
from squadnb.session._status import Status, refusal
from squadnb.session.tmux import PaneState

T = TypeVar("T")
DEMO = profile_for("python -m squadnb.agents.demo")
PLAIN = profile_for("sleep 30")
ALIVE = PaneState(False, None, 10, "x")


def dead(status: int | None) -> PaneState:
    return PaneState(True, status, 10, "x")


def drive(flow: Generator[float, Look, T], looks: list[Look]) -> tuple[T, list[float]]:
    """Feed ``looks`` to ``flow``; its verdict and the delays it asked for. Fails if it wants more."""
    delays = [next(flow)]
    for look in looks:
        try:
            delays.append(flow.send(look))
        except StopIteration as done:
            return done.value, delays
    pytest.fail(f"the flow wanted more than {len(looks)} looks (asked to wait {delays})")


def test_pane_says_permission_then_ready() -> None:
    assert _pane.pane_says(DEMO, "work\ndemo: allow this action? (y/n)\n\n") is Status.NEEDS_INPUT
    assert _pane.pane_says(DEMO, "done\ndemo>") is Status.READY
    assert _pane.pane_says(DEMO, "demo>\nworking ...") is None
    assert _pane.pane_says(PLAIN, "demo>") is None  # a program without a ready marker never says


def test_claude_permission_prompt_only_near_the_bottom() -> None:
    claude = profile_for("/usr/local/bin/claude --model x")
    asks = "No, and tell Claude what to do differently"
    assert _pane.pane_says(claude, f"{asks}\n" + "x\n" * 3) is Status.NEEDS_INPUT
    assert _pane.pane_says(claude, f"{asks}\n" + "x\n" * 20) is None


def test_is_dead_and_last_words() -> None:
    assert _pane.is_dead(Look(None, "", 0)) and _pane.is_dead(Look(dead(1), "", 0))
    assert not _pane.is_dead(Look(ALIVE, "", 0))
    assert _pane.last_words("boom: no such file\n\nPane is dead (status 1)\n\n") == "boom: no such file"
    assert _pane.last_words("") == ""


def test_launch_settles_after_output_stays_for_a_while() -> None:
    verdict, delays = drive(_pane.launch_flow(PLAIN), [
        Look(ALIVE, "", 0.0), Look(ALIVE, "hello", 0.01), Look(ALIVE, "hello", 0.1),
        Look(ALIVE, "hello", 0.01 + _pane.START_SETTLE)])
    assert verdict is None
    assert delays[0] == 0.0 and delays[1:] == sorted(delays[1:]) and max(delays) <= _pane.POLL


def test_launch_of_a_silent_program_settles_after_start_quiet() -> None:
    verdict, _ = drive(_pane.launch_flow(PLAIN), [Look(ALIVE, "", 0.0), Look(ALIVE, "", 0.5),
                                                 Look(ALIVE, "", _pane.START_QUIET)])
    assert verdict is None


def test_launch_runs_at_once_when_the_program_shows_its_prompt() -> None:
    assert drive(_pane.launch_flow(DEMO), [Look(ALIVE, "demo>", 0.0)])[0] is None


def test_launch_waits_for_the_exit_status_of_a_dead_pane_then_reports_it() -> None:
    verdict, delays = drive(_pane.launch_flow(PLAIN), [
        Look(dead(None), "", 0.0), Look(dead(None), "", 0.1), Look(dead(3), "", 0.2)])
    assert verdict == Exited(3, session_exists=True) and len(delays) == 3
    # never longer than START_QUIET for a status tmux does not give
    assert drive(_pane.launch_flow(PLAIN), [Look(dead(None), "", 0.0),
                                            Look(dead(None), "", _pane.START_QUIET)])[0] == \
        Exited(None, session_exists=True)


def test_launch_of_a_vanished_session() -> None:
    assert drive(_pane.launch_flow(PLAIN), [Look(None, "", 0.0)])[0] == Exited(None, False)


def test_ready_flow_verdicts() -> None:
    assert drive(_pane.ready_flow(DEMO, 5), [Look(ALIVE, "x", 0), Look(ALIVE, "demo>", 1)])[0] \
        is Status.READY
    assert drive(_pane.ready_flow(DEMO, 5), [Look(ALIVE, "demo: allow this action? (y/n)", 0)])[0] \
        is Status.NEEDS_INPUT
    assert drive(_pane.ready_flow(DEMO, 5), [Look(dead(2), "", 0)])[0] == Exited(2, True)
    verdict, delays = drive(_pane.ready_flow(DEMO, 1), [Look(ALIVE, "busy", 0), Look(ALIVE, "busy", 1)])
    assert verdict is None and delays == [0.0, _pane.POLL]


def test_ready_flow_without_a_ready_marker_wants_a_still_non_blank_pane() -> None:
    verdict, _ = drive(_pane.ready_flow(PLAIN, 5), [
        Look(ALIVE, "", 0), Look(ALIVE, "", 0.1), Look(ALIVE, "a", 0.2), Look(ALIVE, "ab", 0.3),
        Look(ALIVE, "ab", 0.4)])
    assert verdict is Status.READY


def test_status_flow_compares_with_the_last_hash() -> None:
    same = _pane.pane_hash("text")
    assert drive(_pane.status_flow(PLAIN, same), [Look(ALIVE, "text", 0)])[0] == (Status.READY, same)
    status, new = drive(_pane.status_flow(PLAIN, same), [Look(ALIVE, "other", 0)])[0]
    assert status is Status.RUNNING and new == _pane.pane_hash("other")
    dead_verdict = drive(_pane.status_flow(PLAIN, same), [Look(None, "", 0)])[0]
    assert dead_verdict == (Exited(None, False), same)


def test_status_flow_first_look_looks_twice() -> None:
    (status, _), delays = drive(_pane.status_flow(PLAIN, None),
                                [Look(ALIVE, "a", 0), Look(ALIVE, "b", 0.3)])
    assert status is Status.RUNNING and delays == [0.0, _pane.FIRST_LOOK_GAP]
    (status, _), _ = drive(_pane.status_flow(DEMO, None), [Look(ALIVE, "demo>", 0)])
    assert status is Status.READY  # the text says it: no second look


def test_status_label_and_parse() -> None:
    assert Status.NEEDS_INPUT.label == "needs_input"
    assert Status.parse("Paused") is Status.PAUSED and Status.parse(Status.DEAD) is Status.DEAD
    with pytest.raises(ValueError, match=r"unknown status 'asleep' \(one of: running, ready, .*new\)"):
        Status.parse("asleep")
    with pytest.raises(ValueError, match="unknown status 3"):
        Status.parse(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("action", "status", "reason"), [
    ("start", Status.NEW, None), ("start", Status.DEAD, "is already started"),
    ("pause", Status.NEW, "is not started"), ("pause", Status.PAUSED, "is already paused"),
    ("pause", Status.DEAD, None), ("resume", Status.RUNNING, "is not paused"),
    ("resume", Status.PAUSED, None), ("kill", Status.PAUSED, None), ("kill", Status.NEW, "is not started"),
    ("prompt", Status.PAUSED, "is already paused"), ("restart", Status.DEAD, None),
])
def test_one_rule_per_action(action: str, status: Status, reason: str | None) -> None:
    assert refusal(action, status) == reason


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'nap'"):
        refusal("nap", Status.NEW)
