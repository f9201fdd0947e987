"""BatchForm driven headlessly (``.value`` and ``.click()``) against real tmux sessions and git
worktrees of demo agents."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from helpers import wait_for

from squadnb import ConditionalOperation, Operation, RolledBack, Status
from squadnb.notebook import BatchForm


def table_html(form: BatchForm) -> str:
    return form.output.outputs[0]["data"]["text/html"]


def test_selection_filter_and_count(squad, started):
    started(3)
    squad["nb-2"].pause()
    form = BatchForm(squad)
    assert form.selection_count.value == "0 selected of 3 shown (3 in the squad)"
    form.instances.value = ("nb-0", "nb-2")
    assert form.selection_count.value.startswith("2 selected of 3")
    form.status_filter.value = "paused"
    assert [value for _, value in form.instances.options] == ["nb-2"]
    assert form.instances.value == ("nb-2",)
    assert form.selection_count.value == "1 selected of 1 shown (3 in the squad)"
    form.status_filter.value = ""
    form.select_all_button.click()
    assert form.instances.value == ("nb-0", "nb-1", "nb-2")


def test_run_pause_on_the_selection(squad, started, has_session):
    started(3)
    form = BatchForm(squad)
    form.instances.value = ("nb-0", "nb-1")
    form.operation.value = "Pause"
    form.run_button.click()
    result = form.wait(120)
    assert result.total == 2 and result.all_succeeded
    assert form.progress.value == 2 and form.progress.max == 2
    assert form.progress.bar_style == "success"
    html = table_html(form)
    assert "nb-0" in html and "nb-1" in html and "nb-2" not in html
    assert squad["nb-0"].status == Status.PAUSED and not has_session(squad["nb-0"])
    assert not Path(squad["nb-1"].worktree_path).exists()
    assert has_session(squad["nb-2"])
    assert ("nb-0 (paused)", "nb-0") in form.instances.options
    assert not form.run_button.disabled and form.cancel_button.disabled


def test_prompt_needs_text_and_reaches_the_agents(squad, started):
    started(2)
    form = BatchForm(squad)
    form.operation.value = "Prompt"
    assert form.prompt.layout.display == ""
    form.select_all_button.click()
    form.run_button.click()
    assert "needs a prompt text" in form.message.value and form.last_result is None
    form.prompt.value = "write the docs"
    form.run_button.click()
    result = form.wait(120)
    assert result.all_succeeded, result.error()
    for inst in squad.instances:
        wait_for(lambda: list(Path(inst.worktree_path, "demo-output").glob("*.txt")), 30,
                 f"the demo agent of {inst.title} to write its output")


def test_kill_asks_for_confirmation_naming_the_count(squad, started, has_session):
    started(3)
    form = BatchForm(squad)
    form.instances.value = ("nb-0", "nb-1")
    form.operation.value = "Kill"
    form.run_button.click()
    assert form.confirm_box.layout.display == ""
    assert "Kill 2 instances?" in form.confirm_label.value
    assert form.last_result is None and form.run_button.disabled
    form.back_button.click()
    assert form.confirm_box.layout.display == "none" and not form.run_button.disabled
    assert has_session(squad["nb-0"]) and has_session(squad["nb-1"])

    form.run_button.click()
    form.confirm_button.click()
    result = form.wait(120)
    assert result.total == 2 and result.all_succeeded
    assert "nb-0" not in squad and "nb-1" not in squad and has_session(squad["nb-2"])
    assert [value for _, value in form.instances.options] == ["nb-2"]


class Nap(Operation):
    """Sleeps far longer than the test waits: only a cancel ends it."""

    name = "Nap"

    def __init__(self) -> None:
        self.started = 0

    async def execute(self, instance) -> None:
        self.started += 1
        await asyncio.sleep(600)


def test_cancel_really_cancels(squad, started):
    started(3)
    nap = Nap()
    form = BatchForm(squad, operations=[nap])
    form.select_all_button.click()
    form.operation.value = "Nap"
    form.concurrency.value = 1
    begun = time.monotonic()
    form.run_button.click()
    assert not form.cancel_button.disabled and form.running
    wait_for(lambda: nap.started == 1, 30, "the first Nap to start")
    form.cancel_button.click()
    result = form.wait(30)
    assert time.monotonic() - begun < 30
    assert [r.status for r in result.results] == ["cancelled"] * 3
    assert [r.attempts for r in result.results] == [1, 0, 0]
    assert nap.started == 1
    assert form.progress.bar_style == "danger" and not form.retry_button.disabled


def test_retry_failed_reruns_only_the_failed(squad, started):
    started(3)
    squad["nb-0"].pause()
    form = BatchForm(squad)
    form.select_all_button.click()
    form.operation.value = "Pause"
    form.run_button.click()
    result = form.wait(120)
    assert [r.status for r in result.results] == ["invalid", "succeeded", "succeeded"]
    assert not form.retry_button.disabled
    squad["nb-0"].resume()
    form.retry_button.click()
    retried = form.wait(120)
    assert [r.instance.title for r in retried.results] == ["nb-0"]
    assert retried.all_succeeded
    assert all(inst.status == Status.PAUSED for inst in squad.instances)
    assert form.retry_button.disabled


def test_transaction_rolls_back_the_successes(squad, started, has_session):
    started(3)
    squad["nb-0"].pause()
    form = BatchForm(squad)
    form.select_all_button.click()
    form.operation.value = "Pause"
    form.transaction.value = True
    form.run_button.click()
    result = form.wait(180)
    assert isinstance(form.last_error, RolledBack)
    assert [r.status for r in result.results] == ["invalid", "rolled back", "rolled back"]
    assert len(form.output.outputs) == 2  # the batch, then its rollback
    assert "RolledBack" in form.message.value
    assert has_session(squad["nb-1"]) and has_session(squad["nb-2"])
    assert squad["nb-1"].status != Status.PAUSED and squad["nb-0"].status == Status.PAUSED


def test_wrappers_retry_and_only_status(squad, started, has_session):
    started(3)
    squad["nb-1"].pause()
    form = BatchForm(squad)
    form.operation.value = "Resume"
    form.retries.value = 2
    form.retry_delay.value = 0.1
    form.only_status.value = "paused"
    op = form.build_operation()
    assert isinstance(op, ConditionalOperation)
    assert op.name == "Conditional(Retry(Resume))"
    form.select_all_button.click()
    form.run_button.click()
    result = form.wait(120)
    assert [r.status for r in result.results] == ["skipped", "succeeded", "skipped"]
    assert has_session(squad["nb-1"]) and squad["nb-1"].status != Status.PAUSED


class Flaky(Operation):
    """Fails every attempt, noting when each one began."""

    name = "Flaky"

    def __init__(self) -> None:
        self.began: list[float] = []

    async def execute(self, instance) -> None:
        self.began.append(time.monotonic())
        raise ConnectionError("connection reset")


def test_retry_count_and_delay_reach_the_batch(squad):
    squad.new("nb-0")
    flaky = Flaky()
    form = BatchForm(squad, operations=[flaky])
    form.select_all_button.click()
    form.operation.value = "Flaky"
    form.retries.value = 2
    form.retry_delay.value = 0.3
    form.run_button.click()
    [result] = form.wait(60).results
    assert result.status == "failed" and result.attempts == 3
    assert "after 2 retries" in str(result.error)
    gaps = [later - earlier for earlier, later in zip(flaky.began, flaky.began[1:])]
    assert len(gaps) == 2 and min(gaps) >= 0.3


def test_timeout_bounds_each_operation(squad):
    squad.new("nb-0")
    form = BatchForm(squad, operations=[Nap(), Flaky()])
    form.select_all_button.click()
    form.operation.value = "Nap"
    form.timeout.value = 0.5
    begun = time.monotonic()
    form.run_button.click()
    [result] = form.wait(30).results
    assert result.status == "timed out" and time.monotonic() - begun < 30
    form.timeout.value = 0  # no limit
    form.operation.value = "Flaky"
    form.run_button.click()
    form.wait(30)
    assert form.executor.timeout is None


def test_custom_destructive_operation_asks_first(squad):
    squad.new("nb-0")
    squad.new("nb-1")
    wipe = Flaky()
    wipe.destructive = True
    form = BatchForm(squad, operations={"Wipe": wipe})
    assert list(form.operation.options) == ["Start", "Pause", "Resume", "Kill", "Prompt", "Wipe"]
    form.select_all_button.click()
    form.operation.value = "Wipe"
    form.run_button.click()
    assert "Wipe 2 instances?" in form.confirm_label.value and wipe.began == []
    form.confirm_button.click()
    assert form.wait(30).total == 2 and len(wipe.began) == 2


def test_bad_input_runs_nothing(squad, started):
    started(1)
    form = BatchForm(squad)
    form.operation.value = "Pause"
    form.run_button.click()
    assert "select at least one instance" in form.message.value
    assert form.last_result is None and not form.running
    with pytest.raises(ValueError, match="already taken"):
        BatchForm(squad, operations=[Nap(), Nap()])


def test_kill_keeps_work_unless_discard_is_ticked(squad, started, has_session):
    dirty, clean, pinned = started(3)
    (Path(dirty.worktree_path) / "notes.txt").write_text("not committed\n")
    pinned.pin()
    form = BatchForm(squad)
    assert form.discard.layout.display == "none" and form.discard.value is False
    form.operation.value = "Kill"
    assert form.discard.layout.display == ""
    assert form.build_operation().discard is False
    form.select_all_button.click()
    form.run_button.click()
    assert "uncommitted changes or unmerged commits are kept" in form.confirm_label.value
    form.confirm_button.click()
    result = form.wait(120)
    assert [r.status for r in result.results] == ["invalid", "succeeded", "invalid"]
    assert "uncommitted changes in its worktree" in str(result.results[0].error)
    assert "is pinned" in str(result.results[2].error)
    assert "nb-0" in squad and "nb-1" not in squad and has_session(dirty)

    form.discard.value = True
    assert form.build_operation().discard is True
    form.retry_button.click()  # the last operation again: it keeps the work; Run builds a new one
    assert [r.status for r in form.wait(120).results] == ["invalid", "invalid"]
    form.instances.value = ("nb-0",)
    form.run_button.click()
    assert "This cannot be undone." in form.confirm_label.value
    form.confirm_button.click()
    assert form.wait(120).all_succeeded and "nb-0" not in squad and not has_session(dirty)
    form.operation.value = "Pause"
    assert form.discard.layout.display == "none"


def test_preview_shows_the_plan_and_changes_nothing(squad, started, has_session):
    running, paused, pinned = started(3)
    paused.pause()
    pinned.pin()
    form = BatchForm(squad)
    form.preview_button.click()
    assert "select at least one instance" in form.message.value
    form.select_all_button.click()
    form.operation.value = "Kill"
    form.preview_button.click()
    assert form.confirm_box.layout.display == "none" and form.last_result is None
    assert "Preview: Kill would run on 2 of 3 instances; nothing was changed." in form.message.value
    [shown] = form.output.outputs
    text = shown["data"]["text/plain"]
    assert [line.split()[:3] for line in text.splitlines()[2:]] == [
        ["nb-0", "Kill", "would"], ["nb-1", "Kill", "would"], ["nb-2", "Kill", "refused"]]
    assert "instance &#39;nb-2&#39; is pinned" in table_html(form)
    assert len(squad) == 3 and has_session(running) and has_session(pinned) and paused.paused

    form.operation.value = "Pause"
    form.preview_button.click()
    assert "Pause would run on 2 of 3" in form.message.value
    assert "already paused" in form.output.outputs[0]["data"]["text/plain"]
    assert has_session(running) and not running.paused
