"""What the ``squadnb`` command prints and returns: exit statuses, one-line errors, and the tables of
results and squads as text, JSON or CSV.

Every batch record comes from :meth:`PartialResult.to_dataframe() <squadnb.PartialResult.to_dataframe>`,
so the command names its fields as the notebook's tables and the exported reports name their columns.
pandas (and json, dataclasses) are imported by the functions that build a table, never at import
time: ``squadnb --help`` stays fast.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from squadnb.engine.result import PartialResult

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "QUOTE", "UsageError", "clip",
           "emit_frame", "emit_result", "error", "flat", "one_line", "printable", "progress",
           "result_table", "text_table"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: the most characters of a bad value an error message quotes
QUOTE = 80

#: The columns of a result the text table shows (the JSON and CSV records hold every column).
TEXT_COLUMNS = ("instance", "operation", "status", "attempts", "elapsed")


class UsageError(Exception):
    """Bad input found by the command itself: reported as ``squadnb: error: …``, exit status 2,
    nothing changed."""


def printable(text: object, keep: str = "") -> str:
    """``text`` safe for a terminal: every character that is not printable (control characters such
    as ESC, format characters such as U+202E, line separators such as U+0085) written as its Python
    escape (``\\x1b``), except those in ``keep``. Titles, branches and errors come from files and
    agents; printed raw they could move the cursor, recolour or reorder what the user reads."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def clip(value: object, limit: int = QUOTE) -> str:
    """``repr`` of the first ``limit`` characters of ``value`` (``…`` after it when cut), to quote a
    bad value in an error: control characters escaped, never more than ``limit`` of its
    characters."""
    text = str(value)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def one_line(text: object) -> str:
    """``text`` with its lines joined by ``; `` (an error message stays one line on stderr)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def error(message: object) -> None:
    """Print ``squadnb: error: <message>`` on stderr: one line, non-printable characters escaped."""
    print(f"squadnb: error: {printable(one_line(message))}", file=sys.stderr)


def progress() -> str | bool:
    """A text bar on stderr when a person watches it; nothing in pipes, logs and CI."""
    return "text" if sys.stderr.isatty() else False


def _jsonable(value: Any) -> Any:
    """A result's ``value`` as JSON holds it: a dataclass as an object, anything else JSON cannot
    hold as its ``str``."""
    import dataclasses

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def flat(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every cell a plain value a script reads: ``elapsed`` (a Timedelta column) as
    float seconds, times as ISO 8601 strings, ``value`` as JSON-able data, NA as ``None``."""
    import pandas as pd

    out = frame.astype(object)
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_timedelta64_dtype(series):
            out[column] = [None if pd.isna(v) else round(v.total_seconds(), 6) for v in series]
        elif pd.api.types.is_datetime64_any_dtype(series):
            out[column] = [None if pd.isna(v) else v.isoformat() for v in series]
        elif column == "value":
            out[column] = [_jsonable(v) for v in series]
        else:
            out[column] = [None if _is_na(v) else _plain(v) for v in series]
    return out


def _is_na(value: Any) -> bool:
    import pandas as pd

    return not isinstance(value, (list, tuple, dict)) and bool(pd.isna(value))


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (json cannot write ``numpy.int64``)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def text_table(frame: pd.DataFrame) -> str:
    """``frame`` as a plain table: numbers right-aligned, text left-aligned (pandas right-aligns every
    column, so text cells and their header are padded to one width first), empty cells for
    ``None``, no trailing blanks."""
    import pandas as pd

    frame = frame.copy()
    labels = {}
    for column in frame.columns:
        if pd.api.types.infer_dtype(frame[column], skipna=True) in ("integer", "floating",
                                                                    "mixed-integer-float"):
            continue
        cells = ["" if _is_na(v) else printable(v) for v in frame[column]]
        width = max(len(str(column)), *map(len, cells)) if cells else len(str(column))
        frame[column] = [cell.ljust(width) for cell in cells]
        labels[column] = str(column).ljust(width)
    text = frame.rename(columns=labels).to_string(index=False)
    return "\n".join(line.rstrip() for line in text.splitlines())


def result_table(frame: pd.DataFrame) -> str:
    """The text table of a result's records (``flat`` columns): who, what, how it went, how long, and
    the error on one line of at most 100 characters; extra columns (a diff's ``added``/``removed``)
    after ``elapsed``."""
    shown = flat(frame)
    extra = [c for c in shown.columns if c not in (*TEXT_COLUMNS, "ok", "error", "error_type", "value",
                                                   "start_time", "content")]
    shown = shown[[*TEXT_COLUMNS, *extra, "error"]].copy()
    shown["elapsed"] = [None if v is None else f"{v:.2f}s" for v in shown["elapsed"]]  # None: pending
    shown["error"] = [None if e is None else one_line(e)[:100] for e in shown["error"]]
    return text_table(shown)


def emit_frame(args: argparse.Namespace, frame: pd.DataFrame, empty: str = "no instances") -> None:
    """Print ``frame`` as the output options say: JSON records, CSV, or a text table (``empty``
    when it has no rows)."""
    import json

    if args.json:
        print(json.dumps(flat(frame).to_dict(orient="records"), indent=2))
    elif args.csv:
        from squadnb.notebook.report import spreadsheet_safe

        frame_out = flat(frame)
        if "value" in frame_out:
            frame_out["value"] = [None if v is None else json.dumps(v) for v in frame_out["value"]]
        # text a spreadsheet would run as a formula starts with "'"; --json keeps text exact
        spreadsheet_safe(frame_out.map(lambda v: printable(v, keep="\n\t") if isinstance(v, str)
                                       else v)).to_csv(sys.stdout, index=False)
    elif frame.empty:
        print(empty)
    else:
        print(text_table(flat(frame)))


def emit_result(args: argparse.Namespace, result: PartialResult, frame: pd.DataFrame | None = None) -> None:
    """Print a batch's records (``frame``, default ``result.to_dataframe()``): JSON or CSV with every
    column, or the text table and ``result.summary()``."""
    frame = result.to_dataframe() if frame is None else frame
    if args.json or args.csv:
        emit_frame(args, frame)
    elif frame.empty:
        print("no instances")
    else:
        print(result_table(frame))
        print(result.summary())
