"""git's worktree administration, read (and a linked worktree removed) through its files.

gitrepository-layout(5): the main checkout is the common git directory's parent; a linked worktree
is an entry ``<common>/worktrees/<id>`` whose ``gitdir`` file names the worktree's ``.git`` file,
which names the entry back (``gitdir: <common>/worktrees/<id>``); the entry's ``HEAD`` names its
branch. ``git worktree list``, ``worktree remove`` and ``branch -D`` set up a ref store for every
worktree before they act, so each costs time in proportion to the number of worktrees (at 200
worktrees: 15, 12 and 13 ms, against 3, 4 and 5 at 20), and ``worktree list`` fails while another
process adds one. Reading the files costs microseconds per entry, and finding one worktree's entry
through its own ``.git`` file costs the same at any number. Everything here is synchronous file
work, for ``asyncio.to_thread``.

Under the reftable ref backend (git 2.45+) the ``HEAD`` files are stubs: :class:`Reftable` is raised
and the caller asks git instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Iterator

__all__ = ["Reftable", "Worktree", "admin_of", "branch_at", "checked_out", "common_named",
           "main_path", "mentions",
           "read_worktrees", "remove_entry",
           "remove_files"]

#: what a ``HEAD`` file holds under the reftable backend (the real HEAD is in the table)
_REFTABLE_HEAD = "ref: refs/heads/.invalid"


class Reftable(Exception):
    """The repository keeps its refs in a reftable: its ``HEAD`` files say nothing."""


@dataclass(frozen=True)
class Worktree:
    """One worktree git lists: its path and the branch checked out there (short name; None when
    its HEAD is detached)."""

    path: str
    branch: str | None


def _read(path: str, dir_fd: int | None = None) -> str:
    """A small file's text, stripped (``path`` relative to ``dir_fd`` when given). ``os.read``
    rather than ``open()``: a pass reads hundreds of these, and the text layer costs more than the
    read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        data = os.read(fd, 4096)
        if len(data) == 4096:  # these files are a line long: only a strange one needs more reads
            while chunk := os.read(fd, 65536):
                data += chunk
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape").strip()


def _scan(common: str, name: str) -> Iterator[tuple[str, str]]:
    """``(id, text)`` of file ``name`` (``HEAD``, ``gitdir``) of every entry
    ``<common>/worktrees/<id>``, in id order; an entry without that file (being added or removed
    right now) is skipped. Opened relative to the ``worktrees`` directory: a pass over 200 entries
    runs while kills wait on the repository lock, and each open then walks one component instead of
    the whole path."""
    root = os.path.join(common, "worktrees")
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for entry in sorted(os.listdir(dir_fd)):
            try:
                text = _read(f"{entry}/{name}", dir_fd)
            except OSError:
                continue
            yield entry, text
    finally:
        os.close(dir_fd)


def mentions(common: str, branch: str) -> bool:
    """True when the repository's ``config`` may hold settings of ``branch`` (its name appears in
    the file; settings in an included file are not looked for)."""
    try:
        return branch in _read(os.path.join(common, "config"))
    except OSError:
        return True  # unreadable here: let git look


def branch_at(head_file: str) -> str | None:
    """The branch a ``HEAD`` file names (None: detached). Raises ``OSError`` when it cannot be read,
    :class:`Reftable` for a reftable stub."""
    return _branch_in(_read(head_file), head_file)


def _branch_in(head: str, head_file: str) -> str | None:
    """The branch the text of ``HEAD`` file ``head_file`` names (None: detached)."""
    if head == _REFTABLE_HEAD:
        raise Reftable(head_file)
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None


def main_path(common: str) -> str:
    """git's own rule for the main worktree's path: the common directory, real, minus ``/.git``."""
    real = os.path.realpath(common)
    return real.removesuffix(os.sep + ".git")


def _dot_git_named(admin: str) -> str:
    """The ``.git`` file entry ``admin`` names (a relative name, as newer gits may write, is relative
    to ``admin``). Raises ``OSError``."""
    return _named(admin, _read(os.path.join(admin, "gitdir")))


def _named(admin: str, gitdir: str) -> str:
    return os.path.normpath(os.path.join(admin, gitdir))


