"""The built-in demo agent (``python -m squadnb.agents.demo``) and a scratch repository to run it in,
so everything works on a machine with no agent CLI and no credentials (Binder, CI)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["demo_program", "scratch_repo", "set_demo_identity"]


def demo_program(work_seconds: float | None = None) -> str:
    """The command line that runs the demo agent with this interpreter:
    ``<sys.executable> -m squadnb.agents.demo [--work-seconds S]``."""
    command = f"{shlex.quote(sys.executable)} -m squadnb.agents.demo"
    return command if work_seconds is None else f"{command} --work-seconds {float(work_seconds):g}"


def set_demo_identity(env: MutableMapping[str, str]) -> None:
    """Give git an author and committer in ``env`` where it names none: commits in a scratch
    repository (its initial commit, a pause's commit) must not depend on the user's git config."""
    env.setdefault("GIT_AUTHOR_NAME", "squadnb demo")
    env.setdefault("GIT_AUTHOR_EMAIL", "demo@squadnb.invalid")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])


def scratch_repo(path: str | os.PathLike[str] | None = None, files: int = 3) -> Path:
    """A new git repository (branch ``main``) with ``files`` files in one initial commit, at ``path``
    or in a new temporary directory. Raises ``FileExistsError`` if ``path`` is a non-empty directory and
    ``subprocess.CalledProcessError`` if git fails."""
    import subprocess
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="squadnb-scratch-")) if path is None else Path(path)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    set_demo_identity(env)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)

    git("init", "-q", "-b", "main")
    (root / "README.md").write_text("# scratch repository for squadnb's demo agent\n")
    for i in range(max(files - 1, 0)):
        (root / f"module{i}.py").write_text(f'"""Module {i}."""\n\nVALUE = {i}\n')
    git("add", "-A")
    git("commit", "-q", "--no-verify", "-m", "initial commit")
    return root
