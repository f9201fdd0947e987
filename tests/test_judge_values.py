"""PartialResult.to_dataframe(values=True): dataclass and mapping values spread into columns (engine
unit tests: in-memory instances, no tmux, no git)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from squadnb import BatchExecutor, PartialResult, operation


@dataclass
class Score:
    exit_code: int
    seconds: float
    passed: bool


class Item:
    def __init__(self, title: str) -> None:
        self.title = title


def run(values: dict[str, object]) -> PartialResult:
    @operation(name="Judge")
    def judge(item: Item) -> object:
        value = values[item.title]
        if isinstance(value, Exception):
            raise value
        return value

    return BatchExecutor(max_concurrency=2).execute([Item(t) for t in values], judge, progress=False)


def test_dataclass_values_become_columns_after_the_usual_ones() -> None:
    frame = run({"a": Score(0, 1.5, True), "b": Score(2, 0.25, False)}).to_dataframe(values=True)
    assert list(frame.columns)[-3:] == ["exit_code", "seconds", "passed"]
    assert frame["exit_code"].tolist() == [0, 2] and frame["exit_code"].dtype == "int64"
    assert frame["seconds"].tolist() == [1.5, 0.25] and frame["seconds"].dtype == "float64"
    assert frame["passed"].dtype == "bool"
    assert frame["value"].tolist()[0] == Score(0, 1.5, True)  # the value column is kept as is


def test_rows_without_the_field_get_na_and_nullable_dtypes() -> None:
    result = run({"a": {"exit_code": 0, "ok": True}, "b": RuntimeError("boom"), "c": "plain",
                  "d": {"exit_code": 1, "note": "x"}})
    frame = result.to_dataframe(values=True)
    assert list(frame.columns)[-3:] == ["exit_code", "value_ok", "note"]
    assert frame["value_ok"].dtype == "boolean"
    assert frame["exit_code"].dtype == "Int64"
    assert frame["exit_code"].tolist()[0] == 0 and frame["exit_code"].tolist()[3] == 1
    assert frame["exit_code"].isna().tolist() == [False, True, True, False]
    assert frame["note"].tolist()[3] == "x" and frame["note"].isna().tolist()[:3] == [True] * 3


def test_a_field_named_like_a_column_is_prefixed() -> None:
    frame = run({"a": {"status": "green", "ok": False}}).to_dataframe(values=True)
    assert frame["status"].tolist() == ["succeeded"] and frame["ok"].tolist() == [True]
    assert frame["value_status"].tolist() == ["green"] and frame["value_ok"].tolist() == [False]


def test_without_values_or_without_spreadable_values_the_table_is_unchanged() -> None:
    result = run({"a": "x", "b": 3, "c": None})
    plain = result.to_dataframe()
    pd.testing.assert_frame_equal(result.to_dataframe(values=True), plain)
    spread = run({"a": Score(0, 1.0, True)})
    assert "exit_code" not in spread.to_dataframe().columns
    empty = PartialResult().to_dataframe(values=True)
    assert list(empty.columns) == list(plain.columns) and len(empty) == 0
