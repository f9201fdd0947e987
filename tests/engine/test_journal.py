"""Journal: batches and outcomes in SQLite, written as they happen, read back as tables, resumed."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from engine_helpers import Item, Pause, Record, Stall, items
from helpers import wait_for

from squadnb import (
    BatchExecutor,
    ConditionalOperation,
    Journal,
    Operation,
    OperationChain,
    RetryOperation,
    TransactionManager,
    operation,
)
from squadnb.engine.result import COLUMNS
from squadnb.errors import JournalError, RolledBack, UnknownBatch


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    with Journal(tmp_path / "history.sqlite") as opened:
        yield opened


def recorded(path: Path, batch_id: str) -> dict[str, str]:
    """Each instance's status as another connection (another process would) sees it."""
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("SELECT instance, status FROM outcomes WHERE batch_id=? "
                                       "ORDER BY position", (batch_id,)).fetchall())


# -- what is written ------------------------------------------------------------------------------

def test_a_batch_and_its_outcomes_read_back_as_tables(journal: Journal) -> None:
    batch = items(4)
    batch[3].paused = True
    result = BatchExecutor().execute(batch, Pause(), progress=False, journal=journal)
    assert result.batch_id is not None
    batches = journal.batches()
    assert list(batches.columns[:9]) == ["batch_id", "operation", "started", "finished", "total",
                                         "succeeded", "failed", "cancelled", "pending"]
    row = batches.iloc[0]
    assert (row.batch_id, row.operation, row.total, row.succeeded, row.failed, row.cancelled,
            row.pending) == (result.batch_id, "Pause", 4, 3, 1, 0, 0)
    assert row.started <= row.finished and str(batches["started"].dtype) == "datetime64[ns, UTC]"
    assert row.resumed_from is None

    frame = journal.results(result.batch_id)
    assert list(frame.columns) == ["batch_id", *COLUMNS]
    mine = result.to_dataframe()
    for column in ("instance", "operation", "status", "ok", "error", "error_type", "attempts",
                   "verified"):
        pd.testing.assert_series_equal(frame[column], mine[column], check_names=True)
    assert frame["start_time"].tolist() == mine["start_time"].tolist()
    assert (frame["elapsed"] - mine["elapsed"]).abs().max() < pd.Timedelta(milliseconds=1)
    assert set(frame["batch_id"]) == {result.batch_id}


def test_values_are_kept_as_json_or_their_repr(journal: Journal) -> None:
    values = {"i0": {"k": [1, 2]}, "i1": object(), "i2": None}

    @operation(name="Value")
    def give(item: Item) -> Any:
        return values[item.title]

    result = BatchExecutor().execute(items(3), give, progress=False, journal=journal)
    frame = journal.results(result.batch_id)
    assert frame.loc[0, "value"] == {"k": [1, 2]}
    assert frame.loc[1, "value"].startswith("<object object at")
    assert frame.loc[2, "value"] is None


def test_operation_name_and_parameters_are_recorded(journal: Journal) -> None:
    op = RetryOperation(Record(fail=("x",)), max_retries=2, delay=0.5)
    BatchExecutor().execute(items(1), op, progress=False, journal=journal)
    row = journal.batches().iloc[0]
    assert row.operation == "Retry(Record)"
    params = json.loads(row.parameters)
    assert params["max_retries"] == 2 and params["delay"] == 0.5
    assert params["operation"] == "<Operation Record>"  # not JSON: its repr


