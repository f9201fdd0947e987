"""Polling helpers for the session tests (never a fixed sleep to wait for tmux)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def git(repo: Path | str, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--format=%(refname:short)").split())


def tmux_sessions(socket: str) -> set[str]:
    done = subprocess.run(["tmux", "-L", socket, "list-sessions", "-F", "#{session_name}"],
                          capture_output=True, text=True)
    return set(done.stdout.split()) if done.returncode == 0 else set()


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-f", "/dev/null", "-L", socket, *args], capture_output=True,
                          text=True)
