"""A real Dask cluster for the fleet tests: one ``dask scheduler`` and two ``dask worker`` processes
(``w1``, ``w2``) on loopback, each worker with its own ``SQUADNB_HOME`` and ``SQUADNB_TMUX_SOCKET`` (named
after the test run's socket, so the session teardown kills their tmux servers too), shared by the
module; a test may start more workers (``cluster.start_worker``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import distributed
import pytest
from helpers import wait_for

from squadnb.agents import scratch_repo

#: a generous bound: starting Python processes that import distributed is slow on a busy machine
START_TIMEOUT = 120.0


class Cluster:
    """The scheduler and worker processes of one test module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_socket = os.environ["SQUADNB_TMUX_SOCKET"]  # the test run's (tests/conftest.py)
        self.client: distributed.Client | None = None
        self.repo = scratch_repo(root / "repo", files=2)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        scheduler_file = root / "scheduler.json"
        self.scheduler_file = scheduler_file
        self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(scheduler_file)], {})
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size,
                 START_TIMEOUT, "the dask scheduler's file")
        self.address: str = wait_for(lambda: _address(scheduler_file), START_TIMEOUT,
                                     "the scheduler's address")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "dask", *args],
                                                env={**os.environ, **env}, stdout=log,
                                                stderr=subprocess.STDOUT)
        log.close()

    def home(self, name: str) -> Path:
        return self.root / name / "home"

    def socket(self, name: str) -> str:
        return f"{self.run_socket}-{name}"

    def start_worker(self, name: str) -> None:
        """Start ``dask worker --name <name>`` (no nanny: killing it kills the host) and wait until the
        scheduler lists it."""
        self._spawn(name, ["worker", "--scheduler-file", str(self.scheduler_file), "--name", name,
                           "--nthreads", "8", "--no-nanny", "--no-dashboard"],
                    {"SQUADNB_HOME": str(self.home(name)), "SQUADNB_TMUX_SOCKET": self.socket(name)})
        wait_for(lambda: name in self.worker_names(), START_TIMEOUT, f"worker {name} to register")

    def worker_names(self) -> set[str]:
        if self.client is None:
            self.client = distributed.Client(self.address, set_as_default=False)
        # a lambda travels by value: the scheduler cannot import this conftest
        return set(self.client.run_on_scheduler(
            lambda dask_scheduler: [str(w.name) for w in dask_scheduler.workers.values()]))

    def kill(self, name: str) -> None:
        """SIGKILL the worker process ``name`` (its tmux server lives on, as on a real host)."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop(self) -> None:
        """Shut the scheduler and its workers down (SIGKILL what is still running 30 s later) and kill
        the workers' tmux servers."""
        if self.client is not None:
            with contextlib.suppress(Exception):  # best effort: the processes are waited for below
                self.client.shutdown()
        for name, process in self.processes.items():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
            if name != "scheduler":
                subprocess.run(["tmux", "-L", self.socket(name), "kill-server"], capture_output=True)


def _address(scheduler_file: Path) -> str | None:
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (ValueError, KeyError):
        return None  # still being written


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        for name in ("w1", "w2"):
            made.start_worker(name)
        yield made
    finally:
        made.stop()
