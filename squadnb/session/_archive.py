"""Keep a worktree's ignored files across pause → resume: one tar per instance in ``<home>/archives/``.

git does not carry ignored files (``.env``, local config, build output), and pause removes the
worktree, so pause packs them into ``<home>/archives/<session name>.tar`` first and resume unpacks
them. At most :data:`LIMIT` bytes are kept per pause, smallest files first so that many small config
files win over one large build artefact; what does not fit is dropped, and named in the pause's
result and in ``<session name>.dropped.txt`` beside the archive. Symbolic links are kept as links.
Plain blocking functions: callers run them in a thread.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from squadnb.session._storage import private_dir, write_private

__all__ = ["LIMIT", "Packed", "pack", "unpack"]

#: the most bytes of ignored files one pause keeps (100 MB); larger sets keep their smallest files
LIMIT = 100 * 1024 * 1024


@dataclass(frozen=True)
class Packed:
    """What :func:`pack` did: the files archived and the files dropped (over :data:`LIMIT`)."""

    archived: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def pack(worktree: str, files: list[str], archive: Path, limit: int | None = None) -> Packed:
    """Add ``files`` (paths relative to ``worktree``) to ``archive``, smallest first while the total
    stays within ``limit`` bytes (default :data:`LIMIT`, read at each call). Files already in an
    existing archive (an earlier, interrupted pause) are kept as they are, count toward the limit
    and are not added again. The archive is written beside its final name and renamed, so a crash
    never leaves half an archive."""
    limit = LIMIT if limit is None else limit
    private_dir(archive.parent)
    sizes: list[tuple[int, str]] = []
    for name in files:
        try:
            sizes.append((os.lstat(os.path.join(worktree, name)).st_size, name))
        except OSError:
            continue  # gone since git listed it
    temp = archive.with_name(archive.name + ".part")
    archived: list[str] = []
    dropped: list[str] = []
    # created 0600 like every file of the home: ignored files are where secrets (.env) live
    temp.unlink(missing_ok=True)  # a part left by a crash may have another mode
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as out:
        total = 0
        if archive.exists():
            with tarfile.open(archive) as old:
                for member in old.getmembers():
                    out.addfile(member, old.extractfile(member) if member.isfile() else None)
                    archived.append(member.name)
                    total += member.size
        done = set(archived)
        for size, name in sorted(sizes):
            if name in done:
                continue
            if total + size > limit:
                dropped.append(name)
                continue
            out.add(os.path.join(worktree, name), arcname=name, recursive=False)
            archived.append(name)
            total += size
    os.replace(temp, archive)
    listing = archive.with_suffix(".dropped.txt")
    if dropped:
        write_private(listing, "".join(f"{name}\n" for name in sorted(dropped)))
    else:
        listing.unlink(missing_ok=True)
    return Packed(sorted(archived), sorted(dropped))


def unpack(archive: Path, worktree: str) -> list[str]:
    """Extract ``archive`` into ``worktree``, never over a file that exists there (a resume that is
    finished a second time keeps what the agent wrote since). Returns the names restored."""
    if not archive.exists():
        return []
    restored: list[str] = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if os.path.lexists(os.path.join(worktree, member.name)):
                continue
            tar.extract(member, worktree, filter="tar")
            restored.append(member.name)
    return restored
