"""Extra cost per operation of a Fleet (Dask distributed, loopback) over the same batch run locally.

Two hosts on this machine: a Dask ``LocalCluster`` with two worker processes, each host's Squad in its
own home and on its own tmux server (``Fleet(squads=...)``). The baseline is the same two Squads driven
from this process with the same executor. Cases, 20 instances per host (40 operations per batch):

(a) a no-op operation (one round trip per operation), serial (``max_concurrency=1``: the latency each
    operation pays) and at ``max_concurrency=16`` (throughput);
(b) starting 20 demo agents per host (Start: validate, execute and verify, three round trips), at
    ``max_concurrency=8``; the agents are killed after each run (not timed).

For scale, it also prints Dask's own round trip in the same run: ``client.submit(noop).result()``
one after the other, 40 times (what any remote call costs before squadnb does anything).

Run: ``python benchmarks/fleet_overhead.py``. Prints milliseconds per operation for each path, the
extra cost of the fleet per operation (fleet minus local, batch wall time divided by 40) and the
ratio fleet/local; no-op figures are the best of a few repeats, the starts one run each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from squadnb import BatchExecutor, BatchKillOperation, BatchStartOperation, Operation, Squad
from squadnb.agents import demo_program, scratch_repo
from squadnb.distributed import Fleet

PER_HOST = 20
HOSTS = 2
REPEATS = 3


class Noop(Operation):
    name = "Noop"

    async def execute(self, instance: Any) -> None:
        await asyncio.sleep(0)


def _noop(x: int) -> int:
    return x


def per_op(run: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` runs, in milliseconds per operation."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        assert result is None or result.all_succeeded, result.error()
    return min(times) / (PER_HOST * HOSTS) * 1e3


def main() -> None:
    from distributed import Client, LocalCluster

    root = Path(tempfile.mkdtemp(prefix="squadnb-fleet-bench-"))
    repo = scratch_repo(root / "repo")
    program = demo_program(work_seconds=0.1)
    homes = {host: {"home": str(root / f"host{host}" / "home"), "repo": str(repo),
                    "tmux_socket": f"squadnb-fleet-bench-{os.getpid()}-{host}"} for host in range(HOSTS)}
    local = [Squad(home=Path(kw["home"]) / "local", repo=repo, program=program,
                   tmux_socket=kw["tmux_socket"] + "-local") for kw in homes.values()]
    rows: list[tuple[str, float, float]] = []
    with LocalCluster(n_workers=HOSTS, threads_per_worker=32, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            Fleet(client, repo=repo, program=program, squads=homes) as fleet:
        try:
            for index, host in enumerate(fleet.hosts):
                for i in range(PER_HOST):
                    fleet.new(f"fleet-{host}-{i}", host=host)
                    local[index].new(f"local-{host}-{i}")
            remote_instances = fleet.instances
            local_instances = [inst for squad in local for inst in squad.instances]

            for concurrency in (1, 16):
                executor = BatchExecutor(max_concurrency=concurrency, timeout=60)
                rows.append((f"no-op, concurrency {concurrency}",
                             per_op(lambda: executor.execute(local_instances, Noop(), progress=False),
                                    REPEATS),
                             per_op(lambda: executor.execute(remote_instances, Noop(), progress=False),
                                    REPEATS)))

            dask_ms = per_op(lambda: [client.submit(_noop, i, pure=False).result()
                                      for i in range(PER_HOST * HOSTS)] and None, REPEATS)

            executor = BatchExecutor(max_concurrency=8, timeout=120)
            starts = []
            for instances in (local_instances, remote_instances):
                starts.append(per_op(lambda: executor.execute(instances, BatchStartOperation(),
                                                              progress=False), 1))
                killed = executor.execute(instances, BatchKillOperation(), progress=False)
                assert killed.all_succeeded, killed.error()
            rows.append(("demo-agent start, concurrency 8", *starts))
        finally:
            for kw in homes.values():
                for socket in (kw["tmux_socket"], kw["tmux_socket"] + "-local"):
                    Squad(home=kw["home"], repo=repo, tmux_socket=socket).kill_server()
            shutil.rmtree(root, ignore_errors=True)

    print(f"{PER_HOST} instances on each of {HOSTS} hosts (Dask LocalCluster, loopback); a bare Dask "
          f"round trip (client.submit(noop).result(), serial): {dask_ms:.2f} ms")
    print(f"{'case':<34}{'local ms/op':>12}{'fleet ms/op':>13}{'extra ms/op':>13}{'fleet/local':>13}")
    for case, local_ms, fleet_ms in rows:
        print(f"{case:<34}{local_ms:>12.2f}{fleet_ms:>13.2f}{fleet_ms - local_ms:>13.2f}"
              f"{fleet_ms / local_ms:>13.1f}")


if __name__ == "__main__":
    main()
