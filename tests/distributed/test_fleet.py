"""Fleet: batches over the squads of two real Dask workers (two hosts on one machine), with demo agents
on real tmux servers, operations defined in this module, timeouts that must stop the remote operation,
and a worker killed mid-batch."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers import tmux_sessions, wait_for

from squadnb import (BatchExecutor, BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                     BatchResumeOperation, BatchStartOperation, ConditionalOperation, Operation,
                     OperationChain, RetryOperation)
from squadnb.agents import demo_program
from squadnb.distributed import Fleet, RemoteInstance
from squadnb.errors import (DuplicateTitle, HostLost, OperationTimeout, RolledBack, UnknownInstance,
                            ValidationError)
from squadnb.session import Status


# ------------------------------------------------------------------ operations defined here: they
# travel to the hosts by value (this module is not importable there)
class HostSideError(Exception):
    """An error whose __init__ takes more than the message (plain pickling could not rebuild it)."""

    def __init__(self, message: str, title: str, calls: int) -> None:
        super().__init__(message)
        self.title = title
        self.calls = calls


class WhereAmI(Operation):
    """Returns where it ran; refuses titles ending in 'refused'."""

    def validate(self, instance: Any) -> None:
        if instance.title.endswith("refused"):
            raise HostSideError(f"{instance.title} is refused", instance.title, 0)

    async def execute(self, instance: Any) -> tuple[str, str, int]:
        return os.environ["SQUADNB_TMUX_SOCKET"], type(instance).__name__, os.getpid()


class FailTwice(Operation):
    """Fails on its first two calls (on one host object), then returns how many calls it took."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, instance: Any) -> int:  # plain: runs in a worker thread on the host
        self.calls += 1
        if self.calls < 3:
            raise HostSideError("not yet", instance.title, self.calls)
        return self.calls


class SlowWrite(Operation):
    """Writes '<title>.started', sleeps, then writes '<title>.written'; a cancel leaves
    '<title>.cancelled' instead."""

    def __init__(self, where: Path, seconds: float) -> None:
        self.where = str(where)
        self.seconds = seconds

    async def execute(self, instance: Any) -> None:
        where = Path(self.where)
        (where / f"{instance.title}.started").write_text(repr(time.time()))
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            (where / f"{instance.title}.cancelled").touch()
            raise
        (where / f"{instance.title}.written").touch()


class Interval(Operation):
    """Returns the (monotonic) start and end of a short piece of work on the host."""

    async def execute(self, instance: Any) -> tuple[float, float]:
        start = time.monotonic()
        await asyncio.sleep(0.3)
        return start, time.monotonic()


class Rollbackable(Operation):
    """Touches '<title>.done' (fails on titles ending in 'bad'); rollback touches '<title>.undone'."""

    def __init__(self, where: Path) -> None:
        self.where = str(where)

    async def execute(self, instance: Any) -> None:
        if instance.title.endswith("bad"):
            raise RuntimeError(f"{instance.title} cannot")
        Path(self.where, f"{instance.title}.done").touch()

    async def rollback(self, instance: Any) -> None:
        Path(self.where, f"{instance.title}.undone").write_text(os.environ["SQUADNB_TMUX_SOCKET"])


class BlockOnW3(Operation):
    """Blocks (marking '<title>.started') on host w3; returns at once elsewhere."""

    def __init__(self, where: Path) -> None:
        self.where = str(where)

    async def execute(self, instance: Any) -> str:
        if os.environ["SQUADNB_TMUX_SOCKET"].endswith("-w3"):
            Path(self.where, f"{instance.title}.started").touch()
            await asyncio.sleep(600)
        return "done"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def fleet(cluster: Any) -> Iterator[Fleet]:
    with Fleet(cluster.client, repo=cluster.repo, program=demo_program(work_seconds=0.1)) as made:
        yield made


def _new(fleet: Fleet, prefix: str, hosts: list[str]) -> list[RemoteInstance]:
    return [fleet.new(f"{prefix}-{i}", host=host) for i, host in enumerate(hosts)]


