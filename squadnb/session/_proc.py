"""Which live processes could hold a git lock file, and when a process started, read from ``/proc``
(Linux).

A lock file git leaves behind when it is killed (``index.lock``, ``packed-refs.lock``) makes every later
git write fail until it is removed, but removing one that a live git still holds corrupts that git's
work. :func:`holders` names every process that has the file open or is a ``git`` whose working
directory is inside one of the given directories; a lock with no holder is stale. Without ``/proc``
nothing can be proved, so every lock counts as held (:func:`can_prove` is False).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["can_prove", "holders", "started_at"]

PROC = Path("/proc")


def can_prove() -> bool:
    """True when ``/proc`` lists processes (Linux), so a lock's holders can be known."""
    return (PROC / "self" / "fd").is_dir()


def holders(lock: str, dirs: list[str]) -> list[int]:
    """The pids of live processes (this one excluded) that have ``lock`` open, or run ``git`` with
    a working directory inside one of ``dirs``. Processes that vanish or cannot be read while they
    are scanned are skipped, except that a ``git`` whose descriptors cannot be read counts as a
    holder."""
    target = os.path.realpath(lock)
    roots = [os.path.realpath(d) for d in dirs if d]
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            is_git = (entry / "comm").read_text().strip() == "git"
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue  # a zombie (killed, not reaped yet) holds no file
        except (OSError, IndexError):
            continue
        if is_git and _cwd_inside(entry, roots):
            found.append(int(entry.name))
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            if is_git:
                found.append(int(entry.name))
            continue
        if target in links:
            found.append(int(entry.name))
    return found


def _cwd_inside(entry: Path, roots: list[str]) -> bool:
    try:
        cwd = os.readlink(entry / "cwd")
    except OSError:
        return False
    return any(cwd == root or cwd.startswith(root + os.sep) for root in roots)


def started_at(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (to a clock tick, plus the second
    the boot time is rounded to); None when it is gone or ``/proc`` cannot say."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in (PROC / "stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None
