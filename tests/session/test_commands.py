"""Exact command lines (through an injected runner), names, and the pinned on-disk status table."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from squadnb.errors import TmuxError
from squadnb.session import Status
from squadnb.session._programs import profile_for, with_continue
from squadnb.session._run import Completed, run_command
from squadnb.session.git import Git, branch_name
from squadnb.session.tmux import Tmux, claude_squad_session_name, squadnb_session_name


class Recorder:
    """Records command lines and answers each with ``stdout`` and ``returncode``, or with the exit
    status ``failing`` gives for its git subcommand."""

    def __init__(self, stdout: str = "", returncode: int = 0,
                 failing: Mapping[str, int] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.stdout, self.returncode, self.failing = stdout, returncode, dict(failing or {})

    async def __call__(self, argv: Sequence[str], *, cwd: str | None = None,
                       env: Mapping[str, str] | None = None, input: bytes | None = None) -> Completed:
        self.calls.append(list(argv))
        code = self.failing.get(argv[3], self.returncode) if argv[0] == "git" else self.returncode
        return Completed(tuple(argv), code, self.stdout, "")


def test_status_integers_are_claude_squads() -> None:
    assert {s.name: int(s) for s in Status} == {"RUNNING": 0, "READY": 1, "LOADING": 2, "PAUSED": 3,
                                                "DEAD": 4, "NEEDS_INPUT": 5, "NEW": 6}
    assert [s.to_disk() for s in Status] == [0, 1, 2, 3, 1, 1, 1]


def test_tmux_targets_are_exact_and_the_private_server_ignores_the_user_config() -> None:
    rec = Recorder()
    tmux = Tmux("sock", runner=rec)
    asyncio.run(tmux.new_session("squadnb_a", "/wt", "claude", env={"K": "V"}))
    asyncio.run(tmux.kill_session("squadnb_a"))
    asyncio.run(tmux.paste("squadnb_a", "hello"))
    assert rec.calls[0] == [
        "tmux", "-f", "/dev/null", "-L", "sock", "start-server", ";", "set-option", "-g",
        "history-limit", "50000", ";", "new-session", "-d", "-s", "squadnb_a", "-c", "/wt", "-x",
        "200", "-y", "50", "-e", "K=V", "claude", ";", "set-option", "-w", "-t", "=squadnb_a:",
        "remain-on-exit", "on"]
    assert rec.calls[1][-3:] == ["kill-session", "-t", "=squadnb_a"]
    load, paste, enter = rec.calls[2:5]
    assert load[5:8] == ["load-buffer", "-b", load[7]] and load[-1] == "-"
    assert paste[5:] == ["paste-buffer", "-p", "-r", "-d", "-b", load[7], "-t", "=squadnb_a:"]
    assert enter[5:] == ["send-keys", "-t", "=squadnb_a:", "Enter"]
    default = Tmux(None, runner=rec)
    asyncio.run(default.has_session("claudesquad_x"))
    assert rec.calls[-1] == ["tmux", "has-session", "-t", "=claudesquad_x"]
    with pytest.raises(TmuxError, match="refusing to kill the default tmux server"):
        asyncio.run(default.kill_server())


def test_worktree_add_holds_the_lock_only_for_the_no_checkout_step(tmp_path: Path) -> None:
    # the answer to rev-parse --git-common-dir; show-ref says branch b does not exist yet
    rec = Recorder(stdout=str(tmp_path), failing={"show-ref": 1})
    git = Git(runner=rec)
    asyncio.run(git.add_worktree("/repo", "/wt", "b", new_from="abc"))
    assert rec.calls == [
        ["git", "-C", "/repo", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        ["git", "-C", "/repo", "show-ref", "--verify", "--quiet", "refs/heads/b"],
        ["git", "-C", "/repo", "worktree", "add", "--force", "--no-checkout", "--quiet", "-b", "b",
         "/wt", "abc"],
        ["git", "-C", "/wt", "reset", "--hard", "--quiet"]]


def _children_running(argv: list[str]) -> list[int]:
    """The pids of this process's children whose command line is ``argv``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except (FileNotFoundError, ProcessLookupError):  # it exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and [c.decode() for c in cmdline] == argv:
            found.append(int(entry.name))
    return found


def test_a_cancelled_command_is_killed() -> None:
    argv = ["sleep", "30.25"]

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(run_command(argv))
        deadline = loop.time() + 30
        while not (pids := _children_running(argv)):  # the child runs: cancel it now, not earlier
            assert loop.time() < deadline, "the command never started"
            await asyncio.sleep(0.01)
        begun = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids[0], loop.time() - begun
    pid, seconds = asyncio.run(main())
    assert seconds < 5
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


@pytest.mark.parametrize("title, name", [
    ("fix login", "squadnb_fix_login"), ("a:b.c/d", "squadnb_a_b_c_d"), ("é", "squadnb__")])
def test_squadnb_session_names_are_safe_for_tmux(title: str, name: str) -> None:
    assert squadnb_session_name(title) == name


def test_claude_squad_session_names() -> None:
    assert claude_squad_session_name("a sd f . . asdf") == "claudesquad_asdf__asdf"
    assert claude_squad_session_name("a:b") == "claudesquad_a_b"


@pytest.mark.parametrize("prefix, title, branch", [
    ("alice/", "Fix Login", "alice/fix-login"), ("alice/", "feature!@#", "alice/feature"),
    ("alice/", "v1.2 fix", "alice/v1.2-fix"), ("alice/", "a/b", "alice/a/b"),
    ("alice/", "a..b", "alice/a.b"), ("alice/", ".x", "alice/x"), ("alice/", "x.lock", "alice/x"),
    ("alice/", "a//b", "alice/a/b"), ("", "Task", "task"),
    ("alice/", "修正", "alice/t-" + __import__("hashlib").sha1("修正".encode()).hexdigest()[:8])])
def test_branch_names(prefix: str, title: str, branch: str) -> None:
    assert branch_name(prefix, title) == branch


def test_program_profiles_match_the_basename() -> None:
    assert profile_for("/usr/local/bin/claude").name == "claude"
    assert profile_for("claude --model x").name == "claude"
    assert profile_for("aider --model x").name == "aider"
    assert profile_for("gemini").name == "gemini"
    assert profile_for("codex").name == "other"
    assert with_continue("/opt/claude") == "/opt/claude --continue"
    assert with_continue("claude --continue") == "claude --continue"
    assert with_continue("codex") == "codex"
