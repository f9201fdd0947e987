"""How fast the ``squadnb`` command starts: ``--help`` and ``--version``, through the console-script
wrapper pip installs and through ``python -m squadnb``, against ``python -c pass`` measured in the
same run (the floor: an interpreter that starts and exits).

Run: ``python benchmarks/cli_startup.py [RUNS]`` (default 30). The commands run in alternating rounds,
so a busy moment of the machine hits them all alike; it prints the median wall time of each and its
ratio to the floor. Target: ``squadnb --help`` and ``squadnb --version`` within 1.5x of the floor
(the command imports pandas, the engine and the session layer only once a command that needs them
runs). ``python -c "import pandas"`` is shown for scale: what every start cost before.

The console script is the one next to this interpreter (``<bin>/squadnb``, not a pyenv shim, whose own
bash start-up is not squadnb's); the repository root goes first on ``PYTHONPATH`` so this checkout is
measured.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "squadnb"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

CASES: dict[str, list[str]] = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "squadnb --help": [str(SCRIPT), "--help"],
    "squadnb --version": [str(SCRIPT), "--version"],
    "python -m squadnb --help": [sys.executable, "-m", "squadnb", "--help"],
    "python -m squadnb --version": [sys.executable, "-m", "squadnb", "--version"],
    'python -c "import pandas" (scale)': [sys.executable, "-c", "import pandas"],
}


def _once(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main(runs: int = 30) -> None:
    if not SCRIPT.exists():
        raise SystemExit(f"no console script at {SCRIPT}: pip install -e . first")
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():  # warm the file cache once, untimed
        _once(argv)
    for _ in range(runs):
        for name, argv in CASES.items():
            times[name].append(_once(argv))
    floor = statistics.median(times["python -c pass (floor)"])
    print(f"median of {runs} runs each, alternating; Python {sys.version.split()[0]}")
    print(f"{'command':<36} {'ms':>7} {'ratio':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<36} {median * 1000:7.1f} {median / floor:6.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
