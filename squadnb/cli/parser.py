"""The command line: the ``squadnb`` parser and :func:`main`, which runs one command and turns its
errors into an exit status and a one-line message.

This module loads only argparse and squadnb's own light modules, so ``squadnb --help`` and
``squadnb --version`` start about as fast as Python does: a command's module (and with it the engine,
the session layer and pandas) is imported once that command runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from squadnb import __version__, errors
from squadnb.cli.output import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, QUOTE, UsageError, clip,
                                error)

__all__ = ["build_parser", "main"]

# squadnb errors that mean "the request was wrong", not "the work failed": exit 2, nothing changed.
_BAD_INPUT = (errors.BranchCheckedOut, errors.ClaudeSquadRunning, errors.DuplicateTitle,
              errors.InvalidPrompt, errors.InvalidState, errors.InvalidTitle, errors.NotAGitRepo,
              errors.StateFileError, errors.UnknownBatch, errors.UnknownInstance)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose error messages quote a bad value (``invalid choice: '…'``) at most
    :data:`~squadnb.cli.output.QUOTE` characters long, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        long_quote = re.compile(r"'([^']{%d})[^']+'" % QUOTE)
        super().error(long_quote.sub(lambda m: f"'{m.group(1)}'…", message))


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {clip(text)}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {clip(text)}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {clip(text)}")
    return value


def _non_negative_seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {clip(text)}")
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
    group.add_argument("--scheduler", default=default, metavar="ADDRESS",
                       help="run over a fleet: the Dask scheduler (tcp://HOST:PORT) whose workers are "
                       "the hosts, each with its own squad (needs squadnb[distributed])")
    group.add_argument("--claude-squad", action="store_true",
                       default=False if default is None else default,
                       help="operate on ~/.claude-squad and the default tmux server (sessions of `cs`)")


def _add_force(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--force", action="store_true",
                        help=f"{also}with --claude-squad, act even while a claude-squad (cs) process "
                        "runs (it rewrites state.json when it quits and would undo this)")


def _add_targets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("targets")
    group.add_argument("titles", nargs="*", metavar="TITLE", help="instances by title")
    group.add_argument("--all", action="store_true", help="every instance")
    group.add_argument("--status", action="append", metavar="STATUS",
                       help="instances in this status, as the status column of ls spells it "
                       "(e.g. ready, paused, dead); repeatable, or comma-separated")
    group.add_argument("--where", metavar="EXPR",
                       help="a pandas query over the ls table, e.g. \"status == 'ready' and added > 0\"")


def _add_executor_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("batch")
    group.add_argument("--concurrency", type=_positive_int, default=10,
                       help="operations at once (default 10)")
    group.add_argument("--timeout", type=_positive_seconds, default=300.0,
                       help="seconds per operation (default 300)")
    group.add_argument("--max-failures", type=_positive_int, metavar="N",
                       help="start no new operation once N have failed (the rest are cancelled)")
    group.add_argument("--rate", type=_positive_seconds, metavar="R",
                       help="at most R operation starts per second (e.g. 0.5: one every 2 s)")
    return group


def _add_batch_options(parser: argparse.ArgumentParser, *, changes_state: bool = True) -> None:
    group = _add_executor_options(parser)
    group.add_argument("--deadline", type=_positive_seconds,
                       help="seconds for the whole batch; unfinished instances are cancelled")
    group.add_argument("--retries", type=_non_negative_int, default=0,
                       help="retry a failed operation this many times")
    group.add_argument("--retry-delay", type=_non_negative_seconds, default=1.0,
                       help="seconds between retries (default 1)")
    group.add_argument("--transaction", action="store_true",
                       help="roll back every success if any instance fails")
    if changes_state:
        group.add_argument("--dry-run", action="store_true",
                           help="print what would run (each instance's would_run and reason) and "
                           "change nothing")


def build_parser() -> argparse.ArgumentParser:
    """The ``squadnb`` parser. Each command sets ``handler`` to ``"<module>:<function>"`` inside
    ``squadnb.cli``, imported only when that command runs."""
    parser = _Parser(
        prog="squadnb",
        description="Batch operations over AI coding-agent instances (git worktree + tmux session).",
        epilog="Start with `squadnb demo`. Exit status: 0 all succeeded, 1 some failed, 2 usage error, "
               "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"squadnb {__version__}")
    _add_squad_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    squad_options = argparse.ArgumentParser(add_help=False)
    _add_squad_options(squad_options, argparse.SUPPRESS)

    output = argparse.ArgumentParser(add_help=False)
    formats = output.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print JSON records (for scripts)")
    formats.add_argument("--csv", action="store_true",
                         help="print CSV (for scripts; text a spreadsheet would run as a formula "
                              "gets a leading ', --json keeps it exact)")

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
    sub.set_defaults(handler="demo:demo")

    sub = commands.add_parser("ls", help="list instances", parents=common)
    _add_targets(sub)
    sub.set_defaults(handler="commands:ls")

    sub = commands.add_parser("new", help="create instances (not started)", parents=common)
    sub.add_argument("titles", nargs="+", metavar="TITLE")
    sub.set_defaults(handler="commands:new")

    for name, help_text in [("start", "start instances"), ("pause", "pause instances (commit, remove "
                            "the worktree, keep the branch)"), ("resume", "resume paused instances"),
                            ("kill", "kill instances (session, worktree and branch)")]:
        sub = commands.add_parser(name, help=help_text, parents=common)
        _add_targets(sub)
        _add_batch_options(sub)
        _add_force(sub, "kill instances with uncommitted or unmerged work without asking; "
                   if name == "kill" else "")
        if name == "start":
            sub.add_argument("--restart", action="store_true",
                             help="restart the program of dead instances (tmux session gone) in "
                             "their worktrees, with its continue flag")
        sub.set_defaults(handler="commands:batch")

    sub = commands.add_parser("prompt", help="send a prompt to instances", parents=common)
    sub.add_argument("text", metavar="TEXT", help="the prompt")
    _add_targets(sub)
    _add_batch_options(sub)
    _add_force(sub)
    sub.set_defaults(handler="commands:batch")

    sub = commands.add_parser("preview", help="print an instance's pane", parents=[squad_options])
    sub.add_argument("title", metavar="TITLE")
    sub.add_argument("--full", action="store_true", help="the whole scrollback, not just the screen")
    sub.set_defaults(handler="commands:preview")

    sub = commands.add_parser("push", help="commit each instance's work on its branch and push the "
                              "branch", parents=common)
    _add_targets(sub)
    _add_batch_options(sub)
    sub.add_argument("--remote", default="origin", help="remote name, URL or path (default origin)")
    sub.add_argument("--message", help="commit message of uncommitted work (default: pause's)")
    _add_force(sub)
    sub.set_defaults(handler="commands:push")

    sub = commands.add_parser("fan-out", help="give one prompt to N new agents TITLE-1 … TITLE-N",
                              parents=common)
    sub.add_argument("title", metavar="TITLE", help="the group's title; instances are TITLE-1 … TITLE-N")
    sub.add_argument("n", metavar="N", type=_positive_int, help="number of agents")
    sub.add_argument("text", metavar="PROMPT", help="the prompt each agent gets")
    _add_executor_options(sub)
    sub.set_defaults(handler="commands:fan_out")

    sub = commands.add_parser("history", help="the journaled batches, or one batch's outcomes",
                              parents=common)
    sub.add_argument("batch_id", metavar="BATCH_ID", nargs="?", help="show this batch's outcomes")
    sub.set_defaults(handler="commands:history")

    sub = commands.add_parser("resume-batch", help="run a journaled batch again on its instances "
                              "without a recorded success", parents=common)
    sub.add_argument("batch_id", metavar="BATCH_ID")
    group = _add_executor_options(sub)
    group.add_argument("--deadline", type=_positive_seconds,
                       help="seconds for the whole batch; unfinished instances are cancelled")
    sub.set_defaults(handler="commands:resume_batch")

    sub = commands.add_parser("doctor", help="what the home's files, tmux and git disagree on",
                              parents=common)
    sub.add_argument("--repair", action="store_true",
                     help="fix what can be fixed without losing work (uncommitted work is committed "
                     "first; branches and paths outside the home are only reported)")
    sub.set_defaults(handler="commands:doctor")

    sub = commands.add_parser("diff", help="lines added and removed per instance", parents=common)
    _add_targets(sub)
    _add_batch_options(sub, changes_state=False)
    sub.add_argument("--patch", action="store_true", help="also print each instance's diff")
    sub.set_defaults(handler="commands:diff")
    return parser


def _run(args: argparse.Namespace) -> int:
    module, function = args.handler.split(":")
    return getattr(importlib.import_module(f"squadnb.cli.{module}"), function)(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status: 0 every
    instance succeeded; 1 some failed, a transaction was rolled back, or the work failed
    (``squadnb: error: …`` on stderr); 2 bad input, nothing changed; 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except errors.SquadError as exc:
        error(exc)
        return EXIT_USAGE if isinstance(exc, _BAD_INPUT) else EXIT_FAILED
    except KeyboardInterrupt:
        print("squadnb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (`| head`) went away: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # a full disk, an unwritable home: the work failed, say why in one line
        error(exc)
        return EXIT_FAILED
