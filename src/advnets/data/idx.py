"""Reader for the IDX file format used by MNIST, Fashion-MNIST and KMNIST.

An IDX file is a big-endian header followed by the raw array::

    bytes 0-1   0x00 0x00                    (magic)
    byte  2     element type                  (see below)
    byte  3     number of dimensions, ndim    (at least 1)
    4 * ndim    each dimension as a big-endian unsigned 32-bit integer
    ...         prod(dims) elements, big-endian, C order

Element types: ``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` 16-bit
integer, ``0x0C`` 32-bit integer, ``0x0D`` 32-bit float, ``0x0E`` 64-bit float.

Compression is decided by the file name and checked against the content:
a name ending in ``.gz`` must hold a gzip stream (magic bytes ``1f 8b``), and a
name without ``.gz`` must not. A gzip stream inside a non-``.gz`` name (the
usual result of a browser or ``mv`` dropping the suffix) is reported as a wrong
magic number with the hint to rename the file, rather than decompressed
silently, so that what is on disk always matches what its name says.

The reader is strict: truncated data, trailing bytes after the array, an
unsupported type byte, a header declaring a zero dimension (e.g. 120 x 28 x 0
images, which would read as an empty array) or one whose dimensions claim more
data than the file can hold all raise :class:`advnets.errors.DataError` naming the file.
Claimed sizes are checked against the size of the file on disk *before*
anything is allocated (for gzip files against the largest size the compressed
stream could possibly expand to, and the data are then read incrementally, so
memory only grows with data that really is there).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from advnets.data.shapes import check_declared_shape
from advnets.errors import DataError

__all__ = ["IDX_TYPES", "read_idx", "load_idx_dataset"]

#: Element type byte -> big-endian numpy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than about 1032:1; used to bound what a
# gzip file of a given size can hold before trusting its IDX header.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20

_TYPES_TEXT = "0x08 (ubyte), 0x09 (byte), 0x0B (short), 0x0C (int), 0x0D (float), 0x0E (double)"


def _read_exactly(stream, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at end of stream."""
    parts = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _parse_header(path: Path, stream) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse the IDX header from ``stream``; return (dtype, shape, header length)."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise DataError(f"{path}: file is too short for an IDX header (expected at least 4 bytes, found {len(magic)})")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{path}: wrong magic number {magic.hex(' ')}; expected an IDX file starting with bytes 00 00 <type> <ndim>"
        )
    type_byte, ndim = magic[2], magic[3]
    if type_byte not in IDX_TYPES:
        raise DataError(f"{path}: unsupported IDX element type byte 0x{type_byte:02X}; expected one of {_TYPES_TEXT}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    raw_dims = _read_exactly(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"{path}: truncated IDX header: it declares {ndim} dimensions "
            f"({4 * ndim} bytes) but only {len(raw_dims)} bytes follow"
        )
    shape = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return IDX_TYPES[type_byte], shape, 4 + 4 * ndim


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"a {'x'.join(map(str, shape))} array of {dtype.name}"


