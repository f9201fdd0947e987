"""The notebook layer: the BatchForm widget, a live status view, and reports on batch results.

Importing it loads ipywidgets and pandas; nothing below it (engine, sessions, ops) imports it.
"""

from __future__ import annotations

from squadnb.notebook.form import BatchForm
from squadnb.notebook.report import STATUS_COLOURS, frame, summarize, timeline, to_csv, to_html
from squadnb.notebook.watch import StatusView, watch

__all__ = ["STATUS_COLOURS", "BatchForm", "StatusView", "frame", "summarize", "timeline", "to_csv",
           "to_html", "watch"]
