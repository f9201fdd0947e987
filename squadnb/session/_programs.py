"""What squadnb knows about each agent program: its permission prompt, its ready marker and its
continue flag.

Matching uses the basename of the command's first word (claude-squad compares ``program == "claude"``
on the full string, so ``/usr/local/bin/claude`` was never recognised).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

__all__ = ["ProgramProfile", "profile_for", "with_continue"]


@dataclass(frozen=True)
class ProgramProfile:
    """``permission_text`` in the bottom ``permission_lines`` non-blank lines of the pane means the
    agent waits on a permission prompt; ``ready_text`` ending the last non-blank line means it waits
    for a prompt (None: "ready" is "the pane stopped changing"); ``continue_args`` are appended on
    resume so the conversation goes on; ``receipts``: the program prints a receipt line per prompt
    (:mod:`squadnb._receipt`), so delivery is checked byte for byte."""

    name: str
    permission_text: str | None = None
    permission_lines: int = 12
    ready_text: str | None = None
    continue_args: str = ""
    receipts: bool = False


_CLAUDE = ProgramProfile("claude", "No, and tell Claude what to do differently",
                         continue_args="--continue")
_AIDER = ProgramProfile("aider", "(Y)es/(N)o/(D)on't ask again", continue_args="--restore-chat-history")
_GEMINI = ProgramProfile("gemini", "Yes, allow once")
_DEMO = ProgramProfile("demo", "demo: allow this action? (y/n)", permission_lines=1, ready_text="demo>",
                       continue_args="--continue", receipts=True)
_OTHER = ProgramProfile("other")


def _words(program: str) -> list[str]:
    try:
        return shlex.split(program)
    except ValueError:
        return program.split()


def profile_for(program: str) -> ProgramProfile:
    """The profile of ``program`` (a command line), by the basename of its first word."""
    words = _words(program)
    if "squadnb.agents.demo" in words:
        return _DEMO
    base = os.path.basename(words[0]) if words else ""
    if base == "claude":
        return _CLAUDE
    if base.startswith("aider"):
        return _AIDER
    if base.startswith("gemini"):
        return _GEMINI
    return _OTHER


def with_continue(program: str) -> str:
    """``program`` with its continue flag appended (unchanged when it has none or already has it)."""
    args = profile_for(program).continue_args
    if not args or args in _words(program):
        return program
    return f"{program} {args}"
