"""Titles and tmux session names: a title either works end to end or is refused with InvalidTitle
before anything exists; no session name squadnb passes to tmux carries a character tmux treats
specially (``#(...)`` runs a command, a trailing ``;`` ends one). Real tmux, real git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import branches, git, tmux, tmux_sessions, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squadnb._loop import run_sync
from squadnb.agents import demo_program
from squadnb.errors import InvalidTitle, TmuxError
from squadnb.session import Squad
from squadnb.session._input import TITLE_MAX
from squadnb.session.tmux import (Tmux, claude_squad_session_name, session_name_problem,
                                  squadnb_session_name)


def world(squad: Squad, repo: Path, socket: str) -> tuple[object, ...]:
    """Everything a new/start/kill could leave behind."""
    files = {p.name: p.read_text() for p in squad.home.glob("*.json")}
    stored = sorted(i["title"] for name, text in files.items() if name != "config.json"
                    for i in json.loads(text).get("instances", []))
    worktrees = git(repo, "worktree", "list", "--porcelain").count("worktree ")
    leftovers = sorted(p.name for p in squad.worktrees_dir.rglob("*")) \
        if squad.worktrees_dir.exists() else []
    return tmux_sessions(socket), branches(repo), worktrees, leftovers, stored


@pytest.fixture
def cs(tmp_path: Path, git_repo: Path, tmux_socket: str):
    """A claude-squad-flavoured squad (claude-squad's session names) on the test's private server."""
    squad = Squad.claude_squad(home=tmp_path / "cs", repo=git_repo, tmux_socket=tmux_socket,
                               program=demo_program(0.1), branch_prefix="cs/")
    yield squad
    for inst in Squad.claude_squad(home=tmp_path / "cs", repo=git_repo,
                                   tmux_socket=tmux_socket).instances:
        inst.kill()


# -- session names ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("char", "why"), [
    ("#", "format"), (";", "ends a tmux command"), (":", "separates the session"),
    (".", "separates the window"), ("$", "session id"), ("\\", "escaped"), ("{", "{last}"),
    ("}", "{last}"), ("*", "pattern"), ("?", "pattern"), ("[", "pattern"), ("]", "pattern"),
    (" ", "space"), ("\t", "control"), ("\u202e", "format"), ("\x85", "control"),
])
def test_special_characters_are_named_with_the_reason(char: str, why: str) -> None:
    problem = session_name_problem(f"claudesquad_a{char}b")
    assert problem is not None and f"at position 13" in problem and why in problem


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_squadnb_names_are_always_safe(title: str) -> None:
    assert session_name_problem(squadnb_session_name(title)) is None


def test_format_injection_title_is_refused_and_creates_nothing(cs: Squad, git_repo: Path,
                                                               tmux_socket: str,
                                                               tmp_path: Path) -> None:
    marker = tmp_path / "x"
    before = world(cs, git_repo, tmux_socket)
    for title in ("#(touch${IFS}/tmp/x)", f"#(touch {marker})", "a#{session_name}", "#S"):
        with pytest.raises(InvalidTitle, match="'#' at position .* starts a tmux format"):
            cs.new(title)
    assert not marker.exists()
    assert world(cs, git_repo, tmux_socket) == before and len(cs) == 0


def test_a_semicolon_title_cannot_reach_another_session(cs: Squad, git_repo: Path,
                                                        tmux_socket: str) -> None:
    target = "claudesquad_tgt"
    assert tmux(tmux_socket, "new-session", "-d", "-s", target, "sleep 600").returncode == 0
    try:
        before = world(cs, git_repo, tmux_socket)
        with pytest.raises(InvalidTitle, match="';' at position 15 ends a tmux command"):
            cs.new("tgt;")
        assert world(cs, git_repo, tmux_socket) == before
        # and the tmux layer itself refuses the name, whoever asks
        with pytest.raises(TmuxError, match="refusing the tmux session name"):
            run_sync(cs.tmux.kill_session("claudesquad_tgt;"))
        assert not run_sync(cs.tmux.has_session("claudesquad_tgt;"))
        assert target in tmux_sessions(tmux_socket)
    finally:
        tmux(tmux_socket, "kill-session", "-t", f"={target}")


def test_claude_squad_titles_that_become_safe_names_still_work(cs: Squad, tmux_socket: str) -> None:
    inst = cs.new("v1.2: fix é/ü", program=demo_program(0.1))
    assert inst.session_name == "claudesquad_v1_2_fixé/ü"
    inst.start()
    assert inst.session_name in tmux_sessions(tmux_socket)
    inst.send_prompt("go")
    inst.kill()
    assert inst.session_name not in tmux_sessions(tmux_socket)


def test_every_tmux_call_refuses_an_unsafe_name(tmux_socket: str, tmp_path: Path) -> None:
    server = Tmux(tmux_socket)
    bad = "x;"
    for call in (server.new_session(bad, str(tmp_path), "sleep 1"), server.capture(bad),
                 server.paste(bad, "text"), server.send_keys(bad, "Enter"),
                 server.kill_session(bad)):
        with pytest.raises(TmuxError, match="refusing"):
            run_sync(call)
    assert run_sync(server.pane_state(bad)) is None and run_sync(server.snapshot(bad)) is None


def test_a_working_directory_with_tmux_formats_is_taken_literally(tmux_socket: str,
                                                                  tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cwd = tmp_path / f"home #{{session_name}} #(touch {marker})"
    cwd.mkdir(parents=True)
    server = Tmux(tmux_socket)
    run_sync(server.new_session("hostile_cwd", str(cwd), f"pwd > {tmp_path / 'pwd'}; sleep 600"))
    try:
        wait_for(lambda: (tmp_path / "pwd").exists() and (tmp_path / "pwd").read_text(),
                 what="the program's working directory")
        assert (tmp_path / "pwd").read_text().strip() == str(cwd)
        assert not marker.exists()
    finally:
        run_sync(server.kill_session("hostile_cwd"))


# -- titles ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("title", "what"), [
    ("\x1b[31mred", "control character U+001B"),
    ("evil\u202etxt.exe", "format character U+202E"),
    ("next\x85line", "control character U+0085"),
    ("zero\u200bwidth", "format character U+200B"),
    ("para\u2029graph", "paragraph separator U+2029"),
    ("line\u2028sep", "line separator U+2028"),
    ("soft\u00adhyphen", "format character U+00AD"),
    ("bom\ufeff", "format character U+FEFF"),
    ("private\ue000", "private-use character U+E000"),
    ("nonchar\uffff", "unassigned character U+FFFF"),
    ("tab\there", "control character U+0009"),
    ("x" * (TITLE_MAX + 1), f"at most {TITLE_MAX}"),
    ("   ", "non-empty"),
    (5, "must be a str"),
])
def test_bad_titles_are_refused_before_anything_exists(squad: Squad, git_repo: Path,
                                                       tmux_socket: str, title: object,
                                                       what: str) -> None:
    before = world(squad, git_repo, tmux_socket)
    with pytest.raises(InvalidTitle) as info:
        squad.new(title)  # type: ignore[arg-type]
    assert what in str(info.value)
    assert world(squad, git_repo, tmux_socket) == before and len(squad) == 0


@pytest.mark.parametrize("branch", ["a..b", "-x", "x.lock", "@{-1}", "sp ace", "HEAD", "a/", ""])
def test_a_bad_branch_is_refused_by_new_before_anything_exists(squad: Squad, git_repo: Path,
                                                               tmux_socket: str, branch: str) -> None:
    """``branch=`` is checked when the instance is made, not first at start ("" is "no branch")."""
    before = world(squad, git_repo, tmux_socket)
    if not branch:
        assert squad.new("plain", branch=branch).branch == ""
        return
    with pytest.raises(InvalidTitle, match="is not a valid git branch name"):
        squad.new("bad branch", branch=branch)
    with pytest.raises(InvalidTitle, match="branch must be a string"):
        squad.new("bad branch", branch=5)  # type: ignore[arg-type]
    assert world(squad, git_repo, tmux_socket) == before and len(squad) == 0


def test_an_error_never_echoes_more_than_80_characters_of_the_value(squad: Squad) -> None:
    for title in ("y" * 10_000, "y" * 5000 + "\x1b", "\u202e" * 500):
        with pytest.raises(InvalidTitle) as info:
            squad.new(title)
        message = str(info.value)
        assert "y" * 81 not in message and "\\u202e" * 20 not in message and len(message) < 200
        assert "\x1b" not in message and "\u202e" not in message  # escaped, never raw


def test_the_longest_title_works(squad: Squad, git_repo: Path, tmux_socket: str) -> None:
    inst = squad.new("t" * TITLE_MAX)
    inst.start()
    inst.kill()
    assert inst.session_name not in tmux_sessions(tmux_socket)


def _end_to_end_or_refused(squad: Squad, repo: Path, socket: str, title: str) -> None:
    before = world(squad, repo, socket)
    try:
        inst = squad.new(title)
    except InvalidTitle:
        assert world(squad, repo, socket) == before
        return
    assert session_name_problem(inst.session_name) is None
    inst.start()
    assert inst.session_name in tmux_sessions(socket) and inst.branch in branches(repo)
    inst.kill()
    assert world(squad, repo, socket) == before


_TITLES = st.text(max_size=TITLE_MAX + 5) | st.sampled_from(
    ["#(true)", "a;", "{last}", "$1", "x\x1b]0;t\x07", "\u202e", "a\u0085", ".", "..", "-", "@{u}"])


def test_any_title_works_end_to_end_or_is_refused(squad: Squad, git_repo: Path,
                                                  tmux_socket: str) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_TITLES)
    def check(title: str) -> None:
        _end_to_end_or_refused(squad, git_repo, tmux_socket, title)

    check()


def test_any_claude_squad_title_works_end_to_end_or_is_refused(cs: Squad, git_repo: Path,
                                                               tmux_socket: str) -> None:
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_TITLES)
    def check(title: str) -> None:
        _end_to_end_or_refused(cs, git_repo, tmux_socket, title)

    check()


def test_claude_squad_name_of_a_refused_title_is_what_claude_squad_would_use() -> None:
    # the refusal is about claude-squad's own name for the title: squadnb does not rename it (the
    # cs TUI would not find the session), it refuses it
    assert claude_squad_session_name("tgt;") == "claudesquad_tgt;"
