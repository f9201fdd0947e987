"""Async wrapper over the tmux CLI: one object per tmux server.

Owns every tmux command line squadnb runs. Targets are always exact (``-t =name`` for a session,
``-t =name:`` for its pane): a bare ``-t name`` is a prefix match in tmux, so killing ``squadnb_a``
could hit ``squadnb_ab`` (a claude-squad bug this avoids). A private server (``socket`` given) is
started without the user's config (``-f /dev/null``), and its ``history-limit`` is set globally before
each ``new-session`` (a per-session setting does not reach the pane already created). Every new
session gets ``remain-on-exit on`` in the same tmux command, so a program that exits at once leaves a
dead pane whose exit status can be read, instead of a vanished session.

Session names never carry what tmux treats specially (:func:`session_name_problem`): the commands that
act on a session refuse such a name with :class:`~squadnb.errors.TmuxError` before running tmux, and
the queries answer "no such session" without asking tmux.
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from squadnb.errors import TmuxError
from squadnb.session._input import shown
from squadnb.session._run import Completed, Runner, run_command

__all__ = ["PaneState", "Tmux", "claude_squad_session_name", "session_name_problem",
           "squadnb_session_name"]

HISTORY_LIMIT = 50_000
_STATE_FORMAT = "#{pane_dead}\t#{pane_dead_status}\t#{pane_pid}\t#{pane_current_command}"


def squadnb_session_name(title: str) -> str:
    """``squadnb_<title>`` with every character outside ``[A-Za-z0-9_-]`` replaced by ``_`` (safe for
    tmux, which treats ``:`` and ``.`` as target separators)."""
    return "squadnb_" + re.sub(r"[^A-Za-z0-9_-]", "_", title)


def claude_squad_session_name(title: str) -> str:
    """claude-squad's name: ``claudesquad_`` + the title without whitespace and with ``.`` → ``_``.

    ``:`` also becomes ``_``: tmux renames such a session that way itself, so this is the name the
    session really has (claude-squad looks for the unrenamed one and never finds it).
    """
    return "claudesquad_" + re.sub(r"\s+", "", title).replace(".", "_").replace(":", "_")


_PATTERN = "is a pattern character in the non-exact targets claude-squad uses"
#: what tmux 3.3a does with each character refused in a session name (checked by experiment)
_SPECIAL = {
    "#": "starts a tmux format (#(...) runs a shell command)",
    ";": "ends a tmux command when it ends an argument",
    ":": "separates the session from the window in a tmux target (tmux renames it to '_')",
    ".": "separates the window from the pane in a tmux target (tmux renames it to '_')",
    "$": "marks a session id in a tmux target, and tmux stores it escaped",
    "\\": "is stored escaped by tmux",
    "{": "delimits tmux command blocks and special targets such as {last}",
    "}": "delimits tmux command blocks and special targets such as {last}",
    "*": _PATTERN, "?": _PATTERN, "[": _PATTERN, "]": _PATTERN,
}


def session_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be passed to tmux as a session name as it is, or None when it can: it is
    empty, or holds a character tmux treats specially (``# ; : . $ \\ { }``, and the patterns
    ``* ? [ ]``) or a control, format, separator or space character."""
    if not name:
        return "it is empty"
    for at, ch in enumerate(name):
        reason = _SPECIAL.get(ch)
        if reason is None and unicodedata.category(ch)[0] in "CZ":
            reason = "is a control, format, separator or space character"
        if reason is not None:
            return f"{ch!r} at position {at} {reason}"
    return None


def _checked(name: str) -> str:
    problem = session_name_problem(name)
    if problem is not None:
        raise TmuxError(f"refusing the tmux session name {shown(name)}: {problem}")
    return name


@dataclass(frozen=True)
class PaneState:
    """A session's (first) pane: is its program still running, and how it ended if not."""

    dead: bool
    exit_status: int | None
    pid: int | None
    command: str