# ------------------------------------------------------------------ tests
def test_hosts_new_and_the_table(fleet: Fleet, cluster: Any) -> None:
    assert fleet.hosts == ["w1", "w2"]
    made = _new(fleet, "table", ["w1", "w2"])
    assert [(p.title, p.host, p.status) for p in made] == [
        ("table-0", "w1", Status.NEW), ("table-1", "w2", Status.NEW)]
    # each host keeps its instances in its own home (the worker's SQUADNB_HOME)
    assert "table-0" in (cluster.home("w1") / "pending.json").read_text()
    assert "table-1" in (cluster.home("w2") / "pending.json").read_text()
    assert "table-0" not in (cluster.home("w2") / "pending.json").read_text()
    assert fleet["table-1"] is made[1]
    assert [p for p in fleet.instances if p.title.startswith("table-")] == made
    with pytest.raises(DuplicateTitle, match="'table-0' already exists on host 'w1'"):
        fleet.new("table-0", host="w2")
    with pytest.raises(ValueError, match="unknown host 'nowhere'"):
        fleet.new("table-x", host="nowhere")
    with pytest.raises(UnknownInstance):
        fleet["no-such-title"]
    table = fleet.to_dataframe()
    assert list(table.columns[:2]) == ["title", "host"]
    rows = table[table["title"].str.startswith("table-")]
    assert list(zip(rows["title"], rows["host"], rows["status"])) == [
        ("table-0", "w1", "new"), ("table-1", "w2", "new")]


def test_lifecycle_across_both_hosts(fleet: Fleet, cluster: Any) -> None:
    made = _new(fleet, "life", ["w1", "w2", "w1", "w2"])
    executor = BatchExecutor(max_concurrency=4, timeout=120)
    try:
        started = executor.execute(made, BatchStartOperation(), progress=False)
        assert started.all_succeeded, started.error()
        frame = started.to_dataframe()
        assert list(frame["instance"]) == ["life-0", "life-1", "life-2", "life-3"]
        assert list(frame["host"]) == ["w1", "w2", "w1", "w2"]
        assert frame["verified"].tolist() == [True] * 4  # Start's verify ran on each host
        # real sessions, each on its own host's tmux server; the proxies show the new state
        assert {made[0].session_name, made[2].session_name} <= tmux_sessions(cluster.socket("w1"))
        assert {made[1].session_name, made[3].session_name} <= tmux_sessions(cluster.socket("w2"))
        assert made[1].session_name not in tmux_sessions(cluster.socket("w1"))
        assert all(p.started and not p.paused and Path(p.worktree_path).is_dir() for p in made)

        prompted = executor.execute(made, BatchPromptOperation("write the fleet notes"), progress=False)
        assert prompted.all_succeeded, prompted.error()
        wait_for(lambda: all(list(Path(p.worktree_path, "demo-output").glob("*.txt")) for p in made),
                 60, "each host's agent to write its file")
        assert "write the fleet notes" in made[1].preview()  # a method of the instance, run on w2

        chain = OperationChain().add(BatchPauseOperation()).add(BatchResumeOperation())
        paused, resumed = chain.execute(made, executor)
        assert paused.all_succeeded and resumed.all_succeeded, (paused.error(), resumed.error())
        assert all(p.status not in (Status.PAUSED, Status.NEW) for p in made)

        fleet.refresh()
        table = fleet.to_dataframe().set_index("title")
        assert [table.loc[p.title, "host"] for p in made] == ["w1", "w2", "w1", "w2"]
        assert all(table.loc[p.title, "alive"] for p in made)
    finally:
        killed = executor.execute(made, BatchKillOperation(), progress=False)
    assert killed.all_succeeded, killed.error()
    for socket, proxies in ((cluster.socket("w1"), made[0::2]), (cluster.socket("w2"), made[1::2])):
        assert not {p.session_name for p in proxies} & tmux_sessions(socket)
    assert not any(p.title.startswith("life-") for p in fleet.instances)


