"""Helpers shared by the tests (``pythonpath = ["tests"]`` in pyproject.toml puts this on sys.path):
polling with a deadline (never a fixed sleep to wait for tmux) and reading real git and tmux state."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Call ``check`` until it returns something truthy and return that; fail after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def lock_held(store: Any, lock: Path | None = None) -> Iterator[threading.Event]:
    """Hold a home's lock (``store.locked(lock=lock)``: the home's own by default) in another thread,
    as the state writer or another process would, until the block ends or the yielded event is
    set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.locked(lock=lock):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5), "the lock was never taken"
        yield release
    finally:
        release.set()
        holder.join()


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