class Tmux:
    """One tmux server: the private ``-L <socket>`` server, or the user's default server when
    ``socket`` is None (used only by ``Squad.claude_squad()``).

    Methods raise :class:`~squadnb.errors.TmuxError` (with argv, exit status and stderr) when a command
    fails, except the queries documented to answer False/None for a missing session or server.
    """

    def __init__(self, socket: str | None, runner: Runner = run_command,
                 history_limit: int = HISTORY_LIMIT) -> None:
        self.socket = socket
        self.runner = runner
        self.history_limit = history_limit

    def argv(self, *args: str) -> list[str]:
        base = ["tmux"]
        if self.socket is not None:
            base += ["-f", "/dev/null", "-L", self.socket]
        return base + list(args)

    async def _call(self, *args: str, input: bytes | None = None) -> Completed:
        argv = self.argv(*args)
        try:
            return await self.runner(argv, input=input)
        except FileNotFoundError as exc:
            raise TmuxError("tmux is not installed (no 'tmux' on PATH)", argv) from exc

    async def _check(self, *args: str, what: str, input: bytes | None = None) -> Completed:
        done = await self._call(*args, input=input)
        if not done.ok:
            raise TmuxError(f"{what} failed: {done.stderr.strip() or f'exit status {done.returncode}'}",
                            done.argv, done.returncode, done.stderr)
        return done

    async def new_session(self, name: str, cwd: str, command: str, *, width: int = 200,
                          height: int = 50, env: Mapping[str, str] | None = None) -> None:
        """Create detached session ``name`` running ``command`` (through tmux's default shell, so a
        command line with arguments works) in ``cwd``. tmux expands formats in ``-c``, so each ``#``
        of ``cwd`` is doubled (``##`` is a literal ``#``): a directory named ``#(cmd)`` runs nothing
        and the program starts in it, not in tmux's fallback directory."""
        _checked(name)
        args: list[str] = []
        if self.socket is not None:
            args += ["start-server", ";", "set-option", "-g", "history-limit", str(self.history_limit),
                     ";"]
        args += ["new-session", "-d", "-s", name, "-c", cwd.replace("#", "##"), "-x", str(width), "-y", str(height)]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        args += [command, ";", "set-option", "-w", "-t", f"={name}:", "remain-on-exit", "on"]
        done = await self._call(*args)
        if not done.ok and "server exited unexpectedly" in done.stderr:
            # the server was shutting down (its last session had just ended) as this client
            # connected; the next client starts a new server
            done = await self._call(*args)
        if not done.ok:
            raise TmuxError(f"tmux new-session {name!r} failed: "
                            f"{done.stderr.strip() or f'exit status {done.returncode}'}",
                            done.argv, done.returncode, done.stderr)

    async def has_session(self, name: str) -> bool:
        """True if session ``name`` exists (False also when the server is not running, or when the
        name is one tmux cannot be asked about safely)."""
        if session_name_problem(name) is not None:
            return False
        return (await self._call("has-session", "-t", f"={name}")).ok

    async def sessions(self) -> list[str]:
        """The names of every session on this server (empty when it is not running)."""
        done = await self._call("list-sessions", "-F", "#{session_name}")
        return done.stdout.split() if done.ok else []

    def _state_query(self, name: str) -> list[str]:
        """``display-message`` of the pane state, behind a ``has-session``: tmux 3.3a answers a
        ``display-message`` on a missing session with exit status 0 and an empty line, while a failed
        ``has-session`` stops the command sequence with exit status 1."""
        return ["has-session", "-t", f"={name}", ";",
                "display-message", "-p", "-t", f"={name}:", _STATE_FORMAT]

    async def pane_state(self, name: str) -> PaneState | None:
        """The state of the session's pane, or None when the session (or the server) is gone."""
        if session_name_problem(name) is not None:
            return None
        done = await self._call(*self._state_query(name))
        return _parse_state(done.stdout) if done.ok else None

    async def pane_path(self, name: str) -> str | None:
        """The current directory of the program in the session's pane (``#{pane_current_path}``);
        None when the session (or the server) is gone."""
        done = await self._call("has-session", "-t", f"={name}", ";",
                                "display-message", "-p", "-t", f"={name}:", "#{pane_current_path}")
        return done.stdout.strip() if done.ok else None

    async def snapshot(self, name: str) -> tuple[PaneState, str] | None:
        """The pane's state and its visible text (no escapes) from one tmux call; None when the
        session (or the server) is gone."""
        if session_name_problem(name) is not None:
            return None
        done = await self._call(*self._state_query(name), ";",
                                "capture-pane", "-p", "-J", "-t", f"={name}:")
        if not done.ok:
            return None
        first, _, text = done.stdout.partition("\n")
        state = _parse_state(first)
        if state.dead and state.exit_status is None:
            state = await self._reaped(name) or state
        return state, text

    async def _reaped(self, name: str) -> PaneState | None:
        """tmux 3.3a sometimes misses the SIGCHLD of a pane's program, leaving a zombie and a dead
        pane with no exit status. Any other child of the server exiting makes it reap every zombie,
        so run one (``run-shell true``) and look again."""
        await self._call("run-shell", "true")
        return await self.pane_state(name)

    async def capture(self, name: str, *, full_history: bool = False) -> str:
        """The pane's text (wrapped lines joined, no escape sequences); the whole scroll-back with
        ``full_history``."""
        args = ["capture-pane", "-p", "-J", "-t", f"={_checked(name)}:"]
        if full_history:
            args += ["-S", "-", "-E", "-"]
        return (await self._check(*args, what=f"capture-pane of session {name!r}")).stdout

    async def paste(self, name: str, text: str, *, enter: bool = True) -> None:
        """Paste ``text`` into the pane (``load-buffer`` + ``paste-buffer -p -r``: bracketed paste when
        the program asked for it, so a long or multi-line prompt arrives as one, and ``-r`` so a
        newline stays a newline instead of tmux's default CR), then press Enter as a separate key so
        the paste cannot swallow it. ``text`` must already be checked (``session._input``): a paste
        marker or a control character in it would reach the program as keys."""
        _checked(name)
        buffer = f"squadnb-{uuid.uuid4().hex}"
        await self._check("load-buffer", "-b", buffer, "-", input=text.encode(),
                          what=f"load-buffer for session {name!r}")
        await self._check("paste-buffer", "-p", "-r", "-d", "-b", buffer, "-t", f"={name}:",
                          what=f"paste-buffer into session {name!r}")
        if enter:
            await self.send_keys(name, "Enter")

    async def send_keys(self, name: str, *keys: str) -> None:
        """Send tmux key names (``Enter``, ``C-c``) to the pane."""
        await self._check("send-keys", "-t", f"={_checked(name)}:", *keys, what=f"send-keys to session {name!r}")

    async def kill_session(self, name: str) -> bool:
        """Kill session ``name``; False if it did not exist (or the server is gone)."""
        done = await self._call("kill-session", "-t", f"={_checked(name)}")
        if done.ok:
            return True
        if await self.has_session(name):
            raise TmuxError(f"kill-session {name!r} failed: {done.stderr.strip()}", done.argv,
                            done.returncode, done.stderr)
        return False

    @property
    def socket_path(self) -> Path | None:
        """Where tmux puts this private server's socket (``$TMUX_TMPDIR`` or ``/tmp``, then
        ``tmux-<uid>/<socket>``); None for the default server."""
        if self.socket is None:
            return None
        return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / self.socket

    async def kill_server(self) -> None:
        """Kill this private server (no-op if it is not running) and remove its socket file, which
        tmux 3.3a leaves behind. Refuses the default server."""
        if self.socket is None:
            raise TmuxError("refusing to kill the default tmux server (it holds the user's sessions)")
        await self._call("kill-server")
        self.socket_path.unlink(missing_ok=True)  # type: ignore[union-attr]


def _parse_state(line: str) -> PaneState:
    dead, status, pid, command = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
    return PaneState(dead == "1", int(status) if status.lstrip("-").isdigit() else None,
                     int(pid) if pid.isdigit() else None, command)
