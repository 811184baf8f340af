"""One training per run directory (issue 26): an exclusive OS lock on a lock file, held while a run trains.

``with hold_run(run_dir): ...`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``run_dir/.lock`` (or, with
``$ADVNETS_LOCK_DIR`` set, on a file named after the run's absolute path in that directory) and writes the
holder into it: PID, host, command, start time. A second holder, in this or any other process, is refused at
once with :class:`RunLocked`, which names the directory and the holder. The kernel drops the lock when the
holder's file is closed, so a process killed by SIGKILL never leaves a stale lock behind; the lock file
itself stays (deleting it would let two processes lock two different files of the same name).

Only training locks (``advnets train``, :meth:`advnets.train.Trainer.fit`, :func:`advnets.runs.create_run`).
Readers (report, sample, evaluate, classes) never touch the lock: every file they read is written atomically
or append-only by whole lines (advnets.io), so they read a complete file while a run trains.

On NFS, Linux emulates flock with NFS byte-range locks: they work between machines where the mount has
working locks (NFSv4, or NFSv3 with lockd), but are local to one machine under ``nolock`` or
``local_lock=flock``; ``$ADVNETS_LOCK_DIR`` moves the lock file to a filesystem whose locks the machines
share (docs/runs.md).

POSIX only (``fcntl``: Linux, macOS). This module imports only the ground floor (errors), so that runs, training
and the CLI may all use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advnets.errors import AdvnetsError, WriteError
from advnets.io import NO_ROOM, READ_ONLY, write_failure

LOCK_FILE = ".lock"  # in the run directory, unless $ADVNETS_LOCK_DIR says where
LOCK_DIR_ENV = "ADVNETS_LOCK_DIR"
_HELD: dict[str, int] = {}  # lock file (absolute) -> the descriptor this process holds it with
_GUARD = threading.Lock()


class RunLocked(AdvnetsError):
    """Another training holds the run directory (exit code 2 from the CLI); ``holder`` is what it wrote
    into the lock file (pid, host, command, started), {} when it has not written it yet."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def lock_path(run_dir: Path) -> Path:
    """The lock file of ``run_dir``: ``run_dir/.lock``; with ``$ADVNETS_LOCK_DIR`` set,
    ``$ADVNETS_LOCK_DIR/NAME-HASH.lock``, NAME the run directory's name and HASH 16 hex digits of the
    SHA-256 of its absolute path (so two runs never share a lock file, and every machine that mounts the
    run at the same path finds the same one)."""
    run_dir = Path(run_dir)
    where = os.environ.get(LOCK_DIR_ENV)
    if not where:
        return run_dir / LOCK_FILE
    absolute = str(run_dir.resolve())
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_dir.resolve().name)[:64]
    return Path(where) / f"{name}-{digest}.lock"


def holds(run_dir: Path) -> bool:
    """Whether this process holds the lock of ``run_dir`` (taken by :func:`hold_run`)."""
    with _GUARD:
        return str(lock_path(run_dir).resolve()) in _HELD


def read_holder(run_dir: Path) -> dict[str, Any]:
    """What the holder wrote into the lock file of ``run_dir`` ({} when nothing readable is there)."""
    try:
        doc = json.loads(lock_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``PID 123 on host, started 2026-12-07 10:00:00 UTC: advnets train ...`` (or what of it is known)."""
    if not holder:
        return "a process that has not yet written its name into the lock file"
    return (
        f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}: "
        f"{holder.get('command', '?')}"
    )


def _command() -> str:
    """This process's command line, as the user typed it when it is ``advnets ...`` (at most 300 characters)."""
    argv = list(sys.argv) or ["python"]
    head = "advnets" if Path(argv[0]).name in ("advnets", "__main__.py") else argv[0]
    text = " ".join([head, *map(shlex.quote, argv[1:])]).replace("\n", "\\n")  # one line in the refusal
    return text if len(text) <= 300 else text[:297] + "..."


def _open(path: Path, run_dir: Path) -> int:
    """A descriptor of the lock file (created with the mode the umask gives), its directory made first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno in NO_ROOM | READ_ONLY:  # a write that failed like any other: one line, what to do
            where = f"another --out, or a writable folder in ${LOCK_DIR_ENV}"
            raise WriteError(write_failure(path, e, "the run's lock file", where)) from None
        raise AdvnetsError(f"{run_dir}: cannot create the lock file {path} ({e.strerror or e})") from None


def _refusal(run_dir: Path) -> RunLocked:
    holder = {}
    for _ in range(20):  # the holder writes its name just after taking the lock: give it a moment
        holder = read_holder(run_dir)
        if holder:
            break
        time.sleep(0.025)
    return RunLocked(
        f"{run_dir}: another training holds this run directory ({describe_holder(holder)}); wait for it to end or "
        f"stop it (lock file {lock_path(run_dir)})",
        holder,
    )


def _lock(fd: int, path: Path, run_dir: Path) -> None:
    """flock ``fd`` at once or raise: RunLocked when someone holds it, AdvnetsError when locks do not work."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(run_dir) from None
        raise AdvnetsError(
            f"{run_dir}: cannot lock {path} ({e.strerror or e}): this filesystem has no working locks; set "
            f"{LOCK_DIR_ENV} to a directory on one that has (docs/runs.md, 'One training per run directory')"
        ) from None


@contextlib.contextmanager
def hold_run(run_dir: Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``run_dir`` (created, with its lock file, when missing) for the ``with``
    block; yields the lock file. Exclusive even within one process: a second ``hold_run`` of the same run
    while the first is held is refused (use :func:`ensure_held` to join a lock this process holds).

    Raises:
        RunLocked: another holder has it (the message names ``run_dir`` and the holder); nothing is written.
        AdvnetsError: the lock file cannot be created, or the filesystem refuses locks (names the file).
    """
    run_dir = Path(run_dir)
    path = lock_path(run_dir)
    if not path.parent.exists() and path.parent == run_dir:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AdvnetsError(f"{run_dir}: cannot create the run directory ({e.strerror or e})") from None
    fd = _open(path, run_dir)
    _lock(fd, path, run_dir)
    key = str(path.resolve())
    try:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command(),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
        # Written in place, never renamed over: the lock belongs to this inode. Best effort: on a full disk the
        # lock still holds, and a refused second training names no holder.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        with _GUARD:
            _HELD[key] = fd
        yield path
    finally:
        with _GUARD:
            _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # while still locked: no one reads a finished holder's name
        os.close(fd)  # drops the lock


def ensure_held(run_dir: Path) -> contextlib.AbstractContextManager[Any]:
    """:func:`hold_run`, or nothing when this process holds ``run_dir``'s lock already (the CLI takes it
    before it reads the run; ``Trainer.fit`` and ``create_run`` then join it)."""
    return contextlib.nullcontext() if holds(run_dir) else hold_run(run_dir)


def check_free(run_dir: Path) -> None:
    """Refuse at once if another process holds ``run_dir``'s lock, creating nothing (``train --dry-run`` and
    ``train --nproc``, whose rank 0 takes the lock itself).

    Raises:
        RunLocked: it is held.
    """
    path = lock_path(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: no holder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(Path(run_dir)) from None
    finally:
        os.close(fd)
