"""Async wrapper over the git CLI: worktrees, branches, commits and diff stats.

Owns every git command line squadnb runs. Every command that adds or removes a worktree or writes
refs or the index of a commit (worktree add/remove, branch delete, add + commit, push) holds the
repository lock: an :class:`asyncio.Lock` per process in front of an ``fcntl`` lock on
``<git common dir>/squadnb.flock`` shared by every squadnb process (concurrent ``git worktree add``
calls race inside git itself). The lock is held only for what must be serial: a worktree is added
with ``--no-checkout`` under the lock and its files are checked out afterwards, outside it, in
parallel with other starts. The worktree list is read from git's files (:mod:`._worktree_files`),
which costs the same at 200 worktrees as at 20 where git's own commands grow with the count.
Reads (status, diff) never take the lock and never write the index (``--no-optional-locks``; diff
stats use a temporary index file), so they cannot race a commit for ``index.lock``
(claude-squad #284).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Mapping

from squadnb._loop import to_the_end
from squadnb.errors import GitError, NotAGitRepo
from squadnb.session import _proc
from squadnb.session import _worktree_files as files
from squadnb.session._worktree_files import Reftable, Worktree
from squadnb.session._run import Completed, Runner, run_command

__all__ = ["DiffStats", "FileChange", "Git", "Worktree", "branch_name", "same_path"]

#: the file in the repository's common git directory whose ``fcntl`` lock serialises squadnb's git
#: writes across processes
LOCK_NAME = "squadnb.flock"

NO_COMMIT = ("this appears to be a brand new repository: please create an initial commit before "
             "creating an instance")


def _clean_ref(text: str) -> str:
    text = re.sub(r"[^a-z0-9\-_/.]+", "", text.lower().replace(" ", "-"))
    text = re.sub(r"\.{2,}", ".", re.sub(r"-+", "-", text))
    parts = [p.strip(".").removesuffix(".lock").strip(".") for p in text.split("/")]
    return "/".join(p for p in parts if p).strip("-/")


def branch_name(prefix: str, title: str) -> str:
    """claude-squad's ``sanitize(prefix + title)`` (lower case, spaces to ``-``, only ``[a-z0-9-_/.]``),
    made a valid ref (no ``..``, no component starting or ending with ``.``, no ``.lock``). A title with
    nothing left (``修正``, ``!!!``) gets ``t-<hash>`` instead of collapsing to the bare prefix."""
    tail = _clean_ref(title) or "t-" + hashlib.sha1(title.encode()).hexdigest()[:8]
    head = _clean_ref(prefix)
    return f"{head}/{tail}" if head else tail


@dataclass(frozen=True)
class DiffStats:
    """Lines added and removed against the base commit (untracked files included) and the diff text."""

    added: int = 0
    removed: int = 0
    content: str = ""


@dataclass(frozen=True)
class FileChange:
    """One changed file against a base commit: lines added and removed (0 for a binary file) and
    ``status`` (``added``, ``modified``, ``deleted``, ``type changed``)."""

    path: str
    added: int
    removed: int
    status: str


#: ``git diff`` arguments of :meth:`Git.changed_files`: NUL-separated (any path), renames split
_CHANGES = ("diff", "--no-renames", "-z")
_STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}


def _file_changes(numstat: str, name_status: str) -> list[FileChange]:
    """Join ``diff --numstat -z`` (``added\tremoved\tpath\0``) and ``diff --name-status -z``
    (``X\0path\0``) of the same diff, in git's path order."""
    fields = name_status.split("\0")
    status = {fields[i + 1]: fields[i] for i in range(0, len(fields) - 1, 2)}
    changes = []
    for record in numstat.split("\0"):
        if not record:
            continue
        plus, minus, path = record.split("\t", 2)
        letter = status.get(path, "M")
        changes.append(FileChange(path, int(plus) if plus.isdigit() else 0,
                                  int(minus) if minus.isdigit() else 0,
                                  _STATUS_WORDS.get(letter, letter)))
    return changes


