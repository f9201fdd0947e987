"""The ``squadnb`` command: the demo, and batch operations over a squad from a terminal or a script.

``squadnb demo`` runs the whole lifecycle (start, prompt, wait for the work, pause as a transaction,
resume, kill) on demo agents in a throwaway repository, on a private tmux server, and removes everything
it made — also when a step fails or on Ctrl-C.

The batch commands (``start pause resume kill prompt diff``) pick their targets by title, ``--all``,
``--status`` or ``--where`` (a ``DataFrame.query`` expression over the ``ls`` table) and run one
operation over them on a :class:`~squadnb.engine.executor.BatchExecutor`. ``ls`` and ``diff`` read
only, so with no target they cover every instance; the commands that change state refuse to run
without one.

Exit status: 0 every instance succeeded; 1 some failed (or a transaction was rolled back); 2 bad
input — nothing was changed (unknown title, bad expression, empty selection, no git repository,
``kill`` of unsaved work without ``--force``, argparse errors); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from squadnb._loop import run_sync
from squadnb.engine.executor import BatchExecutor
from squadnb.engine.operation import Operation, op_name
from squadnb.engine.result import instance_label
from squadnb.errors import (
    BatchInterrupted,
    BranchCheckedOut,
    DuplicateTitle,
    InvalidState,
    InvalidTitle,
    NotAGitRepo,
    RollbackIncomplete,
    SquadError,
    StateFileError,
    TransactionError,
    UnknownInstance,
)
from squadnb.ops import (
    BatchKillOperation,
    BatchPauseOperation,
    BatchPromptOperation,
    BatchResumeOperation,
    BatchStartOperation,
    with_batch_options,
)
from squadnb.session.instance import Instance, Status
from squadnb.session.squad import Squad

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# squadnb errors that mean "the request was wrong", not "the work failed": exit 2, nothing changed.
_BAD_INPUT = (BranchCheckedOut, DuplicateTitle, InvalidState, InvalidTitle, NotAGitRepo, StateFileError,
              UnknownInstance)



class _UsageError(Exception):
    """Bad input found by the CLI itself: reported as ``squadnb: error: …``, exit status 2."""


def _one_line(text: object) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _error(message: str) -> None:
    print(f"squadnb: error: {_one_line(message)}", file=sys.stderr)


def _progress() -> str | bool:
    """A text bar on stderr when a person watches it; nothing in pipes, logs and CI."""
    return "text" if sys.stderr.isatty() else False


# --------------------------------------------------------------------------------------------------
# operations the CLI adds over the built-in ones


class DiffOperation(Operation):
    """Read an instance's diff stats (its ``value``); with ``until_changed``, poll until the worktree
    has changes — the batch timeout bounds the wait, and a timed-out instance is reported as such."""

    def __init__(self, until_changed: bool = False, poll_seconds: float = 0.1) -> None:
        self.until_changed = until_changed
        self.poll_seconds = poll_seconds
        self.name = "AwaitWork" if until_changed else "Diff"

    async def execute(self, instance: Instance) -> Any:
        while True:
            stats = await instance.adiff_stats()
            if not self.until_changed or stats.added or stats.removed:
                return stats
            await asyncio.sleep(self.poll_seconds)


# --------------------------------------------------------------------------------------------------
# results and output


def _records(result: Any, with_diff: bool = False, with_content: bool = False) -> list[dict[str, Any]]:
    """One record per instance, in input order: title, operation, status, error, seconds, attempts
    (plus added/removed[/content] for diff)."""
    records = []
    for r in result.results:
        record: dict[str, Any] = {
            "title": instance_label(r.instance),
            "operation": op_name(r.operation),
            "status": r.status,
            "error": None if r.error is None else str(r.error),
            "seconds": round(r.duration.total_seconds(), 3),
            "attempts": r.attempts,
        }
        if with_diff:
            stats = r.value if r.error is None else None
            record["added"] = getattr(stats, "added", None)
            record["removed"] = getattr(stats, "removed", None)
            if with_content:
                record["content"] = getattr(stats, "content", None)
        records.append(record)
    return records


def _summary(records: list[dict[str, Any]], seconds: float) -> str:
    counts = collections.Counter(record["status"] for record in records)
    operation = records[0]["operation"] if records else "nothing"
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"{operation}: {parts} of {len(records)} in {seconds:.1f}s"


def _text(frame: pd.DataFrame, **formatters: Callable[[Any], str]) -> str:
    """``frame`` as plain text with text columns left-aligned (pandas right-aligns every column):
    their cells and header are padded to one width, so the right-alignment has nothing to move."""
    frame = frame.copy()
    labels = {}
    for column in frame.columns:
        if column not in formatters and not pd.api.types.is_numeric_dtype(frame[column]):
            cells = ["" if v is None or v is pd.NA or v != v else str(v) for v in frame[column]]
            width = max(len(str(column)), *map(len, cells)) if cells else len(str(column))
            frame[column] = [cell.ljust(width) for cell in cells]
            labels[column] = str(column).ljust(width)
    return frame.rename(columns=labels).to_string(index=False, formatters=formatters)


def _table(records: list[dict[str, Any]]) -> str:
    frame = pd.DataFrame(records).drop(columns=["content"], errors="ignore")
    frame["error"] = frame["error"].map(lambda e: None if e is None else _one_line(e)[:100])
    return _text(frame, seconds="{:.2f}".format)


def _emit(args: argparse.Namespace, records: list[dict[str, Any]], seconds: float) -> None:
    if args.json:
        print(json.dumps(records, indent=2))
    elif args.csv:
        if records:
            pd.DataFrame(records).to_csv(sys.stdout, index=False)
    elif not records:
        print("no instances")
    else:
        print(_table(records))
        print(_summary(records, seconds))
        if args.command == "diff" and getattr(args, "patch", False):
            for record in records:
                if record.get("content"):
                    print(f"\n--- {record['title']}\n{record['content']}")


def _emit_frame(args: argparse.Namespace, frame: pd.DataFrame) -> None:
    if args.json:
        print(frame.to_json(orient="records", date_format="iso", indent=2))
    elif args.csv:
        frame.to_csv(sys.stdout, index=False)
    elif frame.empty:
        print("no instances")
    else:
        print(_text(frame))


# --------------------------------------------------------------------------------------------------
# squad and targets


def _open_squad(args: argparse.Namespace) -> Squad:
    """The squad named by --home/--repo/--socket (their environment defaults), or claude-squad's."""
    if args.claude_squad:
        overrides = {"home": args.home, "repo": args.repo, "tmux_socket": args.socket,
                     "program": args.program}
        return Squad.claude_squad(**{k: v for k, v in overrides.items() if v is not None})
    return Squad(home=args.home, repo=args.repo or ".", program=args.program, tmux_socket=args.socket)


