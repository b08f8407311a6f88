"""File helpers that never leave a half-written file or directory under its final name."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
# Prefix of work-in-progress names; a crashed run leaves only names with it, which later runs
# and OVMS (it loads numeric version directories only) ignore.
PARTIAL_PREFIX = ".partial-"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path) -> list[Path]:
    """Regular files below `root`, as sorted paths relative to it."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@contextlib.contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """A fresh directory next to its final place, removed unless the caller renamed it away."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def move_dir_into_place(staged: Path, final: Path) -> None:
    """Rename `staged` to `final`, replacing an existing `final` with only atomic renames."""
    final.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp made it private; OVMS runs as another user (UID 5000) and needs to list it.
    os.chmod(staged, 0o755)
    if not final.exists():
        os.rename(staged, final)
        return
    old = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=final.parent))
    os.rename(final, old / final.name)
    os.rename(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same directory, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
