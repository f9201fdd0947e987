"""The demo agent as a program: its input handling (driven through a pipe, byte for byte, and in a real
tmux pane with a real terminal), its record files, its special prompts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tmux, wait_for

from squadnb._receipt import last_receipt, receipt_for
from squadnb.agents import demo_program

PASTE = b"\x1b[200~%s\x1b[201~"


def run_agent(cwd: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the demo agent with ``data`` as its input (a pipe: the terminal is left alone)."""
    return subprocess.run([sys.executable, "-m", "squadnb.agents.demo", "--work-seconds", "0", *args],
                          input=data, cwd=cwd, capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def records(cwd: Path) -> list[bytes]:
    out = cwd / "demo-output"
    files = sorted(out.glob("*.txt"), key=lambda p: int(p.stem)) if out.is_dir() else []
    return [p.read_bytes() for p in files]


def test_a_paste_is_one_prompt_recorded_byte_for_byte(tmp_path: Path) -> None:
    text = "line1\nline2\n\n\ttabbed é ✓ \n" + "x" * 10_000 + "\n"
    done = run_agent(tmp_path, PASTE % text.encode() + b"\r")
    assert done.returncode == 0, done.stderr
    assert records(tmp_path) == [text.encode()]  # no newline added, nothing stripped
    receipt = last_receipt(done.stdout.decode())
    assert receipt == receipt_for(text.encode(), 1)
    assert f"working on: [{len(text.encode())} bytes, 6 lines]" in done.stdout.decode()


def test_a_paste_waits_for_enter_and_typed_text_joins_it(tmp_path: Path) -> None:
    done = run_agent(tmp_path, b"abc" + PASTE % b"\nd" + b"e\x7f\x7fZ\r" + b"second\n")
    assert records(tmp_path) == [b"abc\nZ", b"second"]
    assert done.stdout.decode().count("received prompt #") == 2


def test_typed_keys_edit_the_input(tmp_path: Path) -> None:
    # Ctrl-C clears a non-empty input; arrow keys (CSI, SS3) and Alt+key are dropped; an empty
    # submit is ignored
    done = run_agent(tmp_path, b"junk\x03\x1b[A\x1bOBok\x1bx\r\r   \rexit 7\r")
    assert done.returncode == 7
    assert records(tmp_path) == [b"ok"]


@pytest.mark.parametrize(("keys", "status"), [(b"\x03\x03", 130), (b"\x03x\x7f\x03\x04", 0),
                                              (b"\x04", 0), (b"", 0)])
def test_quitting_on_an_empty_input(tmp_path: Path, keys: bytes, status: int) -> None:
    assert run_agent(tmp_path, b"one\r" + keys).returncode == status
    assert records(tmp_path) == [b"one"]


def test_a_paste_split_across_reads_and_paste_markers_as_text(tmp_path: Path) -> None:
    # a paste start marker inside a paste is text; the paste ends at the first end marker
    done = run_agent(tmp_path, PASTE % b"a\x1b[200~b" + b"\r")
    assert records(tmp_path) == [b"a\x1b[200~b"]
    assert "working on: a\\x1b[200~b" in done.stdout.decode()  # controls shown escaped


def test_permission_prompt(tmp_path: Path) -> None:
    done = run_agent(tmp_path, b"!ask one\rn\r!ask two\ry\r")
    out = done.stdout.decode()
    assert out.count("demo: allow this action? (y/n) \r") == 2 and out.count("denied") == 1
    assert records(tmp_path) == [b"!ask two"]  # a denied action is not worked on


def test_continue_counts_the_earlier_prompts(tmp_path: Path) -> None:
    run_agent(tmp_path, b"a\rb\r")
    done = run_agent(tmp_path, b"c\r", "--continue")
    assert "continuing after 2 earlier prompt(s)" in done.stdout.decode()
    assert records(tmp_path) == [b"a", b"b", b"c"]


def test_scripted_write_inside_the_worktree(tmp_path: Path) -> None:
    done = run_agent(tmp_path, b"!write src/fix.py def f():\\n\\treturn 1\\n  # a \\\\n\r")
    assert (tmp_path / "src" / "fix.py").read_text() == "def f():\n\treturn 1\n  # a \\n"
    assert "wrote src/fix.py" in done.stdout.decode()
    assert records(tmp_path) == [b"!write src/fix.py def f():\\n\\treturn 1\\n  # a \\\\n"]


@pytest.mark.parametrize("path", ["../escape.txt", "/tmp/squadnb-demo-escape.txt", "link/x.txt",
                                  ".git/hooks/pre-commit", ".", "sub/../.."])
def test_scripted_write_refuses_paths_outside_the_worktree(tmp_path: Path, path: str) -> None:
    work = tmp_path / "work"
    (work / ".git" / "hooks").mkdir(parents=True)
    (work / "link").symlink_to(tmp_path)
    done = run_agent(work, f"!write {path} boom\r".encode())
    assert "demo: refused" in done.stdout.decode()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "x.txt").exists()
    assert not Path("/tmp/squadnb-demo-escape.txt").exists()
    assert not (work / ".git" / "hooks" / "pre-commit").exists()