class Git:
    """git commands for any number of repositories, with one lock per repository (:meth:`lock`)."""

    def __init__(self, runner: Runner = run_command) -> None:
        self.runner = runner
        self._locks: dict[str, asyncio.Lock] = {}
        self._common: dict[str, str] = {}

    async def common_dir(self, repo: str) -> str:
        """The repository's common git directory (``.git`` of the main checkout), absolute."""
        key = os.path.realpath(repo)
        if key not in self._common:
            done = await self._check(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
            common = done.stdout.strip()
            if not os.path.isabs(common):
                raise GitError(f"git rev-parse --git-common-dir gave {common!r} for {repo}, not an "
                               "absolute path", done.argv, done.returncode, done.stderr)
            self._common[key] = common
        return self._common[key]

    @contextlib.asynccontextmanager
    async def lock(self, repo: str) -> AsyncIterator[None]:
        """Hold repository ``repo``'s write lock: first this process's :class:`asyncio.Lock` (so the
        coroutines of one process queue without touching the file), then an exclusive ``fcntl`` lock
        on ``<git common dir>/squadnb.flock`` shared with every other squadnb process. The file lock
        is polled without blocking (``LOCK_NB``), so the loop thread never waits in a system call
        and a cancel while waiting leaves nothing held."""
        common = await self.common_dir(repo)
        async with self._locks.setdefault(common, asyncio.Lock()):
            # opened on the loop thread: a local open takes microseconds, and an open in a worker
            # thread that a cancel overtakes leaves a file no one closes
            handle = open(os.path.join(common, LOCK_NAME), "a")
            try:
                pause = 0.002
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 0.05)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()

    async def _call(self, cwd: str, *args: str, env: Mapping[str, str] | None = None) -> Completed:
        argv = ["git", "-C", cwd, *args]
        try:
            return await self.runner(argv, env=env)
        except FileNotFoundError as exc:
            raise GitError("git is not installed (no 'git' on PATH)", argv) from exc

    async def _check(self, cwd: str, *args: str, env: Mapping[str, str] | None = None) -> Completed:
        done = await self._call(cwd, *args, env=env)
        if not done.ok:
            raise GitError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}",
                           done.argv, done.returncode, done.stderr)
        return done

    async def toplevel(self, path: str) -> str:
        """The repository root containing ``path``; :class:`NotAGitRepo` if there is none."""
        if not os.path.isdir(path):
            raise NotAGitRepo(f"{path} is not a directory")
        done = await self._call(path, "rev-parse", "--show-toplevel")
        if not done.ok:
            raise NotAGitRepo(f"{path} is not inside a git repository: {done.stderr.strip()}")
        return done.stdout.strip()

    async def head_sha(self, repo: str) -> str:
        """The commit of the main checkout's HEAD; :class:`NotAGitRepo` when there is no commit yet."""
        done = await self._call(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if not done.ok:
            raise NotAGitRepo(f"{repo}: {NO_COMMIT}")
        return done.stdout.strip()

    async def valid_branch_name(self, name: str) -> bool:
        """True when git takes ``name`` as a new branch's name (``check-ref-format --branch``).
        ``@{-N}`` is refused first: ``--branch`` would read it as "the N-th branch checked out
        before" in the current directory's repository."""
        if "@{" in name:
            return False
        done = await self._call(".", "check-ref-format", "--branch", name)
        return done.ok

    async def branch_exists(self, repo: str, branch: str) -> bool:
        return (await self._call(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")).ok

    async def merge_base(self, repo: str, a: str, b: str) -> str:
        return (await self._check(repo, "merge-base", a, b)).stdout.strip()

    async def worktrees(self, repo: str) -> list[Worktree]:
        """Every worktree git lists for the repository, the main checkout first, read from git's
        files (:mod:`._worktree_files`: no process, no lock, microseconds per worktree)."""
        common = await self.common_dir(repo)
        try:
            return await asyncio.to_thread(files.read_worktrees, common)
        except Reftable:
            return await self._porcelain_worktrees(repo)

    async def _porcelain_worktrees(self, repo: str) -> list[Worktree]:
        """``git worktree list``, for a reftable repository (under the lock: it fails while another
        process adds a worktree)."""
        async with self.lock(repo):
            out = (await self._check(repo, "worktree", "list", "--porcelain")).stdout
        found: list[Worktree] = []
        for block in out.strip().split("\n\n"):
            fields = dict((line.split(" ", 1) + [""])[:2] for line in block.splitlines() if line)
            if "worktree" in fields:
                ref = fields.get("branch")
                found.append(Worktree(fields["worktree"],
                                      ref.removeprefix("refs/heads/") if ref else None))
        return found

    async def listed(self, repo: str, path: str) -> Worktree | None:
        """The worktree git lists at ``path`` (compared as real paths; the main checkout included),
        or None: one small read when ``path`` holds an intact ``.git`` file
        (:func:`._worktree_files.admin_of`)."""
        common = await self.common_dir(repo)
        real = os.path.realpath(path)
        if real == files.main_path(common):
            head = os.path.join(common, "HEAD")
        else:
            admin = await asyncio.to_thread(files.admin_of, common, path)
            if admin is None:
                return None
            head = os.path.join(admin, "HEAD")
        try:
            return Worktree(real, await asyncio.to_thread(files.branch_at, head))
        except Reftable:
            return next((t for t in await self._porcelain_worktrees(repo) if same_path(t.path, path)),
                        None)
        except OSError:
            return None  # removed right now

    async def foreign_owner(self, repo: str, path: str) -> str | None:
        """The main checkout of the other repository whose linked worktree is at ``path`` (by the
        entry its ``.git`` file names, which exists), or None: a worktree of ``repo``, or no
        worktree of any repository."""
        theirs = await asyncio.to_thread(files.common_named, path)
        if theirs is None or theirs == os.path.realpath(await self.common_dir(repo)):
            return None
        return files.main_path(theirs)

    async def checked_out_at(self, repo: str, branch: str, *, besides: str = "") -> str | None:
        """The path of the worktree (the main checkout included) that has ``branch`` checked out,
        other than ``besides`` (an instance's own worktree is never "elsewhere")."""
        common = await self.common_dir(repo)
        try:
            paths = await asyncio.to_thread(files.checked_out, common, branch)
        except Reftable:
            paths = [t.path for t in await self._porcelain_worktrees(repo) if t.branch == branch]
        return next((p for p in paths if not (besides and same_path(p, besides))), None)

    async def add_worktree(self, repo: str, path: str, branch: str, *, new_from: str | None) -> None:
        """Create a worktree at ``path`` on ``branch``: a new branch cut from commit ``new_from`` (one
        that exists by then, made by another process meanwhile, is refused with :class:`GitError`
        and left alone), or the existing ``branch`` when ``new_from`` is None, which must not be
        checked out in any worktree (:class:`GitError` naming where it is).

        Only ``worktree add --no-checkout`` holds the repository lock; the checkout runs outside it.
        The add runs with ``--force``, so git skips its own is-it-checked-out-elsewhere pass over
        every worktree (the checks above make it, in the same lock hold, from the files); git still
        refuses a path that is not empty. On failure nothing is left: the worktree is removed and a
        branch created here is deleted. A cancel waits for ``worktree add`` and the checkout to
        finish before the undo: killed part-way, git leaves a worktree locked as "initializing"
        without its ``.git`` file, or ``refs/heads/<branch>.lock``, which stops the branch's
        deletion.
        """
        args = ["worktree", "add", "--force", "--no-checkout", "--quiet"]
        args += ["-b", branch, path, new_from] if new_from is not None else [path, branch]
        created = None
        try:
            async with self.lock(repo):
                if new_from is None:
                    where = await self.checked_out_at(repo, branch)
                    if where is not None:
                        raise GitError(f"git worktree add refused: branch {branch!r} is checked out "
                                       f"at {where}", ("git", "-C", repo, *args))
                elif await self.branch_exists(repo, branch):
                    raise GitError(f"git worktree add refused: branch {branch!r} already exists",
                                   ("git", "-C", repo, *args))
                else:
                    created = branch
                await to_the_end(self._check(repo, *args))
            # to its end as well: killed, the checkout leaves refs/heads/<branch>.lock behind
            await to_the_end(self._check(path, "reset", "--hard", "--quiet"))
        except BaseException:
            await asyncio.shield(self._undo_add(repo, path, created))
            raise

    async def _undo_add(self, repo: str, path: str, created_branch: str | None) -> None:
        await self.remove_worktree(repo, path)
        if created_branch is not None:
            await self.delete_branch(repo, created_branch)

    async def remove_worktree(self, repo: str, path: str) -> bool:
        """Remove the worktree git lists at ``path``: its directory, then, under the repository
        lock, its entry (what ``worktree remove -f -f`` does, in the same order, at a cost that does
        not grow with the number of worktrees: :mod:`._worktree_files`). Only the entry is what
        other git commands read, so only its removal holds the lock. Never deletes a directory git
        does not list: returns True when such a directory is left at ``path`` (the caller decides
        what it is), False when nothing is left. Raises :class:`GitError` naming the path when the
        removal fails."""
        common = await self.common_dir(repo)
        if same_path(path, files.main_path(common)):
            raise GitError(f"{path} is the repository's main checkout, not a worktree squadnb "
                           "removes", ("rm", "-r", path))
        try:
            admin = await asyncio.to_thread(files.remove_files, common, path)
            if admin is not None:
                async with self.lock(repo):
                    await asyncio.to_thread(files.remove_entry, admin, path)
        except OSError as exc:
            raise GitError(f"removing the worktree at {path} failed: {exc.strerror or exc}",
                           ("rm", "-r", path)) from exc
        return os.path.lexists(path)

    async def checked_out(self, worktree: str) -> bool:
        """False when the worktree's files were never checked out: :meth:`add_worktree` adds it with
        ``--no-checkout`` (no index yet) and ``reset --hard`` writes the index last, so a worktree
        whose add was cut short between the two has no index file."""
        done = await self._check(worktree, "rev-parse", "--path-format=absolute", "--git-path",
                                 "index")
        return os.path.exists(done.stdout.strip())

    async def finish_checkout(self, worktree: str) -> None:
        """The checkout step of :meth:`add_worktree` (``reset --hard``), for a worktree whose add was
        cut short before it: nothing in it is anyone's work yet."""
        await self._check(worktree, "reset", "--hard", "--quiet")

    async def repair_dot_git(self, repo: str, path: str) -> bool:
        """Write back the ``.git`` file of a worktree whose removal stopped half-way: git deletes the
        working files (``.git`` among them) before its ``worktrees/<id>`` entry, so the entry that
        points at ``<path>/.git`` still names it. True when repaired, False when no entry names it."""
        admin = await asyncio.to_thread(files.admin_of, await self.common_dir(repo), path)
        if admin is None:
            return False
        dot_git = os.path.join(os.path.realpath(path), ".git")
        await asyncio.to_thread(Path(dot_git).write_text, f"gitdir: {admin}\n")
        return True

    async def lock_files(self, repo: str, worktree: str = "", branch: str = "") -> list[str]:
        """The git lock files that exist now and that a killed git of this repository could have
        left: the common ``index.lock``, ``packed-refs.lock``, ``HEAD.lock`` and ``config.lock``,
        ``refs/heads/<branch>.lock`` (``branch`` default: the one checked out at ``worktree``), and
        the ``index.lock``/``HEAD.lock`` of the worktree at ``worktree`` (found by the
        ``worktrees/<id>/gitdir`` that points at it)."""
        return await asyncio.to_thread(_existing_locks, await self.common_dir(repo), worktree, branch)

    async def remove_stale_locks(self, repo: str, worktree: str = "", branch: str = ""
                                 ) -> tuple[list[str], list[str]]:
        """Remove the :meth:`lock_files` no live process can hold (:func:`_proc.holders`: none has
        it open, no ``git`` works in the repository, the worktree or the git directory), under the
        repository lock so no squadnb process starts a git meanwhile. Returns (removed, kept: still
        held, or unprovable without ``/proc``)."""
        async with self.lock(repo):
            return await self._remove_stale_locks(repo, worktree, branch)

    async def _remove_stale_locks(self, repo: str, worktree: str, branch: str
                                  ) -> tuple[list[str], list[str]]:
        """:meth:`remove_stale_locks` with the repository lock already held."""
        removed: list[str] = []
        kept: list[str] = []
        common = await self.common_dir(repo)
        for path in await self.lock_files(repo, worktree, branch):
            held = (not _proc.can_prove()
                    or await asyncio.to_thread(_proc.holders, path, [repo, worktree, common]))
            if held:
                kept.append(path)
                continue
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, path)
            removed.append(path)
        return removed, kept

    async def branches(self, repo: str, prefix: str) -> list[str]:
        """The local branches whose names start with ``prefix`` (a directory such as ``alice/``)."""
        pattern = f"refs/heads/{prefix.rstrip('/')}/" if prefix.rstrip("/") else "refs/heads/"
        done = await self._check(repo, "for-each-ref", "--format=%(refname:short)", pattern)
        return done.stdout.split()

    async def delete_branch(self, repo: str, branch: str) -> None:
        """Delete ``branch`` as ``branch -D`` does (the ref, its reflog and its ``branch.<name>``
        settings), refusing with :class:`GitError` while any worktree has it checked out; a branch
        that is already gone is not an error. The check and the deletion hold the repository lock
        together. ``update-ref -d`` is used because ``branch -D`` reads every worktree's refs to
        make the same check (13 ms at 200 worktrees against 4)."""
        async with self.lock(repo):
            where = await self.checked_out_at(repo, branch)
            if where is not None:
                raise GitError(f"cannot delete branch {branch!r}: it is checked out at {where}")
            await self._check(repo, "update-ref", "-d", f"refs/heads/{branch}")
            if not await asyncio.to_thread(files.mentions, await self.common_dir(repo), branch):
                return  # no settings to remove: spare the process
            done = await self._call(repo, "config", "--remove-section", f"branch.{branch}")
            if not done.ok and "no such section" not in done.stderr:
                raise GitError(f"git config --remove-section failed: {done.stderr.strip()}",
                               done.argv, done.returncode, done.stderr)

    async def is_dirty(self, worktree: str) -> bool:
        """True when the worktree has changes, untracked (non-ignored) files included."""
        done = await self._check(worktree, "--no-optional-locks", "status", "--porcelain")
        return bool(done.stdout.strip())

    async def missing_files(self, worktree: str) -> list[str]:
        """Files the index has that are gone from disk (deleted without ``git rm``): what a
        half-removed worktree looks like."""
        done = await self._check(worktree, "--no-optional-locks", "ls-files", "-z", "--deleted")
        return sorted({name for name in done.stdout.split("\0") if name})

    async def ignored_files(self, worktree: str) -> list[str]:
        """The worktree's ignored files (``.env``, build output), relative paths, sorted."""
        done = await self._check(worktree, "--no-optional-locks", "ls-files", "-z", "--others",
                                 "--ignored", "--exclude-standard")
        return sorted(name for name in done.stdout.split("\0") if name)

    async def commit_all(self, repo: str, worktree: str, message: str, *,
                         keep_removed: bool = False) -> None:
        """``add -A`` (``add --ignore-removal .`` with ``keep_removed``: files missing from disk are
        not staged as deletions) then ``commit --no-verify``; both hold the repository lock (the
        commit writes a ref, and a killed ``add`` must not race a new one for ``index.lock``).
        First, in the same lock hold, the lock files a killed git left in the way (the worktree's
        ``index.lock`` and ``HEAD.lock``, its branch's ref lock, the common ones) are removed when
        no live process holds them (:meth:`remove_stale_locks`): a git killed with no transition
        recorded (a push, the user's own) must not block every later pause."""
        async with self.lock(repo):
            await self._remove_stale_locks(repo, worktree, "")
            await self._check(worktree, *(["add", "--ignore-removal", "."] if keep_removed
                                          else ["add", "-A"]))
            if (await self._call(worktree, "diff", "--cached", "--quiet")).ok:
                return  # nothing staged: only deletions were kept out
            await self._check(worktree, "commit", "--no-verify", "--quiet", "-m", message)

    async def branch_tip(self, repo: str, branch: str) -> str | None:
        """The commit ``branch`` points at; None when the branch does not exist."""
        done = await self._call(repo, "rev-parse", "--verify", "--quiet",
                                f"refs/heads/{branch}^{{commit}}")
        return done.stdout.strip() if done.ok else None

    async def is_ancestor(self, repo: str, ancestor: str, descendant: str) -> bool:
        """True when commit ``ancestor`` is ``descendant`` or one of its ancestors
        (``merge-base --is-ancestor``)."""
        return (await self._call(repo, "merge-base", "--is-ancestor", ancestor, descendant)).ok

    async def commits_ahead(self, repo: str, base: str, branch: str) -> int:
        """How many commits ``branch`` has that ``base`` (a commit) has not: ``rev-list --count
        base..refs/heads/<branch>``, a read that takes no lock. 0 when the branch does not exist;
        :class:`GitError` when ``base`` is not a commit of the repository."""
        done = await self._call(repo, "rev-list", "--count", f"{base}..refs/heads/{branch}", "--")
        if done.ok:
            return int(done.stdout.strip() or 0)
        if not await self.branch_exists(repo, branch):
            return 0
        raise GitError(f"git rev-list failed: {done.stderr.strip()}", done.argv, done.returncode,
                       done.stderr)

    async def commits_not_in_head(self, repo: str, branch: str) -> int:
        done = await self._check(repo, "rev-list", "--count", f"HEAD..{branch}")
        return int(done.stdout.strip() or 0)

    async def diff_stats(self, worktree: str, base: str) -> DiffStats:
        """Changes of the worktree against commit ``base``, untracked non-ignored files included
        (through :meth:`_all_staged`: the worktree's own index is never written). Counts come from
        ``--numstat`` (binary files count 0)."""
        async with self._all_staged(worktree) as env:
            numstat = await self._check(worktree, "diff", "--cached", "--numstat", base, env=env)
            content = await self._check(worktree, "diff", "--cached", base, env=env)
        added = removed = 0
        for line in numstat.stdout.splitlines():
            plus, minus, _ = (line.split("\t", 2) + ["", ""])[:3]
            added += int(plus) if plus.isdigit() else 0
            removed += int(minus) if minus.isdigit() else 0
        return DiffStats(added, removed, content.stdout)

    @contextlib.asynccontextmanager
    async def _all_staged(self, worktree: str) -> AsyncIterator[dict[str, str]]:
        """The environment of git commands that see every change of ``worktree`` staged: a copy of
        its index goes to a temporary index file (``GIT_INDEX_FILE``) and ``add -A`` stages everything
        there, so ``diff --cached <base>`` covers committed, uncommitted and untracked (non-ignored)
        changes while the worktree's own index is never written."""
        index = (await self._check(worktree, "rev-parse", "--path-format=absolute", "--git-path",
                                   "index")).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="squadnb-index-") as tmp:
            temp_index = str(Path(tmp) / "index")
            if os.path.exists(index):
                # copy2 keeps the index's mtime: git trusts an entry's stat data only when the
                # file is older than the index, so a fresh mtime would hide a same-size edit made
                # in the second of the index's last write ("racily clean" entries)
                await asyncio.to_thread(shutil.copy2, index, temp_index)
            env = {**os.environ, "GIT_INDEX_FILE": temp_index}
            await self._check(worktree, "add", "-A", env=env)
            yield env

    async def changed_files(self, worktree: str, base: str) -> list[FileChange]:
        """Every file of ``worktree`` that differs from commit ``base``: committed, uncommitted and
        untracked (non-ignored) changes, one entry per path (renames count as a deletion and an
        addition), the worktree's index left alone."""
        async with self._all_staged(worktree) as env:
            numstat = await self._check(worktree, *_CHANGES, "--cached", "--numstat", base, env=env)
            names = await self._check(worktree, *_CHANGES, "--cached", "--name-status", base, env=env)
        return _file_changes(numstat.stdout, names.stdout)

    async def changed_files_on_branch(self, repo: str, base: str, branch: str) -> list[FileChange]:
        """The files the commits of ``branch`` changed since commit ``base`` (a paused instance's
        work: it has no worktree)."""
        ref = f"refs/heads/{branch}"
        numstat = await self._check(repo, *_CHANGES, "--numstat", base, ref)
        names = await self._check(repo, *_CHANGES, "--name-status", base, ref)
        return _file_changes(numstat.stdout, names.stdout)

    async def branch_sha(self, repo: str, branch: str) -> str:
        """The commit ``branch`` points at; :class:`GitError` when there is no such branch."""
        done = await self._check(repo, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
        return done.stdout.strip()

    async def remote_branch_sha(self, repo: str, remote: str, branch: str) -> str | None:
        """The commit ``branch`` points at on ``remote`` (``ls-remote``: asks the remote itself, a
        read), None when the remote has no such branch; :class:`GitError` when it cannot be read."""
        ref = f"refs/heads/{branch}"
        out = (await self._check(repo, "ls-remote", "--heads", remote, ref)).stdout
        return next((line.split("\t", 1)[0] for line in out.splitlines()
                     if line.endswith(f"\t{ref}")), None)

    async def push(self, repo: str, remote: str, branch: str) -> None:
        """``push --set-upstream <remote> refs/heads/<branch>:refs/heads/<branch>``. Holds the
        repository lock: setting the upstream writes ``.git/config``, and concurrent writers of it
        fail on ``config.lock``."""
        ref = f"refs/heads/{branch}"
        async with self.lock(repo):
            await self._check(repo, "push", "--quiet", "--set-upstream", remote, f"{ref}:{ref}")


def _existing_locks(common: str, worktree: str, branch: str) -> list[str]:
    """:meth:`Git.lock_files`, as one piece of file work for a thread."""
    names = ["index.lock", "packed-refs.lock", "HEAD.lock", "config.lock"]
    admin = files.admin_of(common, worktree) if worktree else None
    if admin is not None:
        entry = os.path.basename(admin)
        names += [f"worktrees/{entry}/index.lock", f"worktrees/{entry}/HEAD.lock"]
        if not branch:
            with contextlib.suppress(OSError, Reftable):
                branch = files.branch_at(os.path.join(admin, "HEAD")) or ""
    if branch:
        names.append(f"refs/heads/{branch}.lock")
    return [path for path in (os.path.join(common, name) for name in names)
            if os.path.lexists(path)]


def same_path(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same place (symlinks resolved)."""
    return os.path.realpath(a) == os.path.realpath(b)
