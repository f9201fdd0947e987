"""An instance's status, its one spelling, and the one rule per lifecycle action.

``Status`` is re-exported by ``instance.py`` (and ``squadnb.session``); it lives here so the pure pane
rules (``_pane.py``) can name it without importing the lifecycle.
"""

from __future__ import annotations

import enum

from squadnb.session._input import shown

__all__ = ["ACTIONS", "Status", "StatusFlags", "refusal"]


class Status(enum.IntEnum):
    """An instance's state. 0–3 are claude-squad's on-disk integers (pinned by a test); DEAD,
    NEEDS_INPUT and NEW never reach a claude-squad file (DEAD and NEEDS_INPUT are written as READY and
    recomputed on refresh; NEW instances live in ``pending.json``)."""

    RUNNING = 0
    READY = 1
    LOADING = 2
    PAUSED = 3
    DEAD = 4
    NEEDS_INPUT = 5
    NEW = 6

    @property
    def label(self) -> str:
        """The lower-case name the tables, the status filters and the CLI use (``"needs_input"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: Status | str) -> Status:
        """``value`` as a Status: a Status itself, or its name in any case (``"paused"``).

        :raises ValueError: for any other value, listing the valid names.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            found = cls.__members__.get(value.strip().upper())
            if found is not None:
                return found
        names = ", ".join(status.label for status in cls)
        raise ValueError(f"unknown status {shown(value)} (one of: {names})")

    def to_disk(self) -> int:
        return int(self) if self <= Status.PAUSED else int(Status.READY)


#: the lifecycle actions :func:`refusal` knows
ACTIONS = ("start", "restart", "pause", "resume", "kill", "prompt", "stop", "command", "push")


class StatusFlags:
    """``started`` and ``paused`` read from ``self.status``: one rule for an
    :class:`~squadnb.session.Instance` and the proxies that stand for one (a Fleet's)."""

    status: Status

    @property
    def started(self) -> bool:
        return self.status is not Status.NEW

    @property
    def paused(self) -> bool:
        return self.status is Status.PAUSED


def refusal(action: str, status: Status) -> str | None:
    """Why ``action`` cannot run on an instance in ``status`` (``"is already paused"``), or None when
    it can. The one rule both the operations' ``validate`` and the lifecycle methods apply; the I/O
    checks (is the session alive, does the worktree exist) stay with the lifecycle.

    :raises ValueError: for an action not in :data:`ACTIONS`.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (one of: {', '.join(ACTIONS)})")
    if action == "start":
        return "is already started" if status is not Status.NEW else None
    if status is Status.NEW:
        return "is not started"
    if action == "resume":
        return None if status is Status.PAUSED else "is not paused"
    if action == "command" and status is Status.PAUSED:
        return "is paused: it has no worktree"
    if action not in ("kill", "push") and status is Status.PAUSED:
        return "is already paused"
    return None
