"""Mode-collapse measures for the 2-D toys (ring8, grid25).

The standard protocol of the mode-collapse literature (Unrolled GAN, VEEGAN,
PacGAN): assign each generated sample to its nearest mode; call it *high quality*
if it lies within ``threshold`` standard deviations (default 3) of that mode; a
mode is *covered* if it receives at least ``min_count`` high-quality samples.

Default ``min_count``: one fifth of the count a mode would get if all ``n``
samples were spread uniformly over the ``K`` modes, ``ceil(0.2 * n / K)`` (at
least 1). With 2,500 samples on grid25 this is 20 samples, the PacGAN rule
("a mode is lost if it gets fewer than 20 samples, 1/5 of its expected 100").
Because it scales with ``n``, the verdict does not drift with the sample size.

Reference value: for samples drawn exactly from an isotropic 2-D Gaussian mode,
the squared distance over ``std^2`` is chi-squared with 2 degrees of freedom, so
the expected high-quality fraction is ``1 - exp(-threshold^2 / 2)`` --
``1 - exp(-4.5) = 0.98889`` at 3 std (not the 1-D "99.7 %"). It is available as
:func:`expected_high_quality_fraction`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from advnets.errors import DataError
from advnets.evaluate.inputs import as_rows

__all__ = ["DEFAULT_MIN_FRACTION", "mode_coverage", "expected_high_quality_fraction"]

#: Default coverage rule: a mode is covered if it gets at least this fraction of the
#: ``n / K`` high-quality samples expected under uniform coverage.
DEFAULT_MIN_FRACTION = 0.2

_CHUNK = 65536


def expected_high_quality_fraction(threshold: float = 3.0, dim: int = 2) -> float:
    """P(||x - mu|| <= threshold * std) for ``x ~ N(mu, std^2 I_dim)`` (chi distribution)."""
    from scipy.stats import chi2

    return float(chi2.cdf(threshold**2, df=dim))


def mode_coverage(
    samples: Any,
    modes: Any,
    std: float,
    *,
    threshold: float = 3.0,
    min_count: int | None = None,
) -> dict[str, Any]:
    """Mode coverage and sample quality of generated ``samples`` against known ``modes``.

    Parameters
    ----------
    samples:
        ``(N, dim)`` array or tensor of generated points. Rows with NaN/inf (a
        diverged generator) are kept in ``N`` but are never high quality and get
        nearest mode ``-1``.
    modes:
        ``(K, dim)`` mode centres (e.g. ``ring8().modes``).
    std:
        The per-coordinate standard deviation of each mode (e.g. ``ring8().std``).
    threshold:
        A sample is high quality if within ``threshold * std`` (Euclidean) of its
        nearest mode.
    min_count:
        High-quality samples a mode needs to count as covered; default
        ``max(1, ceil(DEFAULT_MIN_FRACTION * N / K))`` (see module docstring).

    Returns
    -------
    dict with keys
        ``n_samples``, ``n_modes``, ``threshold``, ``min_count`` (ints/floats);
        ``modes_covered`` (int); ``covered`` (bool array, K);
        ``counts`` (int array, K: high-quality samples per mode);
        ``high_quality_count`` (int) and ``high_quality_fraction`` (float);
        ``nearest_mode`` (int array, N) and ``distance`` (float array, N: distance
        to the nearest mode, ``inf`` for non-finite rows);
        ``kl_to_uniform``: ``KL(h || uniform)`` of the normalised histogram ``h`` of
        high-quality samples over modes, natural log, in ``[0, log K]`` (0 = perfectly
        balanced, ``log K`` = all on one mode); NaN when there is no high-quality sample.
    """
    x = as_rows(samples, "samples", flatten=False, finite=False)
    m = as_rows(modes, "modes", flatten=False, finite=False)
    if x.shape[0] == 0:
        raise DataError("samples is empty; need at least one sample")
    if m.shape[0] == 0:
        raise DataError("modes is empty; need at least one mode")
    if x.shape[1] != m.shape[1]:
        raise DataError(f"samples have dimension {x.shape[1]} but modes have dimension {m.shape[1]}")
    if not np.all(np.isfinite(m)):
        raise DataError("modes contain NaN or infinite values")
    try:
        sd = float(std)
        thr = float(threshold)
    except (TypeError, ValueError) as exc:
        raise DataError(f"std and threshold must be numbers, got {std!r}, {threshold!r}") from exc
    if not (math.isfinite(sd) and sd > 0):
        raise DataError(f"std must be a positive finite number, got {std!r}")
    if not (math.isfinite(thr) and thr > 0):
        raise DataError(f"threshold must be a positive finite number, got {threshold!r}")

    n, k = x.shape[0], m.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(DEFAULT_MIN_FRACTION * n / k))
    elif isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise DataError(f"min_count must be a positive integer, got {min_count!r}")
    min_count = int(min_count)

    nearest, distance = _nearest_modes(x, m)
    high = distance <= thr * sd
    counts = np.bincount(nearest[high], minlength=k).astype(np.int64)
    covered = counts >= min_count
    hq = int(counts.sum())
    return {
        "n_samples": int(n),
        "n_modes": int(k),
        "threshold": thr,
        "min_count": min_count,
        "modes_covered": int(covered.sum()),
        "covered": covered,
        "counts": counts,
        "high_quality_count": hq,
        "high_quality_fraction": hq / n,
        "nearest_mode": nearest,
        "distance": distance,
        "kl_to_uniform": _kl_to_uniform(counts),
    }


def _nearest_modes(x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and Euclidean distance to, each row's nearest mode (float64, chunked over rows).

    Rows with NaN/inf get index -1 and distance ``inf``.
    """
    n = x.shape[0]
    finite = np.all(np.isfinite(x), axis=1)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.inf)
    idx = np.flatnonzero(finite)
    for start in range(0, idx.size, _CHUNK):
        rows = idx[start : start + _CHUNK]
        d2 = np.sum((x[rows, None, :] - m[None, :, :]) ** 2, axis=-1)
        j = np.argmin(d2, axis=1)
        nearest[rows] = j
        distance[rows] = np.sqrt(d2[np.arange(rows.size), j])
    return nearest, distance


def _kl_to_uniform(counts: np.ndarray) -> float:
    """``KL(h || uniform)`` of the normalised histogram ``counts``, natural log, in [0, log K]; NaN if empty."""
    k = counts.shape[0]
    hq = int(counts.sum())
    if hq == 0:
        return math.nan
    h = counts / hq
    nz = h > 0
    kl = float(np.sum(h[nz] * np.log(h[nz] * k)))
    return min(max(kl, 0.0), math.log(k))
