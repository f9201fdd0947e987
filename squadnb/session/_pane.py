"""What a pane means: pure rules over pane looks, with no tmux and no clock of their own.

Each multi-look decision is a generator in the shape of httpx's ``Auth.auth_flow``: it yields the
seconds to wait before the next look, receives that :class:`Look`, and returns its verdict
(``StopIteration.value``). ``instance.py`` drives every flow with one loop (sleep, ``tmux snapshot``,
send), so the rules are tested here without tmux (``tests/session/test_pane.py``) and the I/O is
written once.

- :func:`launch_flow`: has a just-started program settled (runs) or exited?
- :func:`ready_flow`: is the agent ready for a prompt, waiting on a permission prompt, dead, or late?
- :func:`delivery_flow`: did the agent receive a pasted prompt whole?
- :func:`status_flow`: RUNNING / READY / NEEDS_INPUT / DEAD from the pane and the last look's hash.
- :func:`pane_says`: what one pane text alone tells; :func:`is_dead`: the session is gone or its
  program ended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generator

from squadnb._receipt import Receipt, last_receipt
from squadnb.session._programs import ProgramProfile

from squadnb.session._status import Status

if TYPE_CHECKING:
    from squadnb.session.tmux import PaneState

__all__ = ["Exited", "Look", "delivery_flow", "exited", "is_dead", "last_words", "launch_flow",
           "pane_hash", "pane_says", "ready_flow", "status_flow"]

#: a program counts as running once it has shown output and stayed alive this long ...
START_SETTLE = 0.15
#: ... or, if it shows nothing, once it has stayed alive this long
START_QUIET = 1.0
#: the longest wait between two looks
POLL = 0.05
#: with nothing to compare against, a status look takes a second look this much later
FIRST_LOOK_GAP = 0.25


@dataclass(frozen=True)
class Look:
    """One look at a session: its pane state (None: the session or the server is gone), the pane's
    visible text, and when it was taken (monotonic seconds)."""

    state: PaneState | None
    text: str
    at: float


@dataclass(frozen=True)
class Exited:
    """The verdict of a flow whose program is gone: its exit status (None when unknown) and whether
    the session is still there (a dead pane kept by ``remain-on-exit``)."""

    exit_status: int | None
    session_exists: bool


def is_dead(look: Look) -> bool:
    """True when the session is gone or its program has ended (a dead pane)."""
    return look.state is None or look.state.dead


def exited(look: Look) -> Exited:
    """The :class:`Exited` verdict of a dead look."""
    return Exited(look.state.exit_status if look.state is not None else None, look.state is not None)


def pane_says(profile: ProgramProfile, text: str) -> Status | None:
    """What the pane's text alone tells: NEEDS_INPUT (the program's permission prompt in its bottom
    lines), READY (the program's own ready prompt ends the last line), else None (only a change over
    time can tell RUNNING from READY)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    asks = profile.permission_text
    if asks is not None and any(asks in line for line in lines[-profile.permission_lines:]):
        return Status.NEEDS_INPUT
    if profile.ready_text is not None and lines and lines[-1].endswith(profile.ready_text):
        return Status.READY
    return None


def pane_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


#: what the shell tmux runs a program with means by an exit status, for a program that died before
#: tmux showed what it printed (tmux 3.3a drops a dying pane's last output now and then)
SHELL_STATUS = {126: "the shell found the command but could not run it",
                127: "the shell says: command not found"}


def last_words(history: str) -> str:
    """The last non-blank line a dead program printed (tmux's own ``Pane is dead`` line skipped)."""
    return next((line.strip() for line in reversed(history.splitlines())
                 if line.strip() and not line.startswith("Pane is dead")), "")


