"""The batch commands (``ls new start pause resume kill prompt push diff preview fan-out history
resume-batch doctor``): open the squad, pick
the targets, run one operation over them on a :class:`~squadnb.BatchExecutor`, print the records.

Imported only once a command runs (``squadnb --help`` never loads it, nor the engine and pandas it
needs).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from squadnb._loop import run_sync
from squadnb.cli import where
from squadnb.cli.output import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, clip, emit_frame,
                                emit_result, error, one_line, printable, progress, result_table)
from squadnb.engine.executor import BatchExecutor
from squadnb.engine.operation import Operation
from squadnb.engine.result import instance_label
from squadnb.errors import BatchInterrupted, RollbackIncomplete, SquadError, TransactionError
from squadnb.ops import (BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                         BatchPushOperation, BatchResumeOperation, BatchStartOperation, DiffOperation, with_batch_options)
from squadnb.session._input import check_prompt
from squadnb.session.instance import Instance, Status
from squadnb.session.squad import Squad

if TYPE_CHECKING:
    import pandas as pd

    from squadnb.engine.result import PartialResult

__all__ = ["batch", "diff", "doctor", "fan_out", "history", "ls", "new", "open_squad", "preview",
           "push", "resume_batch", "transaction_message"]


# -- squad and targets -----------------------------------------------------------------------------


def open_squad(args: argparse.Namespace) -> Squad:
    """The squad named by --home/--repo/--socket (their environment defaults), or claude-squad's; with
    --scheduler a :class:`~squadnb.distributed.Fleet` over that scheduler's workers, which every batch
    command takes like a squad (``doctor`` and ``fan-out`` work on one squad only)."""
    if getattr(args, "scheduler", None):
        return _open_fleet(args)  # type: ignore[return-value]
    if args.claude_squad:
        overrides = {"home": args.home, "repo": args.repo, "tmux_socket": args.socket,
                     "program": args.program}
        return Squad.claude_squad(**{k: v for k, v in overrides.items() if v is not None},
                                  force=getattr(args, "force", False))
    return Squad(home=args.home, repo=args.repo or ".", program=args.program, tmux_socket=args.socket)


def _open_fleet(args: argparse.Namespace) -> Any:
    if args.claude_squad:
        raise UsageError("--scheduler and --claude-squad do not go together")
    if args.command in ("doctor", "fan-out"):
        raise UsageError(f"'{args.command}' works on one squad; it does not take --scheduler")
    try:
        from squadnb.distributed import Fleet

        fleet = Fleet(args.scheduler, repo=args.repo or ".", program=args.program, home=args.home)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    atexit.register(fleet.close)  # its Dask client, before the interpreter tears its threads down
    return fleet


def _selection(squad: Squad, args: argparse.Namespace, *, default_all: bool) -> pd.DataFrame:
    """The rows of the ``ls`` table the targets name, in the order given (titles) or the squad's.

    :raises UsageError: nothing is named (unless ``default_all``), a title is unknown, a status is
        not a status, the expression is bad, or nothing matches.
    """
    titles: list[str] = list(getattr(args, "titles", []) or [])
    try:
        statuses = [Status.parse(s).label for value in args.status or [] for s in value.split(",")
                    if s.strip()]
    except ValueError:
        bad = next(s for value in args.status for s in value.split(",") if s.strip() and
                   s.strip().upper() not in Status.__members__)
        raise UsageError(f"unknown status {clip(bad)} (one of: "
                         f"{', '.join(status.label for status in Status)})") from None
    if args.all and titles:
        raise UsageError("name instances or pass --all, not both")
    if not (titles or args.all or statuses or args.where) and not default_all:
        raise UsageError("no targets: name instances, or pass --all, --status STATUS or --where EXPR")
    frame = squad.to_dataframe()
    if frame.empty and not (default_all or titles):
        raise UsageError(f"no instances in {squad.home}")
    if titles:
        unknown = [t for t in titles if t not in set(frame["title"])]
        if unknown:
            named = ", ".join(clip(title) for title in unknown[:3]) + (" …" if len(unknown) > 3 else "")
            raise UsageError(f"no instance named {named} in {squad.home}")
        frame = frame.set_index("title", drop=False).loc[list(dict.fromkeys(titles))]
        frame = frame.reset_index(drop=True)
    if statuses:
        frame = frame[frame["status"].isin(statuses)]
    if args.where:
        try:
            frame = where.select(frame, args.where)
        except where.BadExpression as exc:
            raise UsageError(str(exc)) from None
    if frame.empty and (titles or args.all or statuses or args.where):
        what = [f"--where {clip(args.where)}"] if args.where else []
        what += [f"--status {','.join(statuses)}"] if statuses else []
        raise UsageError(f"no instance matches {' '.join(what) or 'the targets'} in {squad.home}")
    return frame


def _targets(squad: Squad, args: argparse.Namespace, *, default_all: bool = False) -> list[Instance]:
    return [squad[title] for title in _selection(squad, args, default_all=default_all)["title"]]


# -- running a batch -------------------------------------------------------------------------------


def _executor(args: argparse.Namespace) -> BatchExecutor:
    return BatchExecutor(max_concurrency=args.concurrency, timeout=args.timeout,
                         max_failures=args.max_failures, rate=args.rate)


def _run_batch(args: argparse.Namespace, squad: Squad, instances: list[Instance], operation: Any,
               show: Callable[[PartialResult], None] | None = None, *, journaled: bool = True) -> int:
    """Run ``operation`` over ``instances`` as the options say; print the result (``show(result)``,
    default :func:`emit_result`), also when interrupted or rolled back; return the exit status (1
    when any instance failed or a transaction was rolled back, 130 when interrupted).

    ``--dry-run`` prints the executor's plan instead (exit 0, nothing runs). A ``journaled`` batch
    (every state-changing one) is recorded in the home's journal; its id is printed under the table.
    """
    operation = with_batch_options(operation, retries=args.retries, retry_delay=args.retry_delay)
    executor = _executor(args)
    if getattr(args, "dry_run", False):
        emit_frame(args, executor.plan(instances, operation))
        return EXIT_OK
    if journaled and isinstance(squad, Squad):
        squad.guard_claude_squad()  # refused before anything runs: exit 2, nothing changed
    if args.command == "kill":
        _confirm_kill(args, instances)
    run = executor.execute_with_rollback if args.transaction else executor.execute
    with squad.journal if journaled else contextlib.nullcontext() as journal:  # <home>/history.sqlite
        return _report(args, lambda: run(instances, operation, progress=progress(),
                                         deadline=args.deadline, journal=journal), show)


def _report(args: argparse.Namespace, execute: Callable[[], PartialResult],
            show: Callable[[PartialResult], None] | None = None) -> int:
    """Run a batch (``execute()``) and print its result with ``show`` (default :func:`emit_result`)
    and, under a text table, its journal id; also when a transaction rolled back or Ctrl-C
    cancelled it. Returns the exit status."""

    def emit(result: PartialResult) -> None:
        (show or (lambda r: emit_result(args, r)))(result)
        if result.batch_id is not None and not (args.json or args.csv):
            print(f"batch {result.batch_id} (squadnb history {result.batch_id})")

    try:
        result = execute()
    except TransactionError as exc:
        emit(exc.result)
        error(transaction_message(exc))
        return EXIT_FAILED
    except BatchInterrupted as exc:
        emit(exc.result)
        print("squadnb: interrupted; the batch was cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    emit(result)
    return EXIT_FAILED if result.failures else EXIT_OK


def transaction_message(exc: TransactionError) -> str:
    """What a failed transaction did: everything rolled back, or which rollbacks failed."""
    failed = len(exc.result.failures)
    message = f"transaction failed ({failed} of {exc.result.total} failed)"
    if isinstance(exc, RollbackIncomplete):
        broken = ", ".join(clip(instance_label(r.instance)) for r in exc.rollback_result.failures)
        return f"{message}, and the rollback failed on {broken}: their state is mixed"
    return f"{message}; every success was rolled back"


# -- the commands ----------------------------------------------------------------------------------


def ls(args: argparse.Namespace) -> int:
    """``squadnb ls``: the squad's table (every instance when no target is given)."""
    squad = open_squad(args)
    squad.refresh()
    emit_frame(args, _selection(squad, args, default_all=True))
    return EXIT_OK


