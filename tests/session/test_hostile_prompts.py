"""Prompts arrive exactly or not at all: one policy (``session._input.check_prompt``) for the API, the
operation, ``new(prompt=)`` and the command; one paste per prompt; a delivery the agent does not
confirm fails. Real tmux, real git, the real demo agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squadnb import BatchExecutor
from squadnb.errors import InvalidPrompt, PromptNotDelivered, ValidationError
from squadnb.ops import BatchPromptOperation
from squadnb.session import Squad, Status
from squadnb.session._input import check_prompt


def records(instance) -> list[bytes]:
    out = Path(instance.worktree_path) / "demo-output"
    files = sorted(out.glob("*.txt"), key=lambda p: int(p.stem)) if out.is_dir() else []
    return [p.read_bytes() for p in files]


@pytest.fixture
def agent(squad: Squad):
    inst = squad.new("prompted")
    inst.start()
    return inst


# -- the policy ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "what", "position"), [
    ("a\x1b[201~rm -rf /\n", "bracketed-paste marker ESC[201~", 1),
    ("\x1b[200~x", "bracketed-paste marker ESC[200~", 0),
    ("stop\x03", "U+0003", 4),
    ("nul\x00", "U+0000", 3),
    ("esc \x1b[2J", "U+001B", 4),
    ("lone\rreturn", "U+000D", 4),
    ("del\x7f", "U+007F", 3),
    ("next line\x85", "U+0085", 9),
    ("csi\x9b2J", "U+009B", 3),
    ("bad \ud800 half", "lone surrogate U+D800", 4),
])
def test_the_policy_refuses_and_says_what_and_where(text: str, what: str, position: int) -> None:
    with pytest.raises(InvalidPrompt) as info:
        check_prompt(text, "agent-1")
    message = str(info.value)
    assert message.startswith("instance 'agent-1': ") and what in message
    assert f"position {position}" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", "\r\n", None, 5, b"bytes"])
def test_the_policy_refuses_blank_and_non_text(text: object) -> None:
    with pytest.raises(InvalidPrompt, match="empty|must be a str"):
        check_prompt(text)


def test_the_policy_keeps_text_and_normalises_crlf() -> None:
    text = "fix it\n\tplease \u202e\u200d👍 “quoted” \u2028 done"
    assert check_prompt(text) == text
    assert check_prompt("a\r\nb\r\n") == "a\nb\n"


def test_a_huge_bad_prompt_is_never_echoed(agent) -> None:
    with pytest.raises(InvalidPrompt) as info:
        agent.send_prompt("x" * 100_000 + "\x07")
    assert len(str(info.value)) < 200


# -- the same policy everywhere, before anything is sent ------------------------------------------

def test_api_refuses_before_pasting(agent) -> None:
    before = agent.preview()
    for bad in ("line\x1b[201~\nexit 3", "\x03", "a\x00b"):
        with pytest.raises(InvalidPrompt, match="instance 'prompted': "):
            agent.send_prompt(bad)
    assert agent.preview() == before and records(agent) == [] and agent.tmux_alive()


def test_operation_refuses_in_validation_naming_the_instance(agent) -> None:
    result = BatchExecutor(timeout=60).execute([agent], BatchPromptOperation("x\x1b[201~y"),
                                               progress=False)
    error = result.failures[0].error
    assert isinstance(error, ValidationError) and isinstance(error.__cause__, InvalidPrompt)
    assert "instance 'prompted'" in str(error) and "ESC[201~" in str(error)
    assert records(agent) == [] and agent.tmux_alive()


def test_new_refuses_a_bad_first_prompt_before_creating_anything(squad: Squad) -> None:
    with pytest.raises(InvalidPrompt, match=r"U\+0003"):
        squad.new("first", prompt="go\x03")
    pending = squad.home / "pending.json"
    assert "first" not in squad
    assert not pending.exists() or "first" not in pending.read_text()


@pytest.mark.parametrize(("text", "what"), [("bad\x1b[201~x", "ESC[201~"), ("", "empty"),
                                            ("  \n ", "empty"), ("stop\x03", "U+0003")])
def test_the_command_applies_the_same_policy(agent, squad: Squad, text: str, what: str) -> None:
    """Bad input, refused by the policy's own message before any instance is touched: exit 2."""
    done = subprocess.run([sys.executable, "-m", "squadnb", "prompt", text, agent.title, "--json"],
                          cwd=squad.repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SQUADNB_HOME": str(squad.home)},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and what in done.stderr and "Traceback" not in done.stderr
    assert records(agent) == [] and agent.tmux_alive()


# -- delivery --------------------------------------------------------------------------------------

def test_multi_line_and_long_prompts_arrive_as_one(agent) -> None:
    text = "first line\r\nsecond\tline\n\n" + "y" * 20_000 + "\nlast"
    agent.send_prompt(text)
    assert agent.status is Status.RUNNING
    wait_for(lambda: records(agent), what="the record")
    assert records(agent) == [text.replace("\r\n", "\n").encode()]
    agent.send_prompt("second prompt")  # the same one twice is two prompts
    agent.send_prompt("second prompt")
    wait_for(lambda: len(records(agent)) == 3, what="three records")
    assert records(agent)[1:] == [b"second prompt"] * 2


def test_a_truncated_delivery_fails(agent, squad: Squad, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo agent's receipt gives what it got: a paste cut short (as a line-mode program or a
    full pipe would cut it) is a failure, not a success."""
    real_paste = squad.tmux.paste

    async def cut_paste(name: str, text: str, *, enter: bool = True) -> None:
        await real_paste(name, text[:4095], enter=enter)

    monkeypatch.setattr(squad.tmux, "paste", cut_paste)
    with pytest.raises(PromptNotDelivered, match=r"received 4095 bytes \(sha256 \w+\) but 5000 were sent"):
        agent.send_prompt("z" * 5000)
    result = BatchExecutor(timeout=60).execute([agent], BatchPromptOperation("w" * 5000),
                                               progress=False)
    assert isinstance(result.failures[0].error, PromptNotDelivered)
    assert "instance 'prompted': send prompt failed:" in str(result.failures[0].error)


def test_a_program_that_never_shows_the_prompt_fails(squad: Squad) -> None:
    quiet = squad.new("quiet", program="sh -c 'echo ready; stty -echo -icanon; exec sleep 600'")
    quiet.start()
    squad.delivery_timeout = 1.5
    with pytest.raises(PromptNotDelivered, match="no sign of receiving it"):
        quiet.send_prompt("are you there?")


def test_a_program_that_exits_on_the_prompt_fails(squad: Squad) -> None:
    """A dead pane changes the pane too (tmux's "Pane is dead" line): it is no sign of delivery."""
    dies = squad.new("dies", program="sh -c 'echo ready; stty -echo; read line; exit 3'")
    dies.start()
    with pytest.raises(PromptNotDelivered, match="exited"):
        dies.send_prompt("hello")
    assert dies.status is Status.DEAD


_ALLOWED = st.characters(blacklist_categories=("Cs",),
                         blacklist_characters=[chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]
                                               if chr(c) not in "\n\t"])


def test_any_allowed_prompt_arrives_byte_for_byte(agent) -> None:
    sent: list[bytes] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(_ALLOWED, min_size=1, max_size=300).filter(str.strip)
           | st.builds(lambda a, b: a + "\r\n" + b, st.text(_ALLOWED, min_size=1), st.text(_ALLOWED)))
    def delivered(text: str) -> None:
        agent.send_prompt(text)
        sent.append(text.replace("\r\n", "\n").encode())
        got = wait_for(lambda: len(records(agent)) == len(sent) and records(agent), 60,
                       what="the record")
        assert got[-1] == sent[-1]

    delivered()