def launch_flow(profile: ProgramProfile) -> Generator[float, Look, Exited | None]:
    """Has a program just started in a new session settled? Returns None once it runs (it shows its
    own ready or permission prompt, or has shown output for ``START_SETTLE`` seconds, or has stayed
    silent and alive for ``START_QUIET``), or :class:`Exited` when it ended first.

    The first look is taken at once; then the wait starts at ``POLL / 8`` and doubles up to ``POLL``
    (most programs show themselves within tens of milliseconds; claude-squad backs off the same way).
    """
    look = yield 0.0
    spawned = look.at
    first_output: float | None = None
    pause = POLL / 8
    while True:
        # tmux marks the pane dead when its output closes, a moment before it reaps the program:
        # wait (at most START_QUIET) for the exit status
        waiting_for_status = (look.state is not None and look.state.dead
                              and look.state.exit_status is None and look.at - spawned < START_QUIET)
        if not waiting_for_status:
            if is_dead(look):
                return exited(look)
            if look.text.strip():
                if pane_says(profile, look.text) is not None:
                    return None
                first_output = first_output if first_output is not None else look.at
                if look.at - first_output >= START_SETTLE:
                    return None
            elif look.at - spawned >= START_QUIET:
                return None
        look = yield pause
        pause = min(pause * 2, POLL)


def ready_flow(profile: ProgramProfile, timeout: float) -> Generator[float, Look, Status | Exited | None]:
    """Is the agent ready for a prompt? Returns READY (its ready prompt, or, for a program without
    one, a non-blank pane unchanged between two looks), NEEDS_INPUT (a permission prompt), an
    :class:`Exited` (dead or gone), or None when ``timeout`` seconds passed first. Looks every
    ``POLL`` seconds."""
    look = yield 0.0
    deadline = look.at + timeout
    previous: str | None = None
    while True:
        if is_dead(look):
            return exited(look)
        seen = pane_says(profile, look.text)
        if seen is not None:
            return seen
        if profile.ready_text is None and look.text.strip() and look.text == previous:
            return Status.READY
        if look.at >= deadline:
            return None
        previous = look.text
        look = yield POLL


def delivery_flow(profile: ProgramProfile, sent: Receipt, before: str, timeout: float
                  ) -> Generator[float, Look, Exited | str | None]:
    """Did the agent receive a pasted prompt whole? ``sent`` is the receipt of the bytes pasted,
    ``before`` the pane's text just before the paste. Returns None once it did: a program that prints
    receipts (:mod:`squadnb._receipt`, the demo agent) shows a new receipt of the same size and
    digest; any other program's pane differs from ``before``. Returns the reason (a sentence) when a
    new receipt differs or ``timeout`` seconds pass with no sign, and :class:`Exited` when the
    program ended first (a dead pane differs from ``before`` too, but is no sign of delivery).
    Looks every ``POLL`` seconds."""
    earlier = last_receipt(before)
    look = yield 0.0
    deadline = look.at + timeout
    while True:
        got = last_receipt(look.text) if profile.receipts else None
        if got is not None and (earlier is None or got.number > earlier.number):
            if (got.size, got.digest) == (sent.size, sent.digest):
                return None
            return (f"the agent received {got.size} bytes (sha256 {got.digest}) but {sent.size} "
                    f"were sent (sha256 {sent.digest})")
        if is_dead(look):
            return exited(look)
        if not profile.receipts and look.text != before:
            return None
        if look.at >= deadline:
            sign = "its receipt" if profile.receipts else "a change in its pane"
            return (f"the prompt was pasted but the agent showed no sign of receiving it ({sign}) "
                    f"within {timeout:g}s")
        look = yield POLL


def status_flow(profile: ProgramProfile, last_hash: str | None
                ) -> Generator[float, Look, tuple[Status | Exited, str | None]]:
    """The status a pane shows, and the hash to compare the next look with: an :class:`Exited` when
    dead or gone; NEEDS_INPUT or READY when the text says so; otherwise RUNNING if the pane changed
    since ``last_hash``, READY if not. With no ``last_hash`` (the first look in a process) it looks
    again ``FIRST_LOOK_GAP`` seconds later and compares the two."""
    look = yield 0.0
    while True:
        if is_dead(look):
            return exited(look), last_hash
        previous, last_hash = last_hash, pane_hash(look.text)
        seen = pane_says(profile, look.text)
        if seen is not None:
            return seen, last_hash
        if previous is not None:
            return (Status.RUNNING if last_hash != previous else Status.READY), last_hash
        look = yield FIRST_LOOK_GAP