def new(args: argparse.Namespace) -> int:
    """``squadnb new TITLE…``: create instances (not started), all or nothing."""
    squad = open_squad(args)
    repeated = sorted({t for t in args.titles if args.titles.count(t) > 1})
    if repeated:
        raise UsageError(f"title {', '.join(map(clip, repeated))} given more than once")
    created: list[Instance] = []
    try:
        for title in args.titles:
            created.append(squad.new(title))
    except SquadError:
        for instance in created:  # all or nothing: a never-started instance is just forgotten
            instance.kill()
        raise
    frame = squad.to_dataframe()
    emit_frame(args, frame[frame["title"].isin(args.titles)])
    return EXIT_OK


def batch(args: argparse.Namespace) -> int:
    """``squadnb start|pause|resume|kill|prompt``: one built-in operation over the targets."""
    if args.command == "prompt":
        check_prompt(args.text)  # a prompt no instance could take is bad input: exit 2, nothing read
    squad = open_squad(args)
    squad.refresh()
    instances = _targets(squad, args)
    factories: dict[str, Callable[[], Operation]] = {
        "start": lambda: BatchStartOperation(first_time_setup=not args.restart),
        "pause": BatchPauseOperation,
        "resume": BatchResumeOperation,
        "kill": _KillOrForget,
        "prompt": lambda: BatchPromptOperation(args.text),
    }
    return _run_batch(args, squad, instances, factories[args.command]())


