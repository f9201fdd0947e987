"""Per-operation overhead of the engine: 10,000 no-op operations at concurrency 64.

(a) BatchExecutor, async no-op   (b) BatchExecutor, sync no-op (worker threads)
(c) concurrent.futures.ThreadPoolExecutor(64).map over the same no-op
(d) bare asyncio.gather under a Semaphore(64)

Run: ``python benchmarks/engine_overhead.py``. Prints microseconds per operation and the ratios
(a)/(c) and (a)/(d); the target is (a)/(c) <= 1.0 (the whole engine — results, timeouts, validation,
progress off — costs no more per operation than a bare thread pool). Each figure is the best of a few
repeats, measured in one process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, Callable

from squadnb import BatchExecutor, Operation

N = 10_000
CONCURRENCY = 64
REPEATS = 5


class Item:
    __slots__ = ("title",)

    def __init__(self, title: str) -> None:
        self.title = title


def noop(instance: Any) -> None:
    return None


class AsyncNoop(Operation):
    name = "AsyncNoop"

    async def execute(self, instance: Any) -> None:
        return None


class SyncNoop(Operation):
    name = "SyncNoop"

    def execute(self, instance: Any) -> None:
        return None


def best(fn: Callable[[], Any]) -> float:
    """Best wall time of REPEATS runs, in microseconds per operation."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / N * 1e6


def main() -> None:
    items = [Item(f"i{k}") for k in range(N)]
    executor = BatchExecutor(max_concurrency=CONCURRENCY)  # default 300 s timeout stays on

    def engine(op: Operation) -> Callable[[], Any]:
        def run() -> None:
            result = executor.execute(items, op, progress=False)
            assert len(result.successes) == N, result
        return run

    def thread_pool() -> None:
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            assert len(list(pool.map(noop, items))) == N

    async def gathered() -> None:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(item: Item) -> None:
            async with semaphore:
                await AsyncNoop().execute(item)

        await asyncio.gather(*(one(item) for item in items))

    a = best(engine(AsyncNoop()))
    b = best(engine(SyncNoop()))
    c = best(thread_pool)
    d = best(lambda: asyncio.run(gathered()))
    print(f"{N} no-op operations at concurrency {CONCURRENCY} (best of {REPEATS}):")
    print(f"  (a) BatchExecutor, async op        {a:8.2f} us/op")
    print(f"  (b) BatchExecutor, sync op         {b:8.2f} us/op")
    print(f"  (c) ThreadPoolExecutor(64).map     {c:8.2f} us/op")
    print(f"  (d) asyncio.gather + Semaphore     {d:8.2f} us/op")
    print(f"  (a)/(c) = {a / c:.2f}   (target <= 1.0)")
    print(f"  (a)/(d) = {a / d:.2f}")


if __name__ == "__main__":
    main()
