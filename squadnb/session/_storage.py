"""claude-squad's files, and only serialisation: DTOs to and from JSON, atomic writes under a lock.

``state.json`` holds started instances in claude-squad's schema (so ``cs`` can load them);
``pending.json`` holds instances created but not started yet (same entry schema plus ``prompt``);
``config.json`` holds the settings; ``pins.json`` (squadnb's own file, 0600: claude-squad's schema
has no field for it) holds the titles of pinned instances. Every write reads the file, changes the entries of the given titles
only, and replaces it atomically (temp file + fsync + rename) while holding an exclusive ``fcntl`` lock
on ``<home>/.squadnb.lock``: two processes (or two Squad objects) on one home never lose each other's
writes, and entries squadnb does not know (written by ``cs``) are kept as they are. A file that cannot
be parsed raises :class:`~squadnb.errors.StateFileError` and is never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from squadnb.errors import StateFileError

__all__ = ["DiffStatsData", "InstanceData", "Store", "WorktreeData", "default_config", "resolve_program"]


@dataclass
class WorktreeData:
    repo_path: str = ""
    worktree_path: str = ""
    session_name: str = ""
    branch_name: str = ""
    base_commit_sha: str = ""
    is_existing_branch: bool = False


@dataclass
class DiffStatsData:
    added: int = 0
    removed: int = 0
    content: str = ""


@dataclass
class InstanceData:
    """One entry of ``instances`` (claude-squad's ``InstanceData``). ``status`` is the on-disk integer
    (0 running, 1 ready, 2 loading, 3 paused); times are RFC 3339 strings. ``prompt`` is written only to
    ``pending.json``."""

    title: str
    path: str = ""
    branch: str = ""
    status: int = 1
    height: int = 0
    width: int = 0
    created_at: str = ""
    updated_at: str = ""
    auto_yes: bool = False
    program: str = ""
    worktree: WorktreeData = field(default_factory=WorktreeData)
    diff_stats: DiffStatsData = field(default_factory=DiffStatsData)
    prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["prompt"] is None:
            del data["prompt"]
        return data

    @classmethod
    def from_json(cls, raw: Any, source: Path) -> InstanceData:
        """Parse one entry; :class:`StateFileError` naming the file when it has the wrong shape."""
        try:
            if not isinstance(raw, dict) or not isinstance(raw.get("title"), str):
                raise TypeError("an instance entry is not an object with a string 'title'")
            known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
            worktree = WorktreeData(**{k: v for k, v in (raw.get("worktree") or {}).items()
                                       if k in WorktreeData.__dataclass_fields__})
            diff = DiffStatsData(**{k: v for k, v in (raw.get("diff_stats") or {}).items()
                                    if k in DiffStatsData.__dataclass_fields__})
            data = cls(**{**known, "worktree": worktree, "diff_stats": diff})
            if not isinstance(data.status, int) or isinstance(data.status, bool):
                raise TypeError(f"status {data.status!r} is not an integer")
            return data
        except (TypeError, AttributeError) as exc:
            raise StateFileError(f"{source}: unreadable instance entry ({exc}); the file was left as "
                                 "is") from exc


def _default_branch_prefix() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "session/"
    user = re.sub(r"[^a-z0-9\-_.]+", "", user.lower())
    return f"{user}/" if user else "session/"


def default_config() -> dict[str, Any]:
    """claude-squad's defaults (``daemon_poll_interval`` in milliseconds)."""
    return {"default_program": "claude", "auto_yes": False, "daemon_poll_interval": 1000,
            "branch_prefix": _default_branch_prefix(), "profiles": []}


class Store:
    """The files of one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state_path = home / "state.json"
        self.pending_path = home / "pending.json"
        self.config_path = home / "config.json"
        self.lock_path = home / ".squadnb.lock"
        self.pins_path = home / "pins.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's exclusive lock (blocks until other processes release it)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"help_screens_seen": 0, "instances": []}
        except OSError as exc:
            raise StateFileError(f"cannot read {path}: {exc}") from exc
        try:
            data = json.loads(text) if text.strip() else {"instances": []}
        except json.JSONDecodeError as exc:
            raise StateFileError(f"{path} is not valid JSON ({exc}); the file was left as is") from exc
        if not isinstance(data, dict) or not isinstance(data.get("instances", []), list):
            raise StateFileError(f"{path} does not hold an object with an 'instances' list; the file "
                                 "was left as is")
        data.setdefault("instances", [])
        data.setdefault("help_screens_seen", 0)
        return data

    def _write(self, path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, ensure_ascii=False)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, mode)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def load(self) -> tuple[list[InstanceData], list[InstanceData]]:
        """(started instances from state.json, created-not-started ones from pending.json)."""
        with self.locked():
            state, pending = self._read(self.state_path), self._read(self.pending_path)
        return ([InstanceData.from_json(raw, self.state_path) for raw in state["instances"]],
                [InstanceData.from_json(raw, self.pending_path) for raw in pending["instances"]])

    def _mutate(self, change: Callable[[list[Any], list[Any]], None]) -> None:
        with self.locked():
            state, pending = self._read(self.state_path), self._read(self.pending_path)
            before = (json.dumps(state["instances"]), json.dumps(pending["instances"]))
            change(state["instances"], pending["instances"])
            if json.dumps(state["instances"]) != before[0] or not self.state_path.exists():
                self._write(self.state_path, state)
            if json.dumps(pending["instances"]) != before[1]:
                self._write(self.pending_path, pending)

    def upsert(self, data: InstanceData, started: bool) -> None:
        """Write ``data`` (replacing the entry of the same title) to state.json when ``started``,
        else to pending.json, and drop it from the other file."""
        def change(state: list[Any], pending: list[Any]) -> None:
            target, other = (state, pending) if started else (pending, state)
            entry = data.to_json()
            if started:
                entry.pop("prompt", None)
            other[:] = [e for e in other if not _titled(e, data.title)]
            for i, existing in enumerate(target):
                if _titled(existing, data.title):
                    target[i] = entry
                    return
            target.append(entry)
        self._mutate(change)

    def delete(self, title: str) -> None:
        """Remove the entry of ``title`` from both files, and its pin (a later instance of the same
        title starts unpinned)."""
        def change(state: list[Any], pending: list[Any]) -> None:
            state[:] = [e for e in state if not _titled(e, title)]
            pending[:] = [e for e in pending if not _titled(e, title)]
        self._mutate(change)
        self.set_pinned(title, False)

    def load_pins(self) -> set[str]:
        """The titles in ``pins.json`` (empty when there is no file). Raises :class:`StateFileError`
        when the file is not ``{"pinned": [<title>, ...]}``; the file is left as is."""
        try:
            text = self.pins_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise StateFileError(f"cannot read {self.pins_path}: {exc}") from exc
        try:
            data = json.loads(text) if text.strip() else {"pinned": []}
        except json.JSONDecodeError as exc:
            raise StateFileError(f"{self.pins_path} is not valid JSON ({exc}); the file was left as "
                                 "is") from exc
        titles = data.get("pinned") if isinstance(data, dict) else None
        if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
            raise StateFileError(f"{self.pins_path} does not hold an object with a 'pinned' list of "
                                 "titles; the file was left as is")
        return set(titles)

    def set_pinned(self, title: str, pinned: bool) -> None:
        """Add ``title`` to ``pins.json`` or remove it, under the home's lock (atomic write, 0600);
        no write when nothing changes."""
        with self.locked():
            before = self.load_pins()
            after = before | {title} if pinned else before - {title}
            if after != before:
                self._write(self.pins_path, {"pinned": sorted(after)}, mode=0o600)

    def load_config(self) -> dict[str, Any]:
        """config.json with claude-squad's defaults merged in for missing keys (a missing file is
        created with the defaults); ``daemon_poll_interval`` is clamped above 0."""
        defaults = default_config()
        with self.locked():
            try:
                text = self.config_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                self._write(self.config_path, defaults)
                return defaults
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise StateFileError(f"{self.config_path} is not valid JSON ({exc}); the file was "
                                     "left as is") from exc
        if not isinstance(loaded, dict):
            raise StateFileError(f"{self.config_path} does not hold a JSON object; the file was left "
                                 "as is")
        config = {**defaults, **loaded}
        if not isinstance(config["daemon_poll_interval"], int) or config["daemon_poll_interval"] <= 0:
            config["daemon_poll_interval"] = defaults["daemon_poll_interval"]
        return config


def _titled(entry: Any, title: str) -> bool:
    return isinstance(entry, dict) and entry.get("title") == title


def resolve_program(config: dict[str, Any]) -> str:
    """claude-squad's ``GetProgram``: a profile named ``default_program`` gives its program."""
    name = config.get("default_program") or "claude"
    for profile in config.get("profiles") or []:
        if isinstance(profile, dict) and profile.get("name") == name and profile.get("program"):
            return str(profile["program"])
    return str(name)
