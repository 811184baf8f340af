"""Cheap mode-collapse statistics for a batch of samples, to compute while training.

When G collapses (the paper's "Helvetica scenario", §6) its samples become
alike. Three batch statistics, each needing only the samples and a real batch
of the same kind (no classifier), show it:

* :func:`mean_pairwise_distance`: the mean Euclidean distance over all pairs
  ``i < j`` of the flattened images. It estimates ``E‖x − x'‖`` for two
  independent draws, which does not depend on the batch size.
* :func:`diversity_ratio`: that mean for the samples over the same for a real
  batch: about 1 for a generator as varied as the data, 0 when every sample is
  the same image. Two real batches of 500 embedded MNIST or 8×8 digits give
  0.99 to 1.01; the training images of a single class give 0.64 to 0.99 of the
  whole test split's spread on embedded MNIST (the 1s are the narrowest) and
  0.57 to 0.87 on the 8×8 digits, so a ratio well below 0.5 means samples less
  varied than any one digit class: a collapse onto a few images.
* :func:`near_duplicate_fraction`: the fraction of samples whose nearest
  *other* sample lies closer than a threshold. By default the threshold is
  :data:`DEFAULT_DUPLICATE_FACTOR` (0.25) times the median nearest-neighbour
  distance within the real batch: in held-out batches of 500 real images the
  smallest nearest-neighbour distance is about 0.3 (embedded MNIST) or 0.45
  (8×8 digits) times the median, so real data give 0, while copies of one image
  give 1. Nearest-neighbour distances shrink as a batch grows, so pass a real
  batch of the same size as the samples.

Distances are computed in float64 from one matrix product per block of rows
(``‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b``, after centring the rows on their mean).
Where that expansion cancels (a squared distance below 1e-4 of ``‖a‖² + ‖b‖²``)
the pair is recomputed directly from ``a − b``, and exact duplicates are
found first (:func:`numpy.unique`), so identical images are at distance exactly
0 and every distance is accurate to about 1e-9 relative or better. Memory is bounded by
blocks of ~64 MiB; time is O(N²·d), for batches of a few thousand.

Training's collapse warning (:class:`advnets.monitor.CollapseDetector`) is built
on these statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from advnets.errors import DataError
from advnets.evaluate.inputs import as_rows

__all__ = [
    "DEFAULT_DUPLICATE_FACTOR",
    "diversity_ratio",
    "mean_pairwise_distance",
    "near_duplicate_fraction",
    "nearest_other_distance",
]

#: Default near-duplicate threshold, as a fraction of the real batch's median nearest-neighbour distance.
DEFAULT_DUPLICATE_FACTOR = 0.25

_BLOCK_BYTES = 64 * 2**20
_REFINE = 1e-4  # recompute pairs whose squared distance is below this fraction of ||a||^2 + ||b||^2


# --------------------------------------------------------------------------- distances


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows, centred on the batch mean, with each input row's index into them and their counts."""
    u, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    u = u - x.mean(axis=0)  # identical rows stay identical: the same subtraction
    return u, inverse.reshape(-1), counts