def _status_names() -> list[str]:
    return [status.label for status in Status]


def _selection(squad: Squad, args: argparse.Namespace, *, default_all: bool) -> pd.DataFrame:
    """The rows of the ``ls`` table the targets name, in the order given (titles) or the squad's.

    Raises _UsageError when nothing is named (unless ``default_all``), a title is unknown, a status is
    not a status, the expression is bad, or nothing matches.
    """
    titles: list[str] = list(getattr(args, "titles", []) or [])
    statuses = [s.strip().lower() for value in args.status or [] for s in value.split(",") if s.strip()]
    if args.all and titles:
        raise _UsageError("name instances or pass --all, not both")
    if not (titles or args.all or statuses or args.where) and not default_all:
        raise _UsageError("no targets: name instances, or pass --all, --status STATUS or --where EXPR")
    frame = squad.to_dataframe()
    if frame.empty and not (default_all or titles):
        raise _UsageError(f"no instances in {squad.home}")
    if titles:
        unknown = [t for t in titles if t not in set(frame["title"])]
        if unknown:
            raise _UsageError(f"no instance named {', '.join(map(repr, unknown))} in {squad.home}")
        frame = frame.set_index("title", drop=False).loc[list(dict.fromkeys(titles))]
        frame = frame.reset_index(drop=True)
    if statuses:
        bad = [s for s in statuses if s not in _status_names()]
        if bad:
            raise _UsageError(f"unknown status {', '.join(map(repr, bad))} "
                              f"(one of: {', '.join(_status_names())})")
        frame = frame[frame["status"].isin(statuses)]
    if args.where:
        try:
            frame = frame.query(args.where)
        except Exception as exc:  # pandas raises many types for a bad expression; all are bad input
            raise _UsageError(f"bad --where expression {args.where!r}: {type(exc).__name__}: "
                              f"{exc}") from exc
    if frame.empty and (titles or args.all or statuses or args.where):
        what = [f"--where {args.where!r}"] if args.where else []
        what += [f"--status {','.join(statuses)}"] if statuses else []
        raise _UsageError(f"no instance matches {' '.join(what) or 'the targets'} in {squad.home}")
    return frame


