"""The ground floor for files: atomic writes, durable renames, SHA-256 of a file.

Every file advnets writes that someone may read while it is being written
(checkpoints, ``config.json``, figures, reports, cached classifiers, datasets)
goes through :func:`atomic_write_bytes`: the bytes go to a temporary file in
the same directory, are flushed and fsynced, and the file is ``os.replace``d
into place, so a reader sees the old file or the whole new one, never a torn
one, even after a crash or ``kill -9``.

This module imports nothing else of advnets, so that anything may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only portable way is to set it and set it back)
_CHUNK = 1 << 20  # bytes read at a time when hashing a file


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ...;
            ``path`` is then unchanged and no temporary file is left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, doc: Any) -> None:
    """``doc`` as indented JSON (one trailing newline), written by :func:`atomic_write_bytes`."""
    atomic_write_bytes(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes as 64 hex digits, read in 1 MiB chunks (any size of file).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
