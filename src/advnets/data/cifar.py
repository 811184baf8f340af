"""CIFAR-10 readers (python-pickle and binary versions) and global contrast normalization.

Layouts accepted by :func:`load_cifar10`::

    <directory>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch
    <directory>/cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin, test_batch.bin

or ``<directory>`` being one of those two folders itself. When both versions
are present the python version is used.

*Python version.* Each batch is a pickled dict (written by Python 2, so it is
read with ``encoding="bytes"`` and its keys are ``b"data"``, ``b"labels"``,
...). ``data`` is a uint8 array of shape ``N x 3072`` (1,024 red, then green,
then blue values of a 32x32 image, row-major); ``labels`` a list of N ints in
0..9. Pickle can run arbitrary code, so the files are never passed to
``pickle.load``: :class:`RestrictedUnpickler` resolves only the globals such a
file contains (numpy's array and scalar reconstruction functions,
``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode`` as used by protocol-2
pickles written by Python 3) and maps each to a checking stand-in of its own,
so no numpy or Python code outside this module ever sees the pickled
arguments (arrays are built with ``numpy.frombuffer`` after checking that
the data length matches the shape and dtype). Every other global (``os.system``, ``builtins.eval``, ...) raises
:class:`~advnets.errors.DataError`. It derives from the pure-Python unpickler
(``pickle._Unpickler``, the reference implementation of
:class:`pickle.Unpickler`) because the C implementation pre-allocates its memo
table from the index stored in the file, so a few bytes can demand gigabytes.
Dict keys must be plain scalars (so no hash ever recurses into a deeply nested
tuple, which would overflow the C stack), sets and extension/persistent-id
opcodes are refused, a byte array may not claim more bytes than the file holds
(the pure-Python unpickler would allocate the claim up front), and the bytes
produced by ``_codecs.encode`` are capped by the file's size.

*Binary version.* Each ``.bin`` file is a sequence of 3,073-byte records: one
label byte (0..9) followed by the 3,072 pixel bytes in the same order as above.
The file size must be a non-zero multiple of 3,073.

:func:`load_cifar10` returns the reference split: ``train`` is training images
0-39,999, ``valid`` images 40,000-49,999 (the last ``valid_size``), ``test`` the
test batch; images float32 ``N x 3 x 32 x 32`` in [0, 1], labels int64.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from advnets.data.shapes import check_declared_shape
from advnets.errors import DataError

__all__ = [
    "IMAGE_SHAPE",
    "RECORD_BYTES",
    "RestrictedUnpickler",
    "GCNStats",
    "read_cifar_pickle_batch",
    "read_cifar_binary_batch",
    "read_cifar_batch",
    "load_cifar10",
    "global_contrast_normalize",
    "inverse_global_contrast_normalize",
]

IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
#: One binary record: a label byte and 3,072 pixel bytes.
RECORD_BYTES = 1 + _PIXELS
_NUM_CLASSES = 10
_TRAIN_BATCHES = 5
# Largest file we read into memory as a pickle batch (a real one is ~31 MB).
_MAX_PICKLE_BYTES = 1 << 30
_MAX_NDIM = 32

# Plain, fixed-size numeric dtypes an array or scalar in the file may have.
_ALLOWED_DTYPES = frozenset(
    f"{kind}{size}"
    for kind, sizes in (("b", (1,)), ("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (2, 4, 8)))
    for size in sizes
)


class _Refused(Exception):
    """Raised inside the unpickler; turned into a DataError naming the file."""


def _text(value, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise _Refused(f"{what} is not ASCII text") from None
    if isinstance(value, str):
        return value
    raise _Refused(f"{what} has type {type(value).__name__}, expected text")


class _Stub:
    """Base for objects the unpickler hands out: no attributes, no default BUILD."""

    __slots__ = ()

    def __setstate__(self, state):
        raise _Refused(f"unexpected state for a {type(self).__name__.lstrip('_')}")


class _Call(_Stub):
    """A callable stand-in for an allowed global (slots, so BUILD cannot patch it)."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)


class _Token(_Stub):
    """Stand-in for ``numpy.ndarray``: only usable as _reconstruct's first argument."""

    __slots__ = ()


