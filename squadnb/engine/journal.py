"""Journal: every batch and each instance's outcome in an SQLite database, so a batch cut short by a
dead kernel, a killed process or a reboot can be read back (:meth:`Journal.batches`,
:meth:`Journal.results`) and resumed (:meth:`BatchExecutor.resume`).

How it is written:

- One row per batch (operation name, its parameters as JSON, a pickle of the operation when it
  pickles, start, end, total, the batch it resumes) and one row per instance, written ``pending`` when
  the batch starts. Each outcome updates its row and is **committed before the worker that ran it
  starts its next operation**, so after a crash every row that does not say ``succeeded`` names an
  instance whose operation may not have finished.
- Outcomes finished in the same turn of squadnb's loop share one commit (group commit): a batch
  running 64 at a time pays one commit for many outcomes. Writes run on the loop thread itself (a
  commit with ``synchronous=NORMAL`` does not wait for the disk, and a hand-off to another thread
  costs more than the write on a busy machine); the worker awaits its own row's commit.
- WAL mode with ``synchronous=NORMAL``: a commit survives the process being killed (SIGKILL, a dead
  kernel); a power cut may lose the last commits (SQLite's documented trade-off for WAL), in which case
  resume runs those instances again. Several processes may share one journal: each waits up to
  ``timeout`` seconds for another's write lock (SQLite's busy timeout).
- Instances are identified by their label (``title``, else ``str(instance)``), as in results.
- The file is created ``0600``: it holds error texts and values. A stored operation is read back with
  :mod:`pickle`, so open only journals you wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from squadnb.engine._seconds import non_negative_seconds
from squadnb.engine.operation import op_name
from squadnb.engine.result import COLUMNS, OperationResult, instance_label
from squadnb.errors import JournalError, UnknownBatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Journal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id     TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    parameters   TEXT NOT NULL,
    pickled      BLOB,
    started      TEXT NOT NULL,
    finished     TEXT,
    total        INTEGER NOT NULL,
    resumed_from TEXT
);
CREATE TABLE IF NOT EXISTS outcomes (
    batch_id   TEXT NOT NULL REFERENCES batches(batch_id),
    position   INTEGER NOT NULL,
    instance   TEXT NOT NULL,
    operation  TEXT NOT NULL,
    status     TEXT NOT NULL,
    ok         INTEGER,
    error      TEXT,
    error_type TEXT,
    value      TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    start_time TEXT,
    elapsed    REAL,
    verified   INTEGER,
    PRIMARY KEY (batch_id, position)
);
"""

_RECORD = ("UPDATE outcomes SET operation=?, status=?, ok=?, error=?, error_type=?, value=?, "
           "attempts=?, start_time=?, elapsed=?, verified=? WHERE batch_id=? AND position=?")

#: ``batches()`` counts each status in one column; the statuses a column sums.
_COUNTED = {
    "succeeded": ("succeeded",),
    "failed": ("failed", "invalid", "timed out"),
    "cancelled": ("cancelled",),
    "skipped": ("skipped",),
    "rolled_back": ("rolled back",),
    "pending": ("pending",),
}

