"""BatchExecutor: concurrency, timeouts, deadline, cancellation, ordering, interrupts."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Callable

import pytest
from engine_helpers import Item, Peak, Record, Stall, items
from helpers import wait_for

from squadnb import BatchExecutor, Operation, TransactionManager, operation
from squadnb import _loop
from squadnb._loop import get_loop, run_sync
from squadnb.errors import BatchInterrupted, Cancelled, OperationTimeout, ValidationError


@pytest.fixture(scope="module", autouse=True)
def loop_at_start() -> asyncio.AbstractEventLoop:
    """squadnb's loop as this module's first test found it (the last test checks it is still the one)."""
    return get_loop()


# -- construction -------------------------------------------------------------------------------

def test_defaults_are_ten_at_a_time_and_five_minutes() -> None:
    executor = BatchExecutor()
    assert executor.max_concurrency == 10
    assert executor.timeout == 300.0


@pytest.mark.parametrize("given", [0, -3])
def test_max_concurrency_below_one_means_one(given: int) -> None:
    peak = Peak()

    @operation
    async def work(item: Item) -> None:
        with peak:
            await asyncio.sleep(0.01)

    executor = BatchExecutor(max_concurrency=given)
    assert executor.max_concurrency == 1
    assert executor.execute(items(5), work, progress=False).all_succeeded
    assert peak.peak == 1


@pytest.mark.parametrize("bad", [0, -1, 0.0, timedelta(0)])
def test_timeout_must_be_positive(bad: object) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        BatchExecutor(timeout=bad)  # type: ignore[arg-type]
    executor = BatchExecutor()
    with pytest.raises(ValueError, match="timeout must be positive"):
        executor.set_timeout(bad)  # type: ignore[arg-type]
    assert executor.timeout == 300.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_nan_and_infinite_seconds_are_refused_naming_the_parameter(bad: float) -> None:
    with pytest.raises(ValueError, match="^timeout must be a finite number of seconds"):
        BatchExecutor(timeout=bad)
    executor = BatchExecutor()
    with pytest.raises(ValueError, match="^timeout must be a finite number of seconds"):
        executor.set_timeout(bad)
    with pytest.raises(ValueError, match="^timeout must be a finite number of seconds"):
        TransactionManager().set_timeout(bad)
    ran: list[str] = []
    with pytest.raises(ValueError, match="^deadline must be a finite number of seconds"):
        executor.execute([Item("a")], operation(lambda i: ran.append(i.title)), progress=False,
                         deadline=bad)
    assert ran == [] and executor.timeout == 300.0


def test_set_timeout_takes_seconds_timedelta_or_none() -> None:
    executor = BatchExecutor()
    executor.set_timeout(timedelta(minutes=2))
    assert executor.timeout == 120.0
    executor.set_timeout(None)
    assert executor.timeout is None
    executor.set_timeout(1.5)
    assert executor.timeout == 1.5


# -- concurrency --------------------------------------------------------------------------------

def test_async_operations_reach_but_never_pass_the_limit() -> None:
    peak = Peak()
    reached = asyncio.Event()
    limit = 5

    @operation
    async def work(item: Item) -> None:
        with peak:
            if peak.active == limit:
                reached.set()
            # The first `limit` operations wait until all of them run at once.
            await asyncio.wait_for(reached.wait(), 10)

    result = BatchExecutor(max_concurrency=limit).execute(items(23), work, progress=False)
    assert result.all_succeeded, result.error()
    assert peak.peak == limit


def test_sync_operations_run_in_threads_bounded_by_the_same_limit() -> None:
    peak = Peak()
    limit = 6  # above asyncio's default thread pool size on a two-core machine
    barrier = threading.Barrier(limit, timeout=10)
    threads: set[str] = set()

    @operation
    def work(item: Item) -> None:
        threads.add(threading.current_thread().name)
        with peak:
            if int(item.title[1:]) < limit:
                barrier.wait()  # the first `limit` run at the same time, or this times out
            time.sleep(0.001)

    result = BatchExecutor(max_concurrency=limit).execute(items(20), work, progress=False)
    assert result.all_succeeded, result.error()
    assert peak.peak == limit
    assert "squadnb-loop" not in threads and threading.main_thread().name not in threads


def test_plain_validate_runs_on_the_loop_and_async_execute_too() -> None:
    seen: dict[str, str] = {}

    class Where(Operation):
        def validate(self, item: Item) -> None:
            seen["validate"] = threading.current_thread().name

        async def execute(self, item: Item) -> None:
            seen["execute"] = threading.current_thread().name

    assert BatchExecutor().execute([Item("a")], Where(), progress=False).all_succeeded
    assert seen == {"validate": "squadnb-loop", "execute": "squadnb-loop"}


# -- results and ordering -----------------------------------------------------------------------

def test_results_in_input_order_successes_and_failures_in_completion_order() -> None:
    delays = {"a": 0.06, "b": 0.0, "c": 0.03, "d": 0.0}

    @operation
    async def work(item: Item) -> str:
        await asyncio.sleep(delays[item.title])
        if item.title in ("a", "b"):
            raise RuntimeError(item.title)
        return item.title

    batch = [Item(t) for t in "abcd"]
    result = BatchExecutor(max_concurrency=4).execute(batch, work, progress=False)
    assert [r.instance for r in result.results] == batch
    assert [r.instance.title for r in result.successes] == ["d", "c"]
    assert [r.instance.title for r in result.failures] == ["b", "a"]
    assert result.failed_instances() == [batch[1], batch[0]]
    assert [r.value for r in result.successes] == ["d", "c"]
    assert result.total == 4
    assert result.success_rate == 50.0


def test_result_fields_times_and_durations() -> None:
    @operation
    async def work(item: Item) -> int:
        await asyncio.sleep(0.05)
        return 7

    before = time.time()
    result = BatchExecutor().execute([Item("a")], work, progress=False)
    one = result.results[0]
    assert one.success and one.error is None and one.value == 7 and one.attempts == 1
    assert one.status == "succeeded" and not one.rolled_back and not one.skipped
    assert one.start_time.tzinfo is not None and one.start_time.utcoffset() == timedelta(0)
    assert before - 1 < one.start_time.timestamp() <= one.end_time.timestamp() < time.time() + 1
    assert timedelta(seconds=0.05) <= one.duration < timedelta(seconds=10)
    assert result.start_time <= one.start_time and one.end_time <= result.end_time
    assert result.duration >= one.duration


def test_empty_batch() -> None:
    executor = BatchExecutor()
    result = executor.execute([], Record(), progress=False)
    assert result.total == 0 and result.results == [] and result.successes == [] == result.failures
    assert not result.all_succeeded
    assert result.success_rate == 0.0
    assert result.error() is None
    assert executor.last_result is result


def test_any_exception_type_is_that_instances_failure() -> None:
    class Custom(BaseException):
        pass

    errors = {"a": ValueError("v"), "b": SystemExit(3), "c": KeyboardInterrupt(), "d": Custom("x")}

    @operation
    async def work_async(item: Item) -> None:
        if item.title in errors:
            raise errors[item.title]

    @operation
    def work_sync(item: Item) -> None:
        if item.title in errors:
            raise errors[item.title]

    batch = [Item(t) for t in "abcde"]
    for op in (work_async, work_sync):
        result = BatchExecutor().execute(batch, op, progress=False)
        assert {r.instance.title: r.error for r in result.failures} == errors
        assert [r.instance.title for r in result.successes] == ["e"]
        assert all(r.status == "failed" for r in result.failures)


def test_validation_failure_is_wrapped_and_keeps_its_cause() -> None:
    class Picky(Operation):
        name = "Picky"
        ran: list[str] = []

        def validate(self, item: Item) -> None:
            if item.title == "bad":
                raise LookupError("not ready")

        def execute(self, item: Item) -> None:
            self.ran.append(item.title)

    result = BatchExecutor().execute([Item("bad"), Item("good")], Picky(), progress=False)
    failure = result.failures[0]
    assert isinstance(failure.error, ValidationError)
    assert str(failure.error) == "validation failed: not ready"
    assert isinstance(failure.error.__cause__, LookupError)
    assert failure.status == "invalid" and failure.attempts == 0
    assert Picky.ran == ["good"]


def test_async_validate_is_awaited() -> None:
    class Picky(Operation):
        async def validate(self, item: Item) -> None:
            await asyncio.sleep(0)
            raise PermissionError("no")

        async def execute(self, item: Item) -> None:
            raise AssertionError("must not run")

    result = BatchExecutor().execute([Item("a")], Picky(), progress=False)
    assert str(result.results[0].error) == "validation failed: no"


def test_duck_typed_operation() -> None:
    class Duck:
        name = "Quack"

        async def execute(self, item: Item) -> str:
            return "quack"

    result = BatchExecutor().execute([Item("a")], Duck(), progress=False)
    assert result.results[0].value == "quack" and result.all_succeeded


def test_same_instance_twice_raises_before_anything_runs() -> None:
    ran: list[str] = []

    @operation
    def work(item: Item) -> None:
        ran.append(item.title)

    a = Item("a")
    executor = BatchExecutor()
    with pytest.raises(ValueError, match="instance 'a' is listed twice"):
        executor.execute([a, Item("b"), a], work, progress=False)
    assert ran == [] and executor.last_result is None
    # Equal (same hash too) but distinct objects are different instances.
    first, second = EqualByTitle("x"), EqualByTitle("x")
    assert first == second and hash(first) == hash(second) and first is not second
    result = executor.execute([first, second], work, progress=False)
    assert result.all_succeeded and result.total == 2 and ran == ["x", "x"]


class EqualByTitle(Item):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and other.title == self.title

    def __hash__(self) -> int:
        return hash(self.title)


def test_bad_arguments_raise_before_anything_runs() -> None:
    executor = BatchExecutor()
    with pytest.raises(TypeError, match="no callable execute"):
        executor.execute([Item("a")], object(), progress=False)
    with pytest.raises(TypeError, match="iterable of instances"):
        executor.execute("abc", Record(), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="progress must be"):
        executor.execute([Item("a")], Record(), progress="fancy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline must not be negative"):
        executor.execute([Item("a")], Record(), progress=False, deadline=-1)


# -- per-operation timeout ----------------------------------------------------------------------

def test_async_operation_is_cancelled_at_its_timeout() -> None:
    cancelled = threading.Event()

    @operation
    async def slow(item: Item) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    start = time.monotonic()
    result = BatchExecutor(timeout=0.1).execute([Item("a")], slow, progress=False)
    elapsed = time.monotonic() - start
    failure = result.failures[0]
    assert isinstance(failure.error, OperationTimeout) and isinstance(failure.error, TimeoutError)
    assert str(failure.error) == "operation timed out after 0.1s"
    assert failure.status == "timed out" and failure.attempts == 1
    assert cancelled.is_set()
    assert 0.1 <= elapsed < 10


def test_timeout_applies_to_each_operation_not_the_batch() -> None:
    @operation
    async def quick(item: Item) -> None:
        await asyncio.sleep(0.05)

    # 8 operations one at a time take 0.4 s; each stays well under its 0.3 s limit... unless the limit
    # were wrongly counted from the start of the batch.
    result = BatchExecutor(max_concurrency=1, timeout=0.3).execute(items(8), quick, progress=False)
    assert result.all_succeeded, result.error()


def test_timed_out_worker_goes_on_with_the_next_instance() -> None:
    @operation
    async def work(item: Item) -> str:
        if item.title == "i0":
            await asyncio.sleep(30)
        return item.title

    result = BatchExecutor(max_concurrency=1, timeout=0.2).execute(items(3), work, progress=False)
    assert [r.status for r in result.results] == ["timed out", "succeeded", "succeeded"]


def test_a_late_completion_never_turns_a_timeout_into_a_success() -> None:
    @operation
    async def stubborn(item: Item) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"  # swallows the cancel and returns
        return "unreachable"

    @operation
    async def after(item: Item) -> str:
        await asyncio.sleep(0.01)  # a cancel left pending on the worker would hit this
        return "ok"

    executor = BatchExecutor(max_concurrency=1, timeout=0.1)
    result = executor.execute([Item("a")], stubborn, progress=False)
    assert result.results[0].status == "timed out" and result.results[0].value is None
    assert executor.execute([Item("b"), Item("c")], after, progress=False).all_succeeded


def test_blocking_function_is_reported_at_the_timeout_and_left_running() -> None:
    release = threading.Event()
    finished = threading.Event()

    @operation
    def blocking(item: Item) -> str:
        release.wait(30)
        finished.set()
        return "late"

    executor = BatchExecutor(timeout=0.1)
    start = time.monotonic()
    result = executor.execute([Item("a")], blocking, progress=False)
    elapsed = time.monotonic() - start
    assert result.results[0].status == "timed out"
    assert elapsed < 10 and not finished.is_set()  # the executor did not wait for the thread
    release.set()
    assert finished.wait(10)
    # The late return changed nothing.
    assert result.results[0].status == "timed out" and result.results[0].value is None
    assert result.failures == [result.results[0]] and result.successes == []


def test_stuck_threads_do_not_starve_later_batches() -> None:
    release = threading.Event()

    @operation
    def stuck(item: Item) -> None:
        release.wait(30)

    @operation
    def quick(item: Item) -> str:
        return item.title

    executor = BatchExecutor(max_concurrency=4, timeout=0.1)
    try:
        assert executor.execute(items(8), stuck, progress=False).failures
        executor.set_timeout(5)
        assert executor.execute(items(8), quick, progress=False).all_succeeded
    finally:
        release.set()


def test_no_timeout_lets_operations_run() -> None:
    @operation
    async def work(item: Item) -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert BatchExecutor(timeout=None).execute([Item("a")], work, progress=False).all_succeeded


# -- deadline and cancellation ------------------------------------------------------------------

@pytest.mark.parametrize("deadline", [0.2, timedelta(seconds=0.2)], ids=["seconds", "timedelta"])
def test_deadline_cancels_running_and_unstarted(deadline: object) -> None:
    slow = Stall()

    start = time.monotonic()
    result = BatchExecutor(max_concurrency=2).execute(items(5), slow, progress=False,
                                                       deadline=deadline)  # type: ignore[arg-type]
    assert time.monotonic() - start < 10
    assert slow.titles == ["i0", "i1"]  # nothing new started after the deadline
    assert all(isinstance(r.error, Cancelled) and r.status == "cancelled" for r in result.results)
    assert [r.attempts for r in result.results] == [1, 1, 0, 0, 0]
    assert str(result.results[0].error) == "cancelled while running (batch deadline passed)"
    assert str(result.results[4].error) == "cancelled before it started (batch deadline passed)"
    assert len(result.failures) == 5


def test_zero_deadline_runs_nothing() -> None:
    ran: list[str] = []

    @operation
    def work(item: Item) -> None:
        ran.append(item.title)

    result = BatchExecutor().execute(items(3), work, progress=False, deadline=0)
    assert ran == [] and [r.status for r in result.results] == ["cancelled"] * 3


def test_deadline_stops_a_blocking_function_and_does_not_wait_for_it() -> None:
    release = threading.Event()

    @operation
    def blocking(item: Item) -> None:
        release.wait(30)

    try:
        start = time.monotonic()
        result = BatchExecutor(timeout=None).execute([Item("a")], blocking, progress=False,
                                                     deadline=0.1)
        assert time.monotonic() - start < 10
        assert result.results[0].status == "cancelled"
    finally:
        release.set()


@pytest.mark.parametrize("delay", [0, 0.1], ids=["instant", "delayed"])
def test_submit_then_cancel(delay: float) -> None:
    gate = threading.Event()
    slow = Stall()
    started = slow.started

    executor = BatchExecutor(max_concurrency=2)
    future = executor.submit(items(5), slow)
    if delay:
        assert started.wait(10)
        time.sleep(delay)  # let them run a while; nothing is polled here
    done_in: list[str] = []
    future.add_done_callback(lambda f: (done_in.append(threading.current_thread().name), gate.set()))
    assert future.cancel() is True
    result = future.result(timeout=10)
    assert future.done() and future.cancelled()
    assert gate.wait(10) and done_in == ["squadnb-loop"]
    assert len(result.results) == 5 and result.successes == []
    assert all(r.status == "cancelled" for r in result.results)
    expected_started = 2 if delay else None
    if expected_started:
        assert [r.attempts for r in result.results] == [1, 1, 0, 0, 0]
    assert executor.last_result is result
    assert future.cancel() is False  # already done


def test_submit_returns_at_once_and_result_waits() -> None:
    release = threading.Event()

    @operation
    def work(item: Item) -> str:
        release.wait(10)
        return item.title

    future = BatchExecutor().submit(items(3), work)
    assert not future.done()
    release.set()
    result = future.result(timeout=10)
    assert result.all_succeeded and [r.value for r in result.results] == ["i0", "i1", "i2"]
    called = threading.Event()
    future.add_done_callback(lambda f: called.set())  # added after completion: still called
    assert called.wait(10)


def test_cancel_during_retry_delay_is_prompt() -> None:
    from squadnb import RetryOperation

    @operation
    async def failing(item: Item) -> None:
        raise RuntimeError("no")

    start = time.monotonic()
    result = BatchExecutor().execute([Item("a")], RetryOperation(failing, max_retries=5, delay=30),
                                     progress=False, deadline=0.2)
    assert time.monotonic() - start < 10
    assert result.results[0].status == "cancelled" and result.results[0].attempts == 1


# -- async twin and the loop ----------------------------------------------------------------------

def test_aexecute_from_another_event_loop() -> None:
    @operation
    async def where(item: Item) -> str:
        return threading.current_thread().name

    async def main() -> object:
        return await BatchExecutor().aexecute(items(3), where, progress=False)

    result = asyncio.run(main())
    assert [r.value for r in result.results] == ["squadnb-loop"] * 3  # type: ignore[attr-defined]


def test_sync_execute_works_while_another_loop_runs_in_this_thread() -> None:
    """A Jupyter cell: synchronous code while the kernel's loop is running in the same thread."""

    async def cell() -> object:
        return BatchExecutor().execute(items(3), Record(), progress=False)

    assert asyncio.run(cell()).all_succeeded  # type: ignore[attr-defined]