def test_operation_class_from_this_module_runs_on_each_host(fleet: Fleet, cluster: Any) -> None:
    made = _new(fleet, "where", ["w1", "w2"]) + [fleet.new("where-refused", host="w2")]
    result = BatchExecutor(max_concurrency=3).execute(made, WhereAmI(), progress=False)
    frame = result.to_dataframe()
    assert list(frame["status"]) == ["succeeded", "succeeded", "invalid"]
    (socket0, kind0, pid0), (socket1, kind1, pid1) = frame["value"][:2]
    assert (socket0, socket1) == (cluster.socket("w1"), cluster.socket("w2"))
    assert kind0 == kind1 == "Instance"  # the host's own Instance, not the proxy
    assert pid0 == cluster.processes["w1"].pid and pid1 == cluster.processes["w2"].pid
    plan = BatchExecutor().plan(made, WhereAmI())  # validate only, on each host
    assert plan["would_run"].tolist() == [True, True, False]
    assert plan["reason"][2] == "validation failed: where-refused is refused"
    refused = result.results[2].error
    assert isinstance(refused, ValidationError)
    cause = refused.__cause__
    assert isinstance(cause, HostSideError)  # the very class of this module, rebuilt with its fields
    assert (str(cause), cause.title) == ("where-refused is refused", "where-refused")
    assert any("raised on host 'w2'" in note for note in cause.__notes__)

    retried = BatchExecutor().execute(made[:2], RetryOperation(FailTwice(), delay=0), progress=False)
    assert retried.all_succeeded, retried.error()
    assert [r.attempts for r in retried.results] == [3, 3]  # counted on the host
    assert [r.value for r in retried.results] == [3, 3]

    only_w2 = ConditionalOperation(WhereAmI(), lambda inst: inst.squad.tmux.socket.endswith("-w2"))
    conditional = BatchExecutor().execute(made[:2], only_w2, progress=False)
    assert [r.status for r in conditional.results] == ["skipped", "succeeded"]


def test_transaction_rolls_back_on_each_host(fleet: Fleet, tmp_path: Path) -> None:
    made = _new(fleet, "tx", ["w1", "w2"]) + [fleet.new("tx-bad", host="w1")]
    with pytest.raises(RolledBack) as caught:
        BatchExecutor().execute_with_rollback(made, Rollbackable(tmp_path), progress=False)
    assert [r.status for r in caught.value.result.results] == ["rolled back", "rolled back", "failed"]
    undone = {p.name: p.read_text() for p in tmp_path.glob("*.undone")}
    assert set(undone) == {"tx-0.undone", "tx-1.undone"}
    assert undone["tx-0.undone"].endswith("-w1") and undone["tx-1.undone"].endswith("-w2")


@pytest.mark.parametrize("limit", ["timeout", "deadline"])
def test_a_cut_short_operation_is_stopped_on_its_host(fleet: Fleet, tmp_path: Path,
                                                      limit: str) -> None:
    made = _new(fleet, f"slow-{limit}", ["w1", "w2"])
    seconds = 2.0
    if limit == "timeout":
        result = BatchExecutor(timeout=0.5).execute(made, SlowWrite(tmp_path, seconds), progress=False)
        assert [r.status for r in result.results] == ["timed out", "timed out"]
        assert all(isinstance(r.error, OperationTimeout) for r in result.results)
    else:  # no timeout on the host: only the cancel sent to it can stop the operation there
        result = BatchExecutor(timeout=None).execute(made, SlowWrite(tmp_path, seconds),
                                                     progress=False, deadline=0.5)
        assert [r.status for r in result.results] == ["cancelled", "cancelled"]
    for proxy in made:
        wait_for(lambda: (tmp_path / f"{proxy.title}.cancelled").exists(), 30,
                 f"the operation on {proxy.host} to be cancelled there")
    started = max(float((tmp_path / f"{p.title}.started").read_text()) for p in made)
    time.sleep(max(0.0, started + seconds + 0.5 - time.time()))  # past the time it would have written
    assert not list(tmp_path.glob("*.written"))


def test_per_host_limit(cluster: Any) -> None:
    with Fleet(cluster.client, repo=cluster.repo, per_host=1) as limited:
        made = _new(limited, "limit", ["w1", "w2", "w1", "w2", "w1", "w2"])
        result = BatchExecutor(max_concurrency=6).execute(made, Interval(), progress=False)
    assert result.all_succeeded, result.error()
    for host in ("w1", "w2"):
        spans = sorted(r.value for r in result.results if r.instance.host == host)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans


