"""The ground floor for files: atomic writes, durable renames, SHA-256 of a file, and what a failed write says.

Every file advnets writes that someone may read while it is being written
(checkpoints, ``config.json``, figures, reports, cached classifiers, datasets)
goes through :func:`atomic_write_bytes` (or, for a download streamed to disk,
:func:`temp_file_for`): the bytes go to a temporary file in the same directory,
are flushed and fsynced, and the file is ``os.replace``d into place, so a
reader sees the old file or the whole new one, never a torn one, even after a
crash or ``kill -9``.

*Modes.* A temporary file from :func:`tempfile.mkstemp` is private (0600), and
a rename keeps the mode. Every such file is given :func:`new_file_mode`, the
mode ``open()`` gives an ordinary new file under the process's umask *now*
(0644 under umask 022, 0600 under 077), so data in a shared folder is readable
by the people the umask lets read it (issue 26).

*Failed writes.* A full disk, a quota or a read-only filesystem ends a write
with an :class:`OSError` whose ``filename`` is the file that was being written
(never the temporary one); :func:`write_failure` turns it into the one line
that says which file and what to do.

This module imports nothing else of advnets, so that anything may use it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # bytes read at a time when hashing a file
# Errors that say the filesystem has no room or takes no writes (as opposed to a missing folder or a bad name).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
READ_ONLY = frozenset({errno.EROFS})


def current_umask() -> int:
    """The process's umask now. Read from /proc/self/status where Linux offers it (no change to the process);
    elsewhere set and set back, the only portable way (not atomic with respect to other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits ``open()`` gives a new file under the current umask: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def temp_file_for(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new temporary file beside ``path`` (``.NAME.XXXX<suffix>``, same filesystem, so it can be renamed onto
    ``path``), with :func:`new_file_mode` rather than mkstemp's 0600. Returns (an open fd, its path); the caller
    closes the fd and renames or removes the file.

    Raises:
        OSError: the folder is missing or not writable; ``filename`` is ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise naming(e, path) from e
    try:
        os.fchmod(fd, new_file_mode())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, Path(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one; the new file gets
    :func:`new_file_mode`.

    Raises:
        OSError: the directory is missing or not writable, the disk is full, ...; ``filename`` is ``path``,
            which is then unchanged, and no temporary file is left behind.
    """
    path = Path(path)
    fd, tmp = temp_file_for(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise naming(e, path) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, doc: Any) -> None:
    """``doc`` as indented JSON (one trailing newline), written by :func:`atomic_write_bytes`."""
    atomic_write_bytes(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def naming(err: OSError, path: Path | str) -> OSError:
    """``err`` with ``filename`` set to ``path`` (the file the caller was writing; a write() or a temporary
    file's name says nothing useful): an OSError of the same subclass (``OSError(errno, ...)`` picks it)."""
    if err.errno is None or err.filename == str(path):
        return err
    return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))


def write_advice(err: OSError, elsewhere: str = "another --out") -> str:
    """What to do about a failed write, by its errno ("" when there is nothing specific to say); ``elsewhere``
    names how to write to another place (the option or variable that chose this one)."""
    if err.errno in NO_ROOM:
        return f"free some space there (or write elsewhere: {elsewhere}) and run the command again"
    if err.errno in READ_ONLY:
        return f"that filesystem is read-only: remount it read-write or write elsewhere ({elsewhere})"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"check that folder's permissions, or write elsewhere ({elsewhere})"
    return ""


def write_failure(path: Path | str, err: OSError, what: str = "", elsewhere: str = "another --out") -> str:
    """One line for a write to ``path`` that failed with ``err``: ``could not write [WHAT ]PATH: REASON; ADVICE``
    (:func:`write_advice`)."""
    advice = write_advice(err, elsewhere)
    reason = err.strerror or str(err)
    return f"could not write {what + ' ' if what else ''}{path}: {reason}" + (f"; {advice}" if advice else "")


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
