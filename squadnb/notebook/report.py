"""Reporting on batch runs: a timeline plot, a per-operation summary, CSV and HTML exports.

Every function takes one :class:`~squadnb.PartialResult` or a list of them (the steps of an
:class:`~squadnb.OperationChain`) and builds on ``PartialResult.to_dataframe()``; or a DataFrame of
those columns, such as :meth:`Journal.results() <squadnb.Journal.results>` (across runs and
processes: each batch is a step, and instances a dead process never ran are ``pending``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numbers

import pandas as pd

from squadnb._html import STATUS_STYLES, status_table

__all__ = ["STATUS_COLOURS", "frame", "spreadsheet_safe", "summarize", "timeline", "to_csv", "to_html"]

#: Colour of each result status in :func:`timeline` (matplotlib colour names).
STATUS_COLOURS: dict[str, str] = {
    "succeeded": "tab:green",
    "skipped": "tab:gray",
    "failed": "tab:red",
    "invalid": "tab:orange",
    "timed out": "tab:purple",
    "cancelled": "tab:brown",
    "rolled back": "tab:blue",
    "pending": "lightgray",
}
_STATUSES = list(STATUS_COLOURS)


def _steps(result_or_list: Any) -> list[Any]:
    steps = list(result_or_list) if isinstance(result_or_list, Sequence) else [result_or_list]
    for step in steps:
        if not hasattr(step, "to_dataframe"):
            raise TypeError(f"expected a PartialResult or a list of them, got {type(step).__name__}")
    return steps


def frame(result_or_list: Any) -> pd.DataFrame:
    """All rows of ``to_dataframe()`` of each step, with a ``step`` column (0 for a single result;
    for a journal's results, the batch's position in order of appearance), an ``end_time`` column
    and ``seconds`` (``elapsed`` as float seconds)."""
    if isinstance(result_or_list, pd.DataFrame):
        if result_or_list.empty:
            raise ValueError("nothing to report: the table of results is empty")
        batches = result_or_list.get("batch_id")
        df = result_or_list.assign(step=0 if batches is None else pd.factorize(batches)[0])
        df = df.reset_index(drop=True)
    else:
        parts = [step.to_dataframe().assign(step=i) for i, step in enumerate(_steps(result_or_list))]
        if not parts:
            raise ValueError("nothing to report: the list of results is empty")
        df = pd.concat(parts, ignore_index=True)
    df["end_time"] = df["start_time"] + df["elapsed"]
    df["seconds"] = df["elapsed"].dt.total_seconds()
    return df[["step", *[c for c in df.columns if c != "step"]]]


def summarize(result_or_list: Any) -> pd.DataFrame:
    """One row per operation (in order of first appearance): ``total``, a count column per status
    that occurs (in the order of :data:`STATUS_COLOURS`), ``success_rate`` (percent of the instances
    that ran, as ``PartialResult.success_rate``; NaN when none ran), ``mean_seconds`` and
    ``max_seconds`` (over the instances that ran)."""
    df = frame(result_or_list)
    ops = list(dict.fromkeys(df["operation"]))
    grouped = df.groupby("operation", sort=False)
    counts = pd.crosstab(df["operation"], df["status"]).reindex(index=ops)
    counts = counts[[s for s in _STATUSES if s in counts.columns]]
    ran = df["ok"].notna()
    ok = df["ok"].fillna(False).astype(bool)
    summary = pd.DataFrame({"total": grouped.size()}).reindex(ops).join(counts)
    summary["success_rate"] = (ok.groupby(df["operation"]).sum()
                               / ran.groupby(df["operation"]).sum() * 100).reindex(ops)
    summary["mean_seconds"] = grouped["seconds"].mean().reindex(ops)
    summary["max_seconds"] = grouped["seconds"].max().reindex(ops)
    summary.columns.name = None
    return summary


def timeline(result_or_list: Any, ax: Any = None) -> Any:
    """Draw one horizontal bar per instance (and step) from its start to its end, coloured by
    status; time in seconds from the first start. The steps of a chain share the instance's row and
    are labelled with their operation. Instances that never started get a row and no bar. Titles and
    operation names are drawn as written (a ``$`` never starts mathtext).

    Returns the matplotlib ``Axes`` (a new figure's when ``ax`` is None). Needs matplotlib (the
    ``plot`` extra): ``ImportError`` with the install command otherwise.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ImportError("timeline() needs matplotlib: pip install 'squadnb[plot]'") from exc
    df = frame(result_or_list)
    rows = list(dict.fromkeys(df["instance"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    origin = df["start_time"].min()
    ran = df[df["start_time"].notna()]
    left = (ran["start_time"] - origin).dt.total_seconds()
    bars = ax.barh([rows.index(name) for name in ran["instance"]], ran["seconds"].fillna(0.0),
                   left=left, color=[STATUS_COLOURS.get(s, "black") for s in ran["status"]],
                   edgecolor="white", height=0.6)
    if df["step"].nunique() > 1:
        ax.bar_label(bars, labels=list(ran["operation"]), label_type="center", fontsize=8,
                     parse_math=False)
    # titles and operation names are shown as written: a '$' would start matplotlib mathtext, and a
    # bad formula fails the whole figure when it is drawn
    ax.set_yticks(range(len(rows)), labels=rows, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first start")
    ax.set_title(" → ".join(dict.fromkeys(df["operation"])), parse_math=False)
    present = [s for s in _STATUSES if s in set(df["status"])]
    ax.legend(handles=[Patch(color=STATUS_COLOURS[s], label=s) for s in present],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # beside: hides no bar
    return ax


#: how a cell that a spreadsheet runs as a formula starts (OWASP's CSV injection list)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(value: Any) -> Any:
    if value is None or isinstance(value, (numbers.Number, pd.Timestamp, pd.Timedelta)):
        return value  # a negative number is a number, not a formula
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` in which every text cell a spreadsheet would run as a formula (one that
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, such as an agent's
    ``=HYPERLINK(...)`` in a value or an error) starts with ``'``, which spreadsheets show as text
    and do not run. Numbers, times and missing values are kept as they are."""
    return df.map(_safe_cell)


def to_csv(result_or_list: Any, path: str | Path, *, formulas: bool = False) -> Path:
    """Write :func:`frame` to ``path`` as CSV (``elapsed`` as ``seconds``; times in ISO 8601 UTC)
    and return the path. ``pandas.read_csv(path)`` reads it back.

    Titles, errors and values come from users and agents, and a CSV is opened in spreadsheets: a
    text cell a spreadsheet would run as a formula is written with a leading ``'``
    (:func:`spreadsheet_safe`), so ``read_csv`` reads ``'=1+1`` for a title ``=1+1``.
    ``formulas=True`` writes such cells as they are."""
    path = Path(path)
    table = frame(result_or_list).drop(columns=["elapsed"])
    (table if formulas else spreadsheet_safe(table)).to_csv(path, index=False)
    return path


def to_html(result_or_list: Any, path: str | Path) -> Path:
    """Write a standalone HTML page to ``path``: the :func:`summarize` table (one row per operation),
    then every row of :func:`frame`, each coloured by its status; return the path.

    Both tables come from the builder of ``PartialResult._repr_html_`` (``squadnb._html``), so every
    cell — titles, operation names, error messages, values — is HTML-escaped: a ``<script>`` in any
    of them is shown as text, never run."""
    path = Path(path)
    summary = summarize(result_or_list)
    summary.index.name = "operation"
    rows = frame(result_or_list).drop(columns=["elapsed"])
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>squadnb batch report</title>"
        "</head><body>\n<h1>squadnb batch report</h1>\n"
        + status_table("Summary", _as_text(summary.reset_index(), 2), STATUS_STYLES,
                       "squadnb-report-summary")
        + "\n" + status_table("Instances", _as_text(rows, 3), STATUS_STYLES, "squadnb-report-rows")
        + "\n</body></html>\n",
        encoding="utf-8")
    return path


def _as_text(df: pd.DataFrame, precision: int) -> pd.DataFrame:
    """Every cell as the text to show (floats to ``precision`` places, times in ISO 8601, empty for
    NA), so the table builder escapes all of it."""
    def cell(value: Any) -> str:
        if pd.api.types.is_scalar(value) and pd.isna(value):
            return ""
        if isinstance(value, float):
            return f"{value:.{precision}f}"
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        return str(value)

    return df.astype(object).map(cell)
