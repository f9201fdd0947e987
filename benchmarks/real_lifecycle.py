"""Real lifecycle benchmark: squadnb against the raw-command floor.

Run: ``python benchmarks/real_lifecycle.py [--instances 20] [--concurrency 8] [--rounds 3]
[--scale 20,100,200] [--only floor|scaling|scale]``

1. Start, prompt, pause, resume and kill N demo instances with squadnb's BatchExecutor at concurrency C,
   and the floor: the same git and tmux commands run raw from one bash script per phase (git writes to
   the repository one at a time, since concurrent ``worktree add`` races inside git; tmux calls in
   parallel). The two alternate ``--rounds`` times; the median seconds per phase and the ratio
   squadnb / floor are printed (target: every phase within 1.5x).
2. Start scaling: N starts on a 2,000-file repository at concurrency C and at concurrency 1 (target:
   at least 1.5x faster at C, because only ``worktree add --no-checkout`` holds the repository lock).
3. State at scale: every phase over N = 20, 100 and 200 demo instances at concurrency C, squadnb and
   the floor, in per-instance seconds (median of the rounds; each N gets rounds x the largest N / N
   of them, interleaved) with the ratio of each N's cost to N=20's, measured in the same run, and
   squadnb's state-file bytes and write time per instance (target: start and kill within 1.2x at
   N=200; state writes are per changed instance, coalesced and off the loop thread, and the
   worktree list is read from git's files, while git's own worktree commands grow with the number
   of worktrees, which the floor shows).

Everything runs on a private tmux server (killed at the end) in temporary directories.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from squadnb import BatchExecutor
from squadnb._loop import run_sync
from squadnb.agents import demo_program, scratch_repo
from squadnb.ops import (BatchKillOperation, BatchPauseOperation, BatchPromptOperation,
                         BatchResumeOperation, BatchStartOperation)
from squadnb.session import Squad
from squadnb.session.tmux import Tmux

PHASES = ["start", "prompt", "pause", "resume", "kill"]
PROMPT = "benchmark prompt"


def wait_outputs(paths: list[Path], count: int, timeout: float = 60.0) -> None:
    """Untimed: let every agent finish its prompt, so pause has work to commit."""
    deadline = time.monotonic() + timeout
    for path in paths:
        while len(list((path / "demo-output").glob("*.txt"))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no demo output in {path}")
            time.sleep(0.02)


def squadnb_round(work: Path, socket: str, n: int, concurrency: int,
                  written: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per phase; the state-file bytes written over all phases, and the seconds spent
    writing them, go into ``written`` (``bytes``, ``seconds``)."""
    repo = scratch_repo(work / "repo", files=20)
    squad = Squad(home=work / "home", repo=repo, program=demo_program(0.05), tmux_socket=socket,
                  branch_prefix="bench/")
    instances = [squad.new(f"sq {i}") for i in range(n)]
    executor = BatchExecutor(max_concurrency=concurrency, timeout=120)
    ops = {"start": BatchStartOperation(), "prompt": BatchPromptOperation(PROMPT),
           "pause": BatchPauseOperation(), "resume": BatchResumeOperation(),
           "kill": BatchKillOperation()}
    times: dict[str, float] = {}
    for phase in PHASES:
        if phase == "pause":
            wait_outputs([Path(i.worktree_path) for i in instances], 1)
        begun = time.perf_counter()
        result = executor.execute(instances, ops[phase], progress=False)
        times[phase] = time.perf_counter() - begun
        if not result.all_succeeded:
            raise RuntimeError(f"squadnb {phase} failed: {result.error()}")
    if written is not None:
        written.update(bytes=squad._store.bytes_written, seconds=squad._store.seconds_writing)
    return times


FLOOR_LIB = r"""
set -euo pipefail
T() { tmux -f /dev/null -L "$SOCK" "$@"; }
"""


