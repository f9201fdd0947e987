"""Progress of a batch: :class:`ProgressTracker` (counts and callbacks, thread-safe) and the bars that
``progress=`` selects (tqdm.auto, a widget bar, a text bar, or a callable).

``progress=`` is resolved in one place, :func:`make_bar`. Bars only render: the executor updates them
from squadnb's loop thread, in completion order, so no two threads ever write one bar.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any, Callable, Union

if TYPE_CHECKING:
    from squadnb.engine.result import OperationResult

__all__ = ["Progress", "ProgressCallbackWarning", "ProgressTracker", "make_bar"]

ProgressCallback = Callable[["OperationResult", int, int], Any]
#: What ``progress=`` accepts on every execute call.
Progress = Union[str, bool, None, ProgressCallback]

_MODES = ("auto", "widget", "text")


class ProgressCallbackWarning(UserWarning, RuntimeWarning):
    """A progress callback raised; it is reported once (per tracker and callback) and the batch goes
    on."""


class ProgressTracker:
    """Counts finished operations and calls back on each one.

    ``on_progress(callback)`` registers ``callback(result, completed, total)``; ``update(result)``
    counts one result and calls every callback, in registration order. Thread-safe: the count is
    taken under a lock and callbacks run outside it, one update at a time, so they see results in
    completion order. A callback that raises is reported once as a :class:`ProgressCallbackWarning`
    and never stops the batch; later errors from the same callback are ignored.

    A tracker shared by several batches (an :class:`~squadnb.OperationChain`) counts every result:
    size ``total`` for all of them. A transaction's rollback is a separate phase and never reported
    here, so ``completed`` never passes ``total`` because of it.
    """

    def __init__(self, total: int) -> None:
        if total < 0:
            raise ValueError(f"total must not be negative, got {total!r}")
        self.total = total
        self._completed = 0
        self._callbacks: list[ProgressCallback] = []
        self._reported: list[ProgressCallback] = []
        self._count_lock = threading.Lock()
        self._dispatch_lock = threading.RLock()

    def on_progress(self, callback: ProgressCallback) -> ProgressTracker:
        """Call ``callback(result, completed, total)`` after each update; returns the tracker."""
        if not callable(callback):
            raise TypeError(f"on_progress needs a callable, got {callback!r}")
        with self._count_lock:
            self._callbacks.append(callback)
        return self

    def update(self, result: OperationResult) -> None:
        """Count ``result`` and run the callbacks (their exceptions become one warning each)."""
        with self._dispatch_lock:
            with self._count_lock:
                self._completed += 1
                completed, callbacks = self._completed, list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(result, completed, self.total)
                except Exception as exc:
                    if any(callback is seen for seen in self._reported):
                        continue
                    self._reported.append(callback)
                    warnings.warn(ProgressCallbackWarning(
                        f"progress callback {callback!r} raised {type(exc).__name__}: {exc}; "
                        "the batch goes on, and further errors from this callback are ignored"),
                        stacklevel=2)

    @property
    def progress(self) -> tuple[int, int]:
        """``(completed, total)``."""
        with self._count_lock:
            return self._completed, self.total

    @property
    def is_complete(self) -> bool:
        """True once ``completed >= total``."""
        with self._count_lock:
            return self._completed >= self.total

    def __repr__(self) -> str:
        completed, total = self.progress
        return f"<ProgressTracker {completed}/{total}>"


class Bar:
    """A progress display for one batch phase: ``update(result)`` per finished instance, then
    ``close(failed)``. A failed batch leaves the bar red (tqdm's ``danger`` style in a notebook, a red
    bar in a terminal)."""

    def update(self, result: OperationResult) -> None:
        raise NotImplementedError

    def close(self, failed: bool) -> None:
        raise NotImplementedError


class TqdmBar(Bar):
    """Drives a tqdm bar (``tqdm.auto``, ``tqdm.notebook`` or ``tqdm.std``)."""

    def __init__(self, bar: Any) -> None:
        self.tqdm = bar
        self._failed = 0

    def update(self, result: OperationResult) -> None:
        if not result.success and not result.skipped:
            self._failed += 1
            self.tqdm.set_postfix_str(f"{self._failed} failed", refresh=False)
        self.tqdm.update(1)

    def close(self, failed: bool) -> None:
        if failed:
            if hasattr(self.tqdm, "container"):  # a notebook bar: danger survives close()
                self.tqdm.disp(bar_style="danger")
            else:
                self.tqdm.colour = "red"
        self.tqdm.close()


class CallbackBar(Bar):
    """``progress=callable``: the callable gets ``(result, completed, total)`` for this phase, with the
    same once-only warning as a tracker callback."""

    def __init__(self, callback: ProgressCallback, total: int) -> None:
        self._tracker = ProgressTracker(total).on_progress(callback)

    def update(self, result: OperationResult) -> None:
        self._tracker.update(result)

    def close(self, failed: bool) -> None:
        """Nothing to close: the callable saw every result."""


def check_progress(progress: Progress) -> None:
    """Raise ``ValueError`` unless ``progress`` is ``"auto"``, ``"widget"``, ``"text"``, a bool,
    ``None`` or a callable (checked before a batch starts, so a typo loses nothing)."""
    if progress is None or isinstance(progress, bool) or callable(progress) or progress in _MODES:
        return
    raise ValueError(f"progress must be 'auto', 'widget', 'text', False or a callable, got {progress!r}")


def make_bar(progress: Progress, total: int, description: str) -> Bar | None:
    """Resolve ``progress=`` — the only place that does — into a bar, or ``None`` for no display.

    ``"auto"`` (or ``True``): ``tqdm.auto`` (a widget bar in Jupyter, text elsewhere); ``"widget"``:
    ``tqdm.notebook`` (needs ipywidgets; ``ImportError`` otherwise); ``"text"``: ``tqdm.std`` on
    stderr; ``False``/``None``: nothing; a callable: called per result. Call it in the thread that
    should own the display (a notebook cell), before the batch starts. ``TQDM_DISABLE=1`` turns the
    tqdm bars off.
    """
    check_progress(progress)
    if progress is None or progress is False:
        return None
    if callable(progress):
        return CallbackBar(progress, total)
    if progress is True or progress == "auto":
        from tqdm.auto import tqdm
    elif progress == "widget":
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return TqdmBar(tqdm(total=total, desc=description, unit="op"))
