"""``squadnb demo``: the whole lifecycle (start, prompt, wait for the work, pause as a transaction,
resume, kill) on demo agents in a throwaway repository, on a private tmux server; it removes everything
it made at the end — also when a step fails, on Ctrl-C, SIGTERM or SIGHUP (a closed terminal).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from squadnb.cli.commands import transaction_message
from squadnb.cli.output import (EXIT_FAILED, EXIT_OK, UsageError, error, progress, result_table,
                                text_table)
from squadnb.engine.executor import BatchExecutor
from squadnb.engine.operation import Operation
from squadnb.errors import BatchInterrupted, SquadError, TransactionError
from squadnb.ops import (BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                         BatchResumeOperation, BatchStartOperation, DiffOperation)
from squadnb.session.instance import Instance
from squadnb.session.squad import Squad

__all__ = ["demo"]


@dataclass
class _Step:
    """One row of the demo's report."""

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


def _workdir(path: str | None) -> Path:
    """A new temporary directory, or ``path`` when it is new or empty.

    :raises UsageError: ``path`` exists and is not an empty directory (nothing of it is touched).
    """
    if path is None:
        return Path(tempfile.mkdtemp(prefix="squadnb-demo-"))
    workdir = Path(path).resolve()
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise UsageError(f"--workdir {path} exists and is not an empty directory")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def demo(args: argparse.Namespace) -> int:
    """Run the demo as ``args`` say; return 0 when every step succeeded on every agent, else 1.

    :raises UsageError: a squad option was given (the demo makes its own), tmux or git is missing, or
        ``--workdir`` is not empty.
    """
    from squadnb.agents import demo_program, scratch_repo, set_demo_identity

    given = [f"--{name.replace('_', '-')}" for name in ("home", "repo", "socket", "program", "claude_squad")
             if getattr(args, name)]
    if given:
        raise UsageError(f"demo makes its own repository, home and tmux server; drop {' '.join(given)}")
    missing = [tool for tool in ("tmux", "git") if shutil.which(tool) is None]
    if missing:
        raise UsageError(f"the demo needs {' and '.join(missing)} on PATH")
    workdir = _workdir(args.workdir)
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
            steps = _steps(args, instances)
            _report(steps)
        failed = not steps or any(step.failed for step in steps) or len(steps) < (4 if args.keep else 5)
        if args.keep and not failed:
            kept = True
            _kept(squad, workdir)
        return EXIT_FAILED if failed else EXIT_OK
    finally:
        if not kept:
            with _uninterruptible():
                _cleanup(squad, workdir, socket)


def _steps(args: argparse.Namespace, instances: list[Instance]) -> list[_Step]:
    """Run the lifecycle; stop at the first step with a failure or a rollback (cleanup removes what
    is left)."""
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
            result = run(instances, operation, progress=progress())
        except TransactionError as exc:
            result = exc.result
            print(f"squadnb: {transaction_message(exc)}", file=sys.stderr)
        except BatchInterrupted as exc:
            print(result_table(exc.result.to_dataframe()), flush=True)
            raise
        seconds = time.monotonic() - started
        frame = result.to_dataframe()
        print(result_table(frame))
        print(result.summary(), flush=True)
        statuses = frame["status"]
        steps.append(_Step(label, operation.name, int((statuses == "succeeded").sum()),
                           len(result.failures), seconds))
        if result.failures or (statuses == "rolled back").any():
            break
    return steps


def _report(steps: list[_Step]) -> None:
    import pandas as pd

    frame = pd.DataFrame([vars(step) for step in steps])
    frame["seconds"] = [f"{seconds:.2f}" for seconds in frame["seconds"]]
    total = sum(step.seconds for step in steps)
    print("\nsquadnb demo report")
    print(text_table(frame))
    print(f"total: {total:.2f}s", flush=True)


def _kept(squad: Squad, workdir: Path) -> None:
    first = squad.instances[0]
    reach = f"--home {squad.home} --repo {squad.repo} --socket {squad.tmux_socket}"
    print(f"\nkept: {len(squad.instances)} agents are still running")
    print(f"  home:    {squad.home}\n  repo:    {squad.repo}\n  socket:  {squad.tmux_socket}")
    print(f"  list:    squadnb {reach} ls")
    print(f"  attach:  tmux -L {squad.tmux_socket} attach -t ={first.session_name}")
    print(f"  remove:  squadnb {reach} kill --all --force && "
          f"tmux -L {squad.tmux_socket} kill-server; rm -rf {workdir}", flush=True)


def _cleanup(squad: Squad | None, workdir: Path, socket: str) -> None:
    """Stop the private tmux server and remove the work directory, which holds the repository (and so
    every branch) and the home (every worktree): nothing of the demo is left anywhere else."""
    if squad is not None:
        try:
            squad.kill_server()  # also removes the socket file tmux 3.3 leaves behind
        except SquadError as exc:
            error(f"could not stop the demo's tmux server {socket}: {exc}")
    shutil.rmtree(workdir, ignore_errors=True)
    left = " (could not remove it all)" if workdir.exists() else ""
    print(f"cleaned up: tmux server {socket} stopped, {workdir} removed{left}", flush=True)
