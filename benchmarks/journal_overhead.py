"""What a journal costs per operation: 10,000 no-op operations with and without ``journal=``.

(a) BatchExecutor, async no-op, no journal (the baseline, measured in the same run)
(b) the same with a Journal in a temporary directory: every outcome one committed row
(c) as (b) at concurrency 1, where no two outcomes share a commit (the worst case)

Run: ``python benchmarks/journal_overhead.py``. Prints microseconds per operation, as wall-clock time
and as CPU time of the whole process (every thread; what the journal costs the machine, and the
figure that stays put when other work shares the cores), the differences (b) - (a) and (c) - (a) and
the ratio (b)/(a); the target is (b) - (a) <= 50 us per operation. Each figure is the best of a few
repeats, measured in one process; the journal is a fresh file per run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from squadnb import BatchExecutor, Journal, Operation

N = 10_000
CONCURRENCY = 64
SERIAL_N = 2_000  # concurrency 1 is slower per operation: fewer of them keep the run short
REPEATS = 3


class Item:
    __slots__ = ("title",)

    def __init__(self, title: str) -> None:
        self.title = title


class AsyncNoop(Operation):
    name = "AsyncNoop"

    async def execute(self, instance: Any) -> None:
        return None


def best(fn: Callable[[int], None], n: int) -> tuple[float, float]:
    """Best wall time and best CPU time of REPEATS runs of ``fn(run_number)``, in microseconds per
    operation."""
    wall, cpu = [], []
    for k in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(k)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall) / n * 1e6, min(cpu) / n * 1e6


def main() -> None:
    op = AsyncNoop()
    with tempfile.TemporaryDirectory() as scratch:
        def batch(n: int, concurrency: int, journaled: bool) -> Callable[[int], None]:
            items = [Item(f"i{k}") for k in range(n)]
            executor = BatchExecutor(max_concurrency=concurrency)

            def run(k: int) -> None:
                if journaled:
                    with Journal(Path(scratch) / f"j{concurrency}-{k}.sqlite") as journal:
                        result = executor.execute(items, op, progress=False, journal=journal)
                else:
                    result = executor.execute(items, op, progress=False)
                assert len(result.successes) == n, result
            return run

        a, a_cpu = best(batch(N, CONCURRENCY, False), N)
        b, b_cpu = best(batch(N, CONCURRENCY, True), N)
        s, s_cpu = best(batch(SERIAL_N, 1, False), SERIAL_N)
        c, c_cpu = best(batch(SERIAL_N, 1, True), SERIAL_N)
    print(f"{N} no-op operations at concurrency {CONCURRENCY} (best of {REPEATS}), us/op: wall / CPU")
    print(f"  (a) no journal          {a:8.2f} / {a_cpu:8.2f}")
    print(f"  (b) with a journal      {b:8.2f} / {b_cpu:8.2f}")
    print(f"  (b) - (a)               {b - a:8.2f} / {b_cpu - a_cpu:8.2f}   (target <= 50)")
    print(f"  (b)/(a)                 {b / a:8.2f} / {b_cpu / a_cpu:8.2f}")
    print(f"{SERIAL_N} no-op operations at concurrency 1 (every outcome its own commit), us/op:")
    print(f"  no journal              {s:8.2f} / {s_cpu:8.2f}")
    print(f"  (c) with a journal      {c:8.2f} / {c_cpu:8.2f}")
    print(f"  (c) - no journal        {c - s:8.2f} / {c_cpu - s_cpu:8.2f}")


if __name__ == "__main__":
    main()