def floor_round(work: Path, socket: str, n: int) -> dict[str, float]:
    repo = scratch_repo(work / "repo", files=20)
    trees = [work / "trees" / f"floor-{i}" for i in range(n)]
    names = [f"floor_{i}" for i in range(n)]
    program = demo_program(0.05)
    q = shlex.quote
    scripts = {
        "start": "".join(f"git -C {q(str(repo))} worktree add -q -b floor/{i} {q(str(t))} HEAD\n"
                         for i, t in enumerate(trees))
        + "T start-server \\; set -g history-limit 50000\n"
        # the first session keeps the server up (an empty one exits) while the rest start at once
        + "".join(f"T new-session -d -s {s} -c {q(str(t))} -x 200 -y 50 {q(program)}"
                  f"{' &' if i else ''}\n" for i, (s, t) in enumerate(zip(names, trees))) + "wait\n"
        + "".join(f"T has-session -t ={s}\n" for s in names),  # a failed start stops the round
        "prompt": "".join(
            f"( until T capture-pane -p -t ={s}: | grep -q 'demo> *$'; do sleep 0.01; done; "
            f"printf %s {q(PROMPT)} | T load-buffer -b b{s} -; T paste-buffer -p -d -b b{s} -t ={s}:; "
            f"T send-keys -t ={s}: Enter ) &\n" for s in names) + "wait\n",
        "pause": "".join(f"( T capture-pane -p -J -S - -E - -t ={s}: > {q(str(work / s))}.log; "
                         f"T kill-session -t ={s} ) &\n" for s in names) + "wait\n"
        + "".join(f"git -C {q(str(t))} add -A; git -C {q(str(t))} commit -q --no-verify -m paused\n"
                  f"git -C {q(str(repo))} worktree remove -f {q(str(t))}\n" for t in trees)
        + f"git -C {q(str(repo))} worktree prune\n",
        "resume": "".join(f"git -C {q(str(repo))} worktree add -q {q(str(t))} floor/{i}\n"
                          for i, t in enumerate(trees))
        + "".join(f"T new-session -d -s {s} -c {q(str(t))} -x 200 -y 50 {q(program + ' --continue')} &\n"
                  for s, t in zip(names, trees)) + "wait\n",
        "kill": "".join(f"T kill-session -t ={s} &\n" for s in names) + "wait\n"
        + "".join(f"git -C {q(str(repo))} worktree remove -f {q(str(t))}\n"
                  f"git -C {q(str(repo))} branch -q -D floor/{i}\n" for i, t in enumerate(trees))
        + f"git -C {q(str(repo))} worktree prune\n",
    }
    times: dict[str, float] = {}
    for phase in PHASES:
        if phase == "pause":
            wait_outputs(trees, 1)
        begun = time.perf_counter()
        subprocess.run(["bash", "-c", FLOOR_LIB + scripts[phase]], check=True,
                       env={**os.environ, "SOCK": f"{socket}-floor"})
        times[phase] = time.perf_counter() - begun
    return times


def start_scaling(work: Path, socket: str, n: int, concurrency: int) -> dict[int, float]:
    repo = scratch_repo(work / "big", files=2000)
    found: dict[int, float] = {}
    for limit in (concurrency, 1):
        squad = Squad(home=work / f"home-{limit}", repo=repo, program=demo_program(0.05),
                      tmux_socket=socket, branch_prefix=f"scale{limit}/")
        instances = [squad.new(f"big {i}") for i in range(n)]
        executor = BatchExecutor(max_concurrency=limit, timeout=300)
        begun = time.perf_counter()
        result = executor.execute(instances, BatchStartOperation(), progress=False)
        found[limit] = time.perf_counter() - begun
        if not result.all_succeeded:
            raise RuntimeError(f"start at concurrency {limit} failed: {result.error()}")
        executor.execute(instances, BatchKillOperation(), progress=False)
    return found