def read_worktrees(common: str) -> list[Worktree]:
    """Every worktree git lists, the main checkout first, then the linked ones by path (git's
    order). An entry being added or removed right now (a file missing) is skipped."""
    found = []
    for entry, head in _scan(common, "HEAD"):
        admin = os.path.join(common, "worktrees", entry)
        try:
            found.append(Worktree(os.path.dirname(_dot_git_named(admin)),
                                  _branch_in(head, os.path.join(admin, "HEAD"))))
        except OSError:
            continue
    main = Worktree(main_path(common), branch_at(os.path.join(common, "HEAD")))
    return [main, *sorted(found, key=lambda tree: tree.path)]


def checked_out(common: str, branch: str) -> list[str]:
    """The paths of the worktrees (the main checkout included) whose HEAD names ``branch``."""
    found = [main_path(common)] if branch_at(os.path.join(common, "HEAD")) == branch else []
    # compared as text: only the entries on the branch cost more than one read
    want = "ref: refs/heads/" + branch
    for entry, head in _scan(common, "HEAD"):
        if head == _REFTABLE_HEAD:
            raise Reftable(os.path.join(common, "worktrees", entry, "HEAD"))
        if head == want:
            admin = os.path.join(common, "worktrees", entry)
            try:
                found.append(os.path.dirname(_dot_git_named(admin)))
            except OSError:
                continue
    return found


def admin_of(common: str, path: str) -> str | None:
    """The entry ``<common>/worktrees/<id>`` of the worktree at ``path``, or None when git lists no
    worktree there. Found through ``path``'s own ``.git`` file when that file and the entry name
    each other (one read at any number of worktrees); otherwise, as for a worktree whose removal
    stopped after deleting its ``.git`` file, by the entry whose ``gitdir`` names ``<path>/.git``."""
    dot_git = os.path.join(os.path.realpath(path), ".git")
    try:
        text = _read(dot_git)
        if text.startswith("gitdir: "):
            admin = os.path.realpath(os.path.join(path, text.removeprefix("gitdir: ")))
            if (os.path.dirname(admin) == os.path.realpath(os.path.join(common, "worktrees"))
                    and os.path.realpath(_dot_git_named(admin)) == dot_git):
                return admin
    except OSError:
        pass
    # git writes real paths; resolving only the entries of the same directory name keeps this pass
    # at one small read per entry
    tail = os.sep + os.path.basename(os.path.dirname(dot_git)) + os.sep + ".git"
    for entry, gitdir in _scan(common, "gitdir"):
        if gitdir == dot_git or gitdir.endswith(tail):
            admin = os.path.join(common, "worktrees", entry)
            if os.path.realpath(_named(admin, gitdir)) == dot_git:
                return admin
    return None


def common_named(path: str) -> str | None:
    """The common git directory, real, whose entry ``<common>/worktrees/<id>`` the ``.git`` file at
    ``path`` names, or None when there is no such file or the entry does not exist (whichever
    repository lists it, or none)."""
    try:
        text = _read(os.path.join(path, ".git"))
    except OSError:
        return None
    if not text.startswith("gitdir: "):
        return None
    admin = os.path.realpath(os.path.join(path, text.removeprefix("gitdir: ")))
    parent = os.path.dirname(admin)
    if os.path.basename(parent) != "worktrees" or not os.path.isdir(admin):
        return None
    return os.path.dirname(parent)


def remove_files(common: str, path: str) -> str | None:
    """The first half of removing the linked worktree git lists at ``path``: delete its directory
    and return its entry, still in place (None, touching nothing, when git lists no worktree at
    ``path``). The order of git's own ``worktree remove -f -f``: a removal cut short leaves an entry
    naming a half-removed directory, which the entry still identifies. Raises ``OSError``."""
    admin = admin_of(common, path)
    if admin is not None and os.path.lexists(path):
        shutil.rmtree(path)
    return admin


def remove_entry(admin: str, path: str) -> None:
    """The second half: delete entry ``admin`` if it still names ``<path>/.git`` (another process
    may have pruned it, and its id been reused meanwhile). Raises ``OSError``."""
    try:
        named = _dot_git_named(admin)
    except FileNotFoundError:
        return
    if os.path.realpath(named) == os.path.join(os.path.realpath(path), ".git"):
        shutil.rmtree(admin)
