"""The files of a home: claude-squad's schema (validated on load), private modes, coalesced writes.

``state.json`` holds started instances in claude-squad's schema (so ``cs`` can load them);
``pending.json`` holds instances created but not started yet (same entry schema plus ``prompt``);
an instance made by ``squad.fan_out`` has one more key in either file, ``group`` (claude-squad ignores
keys it does not know; a ``cs`` that rewrites the file drops it);
``config.json`` holds the settings; ``pins.json`` (squadnb's own file: claude-squad's schema has no
field for it) holds the titles of pinned instances; ``.squadnb.lock`` is the home's lock file.

**Schema.** The dataclasses below are the one schema: each field carries its check (type and range),
and every field of every entry is checked when a file is read. A file that fails (bad JSON, invalid
UTF-8, nesting too deep, a number too long, a field of the wrong type or out of range) raises
:class:`~squadnb.errors.StateFileError` naming the file and the field, and is never rewritten. Keys
squadnb does not know (a newer ``cs``) are kept as they are.

**Writes.** :meth:`Store.submit` queues one instance's change and returns a future. A writer thread
takes every queued change at once, merges each into the entry on disk field by field
(:func:`merge_entry`: a write changes only what its caller changed, and an observation never
overwrites a newer status written by another process), and replaces the files atomically (temp file
+ fsync + rename) under an exclusive ``fcntl`` lock on the lock file. Changes
queued while a write is in flight share the next write. The text of unchanged entries is kept from
the last read or write, so a write re-serialises only the changed instances; diff text is capped at
:data:`DIFF_TEXT_LIMIT` characters per entry (the counts are always kept).

**Modes.** The home is created 0700, every file in it 0600 (a rewrite keeps the file's mode); a
symlinked ``state.json`` is written through (the link stays a link), and the lock file is never
followed through a symlink.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import fcntl
import getpass
import json
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from squadnb.errors import DuplicateTitle, SquadError, StateFileError, StateWriteError

__all__ = ["DIFF_TEXT_LIMIT", "Change", "ConfigData", "DiffStatsData", "InstanceData", "ProfileData",
           "Store", "Stored", "WorktreeData", "default_config", "merge_entry", "parse_time",
           "private_dir", "resolve_program", "same_instance", "write_private"]

#: diff text kept per entry in the files (claude-squad stores it whole; the counts are always kept)
DIFF_TEXT_LIMIT = 4096
#: the marker that ends a cut diff text
DIFF_CUT_MARKER = "\n[diff cut by squadnb at {limit} characters; the counts are complete]\n"
#: a writer thread with nothing queued for this long ends (the next change starts another)
WRITER_IDLE_SECONDS = 2.0
#: the largest value of claude-squad's Go ints
_GO_INT_MAX = 2**63 - 1
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
_STATUS_NAMES = {0: "running", 1: "ready", 2: "loading", 3: "paused"}


# ---------------------------------------------------------------------------------------- checks
class _Bad(Exception):
    """One field failed its check: ``where`` is its path in the file (``instances[2].status``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


def _show(value: Any) -> str:
    """A value for an error message: its JSON form, at most 80 characters."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, (dict, list)) \
        else type(value).__name__.replace("dict", "an object").replace("list", "a list")
    return text if len(text) <= 80 else text[:77] + "..."


Check = Callable[[Any, str], None]


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise _Bad(where, f"{_show(value)} is not a string")


def _name(value: Any, where: str) -> None:
    """A string used as a path, a program or a git/tmux name: no NUL character."""
    _text(value, where)
    if "\0" in value:
        raise _Bad(where, "contains a NUL character")


def _flag(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise _Bad(where, f"{_show(value)} is not true or false")


def _int_in(low: int, high: int) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(where, f"{_show(value)} is not an integer")
        if not low <= value <= high:
            raise _Bad(where, f"{_show(value)} is not in {low}..{high}")
    return check


_count = _int_in(0, _GO_INT_MAX)
_status = _int_in(0, 3)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with its offset (claude-squad's Go ``time.Time``; nanoseconds are cut to
    microseconds). Raises ``ValueError`` for anything else, naive times included."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"{_show(text)} is not an RFC 3339 time with a time zone")
    head, _, tail = text.partition(".")
    if tail:  # Python keeps microseconds: drop digits past the sixth, keep the zone
        digits = re.match(r"\d+", tail).group()  # type: ignore[union-attr]
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def same_instance(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two entries of one title are the same instance: made at the same instant. Compared
    as times, not text: ``cs`` rewrites every time in Go's format when it saves (nanoseconds,
    ``Z``), so one instant has several spellings."""
    if a.get("created_at") == b.get("created_at"):
        return True
    try:
        return parse_time(a.get("created_at", "")) == parse_time(b.get("created_at", ""))
    except ValueError:
        return False


def _time(value: Any, where: str) -> None:
    try:
        parse_time(value)
    except ValueError as exc:
        raise _Bad(where, str(exc)) from None


def _optional(check: Check) -> Check:
    def optional(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)
    return optional


def _object(cls: type) -> Check:
    def check(value: Any, where: str) -> None:
        validate(cls, value, where)
    return check


def _list_of(check: Check) -> Check:
    def check_list(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise _Bad(where, f"{_show(value)} is not a list")
        for i, item in enumerate(value):
            check(item, f"{where}[{i}]")
    return check_list


def _checked(check: Check, default: Any = None, *, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field carrying its check."""
    if factory is not None:
        return field(default_factory=factory, metadata={"check": check})
    return field(default=default, metadata={"check": check})


def validate(cls: type, raw: Any, where: str = "") -> None:
    """Check ``raw`` (parsed JSON) against dataclass ``cls``: an object whose known keys pass their
    fields' checks (missing keys take the default, unknown keys are allowed). Raises :class:`_Bad`."""
    if not isinstance(raw, dict):
        raise _Bad(where, f"{_show(raw)} is not an object")
    for f in fields(cls):
        if f.name in raw:
            f.metadata["check"](raw[f.name], f"{where}.{f.name}" if where else f.name)


# ---------------------------------------------------------------------------------------- schema
@dataclass
class WorktreeData:
    repo_path: str = _checked(_name, "")
    worktree_path: str = _checked(_name, "")
    session_name: str = _checked(_name, "")
    branch_name: str = _checked(_name, "")
    base_commit_sha: str = _checked(_name, "")
    is_existing_branch: bool = _checked(_flag, False)


@dataclass
class DiffStatsData:
    added: int = _checked(_count, 0)
    removed: int = _checked(_count, 0)
    content: str = _checked(_text, "")


def _title(value: Any, where: str) -> None:
    _name(value, where)
    if not value:
        raise _Bad(where, "is empty")


@dataclass
class InstanceData:
    """One entry of ``instances`` (claude-squad's ``InstanceData``). ``status`` is the on-disk integer
    (0 running, 1 ready, 2 loading, 3 paused); times are RFC 3339 strings with a zone. ``prompt`` is
    written only to ``pending.json``; ``group`` (squadnb's own key: the fan-out that made the
    instance) only when set."""

    title: str = _checked(_title, "")
    path: str = _checked(_name, "")
    branch: str = _checked(_name, "")
    status: int = _checked(_status, 1)
    height: int = _checked(_count, 0)
    width: int = _checked(_count, 0)
    created_at: str = _checked(_time, "")
    updated_at: str = _checked(_time, "")
    auto_yes: bool = _checked(_flag, False)
    program: str = _checked(_name, "")
    worktree: WorktreeData = _checked(_object(WorktreeData), factory=WorktreeData)
    diff_stats: DiffStatsData = _checked(_object(DiffStatsData), factory=DiffStatsData)
    prompt: str | None = _checked(_optional(_text), None)
    group: str = _checked(_name, "")

    def to_json(self) -> dict[str, Any]:
        """The entry as written: no ``prompt`` key when there is none, no ``group`` key when it is
        empty, diff text capped at :data:`DIFF_TEXT_LIMIT` characters (cut at a line end, with a
        marker)."""
        data = asdict(self)
        if data["prompt"] is None:
            del data["prompt"]
        if not data["group"]:
            del data["group"]
        data["diff_stats"]["content"] = _cap_diff(data["diff_stats"]["content"])
        return data

    @classmethod
    def from_json(cls, raw: Any, source: Path | str = "") -> InstanceData:
        """Build from a parsed entry; :class:`StateFileError` naming ``source`` and the field when it
        does not fit the schema."""
        try:
            validate(cls, raw)
            if "title" not in raw:
                raise _Bad("title", "is missing")
        except _Bad as exc:
            raise StateFileError(f"{source}: {exc}; the file was left as is") from None
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        worktree = {k: v for k, v in (raw.get("worktree") or {}).items()
                    if k in WorktreeData.__dataclass_fields__}
        diff = {k: v for k, v in (raw.get("diff_stats") or {}).items()
                if k in DiffStatsData.__dataclass_fields__}
        return cls(**{**known, "worktree": WorktreeData(**worktree),
                      "diff_stats": DiffStatsData(**diff)})


def _cap_diff(text: str) -> str:
    if len(text) <= DIFF_TEXT_LIMIT:
        return text
    cut = text.rfind("\n", 0, DIFF_TEXT_LIMIT)
    return text[:cut if cut > 0 else DIFF_TEXT_LIMIT] + DIFF_CUT_MARKER.format(limit=DIFF_TEXT_LIMIT)


@dataclass
class _StateFile:
    help_screens_seen: int = _checked(_int_in(0, 2**32 - 1), 0)
    instances: list[Any] = _checked(_list_of(_object(InstanceData)), factory=list)


@dataclass
class _PinsFile:
    pinned: list[Any] = _checked(_list_of(_title), factory=list)


@dataclass
class ProfileData:
    name: str = _checked(_name, "")
    program: str = _checked(_name, "")


@dataclass
class ConfigData:
    """``config.json``: claude-squad's settings (``daemon_poll_interval`` in milliseconds)."""

    default_program: str = _checked(_name, "claude")
    auto_yes: bool = _checked(_flag, False)
    daemon_poll_interval: int = _checked(_int_in(1, 2**31 - 1), 1000)
    branch_prefix: str = _checked(_name, "")
    profiles: list[Any] = _checked(_list_of(_object(ProfileData)), factory=list)


def _default_branch_prefix() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "session/"
    user = re.sub(r"[^a-z0-9\-_.]+", "", user.lower())
    return f"{user}/" if user else "session/"


def default_config() -> dict[str, Any]:
    """claude-squad's defaults (``daemon_poll_interval`` in milliseconds)."""
    return asdict(ConfigData(branch_prefix=_default_branch_prefix()))


def resolve_program(config: dict[str, Any]) -> str:
    """claude-squad's ``GetProgram``: a profile named ``default_program`` gives its program."""
    name = config.get("default_program") or "claude"
    for profile in config.get("profiles") or []:
        if profile.get("name") == name and profile.get("program"):
            return str(profile["program"])
    return str(name)


# ---------------------------------------------------------------------------------------- parsing
def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:80]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(path: Path, data: bytes) -> Any:
    """Parsed JSON, or :class:`StateFileError` naming the file and the cause."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(f"{path} is not valid UTF-8 (byte {exc.start}); the file was left as "
                             "is") from None
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise StateFileError(f"{path} is not valid JSON (nested too deeply); the file was left as "
                             "is") from None
    except ValueError as exc:  # JSONDecodeError, and int()'s digit limit for a too-long number
        raise StateFileError(f"{path} is not valid JSON ({str(exc)[:200]}); the file was left as "
                             "is") from None


# ---------------------------------------------------------------------------------------- modes
def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 for the directories squadnb makes."""
    if path.is_dir():
        return
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)


def write_private(path: Path, data: bytes | str) -> None:
    """Write a new file of the home (a pane log, an archive) with mode 0600, creating its directory
    0700. Raises :class:`StateWriteError` naming the file when the disk is full or the home is
    unwritable (a partial file is removed)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise StateWriteError(f"writing {path} failed: {exc.strerror or exc}") from exc


def _replace(path: Path, text: str, new_mode: int = 0o600) -> int:
    """Replace ``path`` atomically with ``text`` (temp file, fsync, rename, fsync of the directory)
    and return the bytes written. A symlink is written through (its target is replaced); an existing
    file's mode is kept, a new one gets ``new_mode``. Raises ``OSError``; a temp file is never left
    behind."""
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = new_mode
    data = text.encode("utf-8")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if mode != 0o600:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        # Without the directory's fsync a power cut can bring back the previous file, undoing a
        # state change (a pause) the call already reported; writes are coalesced, so it is paid once
        # per write, not once per change.
        _fsync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return len(data)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- merging
_MISSING = object()


def merge_entry(disk: dict[str, Any] | None, mine: dict[str, Any] | None, base: dict[str, Any] | None,
                *, observed: bool) -> dict[str, Any] | None:
    """The entry to write when this process changes ``base`` (the entry as it last read or wrote it)
    into ``mine`` (``None``: remove it) and the file now holds ``disk``.

    Field by field: a field this process did not change keeps the file's value (another process may
    have changed it); a changed field takes this process's value. An ``observed`` change (a refresh that
    only looked at the pane, not a lifecycle call) gives way: it changes no field that another process
    changed too, it never writes ``status`` or ``updated_at`` once another process wrote the entry
    after this one read it (its ``updated_at`` moved), and it never re-creates an entry that is gone
    from the file. Keys of ``disk`` that ``mine`` does not know are kept.
    """
    if mine is None:
        return None
    if disk is None:
        return None if observed else dict(mine)
    if base is None:
        return dict(disk) if observed else {**disk, **mine}
    merged = _merge_fields(disk, mine, base, observed)
    if observed and disk.get("updated_at") != base.get("updated_at"):
        for key in ("status", "updated_at"):
            if key in disk:
                merged[key] = disk[key]
    return merged


def _merge_fields(disk: dict[str, Any], mine: dict[str, Any], base: dict[str, Any],
                  observed: bool) -> dict[str, Any]:
    merged = dict(disk)
    for key, value in mine.items():
        old, theirs = base.get(key, _MISSING), disk.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(theirs, dict):
            merged[key] = _merge_fields(theirs, value, old if isinstance(old, dict) else {}, observed)
        elif value != old and not (observed and theirs != old):
            merged[key] = value
    return merged


def change_summary(mine: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    """What a change does, for an error message: ``its removal``, ``status ready → paused``…"""
    if mine is None:
        return "its removal"
    if base is None:
        return "its new entry"
    if mine.get("status") != base.get("status"):
        return (f"status {_STATUS_NAMES.get(base.get('status'), base.get('status'))} → "
                f"{_STATUS_NAMES.get(mine.get('status'), mine.get('status'))}")
    changed = [key for key, value in mine.items() if base.get(key, _MISSING) != value]
    return "its " + ", ".join(changed) if changed else "its entry"


# ---------------------------------------------------------------------------------------- files
@dataclass
class Stored:
    """One entry as it is on disk, and whether it is in ``state.json`` (started) or ``pending.json``."""

    entry: dict[str, Any]
    started: bool


@dataclass
class Change:
    """One instance's change, queued by :meth:`Store.submit`. ``entry`` None removes the instance;
    ``base`` is the entry as the submitting process last read or wrote it (None: never stored);
    ``observed`` marks a refresh's observation (see :func:`merge_entry`). The future resolves to the
    :class:`Stored` entry after the write (None: not on disk), or to the error that stopped it."""

    title: str
    entry: dict[str, Any] | None
    base: dict[str, Any] | None
    started: bool
    observed: bool
    future: concurrent.futures.Future[Stored | None] = field(default_factory=concurrent.futures.Future)


@dataclass
class _Doc:
    """A state-format file as last read or written: the stat key it had then (None: missing), its
    top-level object (``instances`` a placeholder, in its place), its entries and their serialised
    text (None: not serialised yet)."""

    key: tuple[int, ...] | None
    head: dict[str, Any]
    entries: list[dict[str, Any]]
    texts: list[str | None]

    def copy(self) -> _Doc:
        return _Doc(self.key, dict(self.head), list(self.entries), list(self.texts))

    def find(self, title: str) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e.get("title") == title), None)

    def render(self) -> str:
        """The text ``json.dump(indent=2, ensure_ascii=False)`` would write, built from the kept
        entry texts."""
        for i, text in enumerate(self.texts):
            if text is None:
                self.texts[i] = _indented(self.entries[i], 2)
        parts = []
        for key, value in self.head.items():
            if key == "instances":
                shown = "[\n" + ",\n".join(self.texts) + "\n  ]" if self.texts else "[]"  # type: ignore[arg-type]
            else:
                shown = _indented(value, 1).lstrip()
            parts.append(f"  {json.dumps(key, ensure_ascii=False)}: {shown}")
        return "{\n" + ",\n".join(parts) + "\n}\n"


def _indented(value: Any, level: int) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    pad = "  " * level
    return "\n".join(pad + line for line in text.split("\n"))


def _read_json(path: Path) -> Any:
    """``path`` parsed (None for an empty file). Raises ``FileNotFoundError`` when it is gone, and
    :class:`StateFileError` when it cannot be read or is not valid JSON."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _parse(path, data)


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Store:
    """The files of one home directory. Thread-safe; one writer thread per store while changes are
    queued. ``bytes_written``, ``writes`` and ``seconds_writing`` count the state files written and
    the time spent writing them (for benchmarks)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state_path = home / "state.json"
        self.pending_path = home / "pending.json"
        self.config_path = home / "config.json"
        self.lock_path = home / ".squadnb.lock"
        self.pins_path = home / "pins.json"
        self.bytes_written = 0
        self.writes = 0
        self.seconds_writing = 0.0
        self._docs: dict[Path, _Doc] = {}
        self._guard = threading.Lock()      # the cached documents
        self._wake = threading.Condition()  # the queue and the writer thread
        self._queue: dict[str, Change] = {}
        self._writing: list[Change] = []  # taken off the queue, being written now
        self._writer: threading.Thread | None = None

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def locked(self, *, write: bool = True, lock: Path | None = None) -> Iterator[None]:
        """Hold the home's exclusive lock (blocks while another process or thread holds it), or the
        lock file ``lock`` of the home (a file with its own lock, such as ``transitions.json``, is
        not written while the state writer replaces a ``state.json`` of every instance). The home
        is created 0700 and the lock file 0600; a symlinked lock file is refused. A read (``write``
        False) on a read-only home goes on without the lock (writers replace files atomically)."""
        path = self.lock_path if lock is None else lock
        try:
            private_dir(self.home)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateFileError(f"{path} is a symbolic link; squadnb does not follow it "
                                     "(remove it)") from None
            if write or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
                raise StateWriteError(f"cannot open the lock file {path}: "
                                      f"{exc.strerror or exc}") from exc
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # ------------------------------------------------------------------ reading
    def _doc(self, path: Path) -> _Doc:
        """``path`` as it is now (from the cache when unchanged since the last read or write). Call
        with the lock held."""
        key = _stat_key(path)
        cached = self._docs.get(path)
        if cached is not None and cached.key == key:
            return cached
        if key is None:
            doc = _Doc(None, {"help_screens_seen": 0, "instances": None}, [], [])
        else:
            try:
                raw = _read_json(path)
            except FileNotFoundError as exc:
                raise StateFileError(f"cannot read {path}: {exc.strerror}") from exc
            doc = self._validated(path, raw, key)
        self._docs[path] = doc
        return doc

    @staticmethod
    def _validated(path: Path, raw: Any, key: tuple[int, ...]) -> _Doc:
        if raw is None:  # an empty file (claude-squad truncates before it writes)
            raw = {}
        try:
            validate(_StateFile, raw)
            titles: set[str] = set()
            for i, entry in enumerate(raw.get("instances", [])):
                if "title" not in entry:
                    raise _Bad(f"instances[{i}].title", "is missing")
                if entry["title"] in titles:
                    raise _Bad(f"instances[{i}].title", f"{_show(entry['title'])} appears twice")
                titles.add(entry["title"])
        except _Bad as exc:
            raise StateFileError(f"{path}: {exc}; the file was left as is") from None
        head = {k: (None if k == "instances" else v) for k, v in raw.items()}
        head.setdefault("instances", None)
        entries = list(raw.get("instances", []))
        return _Doc(key, head, entries, [None] * len(entries))

    def load(self) -> list[Stored]:
        """Every entry: the started instances of state.json, then the created-not-started ones of
        pending.json (a title in both counts as started). Raises :class:`StateFileError`."""
        with self._guard, self.locked(write=False):
            state, pending = self._doc(self.state_path), self._doc(self.pending_path)
        started = {e["title"] for e in state.entries}
        return ([Stored(e, True) for e in state.entries]
                + [Stored(e, False) for e in pending.entries if e["title"] not in started])

    def peek(self, title: str) -> Stored | None | bool:
        """The entry of ``title`` the files hold now (state.json before pending.json, as
        :meth:`load` counts it), None when neither holds it, or False when a file is empty (what
        ``cs`` leaves for a moment: it truncates before it writes) and nothing can be said. Read
        without the home's lock: squadnb's writers replace the files atomically, and a lifecycle
        call asks this before it acts, while the writer may hold the lock for a whole write. A file
        unchanged since this store last read or wrote it is not parsed again. Raises
        :class:`StateFileError`."""
        for path, started in ((self.state_path, True), (self.pending_path, False)):
            key = _stat_key(path)
            if key is None:
                continue
            doc = self._docs.get(path)
            if doc is None or doc.key != key:
                try:
                    raw = _read_json(path)
                except FileNotFoundError:
                    continue  # replaced right now: a rename leaves no gap, a delete is a removal
                if raw is None:
                    return False
                doc = self._validated(path, raw, key)
            index = doc.find(title)
            if index is not None:
                return Stored(doc.entries[index], started)
        return None

    # ------------------------------------------------------------------ writing
    def submit(self, change: Change) -> concurrent.futures.Future[Stored | None]:
        """Queue ``change`` for the writer thread and return its future at once. A change of a title
        already queued replaces that one's entry (keeping the older base) and shares its future."""
        with self._wake:
            queued = self._queue.get(change.title)
            if queued is not None:
                queued.entry, queued.started = change.entry, change.started
                queued.observed = queued.observed and change.observed
                return queued.future
            self._queue[change.title] = change
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name=f"squadnb-store {self.home}",
                                                daemon=True)
                self._writer.start()
            self._wake.notify()
        return change.future

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._queue:
                    self._wake.wait(WRITER_IDLE_SECONDS)
                if not self._queue:
                    self._writer = None
                    return
                batch = self._writing = list(self._queue.values())
                self._queue.clear()
            self._write_batch(batch)

    def _write_batch(self, batch: list[Change]) -> None:
        try:
            with self._guard, self.locked():
                outcomes = self._apply(batch)
        except BaseException as exc:  # every waiter must hear of it, whatever it is
            error = exc if isinstance(exc, SquadError) else StateWriteError(str(exc))
            for change in batch:
                change.future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for change, outcome in zip(batch, outcomes):
            if isinstance(outcome, SquadError):
                change.future.set_exception(outcome)
            else:
                change.future.set_result(outcome)

    def _apply(self, batch: list[Change]) -> list[Stored | None | SquadError]:
        docs = {True: self._doc(self.state_path).copy(), False: self._doc(self.pending_path).copy()}
        outcomes = [self._apply_one(docs, change) for change in batch]
        for started, path in ((True, self.state_path), (False, self.pending_path)):
            doc, before = docs[started], self._docs[path]
            if doc.entries != before.entries or (started and before.key is None):
                self._save(path, doc)
        removed = {change.title for change in batch if change.entry is None}
        pinned = self.load_pins() if removed else set()
        if removed & pinned:  # a later instance of the same title starts unpinned
            self._save_pins(pinned - removed)
        return outcomes

    @staticmethod
    def _apply_one(docs: dict[bool, _Doc], change: Change) -> Stored | None | SquadError:
        """Apply one change to ``docs``; its outcome is the entry written (None: removed), or the
        error of a change refused: the creation of a title another process made meanwhile (between
        the caller's look at the files and this write) would otherwise merge into that instance."""
        where: bool | None = None
        for started in (True, False):
            index = docs[started].find(change.title)
            if index is not None:
                where = started
                break
        disk = docs[where].entries[index] if where is not None else None  # type: ignore[index]
        if (disk is not None and change.base is None and change.entry is not None
                and not change.observed and not same_instance(disk, change.entry)):
            return DuplicateTitle("another process made an instance of that title meanwhile")
        merged = merge_entry(disk, change.entry, change.base, observed=change.observed)
        target = where if change.observed and where is not None else change.started
        if merged is not None and target:
            merged.pop("prompt", None)
        if merged == disk and target == where:
            return Stored(disk, bool(where)) if disk is not None else None
        if where is not None:
            del docs[where].entries[index], docs[where].texts[index]  # type: ignore[arg-type]
            if merged is not None and target == where:
                docs[where].entries.insert(index, merged)  # type: ignore[arg-type]
                docs[where].texts.insert(index, None)  # type: ignore[arg-type]
                return Stored(merged, bool(target))
        if merged is None:
            return None
        docs[target].entries.append(merged)
        docs[target].texts.append(None)
        return Stored(merged, bool(target))

    def _save(self, path: Path, doc: _Doc) -> None:
        begun = time.perf_counter()
        try:
            written = _replace(path, doc.render())
        except OSError as exc:
            raise StateWriteError(f"writing {path} failed: {exc.strerror or exc}") from exc
        doc.key = _stat_key(path)
        self._docs[path] = doc
        self.bytes_written += written
        self.writes += 1
        self.seconds_writing += time.perf_counter() - begun

    # ------------------------------------------------------------------ pins
    def _save_pins(self, titles: set[str]) -> None:
        self._write(self.pins_path, {"pinned": sorted(titles)})

    def _write(self, path: Path, data: Any, mode: int = 0o600) -> None:
        """Replace ``path`` (a file of the home squadnb owns: pins, transitions) with ``data`` as
        indented JSON, atomically; a new file gets ``mode``, an existing one keeps its own. Call with
        the lock held. Raises :class:`StateWriteError` naming the file."""
        try:
            _replace(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", new_mode=mode)
        except OSError as exc:
            raise StateWriteError(f"writing {path} failed: {exc.strerror or exc}") from exc

    def load_pins(self) -> set[str]:
        """The titles in ``pins.json`` (empty when there is no file), read without the home's lock:
        writers replace the file atomically, and Kill's ``validate`` reads it on squadnb's loop
        thread, which must not wait while the state writer holds the lock. Raises
        :class:`StateFileError` when the file is not ``{"pinned": [<title>, ...]}``; the file is
        left as is."""
        try:
            raw = _read_json(self.pins_path)
        except FileNotFoundError:
            return set()
        try:
            validate(_PinsFile, raw if raw is not None else {})
        except _Bad as exc:
            raise StateFileError(f'{self.pins_path} does not hold {{"pinned": [<title>, ...]}} ({exc}); '
                                 "the file was left as is") from None
        return set(raw.get("pinned", [])) if raw else set()

    def set_pinned(self, title: str, pinned: bool) -> None:
        """Add ``title`` to ``pins.json`` or remove it, under the home's lock (atomic write, 0600);
        no write when nothing changes. Raises :class:`StateWriteError` when it cannot be written."""
        with self.locked():
            before = self.load_pins()
            after = before | {title} if pinned else before - {title}
            if after != before:
                self._save_pins(after)

    def drain(self) -> None:
        """Block until every change queued so far is written (errors are left to their futures)."""
        with self._wake:
            futures = [c.future for c in [*self._writing, *self._queue.values()]]
        concurrent.futures.wait(futures)

    # ------------------------------------------------------------------ config
    def load_config(self) -> dict[str, Any]:
        """config.json with claude-squad's defaults for missing keys; a missing file is created with
        the defaults (0600). Raises :class:`StateFileError` for a file that does not fit the schema
        (``auto_yes`` a bool, ``daemon_poll_interval`` a positive int of milliseconds, ``profiles``
        a list of ``{name, program}`` objects…) and :class:`StateWriteError` when it cannot be
        created."""
        defaults = default_config()
        with self._guard, self.locked(write=False):
            try:
                data = self.config_path.read_bytes()
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise StateFileError(f"cannot read {self.config_path}: {exc.strerror or exc}") from exc
            if data is None:
                self._write(self.config_path, defaults)
                return defaults
        loaded = _parse(self.config_path, data)
        try:
            validate(ConfigData, loaded if loaded is not None else {})
        except _Bad as exc:
            raise StateFileError(f"{self.config_path}: {exc}; the file was left as is") from None
        return {**defaults, **(loaded or {})}
