"""OperationResult, PartialResult: statuses, combined errors, DataFrame, text and HTML reprs."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from engine_helpers import Item

from squadnb import OperationResult, PartialResult, operation
from squadnb.errors import BatchError, Cancelled, OperationTimeout, ValidationError

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
GOLDEN = Path(__file__).with_name("golden") / "partial_result.html"


@operation
def noop(item: Item) -> None:
    pass


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample() -> PartialResult:
    """Fixed times, one of each status, and text that needs escaping."""
    named = operation(lambda i: None, name="Pause<x>")
    results = [
        OperationResult(Item("ok<x>"), named, value={"k": "<b>&"}, start_time=at(0),
                        end_time=at(1.25), attempts=1),
        OperationResult(Item("bad"), named, error=RuntimeError("boom <x>"), start_time=at(0),
                        end_time=at(0.5), attempts=1),
        OperationResult(Item("slow"), named, error=OperationTimeout("operation timed out after 2s"),
                        start_time=at(0), end_time=at(2), attempts=1),
        OperationResult(Item("skip"), named, start_time=at(0), end_time=at(0), skipped=True),
        OperationResult(Item("undone"), named, value=3, start_time=at(0), end_time=at(0.1),
                        rolled_back=True, attempts=2),
    ]
    return PartialResult(successes=[results[4], results[0]], failures=[results[1], results[2]],
                         total=5, start_time=at(0), end_time=at(2.25), results=results,
                         skipped=[results[3]], operation=named)


def test_status_of_each_outcome() -> None:
    item = Item("a")
    cases = {
        "succeeded": OperationResult(item, noop, attempts=1),
        "skipped": OperationResult(item, noop, skipped=True),
        "failed": OperationResult(item, noop, error=ValueError("x"), attempts=1),
        "invalid": OperationResult(item, noop, error=ValidationError("validation failed: x")),
        "timed out": OperationResult(item, noop, error=OperationTimeout("t"), attempts=1),
        "cancelled": OperationResult(item, noop, error=Cancelled("c")),
        "rolled back": OperationResult(item, noop, rolled_back=True, attempts=1),
    }
    assert {status: r.status for status, r in cases.items()} == {s: s for s in cases}
    assert [s for s, r in cases.items() if r.success] == ["succeeded", "rolled back"]


def test_duration_and_defaults() -> None:
    result = OperationResult(Item("a"), noop, start_time=at(0), end_time=at(1.5))
    assert result.duration == timedelta(seconds=1.5)
    fresh = OperationResult(Item("a"), noop)
    assert fresh.start_time.tzinfo == timezone.utc and fresh.end_time >= fresh.start_time
    assert fresh.attempts == 0 and not fresh.rolled_back and fresh.value is None
    assert repr(result) == "OperationResult(noop on 'a' succeeded)"


def test_results_are_built_with_keywords() -> None:
    with pytest.raises(TypeError):
        OperationResult(Item("a"), noop, RuntimeError("x"))  # type: ignore[misc]
    with pytest.raises(TypeError):
        PartialResult([], [], 0)  # type: ignore[misc]


def test_partial_result_counts_and_rate() -> None:
    result = sample()
    assert result.duration == timedelta(seconds=2.25)
    assert not result.all_succeeded
    assert result.success_rate == pytest.approx(50.0)  # 2 of the 4 that ran; the skip is not counted
    assert [i.title for i in result.failed_instances()] == ["bad", "slow"]


def test_short_repr() -> None:
    assert repr(sample()) == ("PartialResult(Pause<x>: 2 succeeded (1 rolled back), 2 failed, "
                              "1 skipped of 5 in 2.2s)")
    items = [Item(f"i{k}") for k in range(10)]
    results = [OperationResult(i, noop, error=None if k < 8 else RuntimeError("x"),
                               start_time=at(0), end_time=at(1)) for k, i in enumerate(items)]
    plain = PartialResult(successes=results[:8], failures=results[8:], total=10, start_time=at(0),
                          end_time=at(1.3), results=results, operation=noop)
    assert repr(plain) == "PartialResult(noop: 8 succeeded, 2 failed of 10 in 1.3s)"


def test_error_none_one_or_combined() -> None:
    ok = OperationResult(Item("a"), noop)
    assert PartialResult(successes=[ok], total=1).error() is None
    boom = RuntimeError("boom")
    one = PartialResult(failures=[OperationResult(Item("a"), noop, error=boom)], total=1)
    assert one.error() is boom
    error = sample().error()
    assert isinstance(error, BatchError)
    assert str(error) == ("2 operations failed:\n"
                          "  - Pause<x> on instance 'bad': boom <x>\n"
                          "  - Pause<x> on instance 'slow': operation timed out after 2s")
    assert [type(e) for e in error.errors] == [RuntimeError, OperationTimeout]


def test_instance_without_title_uses_str() -> None:
    result = PartialResult(failures=[OperationResult("host-1", noop, error=ValueError("x")),
                                    OperationResult(7, noop, error=ValueError("y"))], total=2)
    assert "on instance 'host-1': x" in str(result.error())
    assert result.to_dataframe()["instance"].tolist() == ["host-1", "7"]


def test_empty_result() -> None:
    empty = PartialResult()
    assert empty.total == 0 and not empty.all_succeeded and empty.success_rate == 0.0
    assert empty.error() is None and empty.failed_instances() == []
    frame = empty.to_dataframe()
    assert list(frame.columns) == ["instance", "operation", "status", "ok", "error", "error_type",
                                   "value", "attempts", "start_time", "elapsed", "verified"]
    assert len(frame) == 0 and frame["elapsed"].dtype == "timedelta64[ns]"
    assert "0 succeeded, 0 failed of 0" in empty._repr_html_()


def test_to_dataframe_rows_and_dtypes() -> None:
    frame = sample().to_dataframe()
    assert frame["instance"].tolist() == ["ok<x>", "bad", "slow", "skip", "undone"]
    assert frame["status"].tolist() == ["succeeded", "failed", "timed out", "skipped", "rolled back"]
    assert frame["ok"].dtype == "boolean"
    assert frame["ok"].tolist() == [True, False, False, pd.NA, True]
    assert frame["error"].tolist()[1:3] == ["boom <x>", "operation timed out after 2s"]
    assert frame["error"].isna().tolist() == [True, False, False, True, True]
    assert frame["error_type"].tolist()[1:3] == ["RuntimeError", "OperationTimeout"]
    assert frame["value"].tolist()[0] == {"k": "<b>&"} and frame["value"].dtype == object
    assert frame["attempts"].tolist() == [1, 1, 1, 0, 2] and frame["attempts"].dtype == "int64"
    assert str(frame["start_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["start_time"].iloc[0] == pd.Timestamp(T0)
    assert frame["elapsed"].dtype == "timedelta64[ns]"
    assert frame["elapsed"].iloc[0] == pd.Timedelta(seconds=1.25)
    assert frame["operation"].unique().tolist() == ["Pause<x>"]


def test_html_is_byte_identical_for_identical_results() -> None:
    assert sample()._repr_html_() == sample()._repr_html_()


def test_html_escapes_everything_shown() -> None:
    html = sample()._repr_html_()
    assert "<x>" not in html and "<b>" not in html
    assert "ok&lt;x&gt;" in html and "boom &lt;x&gt;" in html and "Pause&lt;x&gt;" in html
    assert "&#39;&lt;b&gt;&amp;&#39;" in html


def test_html_colours_rows_by_status_and_has_the_summary() -> None:
    html = sample()._repr_html_()
    assert html.startswith('<div class="squadnb-result"><p class="squadnb-summary">Pause&lt;x&gt;: '
                           "2 succeeded (1 rolled back), 2 failed, 1 skipped of 5 in 2.2s</p>")
    rules = {body.split(";")[0].strip(): selectors
             for selectors, body in (rule.split("{") for rule in html.split("</style>")[0]
                                     .split("<style", 1)[1].split(">", 1)[1].split("}")[:-1])}
    red, green = rules["background-color: #f8d7da"], rules["background-color: #d4edda"]
    assert "_row1_col0" in red and "_row2_col9" in red and "_row0_" not in red  # bad, slow
    assert "_row0_col0" in green and "_row1_" not in green
    assert "_row3_col0" in rules["background-color: #e2e3e5"]  # skipped
    assert "_row4_col0" in rules["background-color: #fff3cd"]  # rolled back
    assert "1.250s" in html
    ids = {chunk.split('"')[0] for chunk in html.split('id="T_')[1:]}
    assert all(i.startswith("squadnb_") for i in ids)


def test_different_results_never_share_element_ids() -> None:
    other = sample()
    other.results[0].value = "changed"
    first, second = sample()._repr_html_(), other._repr_html_()
    assert first.split('id="T_')[1][:18] != second.split('id="T_')[1][:18]


def test_html_matches_the_golden_file() -> None:
    html = sample()._repr_html_()
    if os.environ.get("SQUADNB_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(html)
    assert html == GOLDEN.read_text()


def test_text_and_html_show_the_same_rows() -> None:
    result = sample()
    text, html = str(result), result._repr_html_()
    assert text.splitlines()[0] == result.summary()
    for row in result.to_dataframe().itertuples():
        for shown in (row.status, row.error_type):
            if isinstance(shown, str):
                assert shown in text and shown in html
    assert "ok<x>" in text and "ok&lt;x&gt;" in html


def test_html_without_jinja2_falls_back_to_a_plain_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jinja2", None)  # importing it now raises ImportError
    html = sample()._repr_html_()
    assert '<table border="1" class="dataframe">' in html and "boom &lt;x&gt;" in html
