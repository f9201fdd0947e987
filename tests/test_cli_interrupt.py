"""Ctrl-C typed at a real terminal while ``squadnb start`` runs a batch.

The command runs in a tmux pane (a real pty whose foreground process group is the command), and
``tmux send-keys C-c`` makes the pty's line discipline send SIGINT to that group, as a terminal does.
squadnb's git and tmux children (and the setup commands it runs) live in process groups of their
own, so only squadnb sees the interrupt: it cancels the batch, undoes the starts in flight and exits
130 with the cancelled instances reported ``cancelled``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest
from helpers import branches, tmux, tmux_sessions, wait_for
from test_cli import Cli, cli, worktrees  # noqa: F401  (cli: the fixture)

from squadnb.agents import demo_program

#: each start runs this setup first, so a start stays in flight long enough to be interrupted: it
#: adds a line to ``setups`` beside the repository, and a SIGINT reaching it (the terminal's, were it
#: in squadnb's process group) leaves a mark there. (Its failure alone would not show: a batch cut
#: short reports every operation it stopped as cancelled, whatever the operation raised meanwhile.)
SETUP = ('trap \'touch "$SQUADNB_MAIN/../setup-got-sigint"\' INT; echo >> "$SQUADNB_MAIN/../setups"; '
         'sleep 1 & wait')
#: seconds from Ctrl-C to the command's exit that count as prompt
PROMPT_EXIT = 10.0


def run_in_pane(cli: Cli, socket: str, name: str, argv: list[str], out: Path, status: Path) -> None:
    """Run ``argv`` in a new pane on the tmux server ``socket``, as a shell runs a command typed at a
    terminal: stdout to ``out``, stderr on the terminal, its exit status then written to ``status``.

    bash waits for the command and, since the command handles SIGINT itself (it exits 130 rather than
    dying of the signal), carries on to write the status. (tmux 3.3a's own ``pane_dead_status`` is
    left unset now and then when a pane ends: it cannot be waited for.)"""
    script = f'{shlex.join(argv)} > {shlex.quote(str(out))}; echo $? > {shlex.quote(str(status))}'
    env = [arg for key, value in cli.env.items() if key not in ("TMUX", "TMUX_PANE")
           for arg in ("-e", f"{key}={value}")]
    done = tmux(socket, "new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-c", str(cli.repo),
                *env, shlex.join(["bash", "-c", script]),
                ";", "set-option", "-w", "-t", f"={name}:", "remain-on-exit", "on")  # its screen stays
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("moment", ["early", "mid-batch"])
def test_ctrl_c_at_a_terminal_cancels_a_start_batch_cleanly(cli: Cli, moment: str) -> None:
    titles = [cli.t(f"a{i}") for i in range(6)]
    cli.ok("new", *titles, "--program", demo_program())
    config = cli.home / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "setup": [SETUP]}))
    sessions = {cli.session(title): title for title in titles}
    terminal, socket = "terminal", f"{cli.socket}-terminal"  # a server of its own: killed below
    out, status = cli.home.parent / "start.json", cli.home.parent / "status"
    run_in_pane(cli, socket, terminal, [sys.executable, "-m", "squadnb", "start", *titles,
                                        "--concurrency", "2", "--json"], out, status)
    try:
        setups = cli.repo.parent / "setups"
        if moment == "early":  # the first start is in its setup
            wait_for(setups.exists, timeout=60, what="a start in flight")
        else:  # the first two started (saved in state.json), the third is in its setup
            wait_for(lambda: len(cli.state()) >= 2 and len(setups.read_text()) >= 3, timeout=60,
                     what="two started instances and a third in flight")
        assert not status.exists(), "the batch ended before Ctrl-C"
        pressed = time.monotonic()
        tmux(socket, "send-keys", "-t", f"={terminal}:", "C-c")
        wait_for(lambda: status.exists() and status.read_text().endswith("\n"), timeout=30,
                 what="the command to exit")
        took = time.monotonic() - pressed
        # tmux reads the pane's output on its own time: the status file can come first
        screen = wait_for(lambda: "squadnb:" in (text := tmux(socket, "capture-pane", "-p", "-J", "-S", "-",
                                                               "-t", f"={terminal}:").stdout) and text,
                          timeout=10, what="the command's last words on the terminal")
    finally:
        tmux(socket, "kill-server")
    code = int(status.read_text())
    assert code == 130, screen
    assert took < PROMPT_EXIT, f"exited {took:.1f}s after Ctrl-C"
    assert "interrupted" in screen and "Traceback" not in screen, screen
    assert not (cli.repo.parent / "setup-got-sigint").exists()
    records = {r["instance"]: r for r in json.loads(out.read_text())}
    assert set(records) == set(titles)
    # nothing failed: no git, tmux or setup child was interrupted under squadnb
    assert {r["status"] for r in records.values()} <= {"succeeded", "cancelled"}, records
    assert any(r["status"] == "cancelled" for r in records.values()), records
    # Each instance is started and whole, or NEW with no session, worktree or branch left. A start
    # cancelled after the agent ran (while its outcome was being verified) is reported cancelled, as
    # the executor reports a late completion, and stays started.
    state = cli.state()
    started = [t for t in titles if t in state]
    assert {t for t in titles if records[t]["status"] == "succeeded"} <= set(started), records
    assert len(started) >= (2 if moment == "mid-batch" else 0)
    paths = {state[t]["worktree"]["worktree_path"] for t in started}
    listed = cli.ls()
    assert {t for t in titles if listed[t]["status"] == "new"} == set(titles) - set(started), listed
    assert tmux_sessions(cli.socket) & sessions.keys() == {cli.session(t) for t in started}
    assert set(worktrees(cli.repo)) == paths
    assert branches(cli.repo) == {"main"} | {state[t]["branch"] for t in started}
    assert strays(cli.home / "worktrees", paths) == [], records


def strays(root: Path, kept: set[str]) -> list[str]:
    """The paths under ``root`` that are neither in ``kept`` nor lead to one of them."""
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if str(path) in kept:
            continue
        if any(k.startswith(f"{path}/") for k in kept):
            found += strays(path, kept)
        else:
            found.append(str(path))
    return found