_Job = Callable[[sqlite3.Connection], Any]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _json(value: Any) -> str:
    """``value`` as JSON, or its ``repr`` as a JSON string when it is not JSON."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(repr(value))


def parameters(operation: Any) -> dict[str, Any]:
    """An operation's public attributes (``name`` aside), JSON-ready: values that are not JSON become
    their ``repr``."""
    attributes = getattr(operation, "__dict__", {})
    return {key: json.loads(_json(value)) for key, value in sorted(attributes.items())
            if not key.startswith("_") and key != "name" and not callable(value)}


def _pickled(operation: Any) -> bytes | None:
    try:
        return pickle.dumps(operation)
    except Exception:  # a lambda, a lock, a local class: the batch is resumed with operation=
        return None


def _outcome_row(result: OperationResult) -> tuple[Any, ...]:
    error = result.error
    return (op_name(result.operation), result.status, None if result.skipped else int(result.success),
            None if error is None else str(error), None if error is None else type(error).__name__,
            _json(result.value), result.attempts, _iso(result.start_time),
            result.duration.total_seconds(), None if result.verified is None else int(result.verified))


class Journal:
    """An SQLite journal of batches and outcomes (see the module docstring for how it writes).

    Pass it as ``journal=`` to :meth:`BatchExecutor.execute` (and ``aexecute``, ``submit``,
    ``execute_with_rollback``, :class:`TransactionManager`, :class:`OperationChain`); read it with
    :meth:`batches` and :meth:`results`; resume a batch with :meth:`BatchExecutor.resume`. Usable as a
    context manager (closing it on exit).

    :param path: the database file; created (``0600``) with its tables when missing. Its directory
        must exist.
    :param timeout: seconds to wait for another process's write lock before a write fails.
    :raises JournalError: the file cannot be opened or is not a squadnb journal.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = non_negative_seconds(timeout, "timeout")
        self._lock = threading.Lock()  # one writer at a time on the writing connection
        self._queued: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._connection: sqlite3.Connection | None = self._connect()
            self._connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {str(self.path)!r}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def _write(self, job: _Job) -> Any:
        """Run ``job`` in one committed transaction on the writing connection.

        :raises JournalError: the journal is closed or SQLite failed (``UnknownBatch`` as raised).
        """
        with self._lock:
            connection = self._connection
            if connection is None:
                raise JournalError(f"the journal {str(self.path)!r} is closed")
            try:
                connection.execute("BEGIN IMMEDIATE")
                outcome = job(connection)
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(f"the journal {str(self.path)!r} failed: {exc}") from exc
                raise
        return outcome

    def _read(self, job: _Job) -> Any:
        """Run ``job`` on a connection of its own: in WAL mode a reader never waits for a writer,
        in this process or another.

        :raises JournalError: the journal is closed or SQLite failed (``UnknownBatch`` as raised).
        """
        if self._connection is None:
            raise JournalError(f"the journal {str(self.path)!r} is closed")
        try:
            connection = sqlite3.connect(self.path, timeout=self.timeout)
            try:
                return job(connection)
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {str(self.path)!r}: {exc}") from exc

    # -- what the executor writes, on squadnb's loop -------------------------------------------------

    async def abegin(self, operation: Any, instances: Sequence[Any], started: datetime,
                     resumed_from: str | None = None) -> str:
        """Record a new batch of ``operation`` over ``instances`` (every one ``pending``) and return its
        id."""
        batch_id = uuid.uuid4().hex[:16]
        name = op_name(operation)
        batch = (batch_id, name, json.dumps(parameters(operation)), _pickled(operation),
                 _iso(started), len(instances), resumed_from)
        rows = [(batch_id, position, instance_label(instance), name)
                for position, instance in enumerate(instances)]

        def begin(connection: sqlite3.Connection) -> None:
            connection.execute("INSERT INTO batches (batch_id, operation, parameters, pickled, "
                               "started, total, resumed_from) VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
            connection.executemany("INSERT INTO outcomes (batch_id, position, instance, operation, "
                                   "status) VALUES (?, ?, ?, ?, 'pending')", rows)

        self._write(begin)
        return batch_id

    async def arecord(self, batch_id: str, position: int, result: OperationResult) -> None:
        """Record one instance's outcome; returns once it is committed.

        The outcomes of one loop iteration share a commit (group commit): the first one queued
        schedules the flush, the others join it.
        """
        future = asyncio.get_running_loop().create_future()
        self._queued.append(((*_outcome_row(result), batch_id, position), future))
        if len(self._queued) == 1:
            future.get_loop().call_soon(self._flush)
        await future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        try:
            self._write(lambda connection: connection.executemany(_RECORD, [r for r, _ in queued]))
        except JournalError as exc:
            for _, future in queued:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in queued:
            if not future.done():
                future.set_result(None)

    async def afinish(self, batch_id: str, finished: datetime,
                      outcomes: Iterable[tuple[int, OperationResult]] = ()) -> None:
        """Record the outcomes not recorded yet (instances never started) and the batch's end."""
        rows = [(*_outcome_row(result), batch_id, position) for position, result in outcomes]

        def finish(connection: sqlite3.Connection) -> None:
            connection.executemany(_RECORD, rows)
            connection.execute("UPDATE batches SET finished=? WHERE batch_id=?",
                               (_iso(finished), batch_id))

        self._write(finish)

    async def arolled_back(self, batch_id: str, positions: Iterable[int]) -> None:
        """Mark the outcomes at ``positions`` ``rolled back`` (a transaction undid them)."""
        rows = [(batch_id, position) for position in positions]
        self._write(lambda connection: connection.executemany(
            "UPDATE outcomes SET status='rolled back' WHERE batch_id=? AND position=?", rows))

    def unfinished(self, batch_id: str) -> tuple[list[str], Any]:
        """The labels of the batch's instances without a recorded success (pending, failed,
        cancelled, skipped, rolled back), in the batch's order, and its stored operation (None when
        it did not pickle).

        :raises UnknownBatch: no batch has this id.
        :raises JournalError: the stored operation cannot be unpickled here.
        """
        def read(connection: sqlite3.Connection) -> tuple[list[str], bytes | None]:
            found = connection.execute("SELECT pickled FROM batches WHERE batch_id=?",
                                       (batch_id,)).fetchone()
            if found is None:
                raise UnknownBatch(f"the journal {str(self.path)!r} has no batch {batch_id!r}")
            labels = [label for (label,) in connection.execute(
                "SELECT instance FROM outcomes WHERE batch_id=? AND status != 'succeeded' "
                "ORDER BY position", (batch_id,))]
            return labels, found[0]

        labels, pickled = self._read(read)
        if pickled is None:
            return labels, None
        try:
            return labels, pickle.loads(pickled)
        except Exception as exc:
            raise JournalError(f"the operation of batch {batch_id!r} cannot be unpickled here "
                               f"({exc}); pass operation=") from exc

    # -- reading ----------------------------------------------------------------------------------

    def batches(self) -> pd.DataFrame:
        """One row per batch, oldest first: ``batch_id``, ``operation``, ``started``, ``finished``
        (NaT while running, or when its process died), ``total``, ``succeeded``, ``failed`` (failed,
        invalid or timed out), ``cancelled``, ``pending`` (no outcome recorded), then ``skipped``,
        ``rolled_back``, ``resumed_from`` (the batch this one resumed, else None) and ``parameters``
        (JSON text). Imports pandas on first use."""
        import pandas as pd

        counts = ", ".join(
            f"SUM(o.status IN ({', '.join(repr(s) for s in statuses)})) AS {column}"
            for column, statuses in _COUNTED.items())
        rows = self._read(lambda connection: connection.execute(
            f"SELECT b.batch_id, b.operation, b.started, b.finished, b.total, {counts}, "
            "b.resumed_from, b.parameters FROM batches b LEFT JOIN outcomes o USING (batch_id) "
            "GROUP BY b.batch_id ORDER BY b.started, b.rowid").fetchall())
        names = ["batch_id", "operation", "started", "finished", "total", *_COUNTED,
                 "resumed_from", "parameters"]
        frame = pd.DataFrame(rows, columns=names)
        frame = frame[["batch_id", "operation", "started", "finished", "total", "succeeded", "failed",
                       "cancelled", "pending", "skipped", "rolled_back", "resumed_from",
                       "parameters"]]
        for column in ("started", "finished"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(
                "datetime64[ns, UTC]")
        for column in ("total", *_COUNTED):
            frame[column] = frame[column].fillna(0).astype("int64")
        frame["resumed_from"] = frame["resumed_from"].astype(object).where(
            frame["resumed_from"].notna(), None)
        return frame

    def results(self, batch_id: str | None = None) -> pd.DataFrame:
        """The outcomes of one batch (or of every batch, oldest first), in each batch's input order:
        the columns of :meth:`PartialResult.to_dataframe` plus ``batch_id`` (first). An instance with
        no outcome yet has status ``pending``, ``ok`` NA and no times. ``value`` is the value as JSON
        read back (its ``repr`` when it was not JSON).

        :raises UnknownBatch: ``batch_id`` is given and no batch has it.
        """
        import pandas as pd

        def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            query = ("SELECT o.batch_id, o.instance, o.operation, o.status, o.ok, o.error, "
                     "o.error_type, o.value, o.attempts, o.start_time, o.elapsed, o.verified "
                     "FROM outcomes o JOIN batches b USING (batch_id)")
            if batch_id is None:
                return connection.execute(
                    query + " ORDER BY b.started, b.rowid, o.position").fetchall()
            if connection.execute("SELECT 1 FROM batches WHERE batch_id=?",
                                  (batch_id,)).fetchone() is None:
                raise UnknownBatch(f"the journal {str(self.path)!r} has no batch {batch_id!r}")
            return connection.execute(query + " WHERE o.batch_id=? ORDER BY o.position",
                                      (batch_id,)).fetchall()

        rows = self._read(read)
        column = list(zip(*rows)) if rows else [()] * 12
        return pd.DataFrame({
            "batch_id": pd.Series(column[0], dtype="str"),
            "instance": pd.Series(column[1], dtype="str"),
            "operation": pd.Series(column[2], dtype="str"),
            "status": pd.Series(column[3], dtype="str"),
            "ok": pd.array([pd.NA if v is None else bool(v) for v in column[4]], dtype="boolean"),
            "error": pd.Series(column[5], dtype="str"),
            "error_type": pd.Series(column[6], dtype="str"),
            "value": pd.Series([None if v is None else json.loads(v) for v in column[7]],
                               dtype=object),
            "attempts": pd.Series(column[8], dtype="int64"),
            "start_time": pd.to_datetime(pd.Series(column[9], dtype=object), utc=True,
                                         format="ISO8601").astype("datetime64[ns, UTC]"),
            "elapsed": pd.to_timedelta(pd.Series(column[10], dtype="float64"), unit="s")
                         .astype("timedelta64[ns]"),
            "verified": pd.array([pd.NA if v is None else bool(v) for v in column[11]],
                                 dtype="boolean"),
        }, columns=["batch_id", *COLUMNS])

    def close(self) -> None:
        """Close the database (idempotent); a batch still writing to it then fails with
        ``JournalError``."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"
