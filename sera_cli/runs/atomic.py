"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sera_cli.errors import SeraError


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: a reader (or a crash) sees
    the old file or the new one, never half of one. A failed write (full disk, read-only folder)
    leaves the old file as it was, removes the temporary one and raises SeraError naming
    ``path``."""
    raw = data.encode() if isinstance(data, str) else data
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run is shared like any file
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SeraError(f"cannot write {path}: {exc.strerror or exc}; its previous version, "
                            "if any, is unchanged: free disk space or choose a writable folder"
                            ) from exc
        raise
    _fsync_folder(path.parent)  # make the rename itself durable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Best effort: some platforms and file systems cannot open or sync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
