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
0..9. Pickle can run arbitrary code, so the files are read with
:class:`~advnets.data.cifar_pickle.RestrictedUnpickler`, which builds nothing
but plain numpy arrays, lists, ints and byte strings (see that module).

*Binary version.* Each ``.bin`` file is a sequence of 3,073-byte records: one
label byte (0..9) followed by the 3,072 pixel bytes in the same order as above.
The file size must be a non-zero multiple of 3,073.

:func:`load_cifar10` returns the reference split: ``train`` is training images
0-39,999, ``valid`` images 40,000-49,999 (the last ``valid_size``), ``test`` the
test batch; images float32 ``N x 3 x 32 x 32`` in [0, 1], labels int64.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from advnets.data.cifar_pickle import RestrictedUnpickler
from advnets.data.shapes import check_declared_shape
from advnets.errors import DataError

__all__ = [
    "IMAGE_SHAPE",
    "RECORD_BYTES",
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
