"""Pure builders for how a :class:`~squadnb.engine.result.PartialResult` renders: HTML for notebooks
(a pandas Styler table, rows coloured by status) and plain text.

Everything shown goes through HTML escaping. The markup holds no random id, ``id()`` or clock reading:
the Styler's uuid is derived from the content, so identical results render to identical bytes
(notebooks can be compared) while two different tables on one page never share element ids.
"""

from __future__ import annotations

import hashlib
import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["result_html", "result_text"]

_TEXT = "color: #212529"
STATUS_STYLES = {
    "succeeded": f"background-color: #d4edda; {_TEXT}",
    "rolled back": f"background-color: #fff3cd; {_TEXT}",
    "skipped": f"background-color: #e2e3e5; {_TEXT}",
    "failed": f"background-color: #f8d7da; {_TEXT}",
    "invalid": f"background-color: #f8d7da; {_TEXT}",
    "timed out": f"background-color: #f8d7da; {_TEXT}",
    "cancelled": f"background-color: #f8d7da; {_TEXT}",
}


def _display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything as text (so every cell is escaped), elapsed in seconds, empty cells for NA."""
    shown = frame.astype(object).where(frame.notna(), "")
    shown["ok"] = ["" if v == "" else str(bool(v)) for v in shown["ok"]]
    shown["value"] = ["" if v is None else str(v) for v in frame["value"]]
    shown["start_time"] = [t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for t in frame["start_time"]]
    shown["elapsed"] = [f"{td.total_seconds():.3f}s" for td in frame["elapsed"]]
    return shown.astype(str)


def _row_style(row: pd.Series) -> list[str]:
    return [STATUS_STYLES.get(row["status"], "")] * len(row)


def result_html(summary: str, frame: pd.DataFrame) -> str:
    """``<div class="squadnb-result">``: the escaped summary line, then the table with one coloured row
    per instance (a plain ``DataFrame.to_html`` table when jinja2, which Styler needs, is missing)."""
    shown = _display_frame(frame)
    try:
        import jinja2  # noqa: F401  (Styler needs it; checked here so the fallback is explicit)
    except ImportError:
        table = shown.to_html(index=False, escape=True)
    else:
        digest = hashlib.sha1((summary + shown.to_csv(index=False)).encode()).hexdigest()[:10]
        table = (shown.style.apply(_row_style, axis=1)
                 .format(escape="html")
                 .hide(axis="index")
                 .set_uuid(f"squadnb_{digest}")
                 .to_html())
    return (f'<div class="squadnb-result"><p class="squadnb-summary">{html.escape(summary)}</p>\n'
            f"{table}</div>")


def result_text(summary: str, frame: pd.DataFrame) -> str:
    """The summary line, then the same table as text."""
    if frame.empty:
        return summary
    return f"{summary}\n{_display_frame(frame).to_string(index=False)}"
