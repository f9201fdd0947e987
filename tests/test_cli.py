"""The ``squadnb`` command, run as a user runs it: a subprocess (``python -m squadnb``) against real tmux
(the test run's private socket) and real git repositories in temp dirs."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import branches, tmux_sessions, wait_for

import squadnb
from squadnb.agents import demo_program, scratch_repo
from squadnb.errors import SquadError
from squadnb.session.squad import Squad

# the columns of PartialResult.to_dataframe(), as the README lists them
# Each test runs up to ~20 commands, each a new process that imports pandas (1-5 s on two cores shared
# by eight test runs): more than the suite's 120 s per test on a loaded machine, never a hang.
pytestmark = pytest.mark.timeout(300)

RECORD_FIELDS = ["instance", "operation", "status", "ok", "error", "error_type", "value", "attempts",
                 "start_time", "elapsed", "verified"]


# -- helpers ---------------------------------------------------------------------------------------


def tmux_server_running(socket: str) -> bool:
    return subprocess.run(["tmux", "-L", socket, "list-sessions"], capture_output=True).returncode == 0


def socket_path(socket: str) -> Path:
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / socket


def demo_gone(socket: str) -> bool:
    """No tmux server on the demo's socket, and no socket file either."""
    return not tmux_server_running(socket) and not socket_path(socket).exists()