class _Dtype(_Stub):
    """Stand-in for a ``numpy.dtype`` from the file; resolved after its BUILD."""

    __slots__ = ("code", "order", "_built")

    def __init__(self, code: str):
        self.code = code
        self.order = "="
        self._built = False

    def __setstate__(self, state):
        if self._built or not isinstance(state, tuple) or len(state) < 2:
            raise _Refused("malformed dtype state")
        order = _text(state[1], "dtype byte order")
        if order not in ("<", ">", "=", "|"):
            raise _Refused(f"unknown dtype byte order {order!r}")
        self.order = order
        self._built = True

    def resolve(self) -> np.dtype:
        dt = np.dtype(self.code)
        if self.order in ("<", ">"):
            dt = dt.newbyteorder(self.order)
        return dt


class _Array(_Stub):
    """Stand-in for an ndarray; holds the checked array once its state is known."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None):
        self.array = array

    def __setstate__(self, state):
        if self.array is not None or not isinstance(state, tuple):
            raise _Refused("malformed ndarray state")
        if len(state) == 5:
            version, shape, dtype, fortran, raw = state
            if type(version) is not int or version not in (0, 1):
                raise _Refused("unsupported ndarray pickle version")
        elif len(state) == 4:
            shape, dtype, fortran, raw = state
        else:
            raise _Refused("malformed ndarray state")
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            raise _Refused("malformed ndarray order flag")
        self.array = _make_array(raw, dtype, shape, "F" if fortran else "C")


def _dtype_of(value) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise _Refused("an array's dtype is not a numpy.dtype")
    return value.resolve()


def _check_shape(shape) -> tuple[int, ...]:
    if type(shape) is not tuple or len(shape) > _MAX_NDIM:
        raise _Refused("malformed array shape")
    for d in shape:
        if type(d) is not int or d < 0:
            raise _Refused("malformed array shape")
    return shape


def _make_array(raw, dtype, shape, order: str) -> np.ndarray:
    dt = _dtype_of(dtype)
    shape = _check_shape(shape)
    if type(raw) not in (bytes, bytearray):
        raise _Refused("array data is not a byte string")
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise _Refused(
            f"array data holds {len(raw)} bytes but its shape {shape} and dtype {dt.name} "
            f"need {math.prod(shape) * dt.itemsize}"
        )
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order)


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler for CIFAR batch files that refuses anything but plain numpy arrays.

    ``find_class`` resolves only numpy's ``_reconstruct``, ``scalar`` and
    ``_frombuffer``, ``numpy.ndarray``, ``numpy.dtype`` (plain numeric types)
    and ``_codecs.encode`` (latin-1), each to a checking stand-in; arrays come
    back as read-only ``numpy.frombuffer`` views. Any other global or a
    disallowed opcode raises :class:`~advnets.errors.DataError`. Use
    :meth:`loads_file` rather than constructing it directly.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._source = source
        self._size = len(data)
        self._budget = len(data) + 4096
        reconstruct = _Call(self._reconstruct)
        scalar = _Call(self._scalar)
        frombuffer = _Call(self._frombuffer)
        self._globals = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy.core.multiarray", "scalar"): scalar,
            ("numpy._core.multiarray", "scalar"): scalar,
            ("numpy.core.numeric", "_frombuffer"): frombuffer,
            ("numpy._core.numeric", "_frombuffer"): frombuffer,
            ("numpy", "ndarray"): _Token(),
            ("numpy", "dtype"): _Call(self._dtype),
            ("_codecs", "encode"): _Call(self._encode),
        }

    # ------------------------------------------------------------ resolution
    def find_class(self, module, name):
        key = (module, name)
        if key not in self._globals:
            raise DataError(
                f"{self._source}: refusing to load {module}.{name} from the pickle; a CIFAR "
                "batch contains only numpy arrays, lists, ints and byte strings"
            )
        return self._globals[key]

    def persistent_load(self, pid):
        raise _Refused("persistent ids are not allowed")

    # stand-ins for the allowed globals
    @staticmethod
    def _reconstruct(subtype=None, shape=None, typecode=None, *rest):
        if not isinstance(subtype, _Token) or rest or type(shape) is not tuple:
            raise _Refused("malformed numpy _reconstruct call")
        _text(typecode, "array typecode")
        return _Array()

    @staticmethod
    def _dtype(code=None, align=False, copy=False, *rest):
        code = _text(code, "dtype")
        if rest or code not in _ALLOWED_DTYPES:
            raise _Refused(f"dtype {code!r} is not a plain numeric type")
        return _Dtype(code)

    @staticmethod
    def _scalar(dtype=None, raw=None, *rest):
        dt = _dtype_of(dtype)
        if rest or type(raw) is not bytes or len(raw) != dt.itemsize:
            raise _Refused("malformed numpy scalar")
        return np.frombuffer(raw, dtype=dt)[0].item()

    @staticmethod
    def _frombuffer(buf=None, dtype=None, shape=None, order="C", *rest):
        order = _text(order, "array order")
        if rest or order not in ("C", "F"):
            raise _Refused("malformed numpy _frombuffer call")
        return _Array(_make_array(buf, dtype, shape, order))

    def _encode(self, text=None, encoding=None, *rest):
        if rest or type(text) is not str or encoding not in ("latin1", "latin-1"):
            raise _Refused("malformed _codecs.encode call")
        self._budget -= len(text)
        if self._budget < 0:
            raise _Refused("the pickle expands to more data than the file holds")
        return text.encode("latin-1")

    # ------------------------------------------------------------ opcode filters
    def _refuse(self):
        raise _Refused("the pickle uses an opcode a CIFAR batch never contains")

    @staticmethod
    def _check_keys(keys):
        for k in keys:
            if type(k) not in (str, bytes, int, float, bool, type(None)):
                raise _Refused(f"dict key of type {type(k).__name__}; expected text or numbers")

    def _load_setitem(self):
        self._check_keys(self.stack[-2:-1])
        pickle._Unpickler.dispatch[pickle.SETITEM[0]](self)

    def _load_setitems(self):
        self._check_keys(self.stack[0::2])
        pickle._Unpickler.dispatch[pickle.SETITEMS[0]](self)

    def _load_bytearray8(self):
        # pickle._Unpickler allocates the claimed length before reading any of it
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._size:
            raise _Refused(f"a byte array claims {n} bytes, more than the file holds")
        buf = bytearray(n)
        if self.readinto(buf) != n or len(buf) != n:
            raise _Refused("the pickle ends inside a byte array")
        self.append(buf)

    def _load_dict(self):
        self._check_keys(self.stack[0::2])
        pickle._Unpickler.dispatch[pickle.DICT[0]](self)

    for _op in (
        pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.PERSID, pickle.BINPERSID, pickle.INST,
        pickle.OBJ, pickle.EMPTY_SET, pickle.ADDITEMS, pickle.FROZENSET,
        pickle.NEXT_BUFFER, pickle.READONLY_BUFFER,
    ):  # fmt: skip
        dispatch[_op[0]] = _refuse
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
    del _op

    # ------------------------------------------------------------ entry point
    @classmethod
    def loads_file(cls, path: str | os.PathLike):
        """Unpickle ``path``; top-level dict values that are arrays come back as ndarrays.

        Raises :class:`~advnets.errors.DataError` naming the file for anything
        unreadable, malformed or not allowed.
        """
        path = Path(path)
        data = _read_bytes(path, _MAX_PICKLE_BYTES, "a CIFAR-10 pickle batch")
        try:
            obj = cls(data, str(path)).load()
            if isinstance(obj, dict):
                obj = {k: _resolve(v) for k, v in obj.items()}
            else:
                obj = _resolve(obj)
        except DataError:
            raise
        except _Refused as exc:
            raise DataError(f"{path}: not a valid CIFAR-10 pickle batch: {exc}") from None
        except KeyError:  # pickle._Unpickler's dispatch table has no such opcode
            raise DataError(f"{path}: not a valid CIFAR-10 pickle batch: unknown opcode") from None
        except RecursionError:
            raise DataError(f"{path}: not a valid CIFAR-10 pickle batch: nested too deeply") from None
        except Exception as exc:  # malformed pickles raise almost anything
            raise DataError(
                f"{path}: not a valid CIFAR-10 pickle batch ({type(exc).__name__}: {_short(exc)})"
            ) from None
        return obj


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _resolve(value):
    if isinstance(value, _Array):
        if value.array is None:
            raise _Refused("an ndarray was never given its data")
        return value.array
    if isinstance(value, _Stub):
        raise _Refused(f"unexpected {type(value).__name__.lstrip('_')} object")
    if type(value) is list:
        return [_resolve(v) if isinstance(v, _Stub) else v for v in value]
    return value


def _read_bytes(path: Path, limit: int, what: str) -> bytes:
    try:
        if not path.is_file():
            if path.exists():
                raise DataError(f"{path}: expected {what}, found a directory or special file")
            raise DataError(f"{path}: file not found; expected {what}")
        size = path.stat().st_size
        if size > limit:
            raise DataError(f"{path}: {size} bytes is too large to be {what}")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    except ValueError as exc:  # e.g. an embedded NUL in the path
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc


def _lookup(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"{path}: the batch has no {key!r} entry; expected keys b'data' and b'labels'")


def _check_labels(y: np.ndarray, path: Path) -> np.ndarray:
    if y.size and (int(y.min()) < 0 or int(y.max()) >= _NUM_CLASSES):
        raise DataError(f"{path}: labels range over {int(y.min())}..{int(y.max())}; expected 0..{_NUM_CLASSES - 1}")
    return y.astype(np.int64)


def read_cifar_pickle_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one python-version batch with :class:`RestrictedUnpickler`.

    Returns ``(X, y)``: X uint8 ``N x 3 x 32 x 32``, y int64 ``N`` in 0..9.
    Raises :class:`~advnets.errors.DataError` naming the file otherwise.
    """
    path = Path(path)
    batch = RestrictedUnpickler.loads_file(path)
    if not isinstance(batch, dict):
        raise DataError(
            f"{path}: the pickle holds an object of type {type(batch).__name__}; "
            "expected a dict with b'data' and b'labels'"
        )
    data = _lookup(batch, "data", path)
    labels = _lookup(batch, "labels", path)
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path}: 'data' is a {type(data).__name__}; expected a uint8 array")
    if data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' has dtype {data.dtype.name}; expected uint8")
    check_declared_shape(path, data.shape, "the pickled 'data' entry")
    if data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(
            f"{path}: 'data' has shape {data.shape}; expected N x {_PIXELS} with N >= 1 (3x32x32 images, one per row)"
        )
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(
                f"{path}: 'labels' is a {labels.dtype.name} array of shape {labels.shape}; "
                "expected a 1-D integer sequence"
            )
        y = labels
    elif type(labels) is list:
        if not all(type(v) is int for v in labels):
            raise DataError(f"{path}: 'labels' holds non-integers; expected ints 0..9")
        if any(v < -(2**62) or v > 2**62 for v in labels):
            raise DataError(f"{path}: 'labels' holds out-of-range values; expected ints 0..9")
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    else:
        raise DataError(f"{path}: 'labels' is a {type(labels).__name__}; expected a list of ints 0..9")
    if y.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {y.shape[0]} labels; expected the same count")
    y = _check_labels(y, path)
    X = np.array(data, dtype=np.uint8, order="C", copy=True).reshape((-1, *IMAGE_SHAPE))
    return X, y


