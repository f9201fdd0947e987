"""squadnb's demo agent: a tiny program that behaves like an AI coding agent's TUI in tmux.

Input works as in the real agents it stands in for: the terminal is put in raw mode and bracketed
paste is turned on (``ESC[?2004h``), so a paste (the bytes between ``ESC[200~`` and ``ESC[201~``) goes
into the input whole, whatever its length or newlines; typed characters go in too (Backspace edits,
Ctrl-C clears the input, and twice in a row on an empty input quits with status 130; Ctrl-D on an
empty input quits), and Enter submits. The terminal is restored when the program ends.

For each submitted prompt it prints ``received prompt #<k>: <n> bytes, sha256 <hex>`` (see
:mod:`squadnb._receipt`: squadnb checks it against what it pasted), then ``working on: <prompt>``,
"works" for a moment (``--work-seconds``, default 0.3), records the prompt in
``demo-output/<n>.txt`` in its working directory and prints ``done: <prompt>`` (a long or multi-line
prompt is shown as ``[<n> bytes, <l> lines]``; control characters are shown escaped).

**The record**: ``demo-output/<n>.txt`` (``n`` = 1, 2, … over the life of the worktree) holds the bytes
of the prompt exactly as received: no newline is added, nothing is stripped, a pasted ``\\n`` is a
``\\n`` byte. Every prompt the agent works on is recorded; ``exit`` and a denied ``!ask`` are not.

Special prompts: ``!ask ...`` shows a permission prompt (``demo: allow this action? (y/n)``) and works
only on a typed ``y``; ``exit [code]`` quits; ``!write PATH CONTENT`` writes CONTENT (``\\n``, ``\\t``
and ``\\\\`` decoded) to PATH, which must lie inside the working directory and outside ``.git``
(anything else is refused with a ``demo: refused`` line, and nothing is written). ``--continue``
(used on resume) reports the earlier prompts found in ``demo-output/``. Standard library only, and
nothing heavy: twenty of these start at once on a small machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import signal
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Iterator

from squadnb._receipt import receipt_line

PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"
#: a lone ESC (the Escape key) is told from the start of a sequence by this much silence
ESCAPE_WAIT = 0.05
#: prompts up to this many characters, on one line, are shown as they are
SHOWN_CHARS = 120
PERMISSION = "demo: allow this action? (y/n)"
#: the escape sequences keys send (CSI, SS3, Alt+key), dropped from the input
_ESCAPE = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|O.|[^\[O])", re.DOTALL)
_ESCAPE_START = re.compile(rb"\x1b(\[[0-?]*[ -/]*|O)?")


class Terminal:
    """Raw input on a terminal (no echo, no line editing, no signals from keys, CR not turned into
    LF) with bracketed paste on; both undone on exit. Output processing is kept, so ``\\n`` still
    starts a new line. On a pipe (tests) nothing is changed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None

    def __enter__(self) -> Terminal:
        if os.isatty(self.fd):
            import termios

            self.saved = termios.tcgetattr(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR
                          | termios.INPCK | termios.ISTRIP | termios.IXON)
            attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
            attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
            attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, attrs)
            _write("\x1b[?2004h")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.saved is not None:
            import termios

            # after a hang-up (tmux killed the session) the terminal is gone: nothing to restore
            with contextlib.suppress(OSError, termios.error):
                _write("\x1b[?2004l")
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def events(fd: int) -> Iterator[tuple[str, bytes]]:
    """The input as events: ``("paste", bytes)`` for a whole bracketed paste, ``("key", byte)`` for
    one typed byte (escape sequences other than the paste markers are dropped). Ends at end of
    input."""
    buffer = b""
    while True:
        if buffer and not _incomplete(buffer):
            if buffer.startswith(PASTE_START):
                end = buffer.index(PASTE_END, len(PASTE_START))
                yield "paste", buffer[len(PASTE_START):end]
                buffer = buffer[end + len(PASTE_END):]
            elif buffer.startswith(b"\x1b"):
                match = _ESCAPE.match(buffer)
                buffer = buffer[match.end() if match else 1:]
            else:
                yield "key", buffer[:1]
                buffer = buffer[1:]
            continue
        # an escape sequence cut short that no more bytes complete was a lone Escape key press
        if buffer and not buffer.startswith(PASTE_START) \
                and not select.select([fd], [], [], ESCAPE_WAIT)[0]:
            buffer = buffer[1:]
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk


def _incomplete(buffer: bytes) -> bool:
    """True when ``buffer`` starts with an escape sequence cut short (more bytes are needed)."""
    if buffer.startswith(PASTE_START):
        return buffer.find(PASTE_END, len(PASTE_START)) < 0
    return _ESCAPE_START.fullmatch(buffer) is not None


