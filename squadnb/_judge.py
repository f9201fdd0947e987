"""Judging agents' work in bulk: :meth:`Squad.fan_out <squadnb.session.squad.Squad.fan_out>` (one task
to N new agents) and :meth:`Squad.compare <squadnb.session.squad.Squad.compare>` (their work side by
side). Batches built from the built-in operations, so this module sits beside ``ops.py``, below the
session layer; ``Squad``'s two methods import it when called.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from squadnb.engine.executor import BatchExecutor
from squadnb.engine.result import PartialResult
from squadnb.engine.transaction import OperationChain
from squadnb.errors import SquadError
from squadnb.ops import BatchPromptOperation, BatchStartOperation, RunCommand
from squadnb.session.instance import Instance

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.session.squad import Squad

__all__ = ["COMPARE_COLUMNS", "acompare", "afan_out"]

#: the columns of ``compare()``; ``exit_code`` and ``seconds`` come with its ``command``
COMPARE_COLUMNS = ("title", "files_changed", "added", "removed", "commits_ahead")


async def afan_out(squad: Squad, title: str, n: int, prompt: str, *, program: str | None = None,
                   executor: BatchExecutor | None = None) -> PartialResult:
    """Create ``<title>-1`` … ``<title>-<n>`` (their ``group`` is ``title``), then run one
    :class:`~squadnb.OperationChain` over them: Start, then SendPrompt ``prompt``; return the
    prompt step's result (one row per instance: one whose start failed is ``invalid`` there, and
    stays NEW in the squad)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"fan_out needs a positive number of instances, not {n!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"fan_out {title!r}: the prompt is empty")
    created: list[Instance] = []
    try:
        for k in range(1, n + 1):
            created.append(await squad.anew(f"{title}-{k}", program, group=title))
    except SquadError:
        for instance in created:  # all or nothing: a never-started instance is just forgotten
            await instance.akill()
        raise
    chain = (OperationChain(stop_on_failure=False)
             .add(BatchStartOperation()).add(BatchPromptOperation(prompt)))
    steps = await chain.aexecute(created, executor or BatchExecutor(max_concurrency=n))
    return steps[-1]


async def acompare(squad: Squad, instances: Iterable[Instance] | None = None,
                   command: str | Sequence[str] | None = None, *,
                   executor: BatchExecutor | None = None) -> pd.DataFrame:
    """One row per instance (``instances`` order; default every instance of the squad): ``title``,
    ``files_changed``, ``added``, ``removed`` (lines, against its base commit: committed,
    uncommitted and untracked work), ``commits_ahead`` (commits on its branch since its base
    commit); with ``command``, also ``exit_code`` (nullable Int64: NA where the command did not
    finish, e.g. paused, timed out) and ``seconds`` (float) of :class:`~squadnb.RunCommand`
    ``(command, check=False)`` run over the instances with ``executor`` (default: all at once, the
    default per-operation timeout)."""
    import pandas as pd

    chosen = list(squad.instances if instances is None else instances)
    changes = await asyncio.gather(*(inst.achanged_files() for inst in chosen))
    work = await asyncio.gather(*(inst.arefresh_work() for inst in chosen))
    frame = pd.DataFrame({
        "title": pd.Series([inst.title for inst in chosen], dtype="str"),
        "files_changed": pd.Series([len(files) for files in changes], dtype="int64"),
        "added": pd.Series([int(files["added"].sum()) for files in changes], dtype="int64"),
        "removed": pd.Series([int(files["removed"].sum()) for files in changes], dtype="int64"),
        "commits_ahead": pd.Series([ahead for _dirty, ahead in work], dtype="int64"),
    }, columns=list(COMPARE_COLUMNS))
    if command is not None:
        run = RunCommand(command, check=False)
        result = await (executor or BatchExecutor(max_concurrency=len(chosen))).aexecute(
            chosen, run, progress=False)
        values: list[Any] = [r.value for r in result.results]
        frame["exit_code"] = pd.Series([v.exit_code if v is not None else None for v in values],
                                       dtype="Int64")
        frame["seconds"] = pd.Series([v.seconds if v is not None else None for v in values],
                                     dtype="float64")
    return frame

