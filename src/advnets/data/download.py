"""Downloading a pinned file safely, and unpacking a tar archive safely.

The machinery behind :func:`advnets.data.fetch.fetch`; the catalogue of what
can be downloaded (:data:`advnets.data.fetch.SOURCES`) lives there, and the
records it is made of (:class:`RemoteFile`, :class:`Source`) here.

*Downloads.* :func:`download_file` tries a file's mirrors in order. Every file
is streamed into a temporary file in the target folder (timeouts apply to
connecting and to every read, so a dead network ends in an error, never a
hang), its size and SHA-256 are checked, and only then is it ``os.replace``d
into place. A file with the wrong checksum is discarded and the next mirror is
tried; when no mirror delivers the file a :class:`~advnets.errors.DataError`
says why (for a bad checksum: the expected and the actual hash) and how to get
the files by hand. Files that are already present with the right size and hash
are not downloaded again.

*Archives.* :func:`unpack_archive` unpacks a ``.tar.gz`` member by member,
never by ``tarfile.extract``: only regular files and folders are accepted, and
a member that is a symbolic or hard link, a device or FIFO, has an absolute
path or a ``..`` component refuses the whole archive. The archive is unpacked
into a temporary folder next to the target, checked for the files the dataset
needs, and the finished folder is renamed into place, so a half-unpacked
folder is never left where it would be read as complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from advnets.errors import DataError
from advnets.io import NO_ROOM, READ_ONLY, fsync_dir, sha256_file, temp_file_for, write_failure

__all__ = ["RemoteFile", "Source", "download_file", "unpack_archive", "remove_stale"]

_CHUNK = 1 << 20
# A temporary download untouched for this long belongs to a process that died.
_STALE_PART_S = 15 * 60
_STALE_DIR_S = 60 * 60
_ELSEWHERE = "another --data-dir or $ADVNETS_DATA"  # how to put the data in another place


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name, exact size in bytes and SHA-256 (lowercase hex)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Source:
    """A downloadable dataset.

    ``files`` are fetched from ``mirror + file.name`` for each of ``mirrors`` in
    order, into ``<root>/<subdir>/``. When ``extract_to`` is set, the single
    file is a tar archive that must unpack to the folder ``extract_to`` holding
    every name in ``expected``; ``max_unpacked_bytes`` and ``max_members``
    bound what unpacking may write.
    """

    name: str
    subdir: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    extract_to: str | None = None
    expected: tuple[str, ...] = ()
    max_unpacked_bytes: int = 1 << 30
    max_members: int = 1000


# --------------------------------------------------------------------------- downloading


class _Failed(Exception):
    """One mirror could not deliver a file; the message says why."""


class _Mismatch(Exception):
    """A mirror delivered a file with the wrong size or SHA-256."""

    def __init__(self, url: str, detail: str):
        super().__init__(f"{url}: {detail}")
        self.detail = detail


def _url(mirror: str, name: str) -> str:
    return mirror.rstrip("/") + "/" + name


def _is_valid(path: Path, rf: RemoteFile) -> bool:
    try:
        return path.is_file() and path.stat().st_size == rf.size and sha256_file(path) == rf.sha256
    except OSError:
        return False


def remove_stale(directory: Path) -> None:
    """Delete temporary files and folders left behind by a download or unpack that died."""
    now = time.time()
    for p in directory.glob(".*.part"):
        try:
            if now - p.lstat().st_mtime > _STALE_PART_S:
                p.unlink()
        except OSError:
            pass
    for p in directory.glob(".*.unpack"):
        try:
            if now - p.lstat().st_mtime > _STALE_DIR_S and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _progress_bar(rf: RemoteFile, url: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=rf.size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=rf.name,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
        postfix=urllib.parse.urlsplit(url).netloc or None,
    )


def _download(url: str, tmp: Path, rf: RemoteFile, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``tmp``; raise _Failed (transport) or _Mismatch (wrong bytes)."""
    from advnets import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"advnets/{__version__} (dataset download)"})
    h = hashlib.sha256()
    received = 0
    try:
        # ``timeout`` bounds the connection and every blocking read on the socket.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.strip().isdigit() and int(announced) != rf.size:
                raise _Mismatch(url, f"the server announces {int(announced)} bytes, expected {rf.size}")
            with open(tmp, "wb") as out, _progress_bar(rf, url, progress) as bar:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > rf.size:
                        raise _Mismatch(url, f"the server sent more than the expected {rf.size} bytes")
                    h.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as e:
        raise _Failed(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise _Failed(f"{url}: {e.reason}") from e
    except OSError as e:
        if e.errno in NO_ROOM | READ_ONLY:  # the local disk, not the network: no other mirror helps
            raise DataError(write_failure(tmp.parent / rf.name, e, elsewhere=_ELSEWHERE)) from e
        raise _Failed(f"{url}: {str(e) or type(e).__name__}") from e
    except (http.client.HTTPException, ValueError) as e:
        # socket timeouts (TimeoutError), resets, cut-short bodies (IncompleteRead), bad URLs
        text = str(e) or type(e).__name__
        raise _Failed(f"{url}: {text}") from e
    actual = h.hexdigest()
    if received != rf.size or actual != rf.sha256:
        raise _Mismatch(url, f"got SHA-256 {actual} ({received} bytes)")


def _by_hand(source: Source, target: Path, mirrors: Sequence[str]) -> str:
    names = ", ".join(f.name for f in source.files)
    where = " or ".join(_url(m, "") for m in mirrors)
    then = f" and leave {source.files[0].name} there (it is unpacked on the next fetch)" if source.extract_to else ""
    return (
        f"to get {source.name} by hand, download {names} from {where}, put "
        f"{'them' if len(source.files) > 1 else 'it'} in {target}{then}, and run "
        f"`advnets data fetch {source.name}` again to verify"
    )


def download_file(
    source: Source, rf: RemoteFile, target: Path, mirrors: Sequence[str], timeout: float, progress: bool
) -> None:
    """Put ``rf`` (one of ``source.files``) into ``target`` with its size and SHA-256 checked.

    Tries ``mirror + rf.name`` for each of ``mirrors`` in order; ``timeout``
    (seconds) bounds connecting and each read; ``progress`` shows a tqdm bar
    and a line on stderr. Does nothing when the file is already there and
    valid. Raises :class:`~advnets.errors.DataError` when no mirror delivers
    the right bytes (naming the expected and actual SHA-256 on a mismatch, and
    how to get the files by hand) or the folder cannot be written.
    """
    dest = target / rf.name
    if _is_valid(dest, rf):
        if progress:
            print(f"{dest}: already present, checksum OK", file=sys.stderr)
        return
    failures: list[str] = []
    mismatches: list[_Mismatch] = []
    for mirror in mirrors:
        url = _url(mirror, rf.name)
        try:  # the mode of an ordinary new file (umask), not mkstemp's 0600: shared data folders stay readable
            fd, tmp = temp_file_for(dest, suffix=".part")
        except OSError as e:
            raise DataError(write_failure(dest, e, "a temporary file for", _ELSEWHERE)) from e
        os.close(fd)
        try:
            _download(url, tmp, rf, timeout, progress)
            os.replace(tmp, dest)
        except _Mismatch as e:
            mismatches.append(e)
            continue
        except _Failed as e:
            failures.append(str(e))
            continue
        except OSError as e:  # os.replace
            raise DataError(write_failure(dest, e, elsewhere=_ELSEWHERE)) from e
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target)
        if progress:
            print(f"{dest}: downloaded from {url}, checksum OK", file=sys.stderr)
        return
    hint = _by_hand(source, target, mirrors)
    if mismatches:
        tried = "; ".join([str(m) for m in mismatches] + failures)
        raise DataError(
            f"{rf.name}: checksum mismatch from every mirror that answered: expected SHA-256 {rf.sha256} "
            f"({rf.size} bytes); {tried}. Nothing was written to {dest}; {hint}"
        )
    raise DataError(f"could not download {rf.name} ({'; '.join(failures)}); {hint}")