def test_proxies_pickle_and_find_their_fleet_again(fleet: Fleet) -> None:
    proxy = fleet.new("pickled", host="w2")
    copy = pickle.loads(pickle.dumps(proxy))
    assert (copy.title, copy.host, copy.status) == ("pickled", "w2", Status.NEW)
    result = BatchExecutor().execute([copy], WhereAmI(), progress=False)
    assert result.all_succeeded, result.error()
    assert "host" in result.to_dataframe().columns


def test_import_squadnb_stays_light_and_missing_dask_names_the_extra() -> None:
    code = ("import sys, squadnb, squadnb.distributed; "
            "print(sorted(m for m in ('distributed', 'dask') if m in sys.modules)); "
            "sys.modules['distributed'] = None\n"
            "try:\n    squadnb.Fleet('tcp://127.0.0.1:1')\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "[]", "squadnb's Fleet needs Dask distributed: pip install 'squadnb[distributed]'"]


def test_the_command_runs_its_batches_over_the_fleet(cluster: Any, tmp_path: Path) -> None:
    def squadnb_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "squadnb", "--scheduler", cluster.address,
                               "--repo", str(cluster.repo), "--program", demo_program(0.1),
                               "--home", str(tmp_path / "client-home"), *args],
                              capture_output=True, text=True, timeout=100)

    made = squadnb_cli("new", "cli-1", "cli-2", "--csv")
    assert made.returncode == 0, made.stderr
    hosts = {line.split(",")[0]: line.split(",")[1] for line in made.stdout.splitlines()[1:]}
    assert made.stdout.splitlines()[0].startswith("title,host,")
    assert set(hosts) == {"cli-1", "cli-2"} and set(hosts.values()) <= {"w1", "w2"}
    started = squadnb_cli("start", "cli-1", "cli-2", "--csv")
    assert started.returncode == 0, started.stderr
    assert "host" in started.stdout.splitlines()[0].split(",")
    for title, host in hosts.items():
        assert f"squadnb_{title}" in tmux_sessions(cluster.socket(host))
    killed = squadnb_cli("kill", "cli-1", "cli-2", "--force")
    assert killed.returncode == 0, killed.stderr
    refused = squadnb_cli("doctor")
    assert refused.returncode == 2 and "does not take --scheduler" in refused.stderr
    history = squadnb_cli("history", "--csv")  # the batches are journaled in this machine's home
    assert [line.split(",")[1] for line in history.stdout.splitlines()[1:]] == ["Start", "Kill"]


def test_a_worker_killed_mid_batch_fails_only_its_instances(fleet: Fleet, cluster: Any,
                                                            tmp_path: Path) -> None:
    cluster.start_worker("w3")
    victims = _new(fleet, "victim", ["w3", "w3", "w3"])
    bystanders = _new(fleet, "bystander", ["w1", "w2"])
    # two at a time: the bystanders finish, two victims block on w3, the third waits for a slot
    executor = BatchExecutor(max_concurrency=2, timeout=None)
    future = executor.submit(bystanders + victims, BlockOnW3(tmp_path))
    wait_for(lambda: len(list(tmp_path.glob("victim-*.started"))) == 2, 60,
             "two operations to be running on w3")
    cluster.kill("w3")
    result = future.result(timeout=120)
    assert [r.status for r in result.results] == ["succeeded"] * 2 + ["failed"] * 3
    assert [r.value for r in result.results[:2]] == ["done", "done"]
    for lost in result.results[2:]:
        assert isinstance(lost.error, HostLost) and lost.error.host == "w3"
        assert "host 'w3'" in str(lost.error) and lost.instance.title in str(lost.error)
    assert sorted(r.attempts for r in result.results[2:]) == [0, 1, 1]  # one never started
    assert list(result.to_dataframe()["error_type"][2:]) == ["HostLost"] * 3
    # the other hosts go on as before
    again = BatchExecutor().execute(bystanders, WhereAmI(), progress=False)
    assert again.all_succeeded, again.error()
    assert not any(p.host == "w3" for p in fleet.instances)
    assert fleet.hosts == ["w1", "w2"]
    with pytest.raises(HostLost, match="no Dask worker named 'w3'"):
        victims[0].refresh_status()
