"""What a batch returns: one :class:`OperationResult` per instance, gathered in a
:class:`PartialResult` (which renders as a pandas table in notebooks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field, fields, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from squadnb.engine.operation import op_name
from squadnb.errors import BatchError, Cancelled, OperationTimeout, ValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["OperationResult", "PartialResult", "instance_label"]

COLUMNS = ("instance", "operation", "status", "ok", "error", "error_type", "value", "attempts",
           "start_time", "elapsed", "verified")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def instance_label(instance: Any) -> str:
    """How results name an instance: its ``title`` when it has a non-empty one, else ``str(instance)``."""
    title = getattr(instance, "title", None)
    return title if isinstance(title, str) and title else str(instance)


@dataclass(eq=False, slots=True)
class OperationResult:
    """The outcome of one operation on one instance.

    ``error`` is the exception that made it fail (``None`` on success); ``value`` what ``execute``
    returned; ``start_time``/``end_time`` aware UTC datetimes; ``attempts`` the number of ``execute``
    calls made (0 when it never ran: invalid, skipped, or cancelled before it started);
    ``rolled_back`` True once a transaction's rollback of this success succeeded; ``skipped`` True
    where a :class:`~squadnb.ConditionalOperation`'s predicate was false; ``verified`` True when the
    operation's ``verify`` held, False when it did not, None when there was none to run (or it never
    got that far). Every field after ``operation`` is keyword-only.
    """

    instance: Any
    operation: Any
    _: KW_ONLY
    error: BaseException | None = None
    value: Any = None
    start_time: datetime = field(default_factory=_now)
    end_time: datetime = field(default_factory=_now)
    rolled_back: bool = False
    attempts: int = 0
    skipped: bool = False
    verified: bool | None = None

    @property
    def duration(self) -> timedelta:
        """``end_time - start_time``."""
        return self.end_time - self.start_time

    @property
    def success(self) -> bool:
        """The operation ran (was not skipped) and raised nothing."""
        return self.error is None and not self.skipped

    @property
    def status(self) -> str:
        """One of ``"succeeded" "skipped" "failed" "invalid" "timed out" "cancelled" "rolled back"``."""
        if self.skipped:
            return "skipped"
        error = self.error
        if error is None:
            return "rolled back" if self.rolled_back else "succeeded"
        if isinstance(error, ValidationError):
            return "invalid"
        if isinstance(error, OperationTimeout):
            return "timed out"
        if isinstance(error, Cancelled):
            return "cancelled"
        return "failed"

    def __repr__(self) -> str:
        detail = f": {type(self.error).__name__}: {self.error}" if self.error is not None else ""
        return (f"OperationResult({op_name(self.operation)} on {instance_label(self.instance)!r} "
                f"{self.status}{detail})")


@dataclass(eq=False, kw_only=True)
class PartialResult:
    """The outcome of a batch: every instance's :class:`OperationResult`, split by outcome.

    ``results`` is in input order; ``successes`` and ``failures`` in completion order; ``skipped``
    holds a conditional's skips (in neither of the other two). A rolled-back success stays in
    ``successes`` with status ``"rolled back"``. Built by the executor; when built by hand without
    ``results``, ``results`` is ``successes + failures + skipped``. ``batch_id`` is the batch's id in
    the :class:`~squadnb.Journal` it was run with (None without one). Every field is keyword-only.
    """

    successes: list[OperationResult] = field(default_factory=list)
    failures: list[OperationResult] = field(default_factory=list)
    total: int = 0
    start_time: datetime = field(default_factory=_now)
    end_time: datetime = field(default_factory=_now)
    results: list[OperationResult] = field(default_factory=list)
    skipped: list[OperationResult] = field(default_factory=list)
    operation: Any = None
    batch_id: str | None = None

    def __post_init__(self) -> None:
        if not self.results:
            self.results = [*self.successes, *self.failures, *self.skipped]

    @property
    def duration(self) -> timedelta:
        """``end_time - start_time``: the whole batch."""
        return self.end_time - self.start_time

    @property
    def all_succeeded(self) -> bool:
        """No failures, and at least one instance (False for an empty batch, as in the seed)."""
        return self.total > 0 and not self.failures

    @property
    def success_rate(self) -> float:
        """Percent (0–100) of the instances that ran (skips excluded) that succeeded; 0.0 if none ran."""
        ran = len(self.successes) + len(self.failures)
        return 100.0 * len(self.successes) / ran if ran else 0.0

    def error(self) -> BaseException | None:
        """``None`` without failures; the error itself for one failure; otherwise a
        :class:`~squadnb.errors.BatchError` reading ``"<n> operations failed:\\n  - <Op> on instance
        '<title>': <err>"`` (one line per failure, completion order; ``.errors`` holds them)."""
        if not self.failures:
            return None
        if len(self.failures) == 1:
            return self.failures[0].error
        lines = [f"{len(self.failures)} operations failed:"]
        lines += [f"  - {op_name(f.operation)} on instance '{instance_label(f.instance)}': {f.error}"
                  for f in self.failures]
        return BatchError("\n".join(lines), [f.error for f in self.failures])

    def failed_instances(self) -> list[Any]:
        """The instances that failed, in completion order (e.g. to run them again)."""
        return [f.instance for f in self.failures]

    def summary(self) -> str:
        """One line: ``"Pause: 8 succeeded, 2 failed of 10 in 1.3s"`` (plus rolled-back and skipped
        counts when there are any)."""
        name = op_name(self.operation) if self.operation is not None else (
            op_name(self.results[0].operation) if self.results else "")
        rolled = sum(r.rolled_back for r in self.successes)
        parts = [f"{len(self.successes)} succeeded" + (f" ({rolled} rolled back)" if rolled else ""),
                 f"{len(self.failures)} failed"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        text = f"{', '.join(parts)} of {self.total} in {self.duration.total_seconds():.1f}s"
        return f"{name}: {text}" if name else text

    def to_dataframe(self, values: bool = False) -> pd.DataFrame:
        """One row per instance, in input order.

        Columns: ``instance`` (title, else ``str``), ``operation`` (name), ``status``, ``ok`` (nullable
        boolean: NA where skipped), ``error`` (message, NA on success), ``error_type`` (class name),
        ``value`` (object), ``attempts`` (int), ``start_time`` (datetime, UTC), ``elapsed``
        (Timedelta), ``verified`` (nullable boolean: True/False where the operation has a
        ``verify`` that ran, NA otherwise); after ``instance``, a ``host`` column (str) when instances
        have a ``host`` attribute (a :class:`~squadnb.distributed.Fleet`'s). Imports pandas on first
        use.

        :param values: also spread each value that is a dataclass instance or a mapping into columns
            of its own, after these (a :class:`~squadnb.ops.CommandRun` gives ``exit_code``,
            ``stdout``, …, ``seconds``), in the order the fields are first met; a row without that
            field has NA there. A field named like one of the columns above is prefixed ``value_``.
            A column of ints (or bools) with NA is a nullable ``Int64`` (``boolean``) column.
        """
        import pandas as pd

        rows = self.results
        frame = pd.DataFrame({
            "instance": pd.Series([instance_label(r.instance) for r in rows], dtype="str"),
            "operation": pd.Series([op_name(r.operation) for r in rows], dtype="str"),
            "status": pd.Series([r.status for r in rows], dtype="str"),
            "ok": pd.array([pd.NA if r.skipped else r.success for r in rows], dtype="boolean"),
            "error": pd.Series([None if r.error is None else str(r.error) for r in rows], dtype="str"),
            "error_type": pd.Series([None if r.error is None else type(r.error).__name__ for r in rows],
                                    dtype="str"),
            "value": pd.Series([r.value for r in rows], dtype=object),
            "attempts": pd.Series([r.attempts for r in rows], dtype="int64"),
            "start_time": pd.to_datetime(pd.Series([r.start_time for r in rows], dtype=object),
                                         utc=True).astype("datetime64[ns, UTC]"),
            "elapsed": pd.to_timedelta(pd.Series([r.duration for r in rows], dtype=object))
                         .astype("timedelta64[ns]"),
            "verified": pd.array([pd.NA if r.verified is None else r.verified for r in rows],
                                 dtype="boolean"),
        }, columns=list(COLUMNS))
        if values:
            for name, column in _spread([r.value for r in rows]).items():
                frame["value_" + name if name in COLUMNS else name] = column
        if any(hasattr(r.instance, "host") for r in rows):  # a Fleet's instances: name their host too
            frame.insert(1, "host", pd.Series([getattr(r.instance, "host", None) for r in rows],
                                              dtype="str"))
        return frame

    def __repr__(self) -> str:
        return f"PartialResult({self.summary()})"

    def __str__(self) -> str:
        """The summary line and the table as text (the fallback where HTML does not render)."""
        from squadnb._html import result_text

        return result_text(self.summary(), self.to_dataframe())

    def _repr_html_(self) -> str:
        from squadnb._html import result_html

        return result_html(self.summary(), self.to_dataframe())


def _fields_of(value: Any) -> dict[Any, Any] | None:
    """A dataclass instance's fields or a mapping's items; None for any other value."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return None


def _spread(values: list[Any]) -> dict[str, pd.Series]:
    """One column per field of the spreadable values (first-met order), NA where a row lacks it."""
    import pandas as pd

    spread = [_fields_of(v) for v in values]
    names = list(dict.fromkeys(key for row in spread if row for key in row))
    columns: dict[str, pd.Series] = {}
    for name in names:
        cells = [row[name] if row and name in row else None for row in spread]
        present = [c for c in cells if c is not None]
        missing = len(present) < len(cells)
        if present and all(isinstance(c, bool) for c in present):
            dtype = "boolean" if missing else "bool"
        elif present and all(isinstance(c, int) and not isinstance(c, bool) for c in present):
            dtype = "Int64" if missing else "int64"
        elif present and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in present):
            dtype = "float64"
        else:
            dtype = "object"
        columns[str(name)] = pd.Series(cells, dtype=dtype)
    return columns