def _native(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _read_plain(path: Path, file_size: int) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(2)
        if head == _GZIP_MAGIC:
            raise DataError(
                f"{path}: wrong magic number: the file looks gzip-compressed (starts with "
                "bytes 1f 8b) but its name does not end in .gz; expected an uncompressed IDX "
                f"file. Rename it to {path.name}.gz or decompress it with gunzip"
            )
        f.seek(0)
        dtype, shape, header_len = _parse_header(path, f)
        available = file_size - header_len
        nbytes = check_declared_shape(
            path,
            shape,
            "IDX header",
            itemsize=dtype.itemsize,
            capacity=available,
            capacity_text=f"only {available} bytes follow the header",
        )
        if nbytes < available:
            raise DataError(
                f"{path}: {available - nbytes} unexpected trailing bytes after the "
                f"{nbytes} bytes of data that the header describes ({_describe(shape, dtype)})"
            )
        arr = np.empty(shape, dtype=dtype)
        view = memoryview(arr.reshape(-1)).cast("B")
        filled = 0
        while filled < nbytes:
            got = f.readinto(view[filled:])
            if not got:
                raise DataError(
                    f"{path}: file ended after {filled} of {nbytes} data bytes (was it modified while being read?)"
                )
            filled += got
    return _native(arr)


def _read_gzip(path: Path, file_size: int) -> np.ndarray:
    with open(path, "rb") as raw:
        head = raw.read(2)
        if head != _GZIP_MAGIC:
            raise DataError(
                f"{path}: the name ends in .gz but the file is not gzip-compressed "
                f"(expected magic bytes 1f 8b, found {head.hex(' ') or 'nothing'}); "
                "rename it without .gz if it is an uncompressed IDX file"
            )
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:
            dtype, shape, header_len = _parse_header(path, f)
            ceiling = file_size * _MAX_DEFLATE_RATIO - header_len
            nbytes = check_declared_shape(
                path,
                shape,
                "IDX header",
                itemsize=dtype.itemsize,
                capacity=ceiling,
                capacity_text=f"a {file_size}-byte gzip file can hold at most {ceiling} bytes after the header",
            )
            buf = bytearray()
            while len(buf) < nbytes:
                chunk = f.read(min(_CHUNK, nbytes - len(buf)))
                if not chunk:
                    raise DataError(
                        f"{path}: header claims {_describe(shape, dtype)} ({nbytes} bytes of "
                        f"data) but the decompressed file holds only {len(buf)} bytes after "
                        "the header; the file is truncated or its header is corrupt"
                    )
                buf += chunk
            extra = f.read(_CHUNK)
            if extra:
                raise DataError(
                    f"{path}: unexpected trailing bytes after the {nbytes} bytes of data that "
                    f"the header describes ({_describe(shape, dtype)})"
                )
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    return _native(arr)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain, or gzip-compressed when the name ends in ``.gz``).

    Returns the array with the shape from the header and a native-endian dtype:
    ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``.

    Raises :class:`~advnets.errors.DataError` (naming the file) for a missing
    file, a wrong magic number (including a gzip stream inside a name without
    ``.gz``, or a ``.gz`` name holding no gzip stream), an unsupported type
    byte, a truncated header or data, trailing bytes, a header declaring a zero
    dimension or claiming more data than the file can hold (both checked before
    allocating, by :func:`advnets.data.shapes.check_declared_shape`) and
    corrupt gzip data.
    """
    path = Path(path)
    try:
        st = path.stat()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise DataError(f"{path}: cannot read IDX file ({reason})") from exc
    if not path.is_file():
        raise DataError(f"{path}: expected an IDX file, found a directory or special file")
    try:
        if path.name.lower().endswith(".gz"):
            return _read_gzip(path, st.st_size)
        return _read_plain(path, st.st_size)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; EOFError is a gzip stream cut short.
        raise DataError(f"{path}: cannot read IDX data: {exc}") from exc


# --------------------------------------------------------------------------- datasets

_ROLES = {
    "train_images": ("train-images", "idx3-ubyte"),
    "train_labels": ("train-labels", "idx1-ubyte"),
    "test_images": ("t10k-images", "idx3-ubyte"),
    "test_labels": ("t10k-labels", "idx1-ubyte"),
}


def _candidates(stem: str, kind: str) -> list[str]:
    names = [f"{stem}-{kind}", f"{stem}.{kind}"]
    return names + [n + ".gz" for n in names]


def _find(directory: Path, role: str) -> Path | None:
    for name in _candidates(*_ROLES[role]):
        p = directory / name
        if p.is_file():
            return p
    return None


def _images(path: Path) -> np.ndarray:
    arr = read_idx(path)
    if arr.ndim != 3:
        hint = " (is it a labels file?)" if arr.ndim == 1 else ""
        raise DataError(
            f"{path}: expected a 3-D image array (N x rows x cols), found {arr.ndim}-D shape {arr.shape}{hint}"
        )
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: expected unsigned-byte pixels (IDX type 0x08), found {arr.dtype.name}")
    return arr


def _labels(path: Path) -> np.ndarray:
    arr = read_idx(path)
    if arr.ndim != 1:
        hint = " (is it an images file?)" if arr.ndim == 3 else ""
        raise DataError(f"{path}: expected a 1-D label array, found {arr.ndim}-D shape {arr.shape}{hint}")
    if arr.dtype.kind not in "iu":
        raise DataError(f"{path}: expected integer labels, found {arr.dtype.name}")
    if arr.size and int(arr.min()) < 0:
        raise DataError(f"{path}: expected non-negative labels, found {int(arr.min())}")
    return arr.astype(np.int64)


def load_idx_dataset(
    directory: str | os.PathLike, *, valid_size: int = 10000, dataset: str = "mnist"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load an MNIST-layout directory of four IDX files and split it as in the paper.

    ``directory`` must contain ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``-compressed and with the
    last ``-`` optionally written as ``.`` (``train-images.idx3-ubyte``). An
    uncompressed file is preferred over a ``.gz`` one when both exist.

    Returns ``{"train": (X, y), "valid": (X, y), "test": (X, y)}`` where ``X`` is
    float32 ``N x H x W`` in [0, 1] (pixel / 255) and ``y`` is int64 ``N``. The
    split follows the paper's setup: ``train`` is the first
    ``n_train - valid_size`` training images (0-49,999 for MNIST), ``valid`` the
    last ``valid_size`` (50,000-59,999) and ``test`` the t10k files.
    ``dataset`` is used only in the hint for missing files
    (``advnets data fetch <dataset>``).

    Raises :class:`~advnets.errors.DataError` for missing files (naming each),
    anything :func:`read_idx` rejects, images that are not 3-D uint8, labels
    that are not 1-D non-negative integers, image/label count mismatches,
    train/test image sizes that differ and ``valid_size`` outside
    ``0 <= valid_size < n_train``.
    """
    if isinstance(valid_size, bool) or not isinstance(valid_size, (int, np.integer)):
        raise DataError(f"valid_size must be an integer, got {type(valid_size).__name__} for {directory}")
    valid_size = int(valid_size)
    if valid_size < 0:
        raise DataError(f"valid_size must be >= 0 for {directory}, got {valid_size}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: dataset directory not found; get the files with `advnets data fetch {dataset}`")
    found: dict[str, Path] = {}
    missing = []
    for role, (stem, kind) in _ROLES.items():
        p = _find(directory, role)
        if p is None:
            missing.append(f"{stem}-{kind}[.gz]")
        else:
            found[role] = p
    if missing:
        raise DataError(f"{directory}: missing {', '.join(missing)}; get them with `advnets data fetch {dataset}`")

    X_train = _images(found["train_images"])
    y_train = _labels(found["train_labels"])
    X_test = _images(found["test_images"])
    y_test = _labels(found["test_labels"])
    for (xp, X), (yp, y) in (
        ((found["train_images"], X_train), (found["train_labels"], y_train)),
        ((found["test_images"], X_test), (found["test_labels"], y_test)),
    ):
        if X.shape[0] != y.shape[0]:
            raise DataError(
                f"{xp}: holds {X.shape[0]} images but {yp.name} holds {y.shape[0]} labels; expected the same count"
            )
    if X_train.shape[1:] != X_test.shape[1:]:
        raise DataError(
            f"{found['test_images']}: images are {X_test.shape[1]}x{X_test.shape[2]} but the "
            f"training images are {X_train.shape[1]}x{X_train.shape[2]}; expected the same size"
        )
    n_train = X_train.shape[0]
    if not valid_size < n_train:
        raise DataError(
            f"{found['train_images']}: valid_size={valid_size} leaves no training images; "
            f"expected 0 <= valid_size < {n_train} (the number of training images)"
        )
    scale = np.float32(255.0)
    X_train_f = X_train.astype(np.float32) / scale
    X_test_f = X_test.astype(np.float32) / scale
    cut = n_train - valid_size
    return {
        "train": (X_train_f[:cut], y_train[:cut]),
        "valid": (X_train_f[cut:], y_train[cut:]),
        "test": (X_test_f, y_test),
    }
