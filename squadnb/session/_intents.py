"""Transitions in flight: what each instance is about to do, written before it does it.

``<home>/transitions.json`` is squadnb's own file beside ``state.json`` (claude-squad's schema has no
field for it, and ``cs`` rewrites ``state.json`` whole): ``{"transitions": {"<title>": {"action":
"pause", "pid": 123, "at": "<RFC 3339>"}}}``. A lifecycle call writes its entry before its first
step and removes it after its last; an entry left behind names a call that died part-way (SIGKILL,
power loss), and the next call on that instance, or ``squad.doctor(repair=True)``, finishes or undoes
it. Written atomically under its own lock file, ``<home>/.transitions.lock`` (the home's lock is
held by the state writer while it replaces a ``state.json`` of every instance, and every lifecycle
call writes this file twice: waiting for that made each call's time grow with the number of
instances), mode 0600; a full disk raises :class:`~squadnb.errors.StateWriteError` naming the file
(the lifecycle call adds the instance and the action).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from squadnb.errors import StateFileError, StateWriteError
from squadnb.session import _proc
from squadnb.session._storage import Store, _replace

__all__ = ["Intent", "Intents"]


@dataclass(frozen=True)
class Intent:
    """One transition in flight: the action (``start``, ``pause``, ``resume``, ``kill``,
    ``restart``), the pid of the process that began it, and when."""

    action: str
    pid: int
    at: str

    @property
    def running(self) -> bool:
        """True when the process that began it is alive and is not this one (a call of another
        process is still working on it). A process with that pid that started after the record was
        written is not it: pids are reused (after a reboot, the first few hundred are), and taking
        it for the recorder would leave the instance refused until someone edits the file."""
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        started = _proc.started_at(self.pid)
        try:
            written = datetime.fromisoformat(self.at).timestamp()
        except ValueError:
            return True  # no time to compare with: a live pid may be the recorder
        # one second of slack: /proc's boot time is rounded to the second
        return started is None or started <= written + 1.0


class Intents:
    """The ``transitions.json`` of one home."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path: Path = store.home / "transitions.json"
        self.lock: Path = store.home / ".transitions.lock"

    def load(self) -> dict[str, Intent]:
        """Every recorded transition by title. Raises :class:`StateFileError` when the file is not
        ``{"transitions": {title: {action, pid, at}}}``; the file is left as is."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateFileError(f"cannot read {self.path}: {exc}") from exc
        try:
            raw = json.loads(text) if text.strip() else {"transitions": {}}
            return {title: Intent(str(entry["action"]), int(entry["pid"]), str(entry["at"]))
                    for title, entry in raw["transitions"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(f"{self.path} does not hold {{'transitions': {{title: {{action, pid, "
                                 f"at}}}}}} ({exc}); the file was left as is") from exc

    def get(self, title: str) -> Intent | None:
        return self.load().get(title)

    def begin(self, title: str, action: str) -> Intent:
        """Record that ``title`` is about to ``action`` (replacing an older entry) and return it."""
        intent = Intent(action, os.getpid(), datetime.now().astimezone().isoformat())
        self._change(title, intent)
        return intent

    def end(self, title: str) -> None:
        """Forget ``title``'s transition (no write when there is none)."""
        self._change(title, None)

    def _change(self, title: str, intent: Intent | None) -> None:
        with self.store.locked(lock=self.lock):
            current = self.load()
            if intent is None and title not in current:
                return
            if intent is None:
                del current[title]
            else:
                current[title] = intent
            data = {"transitions": {t: {"action": i.action, "pid": i.pid, "at": i.at}
                                    for t, i in sorted(current.items())}}
            try:
                _replace(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            except OSError as exc:
                raise StateWriteError(f"writing {self.path} failed: "
                                      f"{exc.strerror or exc}") from exc
