"""squadnb's demo agent: a tiny program that behaves like an AI coding agent in tmux.

It shows a ready prompt (``demo> ``), reads a line, "works" for a moment (``--work-seconds``, default
0.3), writes ``demo-output/<n>.txt`` in its working directory, prints ``done: <prompt>`` and returns to
the prompt. Special prompts: ``!ask`` shows a permission prompt (``demo: allow this action? (y/n)``)
and waits for the answer; ``exit [code]`` quits. ``--continue`` (used on resume) reports the earlier
prompts found in ``demo-output/``. Standard library only: twenty of these start at once on a small
machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _answer(question: str) -> str:
    print(question, flush=True)
    return sys.stdin.readline().strip().lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m squadnb.agents.demo", description=__doc__)
    parser.add_argument("--work-seconds", type=float, default=0.3, help="time spent per prompt")
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="go on with the conversation found in demo-output/")
    args = parser.parse_args(argv)
    out = Path.cwd() / "demo-output"
    done = len(list(out.glob("*.txt"))) if out.is_dir() else 0
    print(f"squadnb demo agent in {Path.cwd()}", flush=True)
    if args.resume:
        print(f"continuing after {done} earlier prompt(s)", flush=True)
    while True:
        try:
            line = input("demo> ")
        except EOFError:
            return 0
        prompt = line.strip()
        if not prompt:
            continue
        if prompt == "exit" or prompt.startswith("exit "):
            code = prompt.split()[1:]
            return int(code[0]) if code and code[0].lstrip("-").isdigit() else 0
        if prompt.startswith("!ask"):
            if _answer("demo: allow this action? (y/n)") != "y":
                print("denied", flush=True)
                continue
        print(f"working on: {prompt}", flush=True)
        time.sleep(args.work_seconds)
        done += 1
        out.mkdir(exist_ok=True)
        (out / f"{done}.txt").write_text(prompt + "\n", encoding="utf-8")
        print(f"done: {prompt}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