def test_aexecute_on_squadnb_loop_and_sync_execute_refused_there() -> None:
    async def inside() -> tuple[object, str]:
        result = await BatchExecutor().aexecute(items(2), Record(), progress=False)
        try:
            BatchExecutor().execute(items(2), Record(), progress=False)
        except RuntimeError as exc:
            return result, str(exc)
        return result, ""

    result, message = run_sync(inside())
    assert result.all_succeeded  # type: ignore[attr-defined]
    assert "would deadlock" in message


def test_cancelling_aexecute_cancels_the_batch_and_keeps_last_result() -> None:
    slow = Stall()
    started = slow.started

    executor = BatchExecutor(max_concurrency=1)

    async def main() -> None:
        task = asyncio.ensure_future(executor.aexecute(items(3), slow, progress=False))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    wait_for(lambda: executor.last_result is not None, 10, "the cancelled batch's result")
    assert [r.status for r in executor.last_result.results] == ["cancelled"] * 3  # type: ignore


# -- Ctrl-C ---------------------------------------------------------------------------------------

def wait_until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """helpers.wait_for for a helper thread, where pytest.fail would go unseen: returns False at the
    deadline instead (the test then fails on its own assertions)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def main_thread_blocked() -> bool:
    """The main thread sits in a Condition.wait (the blocking result() of the batch's future)."""
    frame = sys._current_frames().get(threading.main_thread().ident)  # type: ignore[arg-type]
    return frame is not None and frame.f_code.co_name == "wait" and \
        frame.f_code.co_filename == threading.__file__


def test_ctrl_c_cancels_the_batch_and_raises_batch_interrupted() -> None:
    slow = Stall()
    started = slow.started

    sent: list[bool] = []

    def interrupt_when_started() -> None:
        # A real SIGINT (what a kernel interrupt sends), once the main thread blocks on the batch.
        if started.wait(30) and wait_until(main_thread_blocked, 30):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
            sent.append(True)

    # An interrupt held back by a mask some earlier code left behind would never arrive.
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    executor = BatchExecutor(max_concurrency=2)
    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(BatchInterrupted) as caught:
        # The deadline only keeps a lost interrupt from hanging the run: it fails below instead.
        executor.execute(items(5), slow, progress=False, deadline=90)
    assert sent == [True]
    result = caught.value.result
    assert isinstance(caught.value, KeyboardInterrupt) and not isinstance(caught.value, Exception)
    assert executor.last_result is result
    assert len(result.results) == 5 and all(r.status == "cancelled" for r in result.results)
    assert [r.attempts for r in result.results] == [1, 1, 0, 0, 0]


def test_ctrl_c_while_waiting_is_turned_into_batch_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through a patched wait: the first wait is interrupted, the batch then settles."""
    import concurrent.futures

    real = concurrent.futures.wait
    calls = []

    def interrupted_once(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("timeout"))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    slow = Stall()

    monkeypatch.setattr(concurrent.futures, "wait", interrupted_once)
    with pytest.raises(BatchInterrupted) as caught:
        BatchExecutor().execute(items(3), slow, progress=False)
    monkeypatch.undo()
    assert [r.status for r in caught.value.result.results] == ["cancelled"] * 3
    assert calls[0] is not None  # the sync call waits in slices, so a Ctrl-C is seen promptly


@pytest.mark.parametrize("transaction", [False, True], ids=["execute", "execute_with_rollback"])
def test_ctrl_c_while_the_batch_is_handed_to_the_loop_still_cancels_it(
        monkeypatch: pytest.MonkeyPatch, transaction: bool) -> None:
    """A SIGINT that lands after the bar is drawn but before the caller waits is held, then delivered
    where it cancels the batch: never a bare KeyboardInterrupt with the batch left running."""
    import squadnb.engine.executor as executor_module

    real_make_bar = executor_module.make_bar

    def make_bar_then_interrupt(*args: object) -> object:
        bar = real_make_bar(*args)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        return bar

    slow = Stall()

    monkeypatch.setattr(executor_module, "make_bar", make_bar_then_interrupt)
    executor = BatchExecutor(max_concurrency=2)
    run = executor.execute_with_rollback if transaction else executor.execute
    with pytest.raises(BatchInterrupted) as caught:
        run(items(3), slow, progress=False)
    monkeypatch.undo()
    assert [r.status for r in caught.value.result.results] == ["cancelled"] * 3
    assert executor.last_result is caught.value.result


def test_run_sync_waits_in_slices_and_still_honours_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    real = concurrent.futures.wait
    timeouts: list[float] = []

    def spy(*args: object, **kwargs: object) -> object:
        timeouts.append(kwargs["timeout"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent.futures, "wait", spy)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        run_sync(asyncio.sleep(30), timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 10
    assert len(timeouts) >= 2 and max(timeouts) <= _loop.INTERRUPT_CHECK  # a Ctrl-C is seen promptly
    assert run_sync(asyncio.sleep(0, "done")) == "done"


def test_loop_survives_everything_above(loop_at_start: asyncio.AbstractEventLoop) -> None:
    # Read the module's globals: get_loop() would start a new loop if the first one had died.
    assert _loop._loop is loop_at_start and loop_at_start.is_running()
    assert _loop._thread is not None and _loop._thread.is_alive()