def diff_records(result: PartialResult, *, content: bool = False) -> pd.DataFrame:
    """A diff batch's records: ``to_dataframe(values=True)``, its ``value`` (the DiffStats) spread
    into ``added`` and ``removed`` (and ``content``, the patch text, when asked), NA where it
    failed; the ``value`` column itself is dropped."""
    frame = result.to_dataframe(values=True)
    fields = ["added", "removed", "content"]
    for name in fields:
        if name not in frame:  # no instance succeeded: no value had the field
            frame[name] = None
    dropped = ["value", *([] if content else ["content"])]
    return frame.drop(columns=dropped)


def diff(args: argparse.Namespace) -> int:
    """``squadnb diff``: lines added and removed per instance (every instance when no target is
    given); ``--patch`` also prints each diff."""
    squad = open_squad(args)
    instances = _targets(squad, args, default_all=True)

    def show(result: PartialResult) -> None:
        frame = diff_records(result, content=args.patch)
        emit_result(args, result, frame)
        if args.patch and not (args.json or args.csv):
            for title, content in zip(frame["instance"], frame["content"]):
                if content:
                    patch = printable(content, keep="\n\t")  # a diff is lines; tabs are code
                    print(f"\n--- {printable(title)}\n{patch}")

    return _run_batch(args, squad, instances, DiffOperation(), show, journaled=False)


def preview(args: argparse.Namespace) -> int:
    """``squadnb preview TITLE``: print an instance's pane."""
    squad = open_squad(args)
    text = squad[args.title].preview(full_history=args.full)
    print(text.rstrip("\n"))
    return EXIT_OK


def push(args: argparse.Namespace) -> int:
    """``squadnb push TARGETS [--remote R] [--message M]``: commit each instance's work on its branch
    and push the branch."""
    squad = open_squad(args)
    squad.refresh()
    instances = _targets(squad, args)
    try:
        operation = BatchPushOperation(args.remote, message=args.message)
    except ValueError as exc:  # an empty remote
        raise UsageError(str(exc)) from None
    return _run_batch(args, squad, instances, operation)