# --------------------------------------------------------------------------- unpacking


def _member_parts(archive: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The checked relative path of ``member``; raise DataError for anything unsafe."""
    name = member.name
    what = f"{archive}: refusing to unpack member {name!r}"
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise DataError(f"{what}: it is a {kind} link (to {member.linkname!r}); expected only files and folders")
    if member.ischr() or member.isblk() or member.isfifo():
        raise DataError(f"{what}: it is a device or FIFO; expected only files and folders")
    if not (member.isreg() or member.isdir()):
        raise DataError(f"{what}: unsupported member type {member.type!r}; expected only files and folders")
    if not name or "\x00" in name:
        raise DataError(f"{what}: empty or invalid name")
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise DataError(f"{what}: it has an absolute path; expected paths inside the archive's folder")
    parts = tuple(p for p in re.split(r"[/\\]", name) if p not in ("", "."))
    if ".." in parts:
        raise DataError(f"{what}: its path leaves the target folder (..); expected paths inside the archive's folder")
    return parts


def unpack_archive(archive: Path, source: Source, target: Path) -> None:
    """Unpack ``archive`` into ``target / source.extract_to`` through a temporary folder."""
    assert source.extract_to is not None
    final = target / source.extract_to
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{source.extract_to}.", suffix=".unpack", dir=target))
    except OSError as e:
        raise DataError(write_failure(target, e, f"a temporary folder to unpack {archive.name} in", _ELSEWHERE)) from e
    try:
        _extract_members(archive, source, tmp_dir)
        produced = tmp_dir / source.extract_to
        if not produced.is_dir():
            raise DataError(f"{archive}: expected the archive to hold a folder {source.extract_to}/, found none")
        missing = [n for n in source.expected if not (produced / n).is_file()]
        if missing:
            raise DataError(f"{archive}: {source.extract_to}/ lacks {', '.join(missing)}; the archive is incomplete")
        fsync_dir(produced)
        if not final.is_dir():  # else another process finished the same unpacking first
            os.replace(produced, final)
            fsync_dir(target)
    except DataError:
        raise
    except FileExistsError as e:
        raise DataError(f"{archive}: member {e.filename} appears twice; refusing the archive") from e
    except OSError as e:
        if e.errno in NO_ROOM | READ_ONLY:
            raise DataError(f"{archive}: cannot unpack: {write_failure(target, e, elsewhere=_ELSEWHERE)}") from e
        raise DataError(f"{archive}: cannot unpack: {e}") from e
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: cannot unpack: {e}") from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _extract_members(archive: Path, source: Source, tmp_dir: Path) -> None:
    """Write ``archive``'s members under ``tmp_dir``, refusing one that leaves it, more than source.max_members
    members or more than source.max_unpacked_bytes bytes in all (a tar bomb); DataError names the archive."""
    base = tmp_dir.resolve()
    written = 0
    with tarfile.open(archive, mode="r:*") as tar:
        for count, member in enumerate(tar, start=1):
            parts = _member_parts(archive, member)
            if count > source.max_members:
                raise DataError(f"{archive}: more than {source.max_members} members; expected a {source.name} archive")
            if not parts:
                continue  # the archive's own "." folder
            dest = tmp_dir.joinpath(*parts)
            if os.path.commonpath([base, dest.resolve()]) != str(base):
                raise DataError(f"{archive}: refusing to unpack member {member.name!r}: it leaves the target folder")
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            written += member.size
            if written > source.max_unpacked_bytes:
                raise DataError(
                    f"{archive}: unpacks to more than {source.max_unpacked_bytes} bytes; "
                    f"expected a {source.name} archive"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            stream = tar.extractfile(member)
            if stream is None:  # pragma: no cover - isreg() members always have data
                raise DataError(f"{archive}: cannot read member {member.name!r}")
            with stream, open(dest, "xb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)