def _distance_blocks(u: np.ndarray):
    """Yield ``(start, D)``: the Euclidean distances of rows ``start:start+b`` of ``u`` to all of ``u``."""
    m = len(u)
    sq = np.einsum("ij,ij->i", u, u)
    block = max(1, _BLOCK_BYTES // (8 * 3 * m))
    for start in range(0, m, block):
        stop = min(start + block, m)
        scale = sq[start:stop, None] + sq[None, :]
        d2 = scale - 2.0 * (u[start:stop] @ u.T)
        i, j = np.nonzero(d2 <= _REFINE * scale)
        for s in range(0, len(i), 4096):  # cancellation: recompute from the differences
            ii, jj = i[s : s + 4096], j[s : s + 4096]
            diff = u[start + ii] - u[jj]
            d2[ii, jj] = np.einsum("ij,ij->i", diff, diff)
        np.maximum(d2, 0.0, out=d2)
        yield start, np.sqrt(d2, out=d2)


def mean_pairwise_distance(x: Any) -> float:
    """Mean Euclidean distance over all pairs ``i < j`` of the (flattened) rows of ``x``.

    ``x``: ``N×d`` or ``N×C×H×W`` array or tensor with ``N >= 2``. Exact in
    float64 (see the module docstring); 0 when all rows are equal.
    """
    a = as_rows(x, "x", min_rows=2)
    n = len(a)
    u, _, counts = _unique_rows(a)
    if len(u) == 1:
        return 0.0
    w = counts.astype(np.float64)
    total = 0.0
    for start, d in _distance_blocks(u):
        total += float(w[start : start + len(d)] @ d @ w)  # duplicate pairs are at distance 0
    return total / (n * (n - 1))  # the sum counted each pair twice


def diversity_ratio(samples: Any, real: Any) -> float:
    """Mean pairwise distance of ``samples`` over that of a ``real`` batch (~1 healthy, 0 collapsed)."""
    s, r = as_rows(samples, "samples", min_rows=2), as_rows(real, "real", min_rows=2)
    if s.shape[1] != r.shape[1]:
        raise DataError(f"samples have {s.shape[1]} values per row but real data have {r.shape[1]}")
    ref = mean_pairwise_distance(r)
    if ref == 0:
        raise DataError("the real batch has mean pairwise distance 0 (all rows equal); pass a real batch of data")
    return mean_pairwise_distance(s) / ref


def nearest_other_distance(x: Any) -> np.ndarray:
    """For each row of ``x``, the Euclidean distance to its nearest *other* row (0 for a duplicate)."""
    a = as_rows(x, "x", min_rows=2)
    u, inverse, counts = _unique_rows(a)
    nearest = np.zeros(len(u))
    if len(u) > 1:
        for start, d in _distance_blocks(u):
            b = len(d)
            d[np.arange(b), np.arange(start, start + b)] = np.inf
            nearest[start : start + b] = d.min(axis=1)
    nearest[counts > 1] = 0.0
    return nearest[inverse]


def near_duplicate_fraction(
    samples: Any,
    threshold: float | None = None,
    *,
    real: Any = None,
    factor: float = DEFAULT_DUPLICATE_FACTOR,
) -> float:
    """Fraction of ``samples`` whose nearest other sample is closer than ``threshold``.

    Give either ``threshold`` (a Euclidean distance in pixel units) or ``real``,
    a real batch of about the same size, from which the threshold is derived as
    ``factor`` (default 0.25) times the median nearest-neighbour distance
    within ``real`` (see the module docstring for why).
    """
    s = as_rows(samples, "samples", min_rows=2)
    if threshold is None:
        if real is None:
            raise DataError("near_duplicate_fraction needs a threshold or a real batch (real=...) to derive one from")
        r = as_rows(real, "real", min_rows=2)
        if r.shape[1] != s.shape[1]:
            raise DataError(f"samples have {s.shape[1]} values per row but real data have {r.shape[1]}")
        f = finite_number(factor, "factor")
        if f <= 0:
            raise DataError(f"factor must be positive, got {factor!r}")
        thr = f * float(np.median(nearest_other_distance(r)))
    else:
        if real is not None:
            raise DataError("give near_duplicate_fraction a threshold or a real batch, not both")
        thr = finite_number(threshold, "threshold")
        if thr < 0:
            raise DataError(f"threshold must be >= 0, got {threshold!r}")
    return float(np.mean(nearest_other_distance(s) < thr))


def finite_number(v: Any, name: str) -> float:
    """``v`` as a finite float; DataError naming ``name`` for a bool, a non-number, NaN or infinity."""
    if isinstance(v, bool):
        raise DataError(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be a number, got {v!r}") from e
    if not math.isfinite(f):
        raise DataError(f"{name} must be finite, got {v!r}")
    return f
