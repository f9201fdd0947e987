"""The record of a transition in flight (``transitions.json``) is written off the loop thread: the
write waits for the home's lock, which the state writer holds while it replaces a ``state.json`` of
every instance, and squadnb's loop serves every other call in flight meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from helpers import lock_held

from squadnb._loop import run_sync
from squadnb.session import Squad, Status
from squadnb.session._intents import Intents


def test_the_loop_serves_other_calls_while_a_record_waits_for_the_homes_lock(squad: Squad) -> None:
    inst = squad.new("recorded")
    inst.start()

    async def main(release: threading.Event) -> float:
        pausing = asyncio.ensure_future(inst.apause())
        begun = time.monotonic()
        longest = 0.0
        for _ in range(20):  # 0.4 s of ticks while the pause waits for the lock
            tick = time.monotonic()
            await asyncio.sleep(0.02)
            longest = max(longest, time.monotonic() - tick)
        assert time.monotonic() - begun < 2.0
        release.set()
        await pausing
        return longest

    with lock_held(squad._store) as release:
        longest = run_sync(main(release))
    assert longest < 0.2  # the loop thread never waited for the lock
    assert inst.status is Status.PAUSED
    assert Intents(squad._store).load() == {}


def test_a_cancel_while_the_record_is_written_removes_it_and_does_nothing(
        squad: Squad, monkeypatch: pytest.MonkeyPatch) -> None:
    inst = squad.new("cancelled")
    inst.start()
    original = Intents.begin
    writing = threading.Event()

    def slow_begin(self: Intents, title: str, action: str):  # type: ignore[no-untyped-def]
        writing.set()
        time.sleep(0.3)
        return original(self, title, action)

    monkeypatch.setattr(Intents, "begin", slow_begin)

    async def main() -> None:
        pausing = asyncio.ensure_future(inst.apause())
        await asyncio.to_thread(writing.wait, 5)
        pausing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pausing

    run_sync(main())
    assert Intents(squad._store).load() == {}
    assert inst.status is not Status.PAUSED and inst.tmux_alive()
    monkeypatch.setattr(Intents, "begin", original)
    inst.pause()  # nothing left half-done: the next call is a plain pause
    assert inst.status is Status.PAUSED


def test_a_record_is_written_while_the_state_writer_holds_the_homes_lock(squad: Squad) -> None:
    """transitions.json has its own lock: every lifecycle call writes it twice, and waiting each
    time for a state.json of every instance to be replaced made a call's time grow with their
    number. Another writer of transitions.json still waits (its lock is exclusive)."""
    intents = Intents(squad._store)
    with lock_held(squad._store):
        begun = time.monotonic()
        intents.begin("x", "pause")
        intents.end("x")
        assert time.monotonic() - begun < 2.0
    with lock_held(squad._store, intents.lock):
        writer = threading.Thread(target=intents.begin, args=("y", "kill"))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # waits for the other writer of transitions.json
    writer.join(5)
    assert intents.load()["y"].action == "kill"