def read_cifar_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one binary-version batch of 3,073-byte records.

    Returns ``(X, y)``: X uint8 ``N x 3 x 32 x 32``, y int64 ``N`` in 0..9.
    Raises :class:`~advnets.errors.DataError` naming the file for an empty file,
    a size that is not a multiple of 3,073 or a label byte above 9.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise DataError(f"{path}: file not found; expected a CIFAR-10 binary batch")
        size = path.stat().st_size
        if size == 0 or size % RECORD_BYTES:
            raise DataError(
                f"{path}: size {size} bytes is not a non-zero multiple of {RECORD_BYTES} "
                f"(1 label byte + {_PIXELS} pixel bytes per image); the file is truncated "
                "or not a CIFAR-10 binary batch"
            )
        records = np.empty((size // RECORD_BYTES, RECORD_BYTES), dtype=np.uint8)
        view = memoryview(records.reshape(-1))
        with open(path, "rb") as f:
            filled = 0
            while filled < size:
                got = f.readinto(view[filled:])
                if not got:
                    raise DataError(f"{path}: file ended early (was it modified while read?)")
                filled += got
    except OSError as exc:
        raise DataError(f"{path}: cannot read CIFAR-10 binary batch ({exc.strerror or exc})") from exc
    y = _check_labels(records[:, 0], path)
    X = np.ascontiguousarray(records[:, 1:]).reshape((-1, *IMAGE_SHAPE))
    return X, y


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a batch of either version: names ending in ``.bin`` are binary, others pickles."""
    path = Path(path)
    if path.name.lower().endswith(".bin"):
        return read_cifar_binary_batch(path)
    return read_cifar_pickle_batch(path)


def _batch_dir(directory: Path) -> tuple[Path, str]:
    for sub, suffix in (("cifar-10-batches-py", ""), ("cifar-10-batches-bin", ".bin")):
        if (directory / sub).is_dir():
            return directory / sub, suffix
    if (directory / "data_batch_1").is_file() or (directory / "test_batch").is_file():
        return directory, ""
    if (directory / "data_batch_1.bin").is_file() or (directory / "test_batch.bin").is_file():
        return directory, ".bin"
    raise DataError(
        f"{directory}: no CIFAR-10 data found; expected a cifar-10-batches-py or "
        "cifar-10-batches-bin folder (get it with `advnets data fetch cifar10` or from "
        "https://www.cs.toronto.edu/~kriz/cifar.html)"
    )


def load_cifar10(directory: str | os.PathLike, *, valid_size: int = 10000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 (python or binary version) with the reference split.

    Returns ``{"train": (X, y), "valid": (X, y), "test": (X, y)}``: X float32
    ``N x 3 x 32 x 32`` in [0, 1] (pixel / 255), y int64 in 0..9. ``train`` is
    the first ``n_train - valid_size`` images of data_batch_1..5 in order
    (0-39,999), ``valid`` the last ``valid_size`` (40,000-49,999), ``test`` the
    test batch. Raises :class:`~advnets.errors.DataError` for missing batches
    (naming them), anything the batch readers reject, and ``valid_size``
    outside ``0 <= valid_size < n_train``.
    """
    if isinstance(valid_size, bool) or not isinstance(valid_size, (int, np.integer)):
        raise DataError(f"valid_size must be an integer, got {type(valid_size).__name__} for {directory}")
    valid_size = int(valid_size)
    if valid_size < 0:
        raise DataError(f"valid_size must be >= 0 for {directory}, got {valid_size}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(
            f"{directory}: dataset directory not found; get CIFAR-10 with "
            "`advnets data fetch cifar10` or from https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    folder, suffix = _batch_dir(directory)
    names = [f"data_batch_{i}{suffix}" for i in range(1, _TRAIN_BATCHES + 1)]
    names.append(f"test_batch{suffix}")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; expected all five training batches and the test batch"
        )
    reader = read_cifar_binary_batch if suffix else read_cifar_pickle_batch
    parts = [reader(folder / n) for n in names]
    X_train = np.concatenate([p[0] for p in parts[:-1]])
    y_train = np.concatenate([p[1] for p in parts[:-1]])
    X_test, y_test = parts[-1]
    n_train = X_train.shape[0]
    if not valid_size < n_train:
        raise DataError(
            f"{folder}: valid_size={valid_size} leaves no training images; expected "
            f"0 <= valid_size < {n_train} (the number of training images)"
        )
    scale = np.float32(255.0)
    Xtr = X_train.astype(np.float32) / scale
    cut = n_train - valid_size
    return {
        "train": (Xtr[:cut], y_train[:cut]),
        "valid": (Xtr[cut:], y_train[cut:]),
        "test": (X_test.astype(np.float32) / scale, y_test),
    }


# --------------------------------------------------------------------------- GCN


class GCNStats(NamedTuple):
    """Per-image statistics from :func:`global_contrast_normalize`.

    ``mean``: the mean of each image (float64, shape ``N``); ``divisor``: what
    each centred image was divided by (float64, ``N``): ``||x - mean||_2 / scale``,
    or 1 where that is below ``eps``; ``scale``: the scale used.
    """

    mean: np.ndarray
    divisor: np.ndarray
    scale: float


def global_contrast_normalize(X: np.ndarray, scale: float = 55.0, eps: float = 1e-8) -> tuple[np.ndarray, GCNStats]:
    """Global contrast normalization as pylearn2's ``global_contrast_normalize``.

    Matches pylearn2 with ``scale=55``, ``subtract_mean=True``, ``use_std=False``,
    ``sqrt_bias=0`` and ``min_divisor=eps`` (the CIFAR-10 ``gcn: 55.`` setting).
    Each image ``x`` (all of its values, flattened) becomes::

        c = x - mean(x)
        d = ||c||_2 / scale          (replaced by 1 where d < eps)
        x_gcn = c / d                (so ||x_gcn||_2 = scale unless x is constant)

    The result does not depend on whether X is in [0, 1] or [0, 255] (apart from
    what counts as constant). ``X`` has shape ``N x ...``; returns
    ``(X_gcn, stats)`` with ``X_gcn`` float32 of X's shape and
    :class:`GCNStats` for :func:`inverse_global_contrast_normalize`. Sums are
    accumulated in float64.
    """
    X = np.asarray(X)
    if X.ndim < 2 or X.shape[0] == 0 or math.prod(X.shape[1:]) == 0:
        raise DataError(f"global_contrast_normalize: expected an N x ... array, got {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise DataError(f"global_contrast_normalize: expected real numbers, got {X.dtype}")
    if not scale > 0 or not math.isfinite(scale):
        raise DataError(f"global_contrast_normalize: scale must be positive, got {scale}")
    flat = X.reshape(X.shape[0], -1)
    out = np.empty(flat.shape, dtype=np.float32)
    means = np.empty(flat.shape[0], dtype=np.float64)
    divisors = np.empty(flat.shape[0], dtype=np.float64)
    step = 2048
    for start in range(0, flat.shape[0], step):
        block = flat[start : start + step].astype(np.float64)
        m = block.mean(axis=1)
        block -= m[:, None]
        d = np.sqrt(np.einsum("ij,ij->i", block, block)) / scale
        d[d < eps] = 1.0
        block /= d[:, None]
        out[start : start + step] = block
        means[start : start + step] = m
        divisors[start : start + step] = d
    if not (np.isfinite(means).all() and np.isfinite(divisors).all()):
        raise DataError("global_contrast_normalize: the images contain NaN or infinite values")
    return out.reshape(X.shape), GCNStats(means, divisors, float(scale))


def inverse_global_contrast_normalize(X_gcn: np.ndarray, stats: GCNStats | None = None) -> np.ndarray:
    """Map GCN'd images back to [0, 1] for display.

    With ``stats`` (from :func:`global_contrast_normalize` on images in [0, 1])
    this is the exact inverse ``x = x_gcn * divisor + mean``, clipped to
    [0, 1]. Without it (e.g. for generated samples, whose statistics are
    unknown) each image is rescaled linearly so that its minimum maps to 0 and
    its maximum to 1 (constant images map to 0.5). Returns float32 of the
    input's shape.
    """
    X_gcn = np.asarray(X_gcn)
    if X_gcn.ndim < 2:
        raise DataError(f"inverse_global_contrast_normalize: expected N x ..., got {X_gcn.shape}")
    flat = X_gcn.reshape(X_gcn.shape[0], -1).astype(np.float64)
    if stats is not None:
        mean = np.asarray(stats.mean, dtype=np.float64).reshape(-1)
        div = np.asarray(stats.divisor, dtype=np.float64).reshape(-1)
        if mean.shape[0] != flat.shape[0] or div.shape[0] != flat.shape[0]:
            raise DataError(
                f"inverse_global_contrast_normalize: stats are for {mean.shape[0]} images "
                f"but {flat.shape[0]} were given"
            )
        flat = flat * div[:, None] + mean[:, None]
        out = np.clip(flat, 0.0, 1.0)
    else:
        lo = flat.min(axis=1, keepdims=True)
        hi = flat.max(axis=1, keepdims=True)
        span = hi - lo
        safe = np.where(span > 0, span, 1.0)
        out = np.where(span > 0, (flat - lo) / safe, 0.5)
    return out.astype(np.float32).reshape(X_gcn.shape)
