"""Toronto Face Database (TFD) reader.

TFD is not redistributable: users bring their own ``TFD_48x48.mat`` (or
``TFD_96x96.mat``). The file is a MATLAB v5/v7 .mat file holding:

``images``
    ``N x 48 x 48`` uint8 face images (N = 102,236 in the 48x48 release).
``folds``
    ``N x 5`` integers, one column per fold: for image ``i`` in fold ``k``,
    ``folds[i, k]`` is 0 = unlabeled, 1 = train, 2 = valid, 3 = test.
``labs_ex``, ``labs_id``
    expression and identity labels (``N x 1``); present in the file but not
    read here.

Only ``images`` and ``folds`` are decoded; every other variable is skipped
without being decompressed. Images come back as float32 in [0, 1]
(pixel / 255), with the same ``N x H x W`` layout that ``scipy.io.loadmat``
gives (MATLAB's column-major data reshaped with the stored dimensions).

MATLAB v7.3 files are HDF5 containers and are refused with a message saying
how to re-save them (``save(..., '-v7')``); v4 files are refused too.

The file is parsed by a small, strict MAT v5 reader in this module rather than
``scipy.io.loadmat``: scipy's reader can crash the interpreter (segmentation
fault) on some corrupt files, for example a numeric array whose "complex" flag
is set without imaginary data. This reader checks every tag's byte count
against the bytes that remain (and, inside compressed elements, against the
largest size the compressed data could expand to) before allocating, and
turns every problem into a :class:`~advnets.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from advnets.data.shapes import check_declared_shape
from advnets.errors import DataError

__all__ = ["TFD_SPLITS", "TFDFolds", "read_mat_arrays", "load_tfd", "load_tfd_folds"]

#: Split names and the code each has in the ``folds`` matrix.
TFD_SPLITS = {"unlabeled": 0, "train": 1, "valid": 2, "test": 3}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_V73_HINT = (
    "MATLAB v7.3 (HDF5) .mat files are not supported; re-save it as a v7 file, e.g. in "
    "MATLAB or Octave: load('TFD_48x48.mat'); save('TFD_48x48.mat', 'images', 'folds', "
    "'labs_ex', 'labs_id', '-v7')"
)

# MAT v5 data types -> element dtype (byte order applied per file).
_MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
# MATLAB array classes -> numpy dtype.
_MX_CLASSES = {
    6: "f8",
    7: "f4",
    8: "i1",
    9: "u1",
    10: "i2",
    11: "u2",
    12: "i4",
    13: "u4",
    14: "i8",
    15: "u8",
}
_MX_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function"}
_MAX_INFLATE_RATIO = 1032
_CHUNK = 1 << 20
_MAX_NDIM = 32


class _Bad(Exception):
    """A structural problem; turned into a DataError naming the file."""


class _Slice:
    """Reads at most ``size`` bytes of an uncompressed element from a file."""

    def __init__(self, f, size: int):
        self._f = f
        self.left = size

    def read(self, n: int) -> bytes | bytearray:
        if n > self.left:
            raise _Bad(f"an element needs {n} bytes but only {self.left} remain in it")
        if n < 4096:
            data = self._f.read(n)
            got = len(data)
        else:  # large arrays: read straight into a writable buffer
            data = bytearray(n)
            view = memoryview(data)
            got = 0
            while got < n:
                k = self._f.readinto(view[got:])
                if not k:
                    break
                got += k
        if got != n:
            raise _Bad("the file ends in the middle of an element")
        self.left -= n
        return data


class _Inflater:
    """Decompresses an miCOMPRESSED element incrementally (never beyond what is asked)."""

    def __init__(self, f, size: int):
        self._f = f
        self._in_left = size
        self._d = zlib.decompressobj()
        self._tail = b""
        self.max_out = size * _MAX_INFLATE_RATIO + 64

    def _produce(self, want: int) -> bytes:
        while True:
            if self._tail:
                out = self._d.decompress(self._tail, want)
                self._tail = self._d.unconsumed_tail
                if out:
                    return out
            if self._d.eof or self._in_left == 0:
                return b""
            chunk = self._f.read(min(_CHUNK, self._in_left))
            if not chunk:
                raise _Bad("the file ends in the middle of a compressed element")
            self._in_left -= len(chunk)
            self._tail = chunk

    def read(self, n: int) -> bytes:
        if n > self.max_out:
            raise _Bad(f"an element claims {n} bytes, more than its compressed data can hold")
        parts = bytearray()
        while len(parts) < n:
            out = self._produce(min(_CHUNK, n - len(parts)))
            if not out:
                raise _Bad("a compressed element ends early (truncated or corrupt zlib data)")
            parts += out
        self.max_out -= n
        return bytes(parts) if n < 4096 else parts


class _Reader:
    def __init__(self, src, order: str):
        self.src = src
        self.order = order  # "<" or ">"

    def u32(self, data: bytes, i: int = 0) -> int:
        return struct.unpack_from(self.order + "I", data, i)[0]

    def tag(self) -> tuple[int, int, bytes | None]:
        """Read a data-element tag: (type, nbytes, small data or None)."""
        raw = self.src.read(8)
        first = self.u32(raw)
        if first >> 16:  # small data element: type and size packed, data in the tag
            nbytes, mtype = first >> 16, first & 0xFFFF
            if nbytes > 4:
                raise _Bad("malformed small data element")
            return mtype, nbytes, raw[4 : 4 + nbytes]
        return first, self.u32(raw, 4), None

    def element(self, expect: tuple[int, ...] | None = None) -> tuple[int, bytes]:
        mtype, nbytes, small = self.tag()
        if expect is not None and mtype not in expect:
            raise _Bad(f"unexpected data element type {mtype}")
        if small is not None:
            return mtype, small
        data = self.src.read(nbytes)
        pad = (-nbytes) % 8
        if pad:
            self.src.read(pad)
        return mtype, data


def _header(path: Path, f, size: int) -> str:
    head = f.read(128)
    v73 = DataError(f"{path}: {_V73_HINT}")
    if head.startswith(b"MATLAB 7.3") or head.startswith(_HDF5_SIGNATURE):
        raise v73
    if size >= 520:
        f.seek(512)
        if f.read(8) == _HDF5_SIGNATURE:
            raise v73
    if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
        raise DataError(
            f"{path}: not a MATLAB v5/v7 .mat file (expected a 128-byte header ending in the "
            "byte-order mark 'IM' or 'MI'; v4 files are not supported either)"
        )
    order = "<" if head[126:128] == b"IM" else ">"
    version = struct.unpack_from(order + "H", head, 124)[0]
    if version == 0x0200:
        raise v73
    if version != 0x0100:
        raise DataError(f"{path}: unknown .mat version 0x{version:04X}; expected a v5/v7 file")
    f.seek(128)
    return order


def _matrix(r: _Reader, wanted: set[str]) -> tuple[str, np.ndarray | None]:
    """Parse an miMATRIX body; decode its data only if its name is wanted."""
    _, flags = r.element((6,))
    if len(flags) != 8:
        raise _Bad("malformed array flags")
    word = r.u32(flags)
    mx_class, complex_ = word & 0xFF, bool(word & 0x800)
    _, dims_raw = r.element((5,))
    if len(dims_raw) % 4 or not 0 < len(dims_raw) // 4 <= _MAX_NDIM:
        raise _Bad("malformed array dimensions")
    dims = struct.unpack(f"{r.order}{len(dims_raw) // 4}i", dims_raw)
    if any(d < 0 for d in dims):
        raise _Bad("negative array dimension")
    _, name_raw = r.element((1, 2))
    try:
        name = name_raw.decode("ascii")
    except UnicodeDecodeError:
        raise _Bad("array name is not ASCII") from None
    if name not in wanted:
        return name, None
    if mx_class not in _MX_CLASSES:
        kind = _MX_NAMES.get(mx_class, f"class {mx_class}")
        raise _Bad(f"variable {name!r} is a {kind} array; expected a numeric array")
    if complex_:
        raise _Bad(f"variable {name!r} is complex; expected a real numeric array")
    mtype, nbytes, small = r.tag()
    if mtype not in _MI_TYPES:
        raise _Bad(f"variable {name!r} stores its data with unknown type {mtype}")
    stored = np.dtype(_MI_TYPES[mtype]).newbyteorder(r.order)
    count = math.prod(dims)
    if nbytes != count * stored.itemsize:
        raise _Bad(
            f"variable {name!r} has {nbytes} data bytes but its dimensions "
            f"{'x'.join(map(str, dims))} need {count * stored.itemsize}"
        )
    data = small if small is not None else r.src.read(nbytes)
    arr = np.frombuffer(data, dtype=stored).reshape(dims, order="F")
    with np.errstate(all="ignore"):
        arr = arr.astype(np.dtype(_MX_CLASSES[mx_class]).newbyteorder("="), copy=False)
    if not arr.flags.writeable:
        arr = arr.copy()
    return name, arr


def read_mat_arrays(path: str | os.PathLike, names: set[str] | frozenset[str]) -> dict:
    """Read the named real numeric arrays from a MATLAB v5/v7 .mat file.

    Returns ``{name: ndarray}`` for those of ``names`` that the file holds
    (others are skipped undecoded); arrays have the stored dimensions and the
    dtype of their MATLAB class. Raises :class:`~advnets.errors.DataError`
    naming the file for v7.3 (HDF5) or v4 files and for any corrupt structure.
    """
    path = Path(path)
    wanted = set(names)
    found: dict[str, np.ndarray] = {}
    try:
        if not path.is_file():
            what = "a directory or special file" if path.exists() else "nothing"
            raise DataError(f"{path}: expected a .mat file, found {what}")
        size = path.stat().st_size
        with open(path, "rb") as f:
            order = _header(path, f, size)
            pos = 128
            while pos < size:
                if size - pos < 8:
                    raise _Bad(f"{size - pos} stray bytes at the end of the file")
                top = _Reader(_Slice(f, size - pos), order)
                mtype, nbytes, small = top.tag()
                if small is not None:
                    pos += 8
                    continue
                if nbytes > size - pos - 8:
                    raise _Bad(
                        f"an element at byte {pos} claims {nbytes} bytes but only "
                        f"{size - pos - 8} remain (truncated file?)"
                    )
                end = pos + 8 + nbytes
                if mtype == _MI_MATRIX:
                    name, arr = _matrix(_Reader(_Slice(f, nbytes), order), wanted)
                    end += (-nbytes) % 8
                elif mtype == _MI_COMPRESSED:
                    inner = _Reader(_Inflater(f, nbytes), order)
                    itype, inbytes, ismall = inner.tag()
                    if itype != _MI_MATRIX or ismall is not None:
                        raise _Bad(f"a compressed element at byte {pos} holds no array")
                    name, arr = _matrix(inner, wanted)
                else:  # other top-level elements carry nothing we read
                    name, arr = None, None
                    end += (-nbytes) % 8
                if arr is not None:
                    found[name] = arr
                pos = min(end, size)
                f.seek(pos)
    except DataError:
        raise
    except _Bad as exc:
        raise DataError(f"{path}: corrupt or unsupported .mat file: {exc}") from None
    except (OSError, ValueError, OverflowError, MemoryError, zlib.error, struct.error) as exc:
        raise DataError(f"{path}: corrupt or unreadable .mat file ({type(exc).__name__}: {exc})") from None
    return found


def _read_tfd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = read_mat_arrays(path, {"images", "folds"})
    missing = [n for n in ("images", "folds") if n not in arrays]
    if missing:
        raise DataError(
            f"{path}: missing variable(s) {', '.join(missing)}; expected a TFD .mat file with "
            "'images' (N x 48 x 48 uint8) and 'folds' (N x 5)"
        )
    images, folds = arrays["images"], arrays["folds"]
    # Zero dimensions first (issue 18): an empty 'images' or 'folds' is a corrupt file, not an empty dataset.
    check_declared_shape(path, images.shape, "variable 'images'")
    check_declared_shape(path, folds.shape, "variable 'folds'")
    if images.ndim != 3:
        raise DataError(f"{path}: 'images' has shape {images.shape}; expected N x H x W (N x 48 x 48)")
    if images.dtype.kind not in "iu":
        raise DataError(f"{path}: 'images' has dtype {images.dtype.name}; expected uint8")
    if images.dtype != np.uint8 and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{path}: 'images' values fall outside 0..255; expected uint8 pixels")
    n = images.shape[0]
    if folds.ndim != 2 or folds.shape[0] != n:
        raise DataError(f"{path}: 'folds' has shape {folds.shape}; expected {n} x 5 (one row per image)")
    valid_codes = np.isin(folds, list(TFD_SPLITS.values()))
    if not valid_codes.all():
        raise DataError(f"{path}: 'folds' holds values other than 0 (unlabeled), 1 (train), 2 (valid) and 3 (test)")
    return images, folds.astype(np.int64)


def _check_fold(path: Path, fold, n_folds: int) -> int:
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)):
        raise DataError(f"{path}: fold must be an integer, got {type(fold).__name__}")
    if not 0 <= fold < n_folds:
        raise DataError(f"{path}: fold {fold} is out of range; expected 0..{n_folds - 1}")
    return int(fold)


def _check_split(path: Path, split) -> int:
    if not isinstance(split, str) or split not in TFD_SPLITS:
        raise DataError(f"{path}: unknown split {split!r}; expected one of {', '.join(TFD_SPLITS)}")
    return TFD_SPLITS[split]


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / np.float32(255.0)


def load_tfd(path: str | os.PathLike, *, fold: int = 0, split: str = "unlabeled") -> np.ndarray:
    """Load one split of one TFD fold.

    ``split`` is ``"unlabeled"``, ``"train"``, ``"valid"`` or ``"test"``; ``fold``
    indexes the columns of ``folds`` (0..4). Returns float32 ``N x H x W`` in
    [0, 1] (pixel / 255), images in file order. Raises
    :class:`~advnets.errors.DataError` naming the file for a missing variable,
    wrong shapes or fold codes, an out-of-range fold, an unknown split, a v7.3
    (HDF5) file or a corrupt file.
    """
    path = Path(path)
    code = _check_split(path, split)
    images, folds = _read_tfd(path)
    k = _check_fold(path, fold, folds.shape[1])
    return _to_float(images[folds[:, k] == code])


class TFDFolds(NamedTuple):
    """All of TFD with every fold's splits, sharing one image array.

    ``images``: float32 ``N x H x W`` in [0, 1]; ``folds``: one dict per fold
    mapping each split name to the int64 indices (ascending) of its images.
    ``images[folds[k]["train"]]`` is what ``load_tfd(path, fold=k, split="train")``
    returns.
    """

    images: np.ndarray
    folds: list[dict[str, np.ndarray]]

    def split(self, fold: int, split: str) -> np.ndarray:
        """Images of one split of one fold (a copy)."""
        return self.images[self.folds[fold][split]]


def load_tfd_folds(path: str | os.PathLike) -> TFDFolds:
    """Load TFD once with the split indices of all folds (see :class:`TFDFolds`).

    Indices are returned rather than copies because the 48x48 release is about
    0.9 GB as float32 and each fold partitions all of it.
    """
    path = Path(path)
    images, folds = _read_tfd(path)
    per_fold = [
        {name: np.flatnonzero(folds[:, k] == code) for name, code in TFD_SPLITS.items()} for k in range(folds.shape[1])
    ]
    return TFDFolds(_to_float(images), per_fold)