def state_at_scale(work: Path, socket: str, sizes: list[int], concurrency: int,
                   rounds: int) -> None:
    """Part 3: per-instance seconds per phase for each N, squadnb and the raw floor, with the ratio
    to the first N; state-file bytes and write time per instance."""
    per: dict[str, dict[int, dict[str, float]]] = {"squadnb": {}, "floor": {}}
    state: dict[int, tuple[float, float]] = {}
    # Every N is measured over about as many instances (a batch of 20 lasts under a second, so one
    # sample of it is mostly noise), and the rounds of all N are interleaved, so load that comes and
    # goes on the machine falls on every N alike.
    times_of = {n: max(rounds, rounds * sizes[-1] // n) for n in sizes}
    samples: dict[int, dict[str, list[dict[str, float]]]] = {
        n: {"squadnb": [], "floor": []} for n in sizes}
    for r in range(max(times_of.values())):
        for n in sizes:
            if r >= times_of[n]:
                continue
            for kind in ("squadnb", "floor"):
                place = work / f"scale-{kind}-{n}-{r}"
                place.mkdir()
                if kind == "floor":
                    times = floor_round(place, socket, n)
                else:
                    written: dict[str, float] = {}
                    times = squadnb_round(place, socket, n, concurrency, written)
                    state[n] = (written["bytes"] / n / 1024, written["seconds"] / n * 1000)
                samples[n][kind].append({p: t / n for p, t in times.items()})
                print(f"N={n:<4d} round {r + 1} {kind:8s} "
                      + "  ".join(f"{p} {times[p]:.2f}s" for p in PHASES), flush=True)
    for n in sizes:
        for kind in per:
            per[kind][n] = {p: statistics.median(s[p] for s in samples[n][kind]) for p in PHASES}
    base, last = sizes[0], sizes[-1]
    for kind in per:
        print(f"\n{kind}: seconds per instance by phase (ratio to N={base}), concurrency "
              f"{concurrency}, median of " + ", ".join(f"{times_of[n]} rounds at N={n}" for n in sizes))
        print(f"{'N':>4s} " + " ".join(f"{p:>15s}" for p in PHASES)
              + (f" {'state KB/inst':>13s} {'write ms/inst':>13s}" if kind == "squadnb" else ""))
        for n in sizes:
            cells = [f"{per[kind][n][p]:.3f} ({per[kind][n][p] / per[kind][base][p]:.2f}x)"
                     for p in PHASES]
            extra = f" {state[n][0]:13.1f} {state[n][1]:13.1f}" if kind == "squadnb" else ""
            print(f"{n:>4d} " + " ".join(f"{c:>15s}" for c in cells) + extra)
    for phase in ("start", "kill"):
        ours = per["squadnb"][last][phase] / per["squadnb"][base][phase]
        floor = per["floor"][last][phase] / per["floor"][base][phase]
        print(f"{phase} per instance at N={last}: squadnb {ours:.2f}x of N={base} (target <= 1.2x), "
              f"the raw floor {floor:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", default="20,100,200",
                        help="instance counts of the state-at-scale part (the first is the baseline)")
    parser.add_argument("--only", choices=["floor", "scaling", "scale"],
                        help="run one part: the floor comparison, start scaling, or state at scale")
    args = parser.parse_args()
    socket = f"squadnb-bench-{os.getpid()}"
    try:
        with tempfile.TemporaryDirectory(prefix="squadnb-bench-") as tmp:
            if args.only in (None, "floor"):
                floor_comparison(Path(tmp), socket, args)
            if args.only in (None, "scaling"):
                scaling = start_scaling(Path(tmp), socket, args.instances, args.concurrency)
                one, many = scaling[1], scaling[args.concurrency]
                print(f"\n{args.instances} starts on a 2,000-file repository: concurrency "
                      f"{args.concurrency} {many:.2f}s, concurrency 1 {one:.2f}s, speed-up "
                      f"{one / many:.2f}x (target >= 1.5x)")
            if args.only in (None, "scale"):
                print()
                state_at_scale(Path(tmp), socket, [int(n) for n in args.scale.split(",")],
                               args.concurrency, args.rounds)
    finally:
        for server in (socket, f"{socket}-floor"):
            run_sync(Tmux(server).kill_server())  # also removes the socket file tmux leaves
    return 0


def floor_comparison(tmp: Path, socket: str, args: argparse.Namespace) -> None:
    """Part 1: squadnb against the raw-command floor, alternating, ``args.rounds`` times."""
    runs: dict[str, list[dict[str, float]]] = {"squadnb": [], "floor": []}
    for r in range(args.rounds):
        for kind in ("squadnb", "floor"):
            work = tmp / f"{kind}-{r}"
            work.mkdir()
            times = (squadnb_round(work, socket, args.instances, args.concurrency)
                     if kind == "squadnb" else floor_round(work, socket, args.instances))
            runs[kind].append(times)
            print(f"round {r + 1} {kind:8s} " + "  ".join(f"{p} {times[p]:.2f}s" for p in PHASES),
                  flush=True)
    print(f"\n{args.instances} demo instances, concurrency {args.concurrency}, median of "
          f"{args.rounds} rounds (seconds)")
    print(f"{'phase':8s} {'squadnb':>8s} {'floor':>8s} {'ratio':>6s}")
    worst = 0.0
    for phase in PHASES:
        ours = statistics.median(t[phase] for t in runs["squadnb"])
        floor = statistics.median(t[phase] for t in runs["floor"])
        worst = max(worst, ours / floor)
        print(f"{phase:8s} {ours:8.2f} {floor:8.2f} {ours / floor:5.2f}x")
    print(f"worst ratio {worst:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    sys.exit(main())
