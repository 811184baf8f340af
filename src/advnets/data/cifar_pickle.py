"""The restricted unpickler for CIFAR-10's python-version batches.

Pickle can run arbitrary code, so a CIFAR batch file is never passed to
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

What the unpickled dict must hold (``b"data"``, ``b"labels"``) is checked by
:func:`advnets.data.cifar.read_cifar_pickle_batch`, not here.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from advnets.errors import DataError

__all__ = ["RestrictedUnpickler"]

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