def _targets(squad: Squad, args: argparse.Namespace, *, default_all: bool = False) -> list[Instance]:
    return [squad[title] for title in _selection(squad, args, default_all=default_all)["title"]]


# --------------------------------------------------------------------------------------------------
# commands


def _run_batch(args: argparse.Namespace, instances: list[Instance], operation: Any,
               **record_options: bool) -> int:
    """Run ``operation`` over ``instances`` as the options say; print the records; return the exit
    status (1 when any instance failed or a transaction was rolled back)."""
    operation = with_batch_options(operation, retries=args.retries, retry_delay=args.retry_delay)
    executor = BatchExecutor(max_concurrency=args.concurrency, timeout=args.timeout)
    run = executor.execute_with_rollback if args.transaction else executor.execute
    started = time.monotonic()
    try:
        result = run(instances, operation, progress=_progress(), deadline=args.deadline)
    except TransactionError as exc:
        _emit(args, _records(exc.result, **record_options), time.monotonic() - started)
        _error(_transaction_message(exc))
        return EXIT_FAILED
    except BatchInterrupted as exc:
        _emit(args, _records(exc.result, **record_options), time.monotonic() - started)
        print("squadnb: interrupted; the batch was cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    _emit(args, _records(result, **record_options), time.monotonic() - started)
    return EXIT_FAILED if result.failures else EXIT_OK


def _transaction_message(exc: TransactionError) -> str:
    failed = len(exc.result.failures)
    message = f"transaction failed ({failed} of {exc.result.total} failed)"
    if isinstance(exc, RollbackIncomplete):
        broken = ", ".join(repr(instance_label(r.instance)) for r in exc.rollback_result.failures)
        return f"{message}, and the rollback failed on {broken}: their state is mixed"
    return f"{message}; every success was rolled back"


def _cmd_ls(args: argparse.Namespace) -> int:
    squad = _open_squad(args)
    squad.refresh()
    _emit_frame(args, _selection(squad, args, default_all=True))
    return EXIT_OK


def _cmd_new(args: argparse.Namespace) -> int:
    squad = _open_squad(args)
    repeated = sorted({t for t in args.titles if args.titles.count(t) > 1})
    if repeated:
        raise _UsageError(f"title {', '.join(map(repr, repeated))} given more than once")
    created: list[Instance] = []
    try:
        for title in args.titles:
            created.append(squad.new(title))
    except SquadError:
        for instance in created:  # all or nothing: a never-started instance is just forgotten
            instance.kill()
        raise
    frame = squad.to_dataframe()
    _emit_frame(args, frame[frame["title"].isin(args.titles)])
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    squad = _open_squad(args)
    squad.refresh()
    instances = _targets(squad, args)
    factories: dict[str, Callable[[], Operation]] = {
        "start": lambda: BatchStartOperation(first_time_setup=not args.restart),
        "pause": BatchPauseOperation,
        "resume": BatchResumeOperation,
        "kill": BatchKillOperation,
        "prompt": lambda: BatchPromptOperation(args.text),
    }
    if args.command == "kill":
        _confirm_kill(args, instances)
    return _run_batch(args, instances, factories[args.command]())


def _cmd_diff(args: argparse.Namespace) -> int:
    squad = _open_squad(args)
    instances = _targets(squad, args, default_all=True)
    return _run_batch(args, instances, DiffOperation(), with_diff=True, with_content=args.patch)


def _cmd_preview(args: argparse.Namespace) -> int:
    squad = _open_squad(args)
    text = squad[args.title].preview(full_history=args.full)
    print(text.rstrip("\n"))
    return EXIT_OK


async def _unsaved(instances: list[Instance]) -> list[str]:
    """The instances (title, and why when the check failed) whose kill would lose work."""
    checks = await asyncio.gather(*(i.ahas_unsaved_work() for i in instances), return_exceptions=True)
    lost = []
    for instance, check in zip(instances, checks):
        if isinstance(check, BaseException):
            lost.append(f"{instance.title!r} (could not check: {_one_line(check)})")
        elif check:
            lost.append(repr(instance.title))
    return lost


def _confirm_kill(args: argparse.Namespace, instances: list[Instance]) -> None:
    """Ask on a terminal, refuse elsewhere, before killing uncommitted or unmerged work (--force
    skips this). Raises _UsageError when not confirmed: nothing is killed."""
    if args.force:
        return
    lost = run_sync(_unsaved(instances))
    if not lost:
        return
    names = ", ".join(lost)
    if not sys.stdin.isatty():
        raise _UsageError(f"refusing to kill instances with uncommitted or unmerged work: {names} "
                          f"(pass --force to kill them anyway)")
    sys.stderr.write(f"{len(lost)} instance(s) have uncommitted or unmerged work that kill deletes: "
                     f"{names}. Kill {len(instances)} instance(s)? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise _UsageError("kill not confirmed; nothing was killed")


# --------------------------------------------------------------------------------------------------
# the demo


@dataclass
class _Step:
    step: str
    operation: str
    succeeded: int
    failed: int
    seconds: float


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) clean up like Ctrl-C does."""
    saved = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextmanager
def _uninterruptible() -> Iterator[None]:
    """Cleanup runs to the end even if Ctrl-C is pressed again."""
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


def _demo_workdir(path: str | None) -> Path:
    if path is None:
        return Path(tempfile.mkdtemp(prefix="squadnb-demo-"))
    workdir = Path(path).resolve()
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise _UsageError(f"--workdir {path} exists and is not an empty directory")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _cmd_demo(args: argparse.Namespace) -> int:
    from squadnb.agents import demo_program, scratch_repo, set_demo_identity

    given = [f"--{name.replace('_', '-')}" for name in ("home", "repo", "socket", "program", "claude_squad")
             if getattr(args, name)]
    if given:
        raise _UsageError(f"demo makes its own repository, home and tmux server; drop {' '.join(given)}")
    missing = [tool for tool in ("tmux", "git") if shutil.which(tool) is None]
    if missing:
        raise _UsageError(f"the demo needs {' and '.join(missing)} on PATH")
    workdir = _demo_workdir(args.workdir)
    set_demo_identity(os.environ)  # the agents' pause commits inherit it
    socket = f"squadnb-demo-{os.getpid()}-{secrets.token_hex(3)}"
    print(f"squadnb demo: {args.n} demo agents, concurrency {args.concurrency}", flush=True)
    print(f"workdir: {workdir}\ntmux socket: {socket}", flush=True)
    squad: Squad | None = None
    kept = False
    try:
        with _terminations_interrupt():
            repo = scratch_repo(workdir / "repo")
            squad = Squad(home=workdir / "home", repo=repo, program=demo_program(args.work_seconds),
                          tmux_socket=socket)
            instances = [squad.new(f"agent-{i}") for i in range(1, args.n + 1)]
            steps = _demo_steps(args, instances)
            _demo_report(steps)
        failed = not steps or any(step.failed for step in steps) or len(steps) < (4 if args.keep else 5)
        if args.keep and not failed:
            kept = True
            _demo_kept(squad, workdir)
        return EXIT_FAILED if failed else EXIT_OK
    finally:
        if not kept:
            with _uninterruptible():
                _demo_cleanup(squad, workdir, socket)


def _demo_steps(args: argparse.Namespace, instances: list[Instance]) -> list[_Step]:
    """Run the lifecycle; stop at the first step with a failure (cleanup removes what is left)."""
    executor = BatchExecutor(max_concurrency=args.concurrency, timeout=args.timeout)
    plan: list[tuple[str, Operation, bool]] = [
        ("start", BatchStartOperation(), False),
        ("prompt", BatchPromptOperation("write a haiku about tmux"), False),
        ("work", DiffOperation(until_changed=True), False),
        ("pause (transaction)", BatchPauseOperation(), True),
        ("resume", BatchResumeOperation(), False),
    ]
    if not args.keep:
        plan.append(("kill", BatchKillOperation(), False))
    steps: list[_Step] = []
    for number, (label, operation, transactional) in enumerate(plan, start=1):
        print(f"\n[{number}/{len(plan)}] {label}: {operation.name} on {len(instances)} agents", flush=True)
        started = time.monotonic()
        run = executor.execute_with_rollback if transactional else executor.execute
        try:
            result = run(instances, operation, progress=_progress())
        except TransactionError as exc:
            result = exc.result
            print(f"squadnb: {_transaction_message(exc)}", file=sys.stderr)
        except BatchInterrupted as exc:
            print(_table(_records(exc.result)), flush=True)
            raise
        seconds = time.monotonic() - started
        records = _records(result, with_diff=isinstance(operation, DiffOperation))
        print(_table(records))
        print(_summary(records, seconds), flush=True)
        steps.append(_Step(label, operation.name, len(result.successes) - _rolled_back(result),
                           len(result.failures), seconds))
        if result.failures or _rolled_back(result):
            break
    return steps


def _rolled_back(result: Any) -> int:
    return sum(1 for r in result.results if r.rolled_back)


def _demo_report(steps: list[_Step]) -> None:
    frame = pd.DataFrame([vars(step) for step in steps])
    total = sum(step.seconds for step in steps)
    print("\nsquadnb demo report")
    print(_text(frame, seconds="{:.2f}".format))
    print(f"total: {total:.2f}s", flush=True)


def _demo_kept(squad: Squad, workdir: Path) -> None:
    first = squad.instances[0]
    reach = f"--home {squad.home} --repo {squad.repo} --socket {squad.tmux_socket}"
    print(f"\nkept: {len(squad.instances)} agents are still running")
    print(f"  home:    {squad.home}\n  repo:    {squad.repo}\n  socket:  {squad.tmux_socket}")
    print(f"  list:    squadnb {reach} ls")
    print(f"  attach:  tmux -L {squad.tmux_socket} attach -t ={first.session_name}")
    print(f"  remove:  squadnb {reach} kill --all --force && "
          f"tmux -L {squad.tmux_socket} kill-server; rm -rf {workdir}", flush=True)


def _demo_cleanup(squad: Squad | None, workdir: Path, socket: str) -> None:
    """Stop the private tmux server and remove the work directory, which holds the repository (and so
    every branch) and the home (every worktree): nothing of the demo is left anywhere else."""
    if squad is not None:
        try:
            squad.kill_server()  # also removes the socket file tmux 3.3 leaves behind
        except SquadError as exc:
            _error(f"could not stop the demo's tmux server {socket}: {exc}")
    shutil.rmtree(workdir, ignore_errors=True)
    left = " (could not remove it all)" if workdir.exists() else ""
    print(f"cleaned up: tmux server {socket} stopped, {workdir} removed{left}", flush=True)


# --------------------------------------------------------------------------------------------------
# argument parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _non_negative_seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def _add_squad_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--home & co. are accepted before and after the command; the copies after it default to
    SUPPRESS so they never overwrite a value given before it."""
    group = parser.add_argument_group("squad")
    group.add_argument("--home", default=default,
                       help="squadnb home (default: $SQUADNB_HOME or ~/.squadnb)")
    group.add_argument("--repo", default=default, help="git repository of new instances (default: .)")
    group.add_argument("--program", default=default, help="agent program of new instances")
    group.add_argument("--socket", default=default,
                       help="tmux socket name (default: $SQUADNB_TMUX_SOCKET or 'squadnb')")
    group.add_argument("--claude-squad", action="store_true",
                       default=False if default is None else default,
                       help="operate on ~/.claude-squad and the default tmux server (sessions of `cs`)")


def _add_targets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("targets")
    group.add_argument("titles", nargs="*", metavar="TITLE", help="instances by title")
    group.add_argument("--all", action="store_true", help="every instance")
    group.add_argument("--status", action="append", metavar="STATUS",
                       help=f"instances in this status ({', '.join(_status_names())}); repeatable")
    group.add_argument("--where", metavar="EXPR",
                       help="a pandas query over the ls table, e.g. \"status == 'ready' and added > 0\"")


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("batch")
    group.add_argument("--concurrency", type=_positive_int, default=10,
                       help="operations at once (default 10)")
    group.add_argument("--timeout", type=_positive_seconds, default=300.0,
                       help="seconds per operation (default 300)")
    group.add_argument("--deadline", type=_positive_seconds,
                       help="seconds for the whole batch; unfinished instances are cancelled")
    group.add_argument("--retries", type=_non_negative_int, default=0,
                       help="retry a failed operation this many times")
    group.add_argument("--retry-delay", type=_non_negative_seconds, default=1.0,
                       help="seconds between retries (default 1)")
    group.add_argument("--transaction", action="store_true",
                       help="roll back every success if any instance fails")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squadnb",
        description="Batch operations over AI coding-agent instances (git worktree + tmux session).",
        epilog="Start with `squadnb demo`. Exit status: 0 all succeeded, 1 some failed, 2 usage error.",
    )
    _add_squad_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    squad_options = argparse.ArgumentParser(add_help=False)
    _add_squad_options(squad_options, argparse.SUPPRESS)

    output = argparse.ArgumentParser(add_help=False)
    formats = output.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print JSON records (for scripts)")
    formats.add_argument("--csv", action="store_true", help="print CSV (for scripts)")

    common = [squad_options, output]
    sub = commands.add_parser("demo", help="run the whole lifecycle on demo agents, then clean up",
                              description="Start, prompt, pause (as a transaction), resume and kill "
                              "demo agents in a scratch repository on a private tmux server; leaves "
                              "nothing behind.", parents=[squad_options])
    sub.add_argument("-n", type=_positive_int, default=6, help="number of agents (default 6)")
    sub.add_argument("--concurrency", type=_positive_int, default=4,
                     help="operations at once (default 4)")
    sub.add_argument("--timeout", type=_positive_seconds, default=60.0,
                     help="seconds per operation (default 60)")
    sub.add_argument("--work-seconds", type=_non_negative_seconds,
                     help="how long each demo agent works on a prompt")
    sub.add_argument("--keep", action="store_true",
                     help="leave the squad running and print how to reach it")
    sub.add_argument("--workdir", help="an empty or new directory for the repository and home "
                     "(default: a temp dir); removed at the end unless --keep")
    sub.set_defaults(handler=_cmd_demo)

    sub = commands.add_parser("ls", help="list instances", parents=common)
    _add_targets(sub)
    sub.set_defaults(handler=_cmd_ls)

    sub = commands.add_parser("new", help="create instances (not started)", parents=common)
    sub.add_argument("titles", nargs="+", metavar="TITLE")
    sub.set_defaults(handler=_cmd_new)

    for name, help_text in [("start", "start instances"), ("pause", "pause instances (commit, remove "
                            "the worktree, keep the branch)"), ("resume", "resume paused instances"),
                            ("kill", "kill instances (session, worktree and branch)")]:
        sub = commands.add_parser(name, help=help_text, parents=common)
        _add_targets(sub)
        _add_batch_options(sub)
        if name == "kill":
            sub.add_argument("--force", action="store_true",
                             help="kill instances with uncommitted or unmerged work without asking")
        if name == "start":
            sub.add_argument("--restart", action="store_true",
                             help="restart the program of dead instances (tmux session gone) in "
                             "their worktrees, with its continue flag")
        sub.set_defaults(handler=_cmd_batch)

    sub = commands.add_parser("prompt", help="send a prompt to instances", parents=common)
    sub.add_argument("text", metavar="TEXT", help="the prompt")
    _add_targets(sub)
    _add_batch_options(sub)
    sub.set_defaults(handler=_cmd_batch)

    sub = commands.add_parser("preview", help="print an instance's pane", parents=[squad_options])
    sub.add_argument("title", metavar="TITLE")
    sub.add_argument("--full", action="store_true", help="the whole scrollback, not just the screen")
    sub.set_defaults(handler=_cmd_preview)

    sub = commands.add_parser("diff", help="lines added and removed per instance", parents=common)
    _add_targets(sub)
    _add_batch_options(sub)
    sub.add_argument("--patch", action="store_true", help="also print each instance's diff")
    sub.set_defaults(handler=_cmd_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except _UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except SquadError as exc:
        _error(str(exc))
        return EXIT_USAGE if isinstance(exc, _BAD_INPUT) else EXIT_FAILED
    except KeyboardInterrupt:
        print("squadnb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (`| head`) went away: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
