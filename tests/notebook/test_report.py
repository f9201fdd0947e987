"""Reports over real engine results (plain in-memory instances: the report layer only reads results)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from squadnb import BatchExecutor, Operation, OperationChain
from squadnb.notebook import summarize, timeline, to_csv, to_html

matplotlib.use("Agg")


class Box:
    def __init__(self, title: str) -> None:
        self.title = title


class Step(Operation):
    """Succeeds, except on the instances named in ``fail``."""

    def __init__(self, name: str, fail: set[str] = frozenset(), seconds: float = 0.01) -> None:
        self.name = name
        self.fail = fail
        self.seconds = seconds

    async def execute(self, instance: Box) -> str:
        await asyncio.sleep(self.seconds)
        if instance.title in self.fail:
            raise RuntimeError(f"{instance.title} broke")
        return instance.title


@pytest.fixture
def boxes() -> list[Box]:
    return [Box(f"box-{i}") for i in range(5)]


@pytest.fixture
def executor() -> BatchExecutor:
    return BatchExecutor(max_concurrency=5, timeout=30)


def test_summarize_counts_and_rates(boxes, executor):
    result = executor.execute(boxes, Step("Pause", fail={"box-1", "box-3"}), progress=False)
    summary = summarize(result)
    assert list(summary.index) == ["Pause"]
    row = summary.loc["Pause"]
    assert (row["total"], row["succeeded"], row["failed"]) == (5, 3, 2)
    assert row["success_rate"] == pytest.approx(60.0) == pytest.approx(result.success_rate)
    assert 0.01 <= row["mean_seconds"] <= row["max_seconds"] < 5


def test_summarize_a_chain_has_one_row_per_operation(boxes, executor):
    chain = OperationChain(stop_on_failure=False).add(Step("Start")).add(Step("Prompt", fail={"box-0"}))
    steps = chain.execute(boxes, executor)
    summary = summarize(steps)
    assert list(summary.index) == ["Start", "Prompt"]
    assert summary["total"].tolist() == [5, 5]
    assert summary["succeeded"].tolist() == [5, 4]
    assert summary["failed"].tolist() == [0, 1]
    assert summary["success_rate"].tolist() == [100.0, 80.0]


def test_timeline_draws_one_bar_per_instance_coloured_by_status(boxes, executor):
    result = executor.execute(boxes, Step("Pause", fail={"box-2"}), progress=False)
    ax = timeline(result)
    bars = ax.patches
    assert len(bars) == 5
    colours = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in bars]
    red, green = matplotlib.colors.to_hex("tab:red"), matplotlib.colors.to_hex("tab:green")
    assert colours.count(red) == 1 and colours.count(green) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == [b.title for b in boxes]
    assert all(bar.get_width() > 0 for bar in bars)
    matplotlib.pyplot.close(ax.figure)


def test_timeline_of_a_chain_puts_steps_on_the_instance_row(boxes, executor):
    chain = OperationChain().add(Step("Start")).add(Step("Pause"))
    steps = chain.execute(boxes[:3], executor)
    _, ax = matplotlib.pyplot.subplots()
    assert timeline(steps, ax=ax) is ax
    assert len(ax.patches) == 6
    assert len(ax.get_yticklabels()) == 3
    firsts, seconds = ax.patches[:3], ax.patches[3:]
    for a, b in zip(firsts, seconds):
        assert a.get_y() == b.get_y() and b.get_x() >= a.get_x() + a.get_width() - 1e-6
    matplotlib.pyplot.close(ax.figure)


def test_csv_round_trip(boxes, executor, tmp_path: Path):
    result = executor.execute(boxes, Step("Pause", fail={"box-4"}), progress=False)
    path = to_csv(result, tmp_path / "run.csv")
    back = pd.read_csv(path)
    assert back["instance"].tolist() == [b.title for b in boxes]
    assert back["status"].tolist() == ["succeeded"] * 4 + ["failed"]
    assert back.loc[4, "error"] == "box-4 broke"
    assert back["seconds"].between(0.01, 5).all()
    assert pd.to_datetime(back["start_time"]).notna().all()


def test_html_export_holds_the_summary_and_every_row(boxes, executor, tmp_path: Path):
    result = executor.execute(boxes, Step("Pause", fail={"box-0"}), progress=False)
    path = to_html([result], tmp_path / "run.html")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<table") == 2
    assert all(f">{b.title}<" in text for b in boxes)
    assert "box-0 broke" in text and "#f8d7da" in text


class Formulas(Operation):
    """What an agent or a user could put in a report to run in the spreadsheet that opens it."""

    name = "Formulas"

    async def execute(self, instance: Box) -> object:
        if instance.title == "fails":
            raise RuntimeError("irrelevant")
        return {"plain": "ok", "negative": -3, "formula": "=cmd|' /C calc'!A0"}.get(
            instance.title, "@SUM(1+1)*cmd|' /C calc'!A0")


def test_csv_export_quotes_every_cell_a_spreadsheet_would_run_as_a_formula(executor, tmp_path):
    boxes = [Box(t) for t in ("plain", "negative", "formula", "=1+1", "+1", "-2", "\tx", "fails")]
    result = executor.execute(boxes, Formulas(), progress=False)
    back = pd.read_csv(to_csv(result, tmp_path / "run.csv"), keep_default_na=False)
    assert back["instance"].tolist() == ["plain", "negative", "formula", "'=1+1", "'+1", "'-2",
                                         "'\tx", "fails"]
    assert back["value"].tolist()[:4] == ["ok", "-3", "'=cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"]
    assert (back["seconds"] >= 0).all()  # numbers are numbers still
    raw = pd.read_csv(to_csv(result, tmp_path / "raw.csv", formulas=True), keep_default_na=False)
    assert raw["instance"].tolist() == [b.title for b in boxes]


def test_bad_input_is_refused(tmp_path: Path):
    with pytest.raises(TypeError, match="PartialResult"):
        summarize(["not a result"])
    with pytest.raises(ValueError, match="empty"):
        to_csv([], tmp_path / "x.csv")


class Hostile(Operation):
    """Everything a user controls in a report, carrying markup: the operation's name, each instance's
    error message and value."""

    name = "<script>alert('op')</script>"

    async def execute(self, instance: Box) -> str:
        if instance.title.endswith("1"):
            raise RuntimeError("<script>alert('error')</script>")
        return "<img src=x onerror=alert('value')>"


def test_html_export_escapes_everything_a_user_controls(executor, tmp_path: Path):
    boxes = [Box("<script>alert('title')</script>0"), Box("<b onmouseover=x>1")]
    result = executor.execute(boxes, Hostile(), progress=False)
    text = to_html(result, tmp_path / "run.html").read_text()
    lowered = text.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<b " not in lowered
    for raw in ("alert('title')", "alert('op')", "alert('error')", "onerror=alert('value')"):
        assert raw.replace("'", "&#x27;") in text or raw.replace("'", "&#39;") in text, raw
    assert "&lt;script&gt;" in text and "&lt;img src=x" in text
    assert text.count("<table") == 2 and "#f8d7da" in text  # still the coloured tables


def test_timeline_draws_dollar_signs_as_written(executor):
    boxes = [Box(r"$\undefined{$"), Box("costs $5 and $6")]
    chain = OperationChain().add(Step("Start")).add(Step(r"$\frac{$"))
    ax = timeline(chain.execute(boxes, executor))
    ax.figure.canvas.draw()  # a '$…$' parsed as mathtext would fail here
    assert [t.get_text() for t in ax.get_yticklabels()] == [b.title for b in boxes]
    matplotlib.pyplot.close(ax.figure)
