"""Shared test isolation: a private tmux socket per test run, a throwaway HOME and squadnb home, and a
git identity, so no test touches the user's tmux server, ~/.squadnb or ~/.claude-squad."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from squadnb.agents import scratch_repo

TMUX_SOCKET = f"squadnb-test-{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    os.environ.update(
        HOME=str(home),
        SQUADNB_HOME=str(home / ".squadnb"),
        SQUADNB_TMUX_SOCKET=TMUX_SOCKET,
        GIT_AUTHOR_NAME="squadnb tests",
        GIT_AUTHOR_EMAIL="tests@squadnb.invalid",
        GIT_COMMITTER_NAME="squadnb tests",
        GIT_COMMITTER_EMAIL="tests@squadnb.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        TQDM_DISABLE="1",
    )
    os.environ.pop("TMUX", None)
    os.environ.pop("TMUX_PANE", None)
    yield
    subprocess.run(["tmux", "-L", TMUX_SOCKET, "kill-server"], capture_output=True)
    # tmux 3.3a leaves the socket file of a killed server behind
    tmux_dir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    for leftover in tmux_dir.glob(f"{TMUX_SOCKET}*"):
        subprocess.run(["tmux", "-S", str(leftover), "kill-server"], capture_output=True)
        leftover.unlink(missing_ok=True)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def tmux_socket() -> str:
    """The private tmux socket name of this test run (killed at the end of the run)."""
    return TMUX_SOCKET


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A fresh git repository with one commit."""
    return scratch_repo(tmp_path / "repo", files=1)


@pytest.fixture
def squad(tmp_path: Path, git_repo: Path, tmux_socket: str):
    """A Squad on a fresh home (``tmp_path/home``) over ``git_repo``, running the demo agent (0.1 s of
    work per prompt) on the test run's private tmux server; every instance left is killed at teardown."""
    from squadnb.agents import demo_program
    from squadnb.session import Squad

    made = Squad(home=tmp_path / "home", repo=git_repo, program=demo_program(work_seconds=0.1),
                 tmux_socket=tmux_socket, branch_prefix="test/")
    yield made
    for instance in Squad(home=tmp_path / "home", repo=git_repo, tmux_socket=tmux_socket).instances:
        try:
            instance.kill()
        except Exception:  # teardown is best effort: the test itself reports what went wrong
            subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t",
                            f"={instance.session_name}"], capture_output=True)
