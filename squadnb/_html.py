"""Pure builders for how a :class:`~squadnb.engine.result.PartialResult` renders: HTML for notebooks
(a pandas Styler table, rows coloured by status) and plain text. ``status_table`` also renders a
squad's table.

Everything shown goes through HTML escaping. The markup holds no random id, ``id()`` or clock reading:
the Styler's uuid is derived from the content, so identical results render to identical bytes
(notebooks can be compared) while two different tables on one page never share element ids.
"""

from __future__ import annotations

import hashlib
import html
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ATTENTION", "BAD", "GOOD", "INFO", "MUTED", "STATUS_STYLES", "WARN", "result_html",
           "result_text", "row_style", "status_table"]

def row_style(background: str) -> str:
    """The CSS of a table row on ``background``, with dark text so it reads in dark themes too."""
    return f"background-color: {background}; color: #212529"


#: The backgrounds every squadnb table uses (results, squads, reports).
GOOD, INFO, WARN, ATTENTION, MUTED, BAD = "#d4edda", "#e2f0fb", "#fff3cd", "#ffe5b4", "#e2e3e5", "#f8d7da"

#: Row style of each result status.
STATUS_STYLES = {
    "succeeded": row_style(GOOD),
    "rolled back": row_style(WARN),
    "skipped": row_style(MUTED),
    "failed": row_style(BAD),
    "invalid": row_style(BAD),
    "timed out": row_style(BAD),
    "cancelled": row_style(BAD),
}


def _display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything as text (so every cell is escaped), elapsed in seconds, empty cells for NA; the
    ``verified`` column only when some operation verified (it is all NA otherwise)."""
    if "verified" in frame and frame["verified"].isna().all():
        frame = frame.drop(columns="verified")
    shown = frame.astype(object).where(frame.notna(), "")
    for flag in ("ok", "verified"):
        if flag in shown:
            shown[flag] = ["" if v == "" else str(bool(v)) for v in shown[flag]]
    shown["value"] = ["" if v is None else str(v) for v in frame["value"]]
    shown["start_time"] = [t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for t in frame["start_time"]]
    shown["elapsed"] = [f"{td.total_seconds():.3f}s" for td in frame["elapsed"]]
    return shown.astype(str)


def status_table(caption: str, shown: pd.DataFrame, styles: Mapping[str, str], css_class: str) -> str:
    """``<div class="<css_class>">``: the escaped caption, then ``shown`` (every cell text) as a table
    with each row coloured by ``styles[row["status"]]`` (no colour without a ``status`` column; a plain ``DataFrame.to_html`` table when
    jinja2, which Styler needs, is missing). The Styler uuid is derived from the content."""
    try:
        import jinja2  # noqa: F401  (Styler needs it; checked here so the fallback is explicit)
    except ImportError:
        table = shown.to_html(index=False, escape=True)
    else:
        digest = hashlib.sha1((caption + shown.to_csv(index=False)).encode()).hexdigest()[:10]
        table = (shown.style.apply(lambda row: [styles.get(row.get("status", ""), "")] * len(row),
                                   axis=1)
                 .format(escape="html")
                 .hide(axis="index")
                 .set_uuid(f"squadnb_{digest}")
                 .to_html())
    return (f'<div class="{css_class}"><p class="squadnb-summary">{html.escape(caption)}</p>\n'
            f"{table}</div>")


def result_html(summary: str, frame: pd.DataFrame) -> str:
    """A result's table: the summary line, then one row per instance coloured by its status."""
    return status_table(summary, _display_frame(frame), STATUS_STYLES, "squadnb-result")


def result_text(summary: str, frame: pd.DataFrame) -> str:
    """The summary line, then the same table as text."""
    if frame.empty:
        return summary
    return f"{summary}\n{_display_frame(frame).to_string(index=False)}"
