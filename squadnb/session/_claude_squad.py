"""claude-squad alongside: find a running ``cs`` / ``claude-squad`` process.

While the ``cs`` TUI runs it keeps its instances in memory and rewrites the whole ``state.json`` when
it exits (and its daemon does on SIGTERM), so a change squadnb makes to claude-squad's state meanwhile
is undone. Before changing that state, squadnb looks for such a process and refuses
(:class:`~squadnb.errors.ClaudeSquadRunning`) unless forced.
"""

from __future__ import annotations

import os
from pathlib import Path

from squadnb.errors import ClaudeSquadRunning

__all__ = ["NAMES", "claude_squad_pids", "refuse_if_running"]

#: the names claude-squad's binary runs under (``cs`` is what its installer links)
NAMES = frozenset({"cs", "claude-squad"})


def _program_names(pid: str, proc: Path) -> set[str]:
    """The process's command name and the base name of its argv[0] (a symlinked binary shows the
    link's name in both; a script shows its own name as the command name)."""
    names: set[str] = set()
    try:
        names.add((proc / pid / "comm").read_text(errors="replace").strip())
        argv0 = (proc / pid / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:  # the process ended meanwhile, or is not ours to read
        return names
    names.add(os.path.basename(argv0.decode(errors="replace")))
    return names


def claude_squad_pids(proc: Path = Path("/proc")) -> list[int]:
    """The pids of running processes named ``cs`` or ``claude-squad`` (this process excluded), in
    increasing order; empty where there is no ``/proc``."""
    me = str(os.getpid())
    try:
        pids = [entry.name for entry in os.scandir(proc) if entry.name.isdigit() and entry.name != me]
    except OSError:
        return []
    return sorted(int(pid) for pid in pids if _program_names(pid, proc) & NAMES)


def refuse_if_running() -> None:
    """Raise :class:`ClaudeSquadRunning` when a claude-squad process is running."""
    pids = claude_squad_pids()
    if pids:
        raise ClaudeSquadRunning(
            f"claude-squad is running (pid {pids[0]}); quit it first: it rewrites state.json when it "
            "exits and would undo this (force=True / --force goes on anyway)", pids[0])