def fan_out(args: argparse.Namespace) -> int:
    """``squadnb fan-out TITLE N PROMPT``: create TITLE-1 … TITLE-N, start them and send each the
    prompt (the prompt step's records)."""
    squad = open_squad(args)
    squad.refresh()
    try:
        result = squad.fan_out(args.title, args.n, args.text, executor=_executor(args))
    except ValueError as exc:  # an empty prompt, before anything is created
        raise UsageError(str(exc)) from None
    emit_result(args, result)
    return EXIT_FAILED if result.failures else EXIT_OK


def history(args: argparse.Namespace) -> int:
    """``squadnb history [BATCH_ID]``: the home's journaled batches, or one batch's outcomes."""
    with open_squad(args).journal as journal:
        if args.batch_id is None:
            frame = journal.batches()
            if not (args.json or args.csv):
                frame = frame.drop(columns=["parameters"])
            emit_frame(args, frame, empty="no batches")
            return EXIT_OK
        frame = journal.results(args.batch_id)
    if args.json or args.csv:
        emit_frame(args, frame)
    else:
        print(result_table(frame))
    return EXIT_OK


def resume_batch(args: argparse.Namespace) -> int:
    """``squadnb resume-batch BATCH_ID``: run a journaled batch again on its instances without a
    recorded success, with the operation it stored; journaled as a new batch."""
    squad = open_squad(args)
    squad.refresh()
    executor = _executor(args)
    with squad.journal as journal:
        try:
            return _report(args, lambda: executor.resume(journal, args.batch_id, squad.instances,
                                                         progress=progress(), deadline=args.deadline))
        except ValueError as exc:  # an instance of the batch is gone from the squad
            raise UsageError(str(exc)) from None


def doctor(args: argparse.Namespace) -> int:
    """``squadnb doctor [--repair]``: what the home's files, tmux, git and the disk disagree on
    (``squad.doctor()``'s findings); with ``--repair``, fixed where that loses no work. Exit 0 when
    nothing is left to fix, 1 when a finding remains."""
    frame = open_squad(args).doctor(repair=args.repair)
    emit_frame(args, frame, empty="no findings")
    return EXIT_OK if bool(frame["repaired"].all()) else EXIT_FAILED


# -- kill's guard ----------------------------------------------------------------------------------


class _KillOrForget(BatchKillOperation):
    """The command's kill: :class:`~squadnb.BatchKillOperation`, except that a never-started (new)
    instance is not refused but forgotten, as ``Instance.kill()`` forgets it, so ``squadnb kill --all``
    leaves no instance behind. A new instance holds no work, so nothing can be lost."""

    name = "Kill"

    def validate(self, instance: Instance) -> Any:
        if instance.status is Status.NEW:
            return None
        return super().validate(instance)


async def _unsaved(instances: list[Instance]) -> list[str]:
    """The instances (title, and why when the check failed) whose kill would lose work."""
    checks = await asyncio.gather(*(i.ahas_unsaved_work() for i in instances), return_exceptions=True)
    lost = []
    for instance, check in zip(instances, checks):
        if isinstance(check, BaseException):
            lost.append(f"{clip(instance.title)} (could not check: {one_line(check)})")
        elif check:
            lost.append(clip(instance.title))
    return lost


def _confirm_kill(args: argparse.Namespace, instances: list[Instance]) -> None:
    """Ask on a terminal, refuse elsewhere, before killing uncommitted or unmerged work (--force
    skips this).

    :raises UsageError: not confirmed; nothing is killed.
    """
    if args.force:
        return
    lost = run_sync(_unsaved(instances))
    if not lost:
        return
    names = ", ".join(lost)
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to kill instances with uncommitted or unmerged work: {names} "
                         f"(pass --force to kill them anyway)")
    sys.stderr.write(f"{len(lost)} instance(s) have uncommitted or unmerged work that kill deletes: "
                     f"{names}. Kill {len(instances)} instance(s)? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("kill not confirmed; nothing was killed")
