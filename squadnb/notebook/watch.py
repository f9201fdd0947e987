"""A live status view of a squad: a table of its instances, refreshed on squadnb's loop while shown."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import ipywidgets as widgets

from squadnb import _loop

__all__ = ["StatusView", "watch"]


class StatusView:
    """The live view :func:`watch` returns.

    ``widget`` is an ``ipywidgets.HTML`` whose value is re-rendered every ``interval`` seconds by a
    task on squadnb's loop (``squad.arefresh()``, then the squad's coloured table). The task stops on
    :meth:`stop`, or when the last view of the widget in the front end is closed (re-running the
    cell, closing the notebook). A refresh that raises shows its error in the view and the task keeps
    going; ``refreshes`` counts the completed refreshes.
    """

    def __init__(self, squad: Any, interval: float = 1.0) -> None:
        if not interval > 0:
            raise ValueError(f"watch: interval must be a positive number of seconds, not {interval!r}")
        self.squad = squad
        self.interval = float(interval)
        self.refreshes = 0
        self.last_error: Exception | None = None
        # _view_count=0 (not None) asks the front end to count its views of the widget.
        self.widget = widgets.HTML(value=squad._repr_html_(), _view_count=0)
        self.widget.observe(self._on_views, names="_view_count")
        self._future = _loop.submit(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.squad.arefresh()
                value = self.squad._repr_html_()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - shown in the view; the next refresh may work
                self.last_error = exc
                value = (f'<p style="color:#b00020">refresh failed: '
                         f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>")
            self.widget.value = value
            self.refreshes += 1
            await asyncio.sleep(self.interval)

    def _on_views(self, change: Any) -> None:
        if change["old"] and not change["new"]:
            self.stop()

    @property
    def running(self) -> bool:
        """True until :meth:`stop` (or the last view closing) ended the refresh task."""
        return not self._future.done()

    def stop(self) -> None:
        """Stop refreshing; the table keeps its last content. Calling it twice is harmless."""
        self._future.cancel()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = "refreshing" if self.running else "stopped"
        return f"StatusView({len(self.squad.instances)} instances, every {self.interval:g}s, {state})"


def watch(squad: Any, interval: float = 1.0) -> StatusView:
    """Show a live status table of ``squad``'s instances, refreshed every ``interval`` seconds on
    squadnb's background loop (the kernel stays free). Display the returned view (make it the last
    expression of a cell); call ``.stop()`` to stop refreshing. ``interval`` must be positive
    (``ValueError`` otherwise)."""
    return StatusView(squad, interval)