def worktrees(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")][1:]


def snapshot(home: Path, repo: Path, socket: str) -> tuple[object, ...]:
    """Everything a command could change: the home's files, the repo's branches and worktrees, the
    tmux sessions."""
    files = {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()} \
        if home.exists() else {}
    return files, branches(repo), worktrees(repo), tmux_sessions(socket)


class Cli:
    """Runs ``python -m squadnb`` in ``repo`` with ``$SQUADNB_HOME`` at ``home``."""

    def __init__(self, repo: Path, home: Path, socket: str, prefix: str) -> None:
        self.repo, self.home, self.socket, self.prefix = repo, home, socket, prefix
        self.env = dict(os.environ, SQUADNB_HOME=str(home))

    def t(self, name: str) -> str:
        """A title unique to this test (the tmux server is shared by the whole run)."""
        return f"{self.prefix}-{name}"

    def __call__(self, *args: str, cwd: Path | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "squadnb", *args], cwd=cwd or self.repo,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self(*args)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> list[dict]:
        return json.loads(self.ok(*args, "--json").stdout)

    def ls(self) -> dict[str, dict]:
        return {row["title"]: row for row in self.json("ls")}

    def state(self) -> dict[str, dict]:
        path = self.home / "state.json"
        if not path.exists():
            return {}
        return {i["title"]: i for i in json.loads(path.read_text())["instances"]}

    def session(self, title: str) -> str:
        return "squadnb_" + re.sub(r"[^A-Za-z0-9_-]", "_", title)

    def started(self, *names: str) -> list[str]:
        titles = [self.t(n) for n in names]
        self.ok("new", *titles, "--program", demo_program())
        self.ok("start", *titles)
        return titles


@pytest.fixture
def cli(tmp_path: Path, tmux_socket: str, request: pytest.FixtureRequest) -> Iterator[Cli]:
    repo = scratch_repo(tmp_path / "repo", files=2)
    home = tmp_path / "home"
    prefix = re.sub(r"[^a-z0-9]", "", request.node.name.lower().removeprefix("test_"))[:12]
    yield Cli(repo, home, tmux_socket, prefix)
    squad = Squad(home=home, repo=repo, tmux_socket=tmux_socket)
    for instance in squad.instances:
        try:
            instance.kill()
        except SquadError:
            pass


def assert_usage_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("squadnb: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


# -- the demo --------------------------------------------------------------------------------------


def demo_socket(stdout: str) -> str:
    match = re.search(r"^tmux socket: (\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def test_demo_runs_the_lifecycle_and_leaves_nothing_behind() -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "squadnb", "demo"],
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout.split("squadnb demo report", 1)[1]
    for step, operation in [("start", "Start"), ("prompt", "SendPrompt"), ("work", "AwaitWork"),
                            ("pause (transaction)", "Pause"), ("resume", "Resume"), ("kill", "Kill")]:
        row = rf"^\s*{re.escape(step)}\s+{operation}\s+6\s+0\s+\d+\.\d\d$"
        assert re.search(row, report, re.MULTILINE), (step, report)
    assert "total:" in report
    socket = demo_socket(done.stdout)
    workdir = Path(re.search(r"^workdir: (.+)$", done.stdout, re.MULTILINE).group(1))
    assert workdir.name.startswith("squadnb-demo-")
    assert demo_gone(socket)
    assert not workdir.exists()
    assert seconds < 120, f"the demo took {seconds:.1f}s"


def test_demo_keep_leaves_a_reachable_squad(tmp_path: Path) -> None:
    workdir = tmp_path / "kept"
    done = subprocess.run([sys.executable, "-m", "squadnb", "demo", "-n", "2", "--keep", "--workdir",
                           str(workdir)], capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    socket = demo_socket(done.stdout)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Kill" not in done.stdout.split("squadnb demo report", 1)[1]
        assert f"tmux -L {socket} attach -t =squadnb_agent-1" in done.stdout
        ls_line = next(line for line in done.stdout.splitlines() if line.strip().startswith("list:"))
        ls_argv = ls_line.split(":", 1)[1].split()
        assert ls_argv[0] == "squadnb"
        listed = subprocess.run([sys.executable, "-m", "squadnb", *ls_argv[1:], "--json"],
                                capture_output=True, text=True, timeout=60, check=True)
        rows = json.loads(listed.stdout)
        assert [row["title"] for row in rows] == ["agent-1", "agent-2"]
        assert all(row["alive"] and row["status"] in ("running", "ready") for row in rows)
        assert tmux_sessions(socket) == {"squadnb_agent-1", "squadnb_agent-2"}
        assert len(worktrees(workdir / "repo")) == 2
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        socket_path(socket).unlink(missing_ok=True)


def test_demo_interrupted_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "squadnb", "demo", "-n", "3", "--work-seconds", "20",
                             "--workdir", str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        lines = []
        for line in proc.stdout:  # the agents are now working on a 20 s prompt
            lines.append(line)
            if line.startswith("[3/6]"):
                break
        socket = demo_socket("".join(lines))
        wait_for(lambda: len(tmux_sessions(socket)) == 3, what="the demo's agents")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "cleaned up" in out
    assert demo_gone(socket)
    assert not workdir.exists()


def test_demo_failing_step_stops_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "failing"
    done = subprocess.run([sys.executable, "-m", "squadnb", "demo", "-n", "2", "--timeout", "0.01",
                           "--workdir", str(workdir)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = done.stdout.split("squadnb demo report", 1)[1]
    assert re.search(r"^start\s+Start\s+0\s+2\s", report, re.MULTILINE), report
    assert "Resume" not in report
    assert "timed out" in done.stdout
    assert demo_gone(demo_socket(done.stdout))
    assert not workdir.exists()


def test_demo_refuses_a_nonempty_workdir(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "squadnb", "demo", "--workdir", str(tmp_path / "busy")],
                          capture_output=True, text=True, timeout=60)
    assert_usage_error(done, "--workdir")
    assert (tmp_path / "busy" / "file").read_text() == "mine"


# -- batch commands change the real state ----------------------------------------------------------


def test_lifecycle_through_the_commands(cli: Cli) -> None:
    a, b = cli.t("a"), cli.t("b")
    cli.ok("new", a, b, "--program", demo_program())
    assert {t: r["status"] for t, r in cli.ls().items()} == {a: "new", b: "new"}

    done = cli.ok("start", a, b)
    assert a in done.stdout and "Start: 2 succeeded, 0 failed of 2" in done.stdout
    assert {cli.session(a), cli.session(b)} <= tmux_sessions(cli.socket)
    assert set(cli.state()) == {a, b}
    assert len(worktrees(cli.repo)) == 2

    cli.ok("prompt", "write it down", a, b)
    rows = wait_for(lambda: all(r["added"] for r in cli.json("diff", a, b)) and cli.json("diff", a, b),
                what="the agents' work")
    assert [r["instance"] for r in rows] == [a, b]
    assert list(rows[0]) == [f for f in RECORD_FIELDS if f != "value"] + ["added", "removed"]
    wait_for(lambda: "done: write it down" in cli.ok("preview", a).stdout, what="the agent's answer")
    patch = cli.ok("diff", a, "--patch").stdout
    assert f"--- {a}" in patch and "demo-output/" in patch
    listed = cli.ls()
    assert listed[a]["alive"] and listed[a]["added"] > 0

    cli.ok("pause", "--all")
    assert {t: i["status"] for t, i in cli.state().items()} == {a: 3, b: 3}
    assert worktrees(cli.repo) == []
    assert branches(cli.repo) == {"main", listed[a]["branch"], listed[b]["branch"]}
    assert cli.session(a) not in tmux_sessions(cli.socket)

    cli.ok("resume", "--status", "paused")
    assert all(i["status"] != 3 for i in cli.state().values())
    assert len(worktrees(cli.repo)) == 2
    assert cli.session(a) in tmux_sessions(cli.socket)

    cli.ok("kill", "--all", "--force")
    assert cli.state() == {}
    assert worktrees(cli.repo) == []
    assert branches(cli.repo) == {"main"}
    assert not {cli.session(a), cli.session(b)} & tmux_sessions(cli.socket)
    assert cli.ok("ls").stdout.strip() == "no instances"


def test_json_records_are_complete(cli: Cli) -> None:
    a, b = cli.started("a", "b")
    records = cli.json("pause", a, b)
    assert [r["instance"] for r in records] == [a, b]
    for record in records:
        assert list(record) == RECORD_FIELDS
        assert record["operation"] == "Pause" and record["status"] == "succeeded" and record["ok"] is True
        assert record["error"] is None and record["error_type"] is None
        assert isinstance(record["value"], dict)  # what Pause returned (its archive), as JSON
        assert record["attempts"] == 1
        assert isinstance(record["elapsed"], float) and record["elapsed"] > 0
        assert datetime.fromisoformat(record["start_time"]).tzinfo is not None
        assert record["verified"] is True  # Pause checks its post-condition


def test_csv_output(cli: Cli) -> None:
    a, b = cli.started("a", "b")
    rows = list(csv.DictReader(io.StringIO(cli.ok("pause", a, b, "--csv").stdout)))
    assert [r["instance"] for r in rows] == [a, b]
    assert list(rows[0]) == RECORD_FIELDS
    assert {r["status"] for r in rows} == {"succeeded"}
    listed = list(csv.DictReader(io.StringIO(cli.ok("ls", "--csv").stdout)))
    assert {r["title"]: r["status"] for r in listed} == {a: "paused", b: "paused"}


def test_csv_output_never_carries_a_formula_a_spreadsheet_would_run(cli: Cli) -> None:
    hostile = "=HYPERLINK(\"http://evil\",\"x\")" + cli.t("")
    cli.ok("new", hostile, "--program", demo_program())
    listed = list(csv.DictReader(io.StringIO(cli.ok("ls", "--csv").stdout)))
    assert [r["title"] for r in listed] == ["'" + hostile]
    assert [r["title"] for r in cli.json("ls")] == [hostile]  # JSON keeps the text exact


def test_where_and_status_select_targets(cli: Cli) -> None:
    a, b, c = cli.started("a", "b", "c")
    cli.ok("pause", b)
    assert [r["title"] for r in cli.json("ls", "--status", "paused")] == [b]
    assert [r["title"] for r in cli.json("ls", "--where", f"title == '{c}'")] == [c]
    records = cli.json("pause", "--where", "status != 'paused' and alive")
    assert [r["instance"] for r in records] == [a, c]
    assert {t: i["status"] for t, i in cli.state().items()} == {a: 3, b: 3, c: 3}
    records = cli.json("resume", "--status", "PAUSED", "--where", f"title != '{a}'")
    assert [r["instance"] for r in records] == [b, c]
    assert {t: i["status"] == 3 for t, i in cli.state().items()} == {a: True, b: False, c: False}


def test_idle_agents_list_as_ready_in_a_new_process(cli: Cli) -> None:
    """Each command is a new process with no earlier look at the panes: idle agents are still
    'ready', so the issue's own example selection works."""
    a, b = cli.started("a", "b")
    cli.ok("prompt", "write something", a)
    wait = time.monotonic() + 30
    while not any(r["title"] == a and r["added"] > 0 for r in cli.json("ls")):
        assert time.monotonic() < wait, "the agent's output never showed in the diff"
    assert [r["title"] for r in cli.json("ls", "--where", "status == 'ready' and added > 0")] == [a]
    assert [r["title"] for r in cli.json("ls", "--status", "ready")] == [a, b]


def test_start_restart_brings_back_the_dead(cli: Cli) -> None:
    a, b = cli.started("a", "b")
    subprocess.run(["tmux", "-L", cli.socket, "kill-session", "-t", f"={cli.session(a)}"], check=True)
    assert [r["title"] for r in cli.json("ls", "--status", "dead")] == [a]
    records = cli.json("start", "--restart", "--status", "dead")
    assert [(r["instance"], r["status"]) for r in records] == [(a, "succeeded")]
    assert {cli.session(a), cli.session(b)} <= tmux_sessions(cli.socket)
    done = cli("start", "--restart", b)  # alive: nothing to restart
    assert done.returncode == 1 and "still running" in done.stdout + done.stderr


def test_transaction_failure_rolls_back(cli: Cli) -> None:
    a, b, c = cli.started("a", "b", "c")
    cli.ok("pause", c)
    done = cli("pause", a, b, c, "--transaction", "--json")
    assert done.returncode == 1, done.stderr
    records = {r["instance"]: r for r in json.loads(done.stdout)}
    assert records[a]["status"] == records[b]["status"] == "rolled back"
    assert records[c]["status"] == "invalid"
    assert "rolled back" in done.stderr and done.stderr.startswith("squadnb: error: transaction failed")
    state = cli.state()
    assert state[a]["status"] != 3 and state[b]["status"] != 3 and state[c]["status"] == 3
    assert {cli.session(a), cli.session(b)} <= tmux_sessions(cli.socket)
    assert len(worktrees(cli.repo)) == 2


def test_partial_failure_exits_1_and_retries_count_attempts(cli: Cli) -> None:
    good, bad = cli.t("good"), cli.t("bad")
    cli.ok("new", good, "--program", demo_program())
    cli.ok("new", bad, "--program", "squadnb-no-such-program")
    done = cli("start", good, bad, "--retries", "1", "--retry-delay", "0.5", "--json")
    assert done.returncode == 1, done.stderr
    records = {r["instance"]: r for r in json.loads(done.stdout)}
    assert records[good]["status"] == "succeeded" and records[good]["attempts"] == 1
    assert records[bad]["status"] == "failed" and records[bad]["attempts"] == 2
    assert records[bad]["elapsed"] >= 0.5  # the delay between the two attempts
    assert "squadnb-no-such-program" in records[bad]["error"]
    assert records[bad]["operation"] == "Retry(Start)"
    assert set(cli.state()) == {good}
    assert branches(cli.repo) == {"main", cli.ls()[good]["branch"]}


def test_deadline_and_timeout_bound_the_batch(cli: Cli) -> None:
    (a,) = cli.started("a")
    done = cli("diff", a, "--deadline", "0.000001", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["status"] == "cancelled"
    done = cli("diff", a, "--timeout", "0.000001", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)[0]["status"] == "timed out"


def test_concurrency_bounds_the_batch(cli: Cli) -> None:
    busy = [cli.t("b1"), cli.t("b2")]
    cli.ok("new", *busy, "--program", demo_program(work_seconds=60))
    cli.ok("start", *busy)
    cli.ok("prompt", "take your time", *busy)  # both agents now work for a minute: a prompt waits
    for concurrency, attempts in (("1", [1, 0]), ("2", [1, 1])):
        done = cli("prompt", "and another", *busy, "--concurrency", concurrency, "--deadline", "1",
                   "--json")
        assert done.returncode == 1, done.stderr
        records = json.loads(done.stdout)
        assert [r["status"] for r in records] == ["cancelled", "cancelled"], concurrency
        assert [r["attempts"] for r in records] == attempts, concurrency


def test_claude_squad_names_and_home(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / ".claude-squad"
    title = cli.t("cs")
    base = ["--claude-squad", "--home", str(home), "--socket", cli.socket]
    cli.ok(*base, "new", title, "--program", demo_program())
    cli.ok(*base, "start", title)
    try:
        assert f"claudesquad_{title}" in tmux_sessions(cli.socket)
        stored = json.loads((home / "state.json").read_text())["instances"]
        assert [i["title"] for i in stored] == [title]
        assert [r["title"] for r in cli.json(*base, "ls")] == [title]
    finally:
        cli.ok(*base, "kill", title, "--force")
    assert f"claudesquad_{title}" not in tmux_sessions(cli.socket)


# -- bad input: one line, exit 2, nothing changed -------------------------------------------------


def test_bad_input_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    a, b = cli.started("a", "b")
    cli.ok("pause", b)
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    before = snapshot(cli.home, cli.repo, cli.socket)
    cases = [
        (("pause", cli.t("nosuch")), cli.t("nosuch")),
        (("pause", a, cli.t("nosuch")), cli.t("nosuch")),
        (("pause", "--where", "status == 'dead'"), "no instance matches"),
        (("pause", "--where", "status ==="), "bad --where expression"),
        (("pause", "--where", "@os.getcwd() == ''"), "bad --where expression"),
        (("pause", "--where", "nosuchcolumn > 0"), "bad --where expression"),
        (("pause", "--status", "sleepy"), "unknown status"),
        (("pause",), "no targets"),
        (("kill",), "no targets"),
        (("pause", "--all", a), "not both"),
        (("preview", cli.t("nosuch")), cli.t("nosuch")),
        (("new", a), "already exists"),
        (("new", cli.t("x"), cli.t("x")), "more than once"),
        (("new", cli.t("x"), ""), "non-empty title"),
        (("new", cli.t("x"), "--repo", str(not_a_repo)), str(not_a_repo)),
    ]
    for argv, word in cases:
        assert_usage_error(cli(*argv), word)
        assert snapshot(cli.home, cli.repo, cli.socket) == before, argv
    assert_usage_error(cli("new", cli.t("y"), cwd=not_a_repo))
    assert snapshot(cli.home, cli.repo, cli.socket) == before


def test_argparse_errors_exit_2(cli: Cli) -> None:
    for argv in (("start", "--all", "--concurrency", "0"), ("frobnicate",), ("prompt",),
                 ("ls", "--json", "--csv")):
        done = cli(*argv)
        assert done.returncode == 2 and re.search(r"^squadnb( \w+)?: error: ", done.stderr, re.M), argv
    assert cli("--help").returncode == 0
    for argv in (("q" * 300,), ("start", "--all", "--concurrency", "q" * 300),
                 ("start", "--all", "--timeout", "-" + "9" * 300)):
        done = cli(*argv)
        assert done.returncode == 2 and "q" * 81 not in done.stderr and "9" * 81 not in done.stderr


def test_kill_with_unsaved_work_needs_force(cli: Cli) -> None:
    a, clean = cli.started("a", "clean")
    worktree = Path(cli.ls()[a]["worktree"])
    (worktree / "notes.txt").write_text("not committed\n")
    done = cli("kill", a, clean)
    assert_usage_error(done, repr(a), "--force")
    assert repr(clean) not in done.stderr
    assert set(cli.state()) == {a, clean}
    assert cli.session(a) in tmux_sessions(cli.socket)

    cli.ok("kill", clean)  # nothing to lose: no question asked
    assert set(cli.state()) == {a}
    cli.ok("kill", a, "--force")
    assert cli.state() == {} and branches(cli.repo) == {"main"}


def answer_on_a_terminal(cli: Cli, answer: str, *argv: str) -> tuple[int, str]:
    """Run squadnb with a pty as stdin (a person at a terminal) and type ``answer``."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "squadnb", *argv], cwd=cli.repo, env=cli.env,
                            stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(terminal)
    try:
        os.write(controller, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(controller)
    return proc.returncode, err


def test_kill_asks_on_a_terminal(cli: Cli) -> None:
    (a,) = cli.started("a")
    (Path(cli.ls()[a]["worktree"]) / "notes.txt").write_text("work\n")
    cli.ok("pause", a)  # pause commits the file: the branch holds a commit HEAD does not (unmerged)
    code, err = answer_on_a_terminal(cli, "n", "kill", a)
    assert code == 2 and "Kill 1 instance(s)? [y/N]" in err and "nothing was killed" in err
    assert set(cli.state()) == {a}
    code, err = answer_on_a_terminal(cli, "y", "kill", a)
    assert code == 0, err
    assert cli.state() == {} and branches(cli.repo) == {"main"}


def test_ctrl_c_cancels_the_batch_and_reports_it(cli: Cli) -> None:
    busy = cli.t("busy")
    cli.ok("new", busy, "--program", demo_program(work_seconds=60))
    cli.ok("start", busy)
    cli.ok("prompt", "take your time", busy)  # the agent now works for a minute: not ready
    controller, terminal = pty.openpty()  # stderr on a terminal: the progress bar shows
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in cli.env.items() if k != "TQDM_DISABLE"}
    proc = subprocess.Popen([sys.executable, "-m", "squadnb", "prompt", "and another", busy, "--json"],
                            cwd=cli.repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=terminal, text=True)
    os.close(terminal)
    seen = b""
    try:
        def bar_shown() -> bool:
            nonlocal seen
            if select.select([controller], [], [], 0.05)[0]:
                seen += os.read(controller, 4096)
            return b"SendPrompt:   0%" in seen
        wait_for(bar_shown, what="the progress bar of the prompt batch")
        # The bar is drawn just before the batch is handed to squadnb's loop; the interrupt must land
        # once the main thread blocks on the batch (half a second asleep on its future), not before.
        streak = 0

        def blocked_on_the_batch() -> bool:
            nonlocal streak
            asleep = "futex" in Path(f"/proc/{proc.pid}/wchan").read_text()
            streak = streak + 1 if asleep else 0
            return streak >= 10
        wait_for(blocked_on_the_batch, what="the command to wait on its batch")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert proc.returncode == 130
    [record] = json.loads(out)
    assert record["instance"] == busy and record["status"] == "cancelled"
    assert cli.state()[busy]["status"] != 3 and cli.session(busy) in tmux_sessions(cli.socket)


# -- a fast start ----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["ls", "--help"], ["start", "--help"]])
def test_help_and_version_load_no_table_machinery(argv: list[str]) -> None:
    """--help and --version import neither pandas, tqdm, ipywidgets nor the engine or the session
    layer (the speed is measured by benchmarks/cli_startup.py; this keeps the reason for it)."""
    heavy = ["pandas", "tqdm", "ipywidgets", "squadnb.engine", "squadnb.session", "squadnb.ops",
             "squadnb.cli.commands", "squadnb.cli.demo"]
    code = ("import sys\nfrom squadnb.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    script = Path(sys.executable).parent / "squadnb"  # the console script pip installed
    for command in ([sys.executable, "-m", "squadnb"], [str(script)]):
        version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
        assert version.returncode == 0 and version.stdout.strip() == f"squadnb {squadnb.__version__}"


# -- hostile input: --where is data, values are clipped, output is escaped ------------------------


def test_where_never_runs_code(cli: Cli, tmp_path: Path) -> None:
    a, b = cli.t("a"), cli.t("b")
    cli.ok("new", a, b, "--program", demo_program())
    marker = tmp_path / "ran"
    before = snapshot(cli.home, cli.repo, cli.socket)
    payloads = [f"@os.system('touch {marker}') == 0", f"__import__('os').system('touch {marker}') == 0",
                "@sys.exit(0)", f"@shutil.rmtree('{cli.repo}')", "@squad.kill_server() == 0",
                f"title == open('{marker}', 'w').name"]
    for command in ("ls", "start", "kill"):
        for payload in payloads:
            done = cli(command, "--where", payload, *(["--force"] if command == "kill" else []))
            assert_usage_error(done, "bad --where expression")
            assert not marker.exists(), payload
            assert snapshot(cli.home, cli.repo, cli.socket) == before, payload
    assert [r["title"] for r in cli.json("ls", "--where", f"title.str.endswith('-b')")] == [b]
    assert [r["title"] for r in cli.json("ls", "--where", "status in ['new'] and not alive")] == [a, b]


def test_bad_values_are_quoted_at_most_80_characters(cli: Cli) -> None:
    cli.ok("new", cli.t("a"), "--program", demo_program())
    long = "q" * 300
    for argv in (("pause", long), ("ls", "--status", long), ("ls", "--where", f"{long} == 1"),
                 ("ls", "--where", f"title == '{long}' and nosuch"), ("preview", long),
                 ("new", long), ("kill", "--where", f"title == '{long}'")):
        done = cli(*argv)
        assert_usage_error(done)
        assert "q" * 81 not in done.stderr, argv


def test_output_escapes_control_characters_from_files(cli: Cli) -> None:
    """What ls prints comes from the home's files (a title, a branch, a program): escape sequences
    and bidi overrides in it are printed escaped, never raw; JSON keeps the exact text."""
    a = cli.t("a")
    program = "demo \x1b[31mred\x1b[0m \u202eevil \x85next"
    cli.ok("new", a, "--program", program)
    for fmt in ((), ("--csv",)):
        out = cli.ok("ls", *fmt).stdout
        assert "\x1b" not in out and "\u202e" not in out and "\x85" not in out, fmt
        assert "\\x1b[31mred" in out and "\\u202eevil" in out and "\\x85next" in out, fmt
    out = cli.ok("ls", "--json").stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert json.loads(out)[0]["program"] == program


def test_kill_all_forgets_never_started_instances(cli: Cli) -> None:
    (started,) = cli.started("s")
    fresh = [cli.t("n1"), cli.t("n2")]
    cli.ok("new", *fresh, "--program", demo_program())
    records = cli.json("kill", "--all", "--force")
    assert {r["instance"]: r["status"] for r in records} == {started: "succeeded", fresh[0]: "succeeded",
                                                              fresh[1]: "succeeded"}
    assert cli.ok("ls").stdout.strip() == "no instances"
    assert cli.state() == {} and branches(cli.repo) == {"main"}


def test_a_prompt_the_policy_refuses_is_exit_2_and_sends_nothing(cli: Cli) -> None:
    """An empty, blank or control-character prompt is bad input (exit 2, nothing changed), refused by
    the same policy as the Python API before any instance is touched."""
    (a,) = cli.started("a")
    for text in ("", "   ", "stop\x03now"):
        done = cli("prompt", text, a, "--json")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stdout == "" and done.stderr.startswith("squadnb: error: ")
        assert "Traceback" not in done.stderr
    assert cli.json("diff", a)[0]["added"] == 0


def test_an_os_error_is_one_line_not_a_traceback(cli: Cli) -> None:
    done = cli("demo", "--workdir", "/proc/squadnb-no-such/dir")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("squadnb: error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- safe bulk fixes: plans, cutoffs, pacing, the journal (issue 11); fan-out and push (issue 12) ---


def test_dry_run_prints_the_plan_and_changes_nothing(cli: Cli) -> None:
    a, b = cli.started("a", "b")
    cli.ok("pause", b)
    before = snapshot(cli.home, cli.repo, cli.socket)
    plan = cli.json("pause", a, b, "--dry-run")
    assert [(r["instance"], r["operation"], r["would_run"]) for r in plan] == [(a, "Pause", True),
                                                                             (b, "Pause", False)]
    assert plan[0]["reason"] == "" and "paused" in plan[1]["reason"]
    for argv in (("kill", "--all", "--dry-run"), ("resume", "--all", "--dry-run"),
                 ("prompt", "hello", a, "--dry-run"), ("start", "--restart", a, "--dry-run"),
                 ("push", "--all", "--dry-run")):
        done = cli(*argv)
        assert done.returncode == 0, (argv, done.stderr)
        assert "would_run" in done.stdout
    assert snapshot(cli.home, cli.repo, cli.socket) == before
    assert [b["operation"] for b in cli.json("history")] == ["Start", "Pause"]  # no dry run


def test_batches_are_journaled_and_resumed(cli: Cli) -> None:
    a, b = cli.started("a", "b")
    cli.ok("pause", a, b)
    cli.ok("resume", b)
    done = cli("resume", a, b, "--json")  # b is not paused: invalid
    assert done.returncode == 1
    assert [r["status"] for r in json.loads(done.stdout)] == ["succeeded", "invalid"]
    batches = cli.json("history")
    assert [(r["operation"], r["total"], r["succeeded"], r["failed"]) for r in batches] == [
        ("Start", 2, 2, 0), ("Pause", 2, 2, 0), ("Resume", 1, 1, 0), ("Resume", 2, 1, 1)]
    failed_batch = batches[-1]["batch_id"]
    outcomes = cli.json("history", failed_batch)
    assert [(r["batch_id"], r["instance"], r["status"]) for r in outcomes] == [
        (failed_batch, a, "succeeded"), (failed_batch, b, "invalid")]
    assert cli.ok("history").stdout.count("Resume") == 2

    cli.ok("pause", b)
    records = cli.json("resume-batch", failed_batch)  # only b: a's resume already succeeded
    assert [(r["instance"], r["operation"], r["status"]) for r in records] == [(b, "Resume", "succeeded")]
    assert all(i["status"] != 3 for i in cli.state().values())
    assert cli.json("history")[-1]["resumed_from"] == failed_batch
    assert_usage_error(cli("history", "no-such-batch"), "no-such-batch")
    assert_usage_error(cli("resume-batch", "no-such-batch"), "no-such-batch")


def test_max_failures_and_rate(cli: Cli) -> None:
    titles = [cli.t(f"x{i}") for i in range(3)]
    cli.ok("new", *titles, "--program", "squadnb-no-such-program")
    done = cli("start", *titles, "--rate", "2", "--json")
    assert done.returncode == 1
    records = json.loads(done.stdout)
    assert [r["status"] for r in records] == ["failed"] * 3
    starts = sorted(datetime.fromisoformat(r["start_time"]) for r in records)
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(starts, starts[1:])]
    assert all(gap >= 0.45 for gap in gaps), gaps  # at most 2 starts per second

    done = cli("start", *titles, "--concurrency", "1", "--max-failures", "1", "--json")
    assert done.returncode == 1
    records = json.loads(done.stdout)
    assert [r["status"] for r in records] == ["failed", "cancelled", "cancelled"]
    assert [r["attempts"] for r in records] == [1, 0, 0]
    assert "failure cutoff" in records[1]["error"]


def test_fan_out_and_push(cli: Cli, tmp_path: Path) -> None:
    group = cli.t("g")
    done = cli("--program", demo_program(), "fan-out", group, "2", "write it down", "--json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [(r["instance"], r["operation"], r["status"]) for r in records] == [
        (f"{group}-1", "SendPrompt", "succeeded"), (f"{group}-2", "SendPrompt", "succeeded")]
    assert set(cli.state()) == {f"{group}-1", f"{group}-2"}

    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--bare", "--quiet", str(origin)], check=True)
    wait_for(lambda: cli.json("diff", f"{group}-1")[0]["added"], what="the agent's work")
    [record] = cli.json("push", f"{group}-1", "--remote", str(origin))
    assert record["status"] == "succeeded" and re.fullmatch(r"[0-9a-f]{40}", record["value"])
    branch = cli.ls()[f"{group}-1"]["branch"]
    pushed = subprocess.run(["git", "-C", str(origin), "rev-parse", branch], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert pushed == record["value"]
    assert cli("fan-out", group, "0", "x").returncode == 2


def test_doctor_reports_and_repairs(cli: Cli) -> None:
    (a,) = cli.started("a")
    stray = cli.home / "worktrees" / "left-behind"
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("keep me\n")
    done = cli("doctor", "--json")
    assert done.returncode == 1, done.stderr  # a finding is left
    findings = json.loads(done.stdout)
    assert [(f["kind"], f["repaired"]) for f in findings] == [("stray directory", False)]
    assert stray.exists()
    repaired = cli.json("doctor", "--repair")
    assert [(f["kind"], f["repaired"]) for f in repaired] == [("stray directory", True)]
    assert not stray.exists()
    assert [p.read_text() for p in (cli.home / "lost+found").rglob("notes.txt")] == ["keep me\n"]
    assert cli.ok("doctor").stdout.strip() == "no findings"
    assert cli.ls()[a]["alive"]