@pytest.mark.parametrize("path", ["n" * 300, "README/x", "sub"])
def test_a_scripted_write_that_fails_leaves_the_agent_running(tmp_path: Path, path: str) -> None:
    (tmp_path / "README").write_text("a file, not a directory")
    (tmp_path / "sub").mkdir()
    done = run_agent(tmp_path, f"!write {path} x\rafter\r".encode())
    assert "demo: refused: cannot write" in done.stdout.decode() and done.returncode == 0
    assert records(tmp_path)[-1] == b"after"


def test_in_a_real_pane_raw_mode_and_bracketed_paste(tmp_path: Path, tmux_socket: str) -> None:
    """tmux wraps a paste in the markers only when the program turned bracketed paste on; a newline
    would otherwise be Enter. On exit the terminal is back in cooked mode."""
    modes = tmp_path / "modes"
    session = "demo-raw-test"
    command = f"{demo_program(0)}; stty -a > {modes}; sleep 600"
    assert tmux(tmux_socket, "new-session", "-d", "-s", session, "-c", str(tmp_path), "-x", "200",
                "-y", "50", command).returncode == 0
    try:
        def pane() -> str:
            return tmux(tmux_socket, "capture-pane", "-p", "-J", "-t", f"={session}:").stdout

        wait_for(lambda: pane().rstrip().endswith("demo>"), what="the ready prompt")
        text = "first line\nsecond line\n" + "y" * 6000
        tmux(tmux_socket, "set-buffer", "-b", "demo-raw", text)
        tmux(tmux_socket, "paste-buffer", "-p", "-r", "-d", "-b", "demo-raw", "-t", f"={session}:")
        tmux(tmux_socket, "send-keys", "-t", f"={session}:", "o", "k", "Enter")
        wait_for(lambda: records(tmp_path) == [text.encode() + b"ok"], what="one whole prompt")
        tmux(tmux_socket, "send-keys", "-t", f"={session}:", "C-c")  # one Ctrl-C only warns
        wait_for(lambda: "press Ctrl-C again" in pane(), what="the warning")
        assert not modes.exists()
        tmux(tmux_socket, "send-keys", "-t", f"={session}:", "C-c")
        stty = wait_for(lambda: modes.exists() and modes.read_text(), what="the terminal modes")
        words = stty.replace(";", " ").split()
        assert {"icanon", "echo", "isig", "icrnl", "ixon"} <= set(words)
    finally:
        tmux(tmux_socket, "kill-session", "-t", f"={session}")


def test_the_agent_imports_nothing_heavy() -> None:
    code = ("import sys, runpy; sys.argv = ['demo']; sys.stdin = open('/dev/null');\n"
            "try:\n    runpy.run_module('squadnb.agents.demo', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'pandas', 'numpy', 'asyncio', 'tqdm', 'ipywidgets'} or m.startswith('squadnb.session')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
