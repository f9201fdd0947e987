"""BatchForm: build and run a batch over a squad's instances from a widget form.

The form never blocks the kernel: Run hands the batch to :meth:`BatchExecutor.submit`, which runs it
on squadnb's background loop; the progress bar, the status line and the result table are updated from
that loop thread (by assigning widget traits and ``Output.outputs``, never ``with out:``, which would
capture whatever cell happens to be executing). Cancel cancels the running batch; every instance still
gets a result, the unfinished ones ``cancelled``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from squadnb._html import BAD, GOOD, row_style, status_table
from squadnb.engine.executor import BatchExecutor
from squadnb.errors import TransactionError, UnknownInstance
from squadnb.ops import (
    BatchKillOperation,
    BatchPauseOperation,
    BatchPromptOperation,
    BatchResumeOperation,
    BatchStartOperation,
    status_name,
    with_batch_options,
)
from squadnb.session.instance import Status

__all__ = ["BatchForm"]

_ANY = ""
# Built-in operations are rebuilt for every run (Prompt takes the text box's current value).
_BUILTINS: dict[str, Callable[["BatchForm"], Any]] = {
    "Start": lambda form: BatchStartOperation(),
    "Pause": lambda form: BatchPauseOperation(),
    "Resume": lambda form: BatchResumeOperation(),
    "Kill": lambda form: BatchKillOperation(discard=form.discard.value),
    "Prompt": lambda form: BatchPromptOperation(form._prompt_text()),
}
_DESTRUCTIVE = {"Kill"}
_PLAN_STYLES = {"would run": row_style(GOOD), "refused": row_style(BAD)}


def _status_options() -> list[tuple[str, str]]:
    return [("any status", _ANY)] + [(s.label, s.label) for s in Status]


class BatchForm:
    """A form that selects instances of ``squad``, builds an operation and runs it as a batch.

    Parameters
    ----------
    squad:
        The :class:`~squadnb.Squad` whose instances are offered.
    operations:
        Extra operations to offer after the built-in ones (Start, Pause, Resume, Kill, Prompt): a
        sequence of operations (labelled by their ``name``) or a mapping ``label -> operation``. An
        operation with a true ``destructive`` attribute asks for confirmation, like Kill.
    executor:
        The :class:`~squadnb.BatchExecutor` to run on; by default a new one. The concurrency and
        timeout widgets start from its settings and are applied to it before each run.

    Kill keeps instances whose kill would lose work (``BatchKillOperation(discard=False)``: uncommitted
    changes, unmerged commits; each is an ``invalid`` row saying why) unless the ``discard`` checkbox,
    shown with Kill, is ticked. Pinned instances are never killed.

    Preview shows :meth:`BatchExecutor.plan` of the selection and the operation (which instances
    would run, and why the others would not) in ``output``; nothing changes.

    Every widget is an attribute (``instances``, ``status_filter``, ``operation``, ``prompt``,
    ``discard``, ``retries``, ``retry_delay``, ``only_status``, ``concurrency``, ``timeout``, ``transaction``,
    ``preview_button``, ``run_button``, ``cancel_button``, ``confirm_button``, ``back_button``, ``retry_button``,
    ``progress``, ``message``, ``output``), so a test or a notebook can set ``.value`` and call
    ``.click()``. :meth:`wait` blocks until the running batch is finished; ``last_result`` holds its
    :class:`~squadnb.PartialResult` (``last_error`` the :class:`~squadnb.TransactionError` of a
    rolled-back transaction, else None).

    Problems with the form's input (nothing selected, an empty prompt, an instance killed elsewhere)
    are shown in ``message`` and nothing runs; an operation's failure is that instance's row in the
    result table.
    """

    def __init__(
        self,
        squad: Any,
        operations: Iterable[Any] | Mapping[str, Any] | None = None,
        executor: BatchExecutor | None = None,
    ) -> None:
        self.squad = squad
        self.executor = executor if executor is not None else BatchExecutor(max_concurrency=4)
        self._factories: dict[str, Callable[[BatchForm], Any]] = dict(_BUILTINS)
        self._destructive = set(_DESTRUCTIVE)
        custom = operations.items() if isinstance(operations, Mapping) else (
            (op.name, op) for op in operations or ())
        for label, op in custom:
            if label in self._factories:
                raise ValueError(f"BatchForm: operation label {label!r} is already taken; "
                                 f"pass a mapping to give it another label")
            self._factories[label] = lambda form, op=op: op
            if getattr(op, "destructive", False):
                self._destructive.add(label)

        self.last_result: Any = None
        self.last_error: TransactionError | None = None
        self._future: Any = None
        self._idle = threading.Event()
        self._idle.set()
        self._pending: tuple[list[Any], Any] | None = None
        self._last_op: Any = None

        self._build_widgets()
        self.refresh()

    # ----------------------------------------------------------------- layout
    def _build_widgets(self) -> None:
        w = widgets
        self.status_filter = w.Dropdown(options=_status_options(), value=_ANY, description="Show")
        self.instances = w.SelectMultiple(options=[], rows=8, description="Instances")
        self.select_all_button = w.Button(description="Select all shown")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.selection_count = w.HTML()
        self.operation = w.Dropdown(options=list(self._factories), value="Start",
                                    description="Operation")
        self.prompt = w.Textarea(placeholder="prompt text sent to each agent", description="Prompt",
                                 layout=w.Layout(display="none", width="90%"))
        self.discard = w.Checkbox(value=False, indent=False,
                                  description="Discard uncommitted changes and unmerged commits",
                                  layout=w.Layout(display="none"))
        self.retries = w.BoundedIntText(value=0, min=0, max=20, description="Retries")
        self.retry_delay = w.BoundedFloatText(value=1.0, min=0.0, max=600.0, step=0.5,
                                              description="Delay (s)")
        self.only_status = w.Dropdown(options=_status_options(), value=_ANY,
                                      description="Only if")
        timeout = getattr(self.executor, "timeout", 300.0)
        self.concurrency = w.IntSlider(value=max(1, int(getattr(self.executor, "max_concurrency", 4))),
                                       min=1, max=32, description="Concurrency",
                                       style={"description_width": "initial"})
        self.timeout = w.BoundedFloatText(value=0.0 if timeout is None else float(timeout), min=0.0,
                                          max=86_400.0, description="Timeout (s)",
                                          tooltip="per operation; 0 means no limit")
        self.transaction = w.Checkbox(value=False, description="Transaction (roll back on failure)",
                                      indent=False)
        self.preview_button = w.Button(description="Preview", icon="eye",
                                       tooltip="what Run would do, without doing it")
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = w.Button(description="Cancel", button_style="warning", icon="stop",
                                      disabled=True)
        self.confirm_label = w.HTML()
        self.confirm_button = w.Button(description="Confirm", button_style="danger")
        self.back_button = w.Button(description="Back")
        self.confirm_box = w.HBox([self.confirm_label, self.confirm_button, self.back_button],
                                  layout=w.Layout(display="none"))
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Progress")
        self.message = w.HTML()
        self.output = w.Output()
        self.retry_button = w.Button(description="Retry failed", icon="redo", disabled=True)

        self.status_filter.observe(lambda _: self.refresh(), names="value")
        self.instances.observe(lambda _: self._update_count(), names="value")
        self.operation.observe(self._on_operation, names="value")
        self.select_all_button.on_click(self._on_select_all)
        self.refresh_button.on_click(self._on_refresh)
        self.preview_button.on_click(self._on_preview)
        self.run_button.on_click(self._on_run)
        self.cancel_button.on_click(self._on_cancel)
        self.confirm_button.on_click(self._on_confirm)
        self.back_button.on_click(self._on_back)
        self.retry_button.on_click(self._on_retry)

        self.widget = w.VBox([
            w.HBox([self.status_filter, self.select_all_button, self.refresh_button]),
            self.instances,
            self.selection_count,
            self.operation,
            self.prompt,
            self.discard,
            w.HBox([self.retries, self.retry_delay]),
            self.only_status,
            w.HBox([self.concurrency, self.timeout]),
            self.transaction,
            w.HBox([self.preview_button, self.run_button, self.cancel_button, self.progress]),
            self.confirm_box,
            self.message,
            self.output,
            self.retry_button,
        ])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -------------------------------------------------------- instance list
    def refresh(self) -> None:
        """Rebuild the instance list from the squad's instances and their last known statuses, under
        the status filter, keeping the selection of instances still shown. The Refresh button calls
        ``squad.refresh()`` first, so it also sees changes made outside this process."""
        keep = set(self.instances.value)
        wanted = self.status_filter.value
        shown = [inst for inst in self.squad.instances
                 if wanted == _ANY or status_name(inst) == wanted]
        self.instances.options = [(f"{inst.title} ({status_name(inst)})", inst.title)
                                  for inst in shown]
        self.instances.value = tuple(inst.title for inst in shown if inst.title in keep)
        self._update_count()

    def _update_count(self) -> None:
        self.selection_count.value = (
            f"{len(self.instances.value)} selected of {len(self.instances.options)} shown "
            f"({len(self.squad.instances)} in the squad)")

    def _on_select_all(self, _button: Any) -> None:
        self.instances.value = tuple(value for _, value in self.instances.options)

    def _on_refresh(self, _button: Any) -> None:
        self.squad.refresh()
        self.refresh()

    def _on_operation(self, change: Any) -> None:
        self.prompt.layout.display = "" if change["new"] == "Prompt" else "none"
        self.discard.layout.display = "" if change["new"] == "Kill" else "none"

    # ---------------------------------------------------------------- running
    def _prompt_text(self) -> str:
        text = self.prompt.value.strip()
        if not text:
            raise ValueError("the Prompt operation needs a prompt text")
        return self.prompt.value

    def build_operation(self) -> Any:
        """The operation the form describes now: the chosen one, wrapped in ``RetryOperation`` when
        retries > 0 and in ``ConditionalOperation`` when a status condition is set (outermost, so the
        condition is checked once, before any attempt). Raises ``ValueError`` on bad input."""
        return with_batch_options(self._factories[self.operation.value](self),
                                  retries=self.retries.value, retry_delay=self.retry_delay.value,
                                  only_status=self.only_status.value or None)

    def selected_instances(self) -> list[Any]:
        """The selected instances, in the squad's order. Raises ``UnknownInstance`` when one was
        removed since the list was built (killed elsewhere)."""
        return [self.squad[title] for title in self.instances.value]

    def _chosen(self) -> tuple[list[Any], Any] | None:
        """The selected instances and the operation; None (the problem shown) on bad input."""
        try:
            targets = self.selected_instances()
            if not targets:
                raise ValueError("select at least one instance")
            return targets, self.build_operation()
        except (ValueError, UnknownInstance) as exc:
            self._say(f"Nothing ran: {exc}", error=True)
            return None

    def _on_preview(self, _button: Any) -> None:
        chosen = self._chosen()
        if chosen is None:
            return
        plan = self.executor.plan(*chosen)
        would = int(plan["would_run"].sum())
        caption = (f"Preview: {chosen[1].name} would run on {would} of {len(plan)} "
                   f"instance{'s' if len(plan) != 1 else ''}; nothing was changed.")
        shown = plan.drop(columns=["would_run"]).astype(str)
        shown.insert(2, "status", ["would run" if w else "refused" for w in plan["would_run"]])
        self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {"text/plain": f"{caption}\n{shown.to_string(index=False)}",
                                         "text/html": status_table(caption, shown, _PLAN_STYLES,
                                                                   "squadnb-plan")}},)
        self._say(html.escape(caption))

    def _on_run(self, _button: Any) -> None:
        chosen = self._chosen()
        if chosen is None:
            return
        targets, op = chosen
        if self.operation.value in self._destructive:
            self._ask_confirmation(targets, op)
        else:
            self._start(targets, op)

    def _ask_confirmation(self, targets: list[Any], op: Any) -> None:
        self._pending = (targets, op)
        n = len(targets)
        keeps = self.operation.value == "Kill" and not self.discard.value
        self.confirm_label.value = (
            f"<b>{html.escape(self.operation.value)} {n} instance{'s' if n != 1 else ''}?</b> "
            + ("Instances with uncommitted changes or unmerged commits are kept; the others cannot "
               "be brought back." if keeps else "This cannot be undone."))
        self.confirm_box.layout.display = ""
        self.run_button.disabled = True

    def _on_confirm(self, _button: Any) -> None:
        pending, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if pending is not None:
            self._start(*pending)

    def _on_back(self, _button: Any) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.run_button.disabled = False
        self._say("Cancelled before running: nothing was changed.")

    def _on_retry(self, _button: Any) -> None:
        """Run the last batch's operation again on the instances that failed in it, with the form's
        current concurrency, timeout and transaction settings (they were confirmed already, so no
        second confirmation)."""
        if self.last_result is None or self._last_op is None:
            return
        failed = list(self.last_result.failed_instances())
        if failed:
            self._start(failed, self._last_op)

    def _on_cancel(self, _button: Any) -> None:
        if self._future is not None and not self._future.done():
            self._future.cancel()
            self._say("Cancelling…")

    def _start(self, targets: list[Any], op: Any) -> None:
        timeout = self.timeout.value
        self.executor.max_concurrency = self.concurrency.value
        self.executor.set_timeout(timeout if timeout > 0 else None)
        self._last_op = op
        self._idle.clear()
        self.run_button.disabled = True
        self.retry_button.disabled = True
        self.cancel_button.disabled = False
        self.progress.bar_style = ""
        self.progress.max = len(targets)
        self.progress.value = 0
        self.output.outputs = ()
        self._say(f"Running {html.escape(op.name)} on {len(targets)} instance"
                  f"{'s' if len(targets) != 1 else ''}…")
        try:
            self._future = self.executor.submit(targets, op, progress=self._on_progress,
                                                transaction=self.transaction.value)
        except Exception as exc:  # refused before anything ran (e.g. an instance listed twice)
            self._finish_idle()
            self._say(f"Nothing ran: {exc}", error=True)
            return
        self._future.add_done_callback(self._on_done)

    def _on_progress(self, result: Any, completed: int, total: int) -> None:
        # Runs on squadnb's loop thread, the only writer of the bar while a batch runs.
        self.progress.max = total
        self.progress.value = completed
        if not result.success and result.status != "skipped":
            self.progress.bar_style = "danger"

    def _on_done(self, future: Any) -> None:
        # Runs on squadnb's loop thread: widgets are updated by trait assignment only.
        try:
            self._show_result(future)
        except BaseException as exc:  # the batch itself broke: say so, keep the form usable
            self._say(f"The batch failed: {html.escape(repr(exc))}", error=True)
        finally:
            self._finish_idle()

    def _show_result(self, future: Any) -> None:
        self.last_error = None
        rollback = None
        try:
            result = future.result()
        except TransactionError as exc:
            self.last_error = exc
            result, rollback = exc.result, exc.rollback_result
        self.last_result = result
        outputs = [self._display_data(result)]
        if rollback is not None:
            outputs.append(self._display_data(rollback))
        self.output.outputs = tuple(outputs)
        if self.progress.bar_style != "danger":
            self.progress.bar_style = "success" if result.all_succeeded else ""
        summary = html.escape(repr(result))
        if self.last_error is not None:
            summary += (f"<br>{html.escape(type(self.last_error).__name__)}: "
                        f"{html.escape(str(self.last_error))}")
        self._say(summary, error=bool(result.failures))
        self.retry_button.disabled = not result.failures
        self.refresh()

    @staticmethod
    def _display_data(obj: Any) -> dict[str, Any]:
        return {"output_type": "display_data", "metadata": {},
                "data": {"text/plain": str(obj), "text/html": obj._repr_html_()}}

    def _finish_idle(self) -> None:
        self.cancel_button.disabled = True
        self.run_button.disabled = False
        self._idle.set()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.value = f'<span style="color:#b00020">{text}</span>' if error else text

    # ------------------------------------------------------------------ tests
    @property
    def running(self) -> bool:
        """True while a batch started by the form has not finished."""
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the running batch (if any) is finished and the form updated; return
        ``last_result``. Raises ``TimeoutError`` if it is still running after ``timeout`` seconds.
        Never call it from squadnb's loop thread."""
        if not self._idle.wait(timeout):
            raise TimeoutError(f"the batch did not finish within {timeout} s")
        return self.last_result

    def __repr__(self) -> str:
        return f"BatchForm({len(self.squad.instances)} instances, last: {self.last_result!r})"

