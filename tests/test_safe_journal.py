"""``squad.journal`` (the home's ``history.sqlite``) with real demo instances, the ``verified``
column of the built-in operations through the executor, and a journal's results drawn by the
reports of ``squadnb.notebook``."""

from __future__ import annotations

import os
import stat

import matplotlib
import pytest

from squadnb import BatchExecutor, Journal, VerificationError
from squadnb.notebook import frame, summarize, timeline
from squadnb.ops import BatchKillOperation, BatchPauseOperation, BatchStartOperation
from squadnb.session import Squad

matplotlib.use("Agg")


def test_squad_journal_is_the_homes_history_file(squad: Squad, git_repo) -> None:
    path = squad.home / "history.sqlite"
    assert not path.exists()  # opened on first use only
    journal = squad.journal
    assert isinstance(journal, Journal) and journal.path == path and squad.journal is journal
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = Squad(home=squad.home, repo=git_repo, tmux_socket=squad.tmux_socket).journal
    assert other is not journal and other.path == path


def test_journaled_batches_record_verified_outcomes(squad: Squad, monkeypatch) -> None:
    executor = BatchExecutor(max_concurrency=3, timeout=120)
    instances = [squad.new(f"j{i}") for i in range(3)]
    started = executor.execute(instances, BatchStartOperation(), journal=squad.journal,
                               progress=False)
    assert started.to_dataframe()["verified"].tolist() == [True] * 3

    async def nothing() -> None:
        """A pause that does nothing and says it succeeded."""

    monkeypatch.setattr(instances[1], "apause", nothing)
    paused = executor.execute(instances, BatchPauseOperation(), journal=squad.journal,
                              progress=False)
    assert [r.status for r in paused.results] == ["succeeded", "failed", "succeeded"]
    assert isinstance(paused.results[1].error, VerificationError)
    assert "instance 'j1': after Pause, its tmux session 'squadnb_j1' still exists" in str(
        paused.results[1].error)

    batches = squad.journal.batches()
    assert batches["operation"].tolist() == ["Start", "Pause"]
    assert batches[["total", "succeeded", "failed"]].values.tolist() == [[3, 3, 0], [3, 2, 1]]
    results = squad.journal.results()
    assert results["verified"].tolist() == [True, True, True, True, False, True]

    shown = frame(results)
    assert shown["step"].tolist() == [0, 0, 0, 1, 1, 1]
    summary = summarize(results)
    assert summary.loc["Start", "succeeded"] == 3 and summary.loc["Pause", "failed"] == 1
    ax = timeline(results)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["j0", "j1", "j2"]
    with pytest.raises(ValueError, match="table of results is empty"):
        frame(results.iloc[0:0])
    assert executor.execute(instances, BatchKillOperation(), progress=False).all_succeeded
