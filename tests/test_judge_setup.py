"""Setup commands of new worktrees (Squad(setup=...) and config.json's ``setup``): run after the
checkout and before the agent, with $SQUADNB_MAIN; a failing one leaves nothing; resume skips them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from helpers import branches, tmux_sessions

from squadnb.agents import demo_program
from squadnb.errors import CommandFailed, StateFileError
from squadnb.session import Squad, Status


def make(tmp_path: Path, repo: Path, socket: str, setup: list[str] | None = None,
         program: str | None = None) -> Squad:
    return Squad(home=tmp_path / "home", repo=repo, tmux_socket=socket, branch_prefix="test/",
                 program=program or demo_program(work_seconds=0.1), setup=setup)


def test_setup_runs_in_the_new_worktree_before_the_agent(tmp_path: Path, git_repo: Path,
                                                         tmux_socket: str) -> None:
    (git_repo / ".env").write_text("SECRET=1\n")  # untracked: only setup brings it over
    log = tmp_path / "setup.log"
    # the program refuses to run unless setup has already made its marker
    program = f"sh -c 'test -f marker || exit 7; exec {demo_program(work_seconds=0.1)}'"
    squad = make(tmp_path, git_repo, tmux_socket, program=program, setup=[
        'cp "$SQUADNB_MAIN/.env" .',
        f"pwd >> {shlex.quote(str(log))}",
        "touch marker"])
    inst = squad.new("setup-ok")
    inst.start()
    worktree = Path(inst.worktree_path)
    assert (worktree / ".env").read_text() == "SECRET=1\n"
    assert log.read_text().splitlines() == [str(worktree.resolve())]
    assert inst.tmux_alive()
    inst.pause()
    inst.resume()  # resume does not run setup again
    assert log.read_text().splitlines() == [str(worktree.resolve())]
    inst.kill()


def test_a_failing_setup_fails_the_start_and_leaves_nothing(tmp_path: Path, git_repo: Path,
                                                            tmux_socket: str) -> None:
    squad = make(tmp_path, git_repo, tmux_socket, setup=[
        "true", "echo installing; echo 'npm ERR! missing lockfile' >&2; exit 4", "touch never"])
    inst = squad.new("setup-bad")
    with pytest.raises(CommandFailed) as caught:
        inst.start()
    error = caught.value
    assert error.exit_code == 4 and error.stderr_tail == "npm ERR! missing lockfile"
    assert str(error).startswith("instance 'setup-bad': start failed: setup command \"echo installing;")
    assert "npm ERR! missing lockfile" in str(error)
    assert inst.status is Status.NEW and inst.worktree_path == ""
    assert branches(git_repo) == {"main"}
    assert "squadnb_setup-bad" not in tmux_sessions(tmux_socket)
    worktrees = tmp_path / "home" / "worktrees"
    assert (list(worktrees.rglob("*")) if worktrees.exists() else []) == []

    squad.setup = ["true"]  # fixed: the same instance starts
    inst.start()
    assert inst.status is Status.RUNNING
    inst.kill()


def test_setup_comes_from_the_config_and_is_validated(tmp_path: Path, git_repo: Path,
                                                      tmux_socket: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.json"
    config.write_text(json.dumps({"setup": ["touch from-config"]}))
    squad = make(tmp_path, git_repo, tmux_socket)
    assert squad.setup == ["touch from-config"]
    assert make(tmp_path, git_repo, tmux_socket, setup=[]).setup == []  # the argument wins
    inst = squad.new("configured")
    inst.start()
    assert (Path(inst.worktree_path) / "from-config").exists()
    inst.kill()

    for bad in ("touch x", ["ok", 3], [""], {"a": 1}):
        config.write_text(json.dumps({"setup": bad}))
        with pytest.raises(StateFileError, match="'setup' in .*config.json must be a list"):
            make(tmp_path, git_repo, tmux_socket)
        assert json.loads(config.read_text()) == {"setup": bad}  # left as is
    config.write_text("{}")
    for bad_arg in ("npm ci", ["npm ci", None]):
        with pytest.raises(TypeError, match="setup= must be a list"):
            make(tmp_path, git_repo, tmux_socket, setup=bad_arg)  # type: ignore[arg-type]