def test_each_outcome_is_committed_before_that_worker_starts_another(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    seen: list[dict[str, str]] = []

    class Peek(Operation):
        """Reads the journal from a connection of its own, as a process that survived would."""

        def __init__(self) -> None:
            self.batch_id: str | None = None

        def execute(self, item: Item) -> None:
            with sqlite3.connect(path) as connection:
                rows = connection.execute("SELECT instance, status FROM outcomes").fetchall()
            seen.append(dict(rows))

    with Journal(path) as journal:
        BatchExecutor(max_concurrency=1).execute(items(4), Peek(), progress=False, journal=journal)
    assert seen == [
        {"i0": "pending", "i1": "pending", "i2": "pending", "i3": "pending"},
        {"i0": "succeeded", "i1": "pending", "i2": "pending", "i3": "pending"},
        {"i0": "succeeded", "i1": "succeeded", "i2": "pending", "i3": "pending"},
        {"i0": "succeeded", "i1": "succeeded", "i2": "succeeded", "i3": "pending"},
    ]


def test_a_batch_cut_short_leaves_no_instance_pending(journal: Journal) -> None:
    result = BatchExecutor(max_concurrency=1).execute(items(3), Stall(), progress=False,
                                                       deadline=0.2, journal=journal)
    assert set(journal.results(result.batch_id)["status"]) == {"cancelled"}
    row = journal.batches().iloc[0]
    assert (row.cancelled, row.pending) == (3, 0) and not pd.isna(row.finished)


def test_cutoff_and_skips_are_journaled(journal: Journal) -> None:
    op = ConditionalOperation(Record(fail=("i1", "i2")), lambda i: i.title != "i0")
    executor = BatchExecutor(max_concurrency=1, max_failures=2)
    result = executor.execute(items(5), op, progress=False, journal=journal)
    frame = journal.results(result.batch_id)
    assert frame["status"].tolist() == ["skipped", "failed", "failed", "cancelled", "cancelled"]
    assert frame.loc[3, "error"] == "failure cutoff reached: 2 of 5 failed"
    row = journal.batches().iloc[0]
    assert (row.skipped, row.failed, row.cancelled) == (1, 2, 2)


def test_rollback_marks_the_undone_outcomes(journal: Journal) -> None:
    with pytest.raises(RolledBack) as caught:
        TransactionManager().execute(items(3), Record(fail=("i1",)), progress=False, journal=journal)
    batch_id = caught.value.result.batch_id
    assert journal.results(batch_id)["status"].tolist() == ["rolled back", "failed", "rolled back"]
    assert journal.batches().iloc[0].rolled_back == 2


def test_every_way_to_run_a_batch_takes_a_journal(journal: Journal) -> None:
    executor = BatchExecutor()
    executor.submit(items(1), Record(), journal=journal).result(30)

    async def main() -> None:
        await executor.aexecute(items(1), Record(), progress=False, journal=journal)
        await executor.aexecute_with_rollback(items(1), Record(), progress=False, journal=journal)
        await OperationChain().add(Record()).aexecute(items(1), executor, journal=journal)

    asyncio.run(main())
    executor.execute_with_rollback(items(1), Record(), progress=False, journal=journal)
    steps = OperationChain().add(Record()).add(Pause()).execute(items(2), executor, journal=journal)
    assert [s.batch_id for s in steps] == journal.batches()["batch_id"].tolist()[-2:]
    assert journal.batches()["operation"].tolist() == ["Record"] * 6 + ["Pause"]
    assert len(set(journal.batches()["batch_id"])) == 7


def test_results_of_every_batch_oldest_first(journal: Journal) -> None:
    first = BatchExecutor().execute(items(2), Record(), progress=False, journal=journal)
    second = BatchExecutor().execute(items(1, "x"), Pause(), progress=False, journal=journal)
    frame = journal.results()
    assert frame["batch_id"].tolist() == [first.batch_id] * 2 + [second.batch_id]
    assert frame["instance"].tolist() == ["i0", "i1", "x0"]


def test_an_empty_journal_reads_as_empty_tables(journal: Journal) -> None:
    assert journal.batches().empty and journal.results().empty
    assert list(journal.results().columns) == ["batch_id", *COLUMNS]


def test_unknown_batch_is_a_key_error_naming_it(journal: Journal) -> None:
    with pytest.raises(UnknownBatch, match="no batch 'nope'") as caught:
        journal.results("nope")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, JournalError)
    with pytest.raises(UnknownBatch, match="no batch 'nope'"):
        BatchExecutor().resume(journal, "nope", items(1), progress=False)


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    Journal(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_journal_that_cannot_open_says_which(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open the journal .*missing"):
        Journal(tmp_path / "missing" / "history.sqlite")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(JournalError, match="garbage.sqlite"):
        Journal(garbage)


def test_a_closed_journal_refuses_before_anything_runs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "history.sqlite")
    journal.close()
    journal.close()  # idempotent
    batch = items(2)
    with pytest.raises(JournalError, match="is closed"):
        BatchExecutor().execute(batch, Record(), progress=False, journal=journal)
    assert [i.log for i in batch] == [[], []]


def test_a_write_that_fails_halts_the_batch_and_raises(journal: Journal,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = Journal.arecord
    calls = []

    async def failing_second(self: Journal, batch_id: str, position: int, result: Any) -> None:
        calls.append(position)
        if len(calls) == 2:
            raise JournalError("disk full")
        await real(self, batch_id, position, result)

    monkeypatch.setattr(Journal, "arecord", failing_second)
    executor = BatchExecutor(max_concurrency=1)
    batch = items(4)
    with pytest.raises(JournalError, match="disk full"):
        executor.execute(batch, Record(), progress=False, journal=journal)
    assert [i.log for i in batch] == [["execute"], ["execute"], [], []]
    assert [r.status for r in executor.last_result.results] == ["succeeded", "succeeded",
                                                                 "cancelled", "cancelled"]
    assert "the journal failed: disk full" in str(executor.last_result.results[2].error)


def test_two_processes_write_one_journal_at_once(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    Journal(path).close()
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}
        from engine_helpers import Record, items
        from squadnb import BatchExecutor, Journal
        with Journal({str(path)!r}) as journal:
            result = BatchExecutor(max_concurrency=8).execute(items(200, sys.argv[1]), Record(),
                                                              progress=False, journal=journal)
        print(result.batch_id)
    """)
    children = [subprocess.Popen([sys.executable, "-c", script, prefix], stdout=subprocess.PIPE,
                                 text=True, env={**os.environ}) for prefix in ("a", "b")]
    ids = [child.communicate(timeout=90)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    with Journal(path) as journal:
        batches = journal.batches().set_index("batch_id")
        assert sorted(batches.index) == sorted(ids)
        assert batches["succeeded"].tolist() == [200, 200]


# -- resume ---------------------------------------------------------------------------------------

def test_resume_runs_only_what_has_no_recorded_success(journal: Journal) -> None:
    batch = items(5)
    executor = BatchExecutor(max_concurrency=1)
    first = executor.execute(batch, Record(fail=("i1", "i3")), progress=False, journal=journal)
    assert [r.status for r in first.results].count("failed") == 2

    again = executor.resume(journal, first.batch_id, reversed(batch), Record(), progress=False)
    assert [r.instance.title for r in again.results] == ["i1", "i3"]  # the batch's order
    assert again.all_succeeded and again.batch_id != first.batch_id
    assert [i.log for i in batch] == [["execute"]] * 5
    row = journal.batches().set_index("batch_id").loc[again.batch_id]
    assert row.resumed_from == first.batch_id and row.total == 2
    assert executor.last_result is again


def test_resume_uses_the_stored_operation(journal: Journal) -> None:
    batch = items(3)
    first = BatchExecutor().execute(batch, Record(fail=("i2",)), progress=False, journal=journal)
    again = BatchExecutor().resume(journal, first.batch_id, batch, progress=False)
    # The stored operation still fails on i2: it is the recorded one, unpickled.
    assert [r.instance.title for r in again.results] == ["i2"] and not again.all_succeeded
    assert type(again.operation) is Record and again.operation.fail == ("i2",)


def test_an_operation_that_does_not_pickle_must_be_given_again(journal: Journal) -> None:
    local = operation(lambda item: 1 / 0, name="Local")
    first = BatchExecutor().execute(items(1), local, progress=False, journal=journal)
    with pytest.raises(JournalError, match="stored no operation .* pass operation="):
        BatchExecutor().resume(journal, first.batch_id, items(1), progress=False)
    assert BatchExecutor().resume(journal, first.batch_id, items(1), Record(),
                                  progress=False).all_succeeded


def test_resume_needs_every_instance_once_by_title(journal: Journal) -> None:
    first = BatchExecutor().execute(items(2), Record(fail=("i0", "i1")), progress=False,
                                    journal=journal)
    with pytest.raises(ValueError, match="no instance titled 'i1'"):
        BatchExecutor().resume(journal, first.batch_id, [Item("i0")], Record(), progress=False)
    with pytest.raises(ValueError, match="several titled 'i0'"):
        BatchExecutor().resume(journal, first.batch_id, [Item("i0"), Item("i0"), Item("i1")],
                               Record(), progress=False)
    assert len(journal.batches()) == 1  # nothing ran


def test_resume_of_a_finished_batch_runs_nothing(journal: Journal) -> None:
    first = BatchExecutor().execute(items(2), Record(), progress=False, journal=journal)
    again = BatchExecutor().resume(journal, first.batch_id, items(2), progress=False)
    assert again.total == 0 and again.results == []


def test_aresume_is_the_async_twin(journal: Journal) -> None:
    first = BatchExecutor().execute(items(2), Record(fail=("i0",)), progress=False, journal=journal)

    async def main() -> Any:
        return await BatchExecutor().aresume(journal, first.batch_id, items(2), Record(),
                                             progress=False)

    again = asyncio.run(main())
    assert [r.instance.title for r in again.results] == ["i0"] and again.all_succeeded


# -- a real crash ---------------------------------------------------------------------------------

MARKED = '''
import asyncio, os
from pathlib import Path

from squadnb import Operation


class Marked:
    def __init__(self, title):
        self.title = title


class WriteMarker(Operation):
    """Appends a line to <markers>/<title> when done; hangs on the titles in `hang` unless the
    file <markers>/go exists."""

    name = "WriteMarker"

    def __init__(self, markers, hang):
        self.markers = markers
        self.hang = hang

    async def execute(self, instance):
        markers = Path(self.markers)
        if instance.title in self.hang:
            (markers / f"started-{instance.title}").touch()
            while not (markers / "go").exists():
                await asyncio.sleep(0.02)
        with open(markers / instance.title, "a") as f:
            f.write("done\\n")
'''

RUN = '''
import sys
sys.path.insert(0, sys.argv[1])
from marked import Marked, WriteMarker
from squadnb import BatchExecutor, Journal

journal = Journal(sys.argv[2])
instances = [Marked(f"m{k}") for k in range(8)]
if sys.argv[3] == "start":
    operation = WriteMarker(sys.argv[1], hang={"m3", "m4"})
    BatchExecutor(max_concurrency=2).execute(instances, operation, progress=False, journal=journal)
else:
    result = BatchExecutor(max_concurrency=2).resume(journal, sys.argv[3], instances, progress=False)
    print(result.summary())
'''


def test_a_killed_process_resumes_from_a_new_one_and_runs_each_operation_once(tmp_path: Path) -> None:
    (tmp_path / "marked.py").write_text(MARKED)
    (tmp_path / "run.py").write_text(RUN)
    path = tmp_path / "history.sqlite"
    child = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path), str(path),
                              "start"], env={**os.environ})
    try:
        # m0..m2 done; m3 and m4 running (hung) when the process dies; m5..m7 never started.
        wait_for(lambda: (tmp_path / "started-m3").exists() and (tmp_path / "started-m4").exists(),
                 60, "the child to reach the hanging instances")
        child.kill()  # SIGKILL: no cleanup, no finish row
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    with Journal(path) as journal:
        row = journal.batches().iloc[0]
        assert (row.total, row.succeeded, row.pending) == (8, 3, 5) and pd.isna(row.finished)
        batch_id = row.batch_id
    (tmp_path / "go").touch()
    done = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path), str(path),
                           batch_id], capture_output=True, text=True, timeout=90,
                          env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("WriteMarker: 5 succeeded, 0 failed of 5")
    for k in range(8):
        assert (tmp_path / f"m{k}").read_text() == "done\n", f"m{k}"
    with Journal(path) as journal:
        statuses = journal.results()
        latest = statuses.groupby("instance")["status"].last()
        assert set(latest) == {"succeeded"}
        assert journal.batches().iloc[1].resumed_from == batch_id