def shown(prompt: bytes) -> str:
    """How a prompt is shown in the pane: as is when short and on one line (control characters
    escaped), else its size."""
    text = prompt.decode("utf-8", "replace")
    if "\n" in text or len(text) > SHOWN_CHARS:
        return f"[{len(prompt)} bytes, {text.count(chr(10)) + 1} lines]"
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class Agent:
    """The read-submit-work loop over the input events."""

    def __init__(self, fd: int, work_seconds: float, out: Path) -> None:
        self.keys = events(fd)
        self.work_seconds = work_seconds
        self.out = out
        self.received = 0
        self.recorded = len(list(out.glob("*.txt"))) if out.is_dir() else 0

    def read_input(self, prompt: str) -> bytes | int:
        """One submitted input (typed and pasted bytes), shown after ``prompt`` as it is edited; an
        exit status when the user quits (Ctrl-D or Ctrl-C on an empty input, end of input)."""
        line = bytearray()
        quitting = False  # Ctrl-C on an empty input asks for a second one, as claude does
        _write(prompt)
        for kind, data in self.keys:
            if (kind, data) != ("key", b"\x03"):
                quitting = False
            if kind == "paste":
                line += data
            elif data in (b"\r", b"\n"):
                _write("\n")
                return bytes(line)
            elif data in (b"\x7f", b"\x08"):
                text = line.decode("utf-8", "replace")[:-1]
                line = bytearray(text.encode())
            elif data == b"\x03":
                if not line and quitting:
                    _write("^C\n")
                    return 130
                quitting = not line
                if quitting:
                    _write("\n(press Ctrl-C again to quit)\n")
                line.clear()
            elif data == b"\x04":
                if not line:
                    _write("\n")
                    return 0
            else:
                line += data
            _write(f"\r\x1b[K{prompt}{shown(bytes(line))}")
        _write("\n")
        return 0

    def run(self) -> int:
        while True:
            prompt = self.read_input("demo> ")
            if isinstance(prompt, int):
                return prompt
            if not prompt.strip():
                continue
            self.received += 1
            _write(receipt_line(self.received, prompt) + "\n")
            command = prompt.decode("utf-8", "replace").strip()
            if command == "exit" or command.startswith("exit "):
                code = command.split()[1:]
                return int(code[0]) if code and code[0].lstrip("-").isdigit() else 0
            if command.startswith("!ask"):
                answer = self.read_input(PERMISSION + " ")
                if isinstance(answer, int):
                    return answer
                if answer.strip().lower() != b"y":
                    _write("denied\n")
                    continue
            _write(f"working on: {shown(prompt)}\n")
            if command.startswith("!write "):
                _write(scripted_write(Path.cwd(), command) + "\n")
            time.sleep(self.work_seconds)
            self.record(prompt)
            _write(f"done: {shown(prompt)}\n")

    def record(self, prompt: bytes) -> None:
        self.out.mkdir(exist_ok=True)
        self.recorded += 1
        while (self.out / f"{self.recorded}.txt").exists():
            self.recorded += 1
        (self.out / f"{self.recorded}.txt").write_bytes(prompt)


def scripted_write(root: Path, command: str) -> str:
    """Carry out ``!write PATH CONTENT`` inside ``root``; the line to show (a refusal, or the write's
    error, says why nothing was written: the agent itself never stops over a bad path)."""
    parts = command.split(maxsplit=2)
    if len(parts) < 2:
        return "demo: refused: usage: !write PATH CONTENT"
    path, content = parts[1], parts[2] if len(parts) > 2 else ""
    try:
        base = root.resolve()
        target = (base / path).resolve()
        if target == base or base not in target.parents:
            return f"demo: refused: {path!r} is outside the worktree"
        if target.relative_to(base).parts[0] == ".git":
            return f"demo: refused: {path!r} is inside .git"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_unescape(content), encoding="utf-8")
    except (OSError, ValueError) as exc:
        return f"demo: refused: cannot write {path!r}: {exc}"
    return f"wrote {target.relative_to(base)}"


def _unescape(text: str) -> str:
    """``\\n`` → newline, ``\\t`` → tab, ``\\\\`` → backslash; any other backslash stays."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m[1]], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m squadnb.agents.demo",
                                     description="squadnb's demo agent (see the module docstring)")
    parser.add_argument("--work-seconds", type=float, default=0.3, help="time spent per prompt")
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="go on with the conversation found in demo-output/")
    args = parser.parse_args(argv)
    # tmux ends a session with SIGHUP; turn it (and SIGTERM) into an exit that restores the terminal
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))
    agent = Agent(sys.stdin.fileno(), args.work_seconds, Path.cwd() / "demo-output")
    _write(f"squadnb demo agent in {Path.cwd()}\n")
    if args.resume:
        _write(f"continuing after {agent.recorded} earlier prompt(s)\n")
    with Terminal(sys.stdin.fileno()):
        return agent.run()


if __name__ == "__main__":
    sys.exit(main())
