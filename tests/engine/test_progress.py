"""ProgressTracker and the progress= bars."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from engine_helpers import Item, Record, Stall, items

from squadnb import BatchExecutor, OperationResult, ProgressTracker, operation
from squadnb.engine.progress import CallbackBar, ProgressCallbackWarning, TqdmBar, make_bar


@operation
def noop(item: Item) -> None:
    pass


def result(title: str = "a", error: Exception | None = None) -> OperationResult:
    return OperationResult(Item(title), noop, error=error)


# -- ProgressTracker ----------------------------------------------------------------------------

def test_tracker_counts_and_calls_back_in_order() -> None:
    seen: list[tuple[str, int, int]] = []
    tracker = ProgressTracker(3)
    assert tracker.on_progress(lambda r, c, t: seen.append((r.instance.title, c, t))) is tracker
    assert tracker.progress == (0, 3) and not tracker.is_complete
    for title in "abc":
        tracker.update(result(title))
    assert seen == [("a", 1, 3), ("b", 2, 3), ("c", 3, 3)]
    assert tracker.progress == (3, 3) and tracker.is_complete
    assert repr(tracker) == "<ProgressTracker 3/3>"


def test_tracker_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        ProgressTracker(-1)
    with pytest.raises(TypeError, match="needs a callable"):
        ProgressTracker(1).on_progress("print")  # type: ignore[arg-type]


def test_tracker_is_thread_safe_and_callbacks_see_increasing_counts() -> None:
    tracker = ProgressTracker(8000)
    counts: list[int] = []
    tracker.on_progress(lambda r, c, t: counts.append(c))
    reads: list[tuple[int, int]] = []
    # A callback may read the tracker (it runs outside the count lock).
    tracker.on_progress(lambda r, c, t: reads.append(tracker.progress))

    def hammer() -> None:
        for _ in range(1000):
            tracker.update(result())

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.progress == (8000, 8000)
    assert counts == list(range(1, 8001))
    assert len(reads) == 8000


def test_a_raising_callback_warns_once_and_the_batch_goes_on() -> None:
    good: list[int] = []
    tracker = ProgressTracker(5)

    def broken(r: OperationResult, c: int, t: int) -> None:
        raise ZeroDivisionError("bad callback")

    tracker.on_progress(broken).on_progress(lambda r, c, t: good.append(c))
    with pytest.warns(ProgressCallbackWarning, match="ZeroDivisionError: bad callback") as caught:
        batch = BatchExecutor().execute(items(5), Record(), tracker, progress=False)
    assert len(caught) == 1
    assert issubclass(ProgressCallbackWarning, UserWarning)
    assert issubclass(ProgressCallbackWarning, RuntimeWarning)
    assert batch.all_succeeded and good == [1, 2, 3, 4, 5] and tracker.is_complete


def test_callable_progress_that_raises_warns_once() -> None:
    def broken(r: OperationResult, c: int, t: int) -> None:
        raise RuntimeError("nope")

    with pytest.warns(ProgressCallbackWarning) as caught:
        assert BatchExecutor().execute(items(4), Record(), progress=broken).all_succeeded
    assert len(caught) == 1


def test_executor_updates_tracker_and_callable_from_the_loop_thread() -> None:
    threads: set[str] = set()
    seen: list[tuple[int, int]] = []
    tracker = ProgressTracker(6)
    tracker.on_progress(lambda r, c, t: threads.add(threading.current_thread().name))

    def progress(r: OperationResult, c: int, t: int) -> None:
        threads.add(threading.current_thread().name)
        seen.append((c, t))

    BatchExecutor(max_concurrency=3).execute(items(6), Record(fail=("i2",)), tracker,
                                             progress=progress)
    assert threads == {"squadnb-loop"}
    assert seen == [(k, 6) for k in range(1, 7)] and tracker.progress == (6, 6)


def test_cancelled_instances_are_counted_too() -> None:
    slow = Stall()
    tracker = ProgressTracker(4)
    BatchExecutor(max_concurrency=1).execute(items(4), slow, tracker, progress=False, deadline=0.05)
    assert tracker.progress == (4, 4)


# -- bars -----------------------------------------------------------------------------------------

@pytest.fixture
def bars_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_progress_values_are_checked() -> None:
    for bad in ("fancy", 3, ["text"]):
        with pytest.raises(ValueError, match="progress must be"):
            make_bar(bad, 3, "Op")  # type: ignore[arg-type]
    assert make_bar(False, 3, "Op") is None and make_bar(None, 3, "Op") is None
    assert isinstance(make_bar(lambda r, c, t: None, 3, "Op"), CallbackBar)


def test_text_bar_counts_and_turns_red_on_failure(bars_on: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bar = make_bar("text", 2, "Pause")
    assert isinstance(bar, TqdmBar) and type(bar.tqdm).__module__ == "tqdm.std"
    bar.update(result("a"))
    bar.update(result("b", RuntimeError("x")))
    bar.close(failed=True)
    assert bar.tqdm.n == 2 and bar.tqdm.colour == "red"
    err = capsys.readouterr().err
    assert "Pause" in err and "2/2" in err and "1 failed" in err


def test_auto_bar_outside_jupyter_is_a_text_bar(bars_on: None) -> None:
    bar = make_bar("auto", 1, "Op")
    assert isinstance(bar, TqdmBar) and not hasattr(bar.tqdm, "container")
    bar.close(failed=False)
    assert bar.tqdm.colour is None


def widget_bars(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the notebook bars the engine creates (headless: ipywidgets uses a dummy comm)."""
    import tqdm.notebook

    made: list[Any] = []

    class Recorded(tqdm.notebook.tqdm):  # type: ignore[misc,name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, display=False, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.notebook, "tqdm", Recorded)
    return made


def test_widget_bar_stays_danger_after_a_failed_batch(bars_on: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    made = widget_bars(monkeypatch)
    BatchExecutor().execute(items(3), Record(fail=("i1",)), progress="widget")
    (bar,) = made
    progress = bar.container.children[1]
    assert progress.value == 3 and progress.max == 3
    assert progress.bar_style == "danger"
    assert "Record" in bar.container.children[0].value


def test_widget_bar_is_success_after_a_clean_batch(bars_on: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made = widget_bars(monkeypatch)
    BatchExecutor().execute(items(3), Record(), progress="widget")
    assert made[0].container.children[1].bar_style == "success"


def test_widget_bar_is_danger_after_a_cancelled_batch(bars_on: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    made = widget_bars(monkeypatch)

    slow = Stall()
    BatchExecutor(max_concurrency=1).execute(items(3), slow, progress="widget", deadline=0.05)
    assert made[0].container.children[1].bar_style == "danger"


def test_bar_updates_come_from_the_loop_thread(bars_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    made = widget_bars(monkeypatch)
    threads: set[str] = set()
    real_update = TqdmBar.update

    def spy(self: TqdmBar, r: OperationResult) -> None:
        threads.add(threading.current_thread().name)
        real_update(self, r)

    monkeypatch.setattr(TqdmBar, "update", spy)
    BatchExecutor(max_concurrency=4).execute(items(10), noop, progress="widget")
    assert threads == {"squadnb-loop"} and made[0].n == 10
