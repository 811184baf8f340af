"""Section 4 of the paper, numerically.

Everything here works on *tabulated* distributions: either discrete probability
vectors, or densities sampled on a 1-D (or any) grid. Every integral is the same
weighted sum ``sum(w * f)`` with non-negative quadrature weights ``w``:

* ``dx=None`` -- the inputs are probability vectors, ``w = 1``;
* ``dx=<float>`` -- a uniform grid with spacing ``dx`` (plain Riemann sum);
* ``dx=<array>`` -- per-point weights of the same shape as the densities, e.g.
  :func:`quadrature_weights` of a non-uniform grid.

Because every quantity uses the same linear functional, the paper's identities
(Prop. 1, Thm. 1 / Eqs. 4-6) hold to rounding error, whatever the
discretisation error of the grid. For the same reason each input distribution is
validated (non-negative, finite, total mass within ``tol`` of 1) and then
rescaled to *exactly* unit mass before use.

Conventions: natural logarithms throughout; ``0 * log 0 = 0``; a divergence that
is infinite (mass of ``p`` where ``q`` is zero) is returned as ``inf``.

Public API
----------
``optimal_discriminator(p_data, p_g, *, logits=False)``  D* of Prop. 1
``value_function(d, p_data, p_g, dx=None, *, logits=False)``  V(D, G) of Eq. 1
``virtual_training_criterion(p_data, p_g, dx=None)``  C(G) = max_D V(D, G), Eq. 4
``kl_divergence(p, q, dx=None)``, ``js_divergence(p, q, dx=None)``
``quadrature_weights(x)``                          cell widths of a 1-D grid
``histogram_density(samples, grid_edges)``         density estimate from samples
``jsd_from_samples(samples, pdf, grid)``           JSD(p_data || p_g) from G's samples
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import rel_entr, xlogy

from advnets.errors import DataError

__all__ = [
    "LOG_4",
    "DEFAULT_TOL",
    "optimal_discriminator",
    "value_function",
    "virtual_training_criterion",
    "kl_divergence",
    "js_divergence",
    "quadrature_weights",
    "histogram_density",
    "jsd_from_samples",
]

#: ``log 4``: the global minimum of C(G) is ``-LOG_4`` (Thm. 1).
LOG_4 = math.log(4.0)

#: Default tolerance on the total mass of an input distribution. Loose enough for
#: densities tabulated on a finite grid (truncated tails, quadrature error);
#: inputs are renormalised exactly after the check.
DEFAULT_TOL = 1e-3


# --------------------------------------------------------------------------- helpers


def _as_array(a: Any, name: str) -> np.ndarray:
    """``a`` as a float64 numpy array (accepts torch tensors and sequences)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor, without importing torch
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be an array of numbers, got {type(a).__name__}") from exc
    if arr.ndim == 0:
        raise DataError(f"{name} must be an array, got a scalar")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


def _check_nonnegative(arr: np.ndarray, name: str) -> None:
    if np.any(arr < 0):
        raise DataError(f"{name} has negative entries (min {arr.min():.3g}); a density must be >= 0")


def _check_same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise DataError(f"{na} and {nb} must have the same shape, got {a.shape} and {b.shape}")


def _weights(dx: Any, shape: tuple[int, ...]) -> np.ndarray | float:
    """Quadrature weights for arrays of ``shape`` (see module docstring)."""
    if dx is None:
        return 1.0
    if np.ndim(dx) == 0:
        try:
            step = float(dx)
        except (TypeError, ValueError) as exc:
            raise DataError(f"dx must be a positive number or an array, got {dx!r}") from exc
        if not (math.isfinite(step) and step > 0):
            raise DataError(f"dx must be a positive finite number, got {dx!r}")
        return step
    w = _as_array(dx, "dx")
    if w.shape != shape:
        raise DataError(f"dx (quadrature weights) must have shape {shape}, got {w.shape}")
    if np.any(w < 0):
        raise DataError("dx (quadrature weights) must be non-negative")
    return w


def _integrate(f: np.ndarray, w: np.ndarray | float) -> float:
    return float(np.sum(f * w))


def _distribution(
    p: Any, name: str, dx: Any, tol: float, shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray | float]:
    """Validate ``p`` as a distribution under weights ``dx``; return it at unit mass."""
    arr = _as_array(p, name)
    if shape is not None and arr.shape != shape:
        raise DataError(f"{name} must have shape {shape}, got {arr.shape}")
    _check_nonnegative(arr, name)
    w = _weights(dx, arr.shape)
    mass = _integrate(arr, w)
    what = "sum" if dx is None else "integrate"
    if not abs(mass - 1.0) <= tol:
        raise DataError(
            f"{name} must {what} to 1 (within {tol:g}), got {mass:.6g}"
            + ("" if dx is not None else "; pass dx=<grid spacing> for a density on a grid")
        )
    return arr / mass, w


def _pair(
    p: Any, q: Any, names: tuple[str, str], dx: Any, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
    pa = _as_array(p, names[0])
    qa = _as_array(q, names[1])
    _check_same_shape(pa, qa, *names)
    pa, w = _distribution(pa, names[0], dx, tol)
    qa, _ = _distribution(qa, names[1], dx, tol)
    return pa, qa, w


# ----------------------------------------------------------------------- Section 4


def optimal_discriminator(p_data: Any, p_g: Any, *, logits: bool = False) -> np.ndarray:
    """The optimal discriminator for a fixed generator (Prop. 1, Eq. 2).

    ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``, pointwise. Only the ratio matters,
    so the inputs need not be normalised (they must be finite, non-negative and of
    the same shape).

    Where both densities are zero, ``D*`` is not determined by Eq. 1 (those points
    carry no weight in V); it is defined there as ``1/2``, the value of the
    equilibrium discriminator, so ``D* = 1/2`` everywhere when ``p_g = p_data``.

    With ``logits=True`` the result is ``log p_data - log p_g`` (``sigmoid`` of it is
    ``D*``): ``+inf`` where only ``p_data`` is positive, ``-inf`` where only ``p_g``
    is, 0 where both vanish. Use it in the far tails, where ``D*`` rounds to exactly
    0 or 1 in floating point (once ``p_g / p_data < 2**-53``) and
    ``value_function(D*, ...)`` would then report ``-inf``.
    """
    p = _as_array(p_data, "p_data")
    q = _as_array(p_g, "p_g")
    _check_same_shape(p, q, "p_data", "p_g")
    _check_nonnegative(p, "p_data")
    _check_nonnegative(q, "p_g")
    if logits:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(p) - np.log(q)
        out[(p == 0) & (q == 0)] = 0.0
        return out
    s = p + q
    out = np.full(p.shape, 0.5)
    np.divide(p, s, out=out, where=s > 0)
    return out


def value_function(
    d: Any,
    p_data: Any,
    p_g: Any,
    dx: Any = None,
    *,
    logits: bool = False,
    tol: float = DEFAULT_TOL,
) -> float:
    """The value function of Eq. 1, ``V(D, G) = E_pdata[log D] + E_pg[log(1 - D)]``.

    Written, as in Eq. 3, as ``integral of p_data log D + p_g log(1 - D)`` over x.
    ``d`` holds D's outputs at the same points as the densities: probabilities in
    [0, 1], or with ``logits=True`` D's pre-sigmoid outputs (any real, +-inf
    allowed), evaluated stably as ``log D = -softplus(-l)``,
    ``log(1 - D) = -softplus(l)``.

    Terms with zero weight vanish (``0 * log 0 = 0``); a data point where ``D = 0``
    (or a generated point where ``D = 1``) makes ``V = -inf``. Note that this is
    also what happens when a probability rounds to exactly 0 or 1 -- pass logits to
    avoid it.
    """
    p, q, w = _pair(p_data, p_g, ("p_data", "p_g"), dx, tol)
    if logits:
        if hasattr(d, "detach") and hasattr(d, "cpu"):
            d = d.detach().cpu().numpy()
        try:
            lg = np.asarray(d, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"d must be an array of logits, got {type(d).__name__}") from exc
        _check_same_shape(lg, p, "d", "p_data")
        if np.any(np.isnan(lg)):
            raise DataError("d (logits) contains NaN")
        log_d = -np.logaddexp(0.0, -lg)
        log_1md = -np.logaddexp(0.0, lg)
    else:
        dd = _as_array(d, "d")
        _check_same_shape(dd, p, "d", "p_data")
        if np.any((dd < 0) | (dd > 1)):
            raise DataError(f"d must be a probability in [0, 1], got values in [{dd.min():.3g}, {dd.max():.3g}]")
        with np.errstate(divide="ignore"):
            log_d = np.log(dd)
            log_1md = np.log1p(-dd)
    with np.errstate(invalid="ignore"):
        integrand = np.where(p > 0, p * log_d, 0.0) + np.where(q > 0, q * log_1md, 0.0)
    return _integrate(integrand, w)


def virtual_training_criterion(p_data: Any, p_g: Any, dx: Any = None, *, tol: float = DEFAULT_TOL) -> float:
    """``C(G) = max_D V(D, G) = V(D*, G)`` (Eq. 4).

    ``= E_pdata[log p_data/(p_data+p_g)] + E_pg[log p_g/(p_data+p_g)]``; by Thm. 1
    this equals ``-log 4 + 2 JSD(p_data || p_g)``, with minimum ``-log 4`` iff
    ``p_g = p_data``. Computed directly from the ratios (not from ``1 - D*``) so
    that it stays accurate where one density dominates.
    """
    p, q, w = _pair(p_data, p_g, ("p_data", "p_g"), dx, tol)
    s = p + q
    safe = np.where(s > 0, s, 1.0)
    integrand = xlogy(p, p / safe) + xlogy(q, q / safe)
    return _integrate(integrand, w)


def kl_divergence(p: Any, q: Any, dx: Any = None, *, tol: float = DEFAULT_TOL) -> float:
    """``KL(p || q) = integral of p log(p / q)`` (natural log; ``inf`` if p is not << q)."""
    pa, qa, w = _pair(p, q, ("p", "q"), dx, tol)
    kl = _integrate(rel_entr(pa, qa), w)
    return max(kl, 0.0)


def js_divergence(p: Any, q: Any, dx: Any = None, *, tol: float = DEFAULT_TOL) -> float:
    """Jensen-Shannon divergence ``KL(p||m)/2 + KL(q||m)/2`` with ``m = (p+q)/2``.

    Symmetric, in ``[0, log 2]``; zero iff ``p = q`` (almost everywhere on the grid),
    ``log 2`` iff the supports are disjoint.
    """
    pa, qa, w = _pair(p, q, ("p", "q"), dx, tol)
    m = 0.5 * (pa + qa)
    js = 0.5 * _integrate(rel_entr(pa, m), w) + 0.5 * _integrate(rel_entr(qa, m), w)
    return min(max(js, 0.0), math.log(2.0))


# -------------------------------------------------------------- grids and samples


def quadrature_weights(x: Any) -> np.ndarray:
    """Cell widths of a strictly increasing 1-D grid, for use as ``dx=``.

    Each point owns the interval between the midpoints to its neighbours; the end
    points own a symmetric half-cell beyond the grid. On a uniform grid with step
    ``h`` every weight is ``h``, so ``dx=quadrature_weights(x)`` and ``dx=h`` agree.
    """
    xa = _as_array(x, "x")
    if xa.ndim != 1 or xa.size < 2:
        raise DataError(f"x must be a 1-D grid of at least 2 points, got shape {xa.shape}")
    gaps = np.diff(xa)
    if np.any(gaps <= 0):
        raise DataError("x must be strictly increasing")
    w = np.empty_like(xa)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0] = gaps[0]
    w[-1] = gaps[-1]
    return w


def _samples_1d(samples: Any) -> np.ndarray:
    s = _as_array(samples, "samples")
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1:
        raise DataError(f"samples must have shape (n,) or (n, 1), got {s.shape}")
    return s


def histogram_density(samples: Any, grid_edges: Any) -> np.ndarray:
    """Histogram density of 1-D ``samples`` on bins with edges ``grid_edges``.

    Returns one value per bin, ``count / (n * width)``, so that
    ``sum(density * np.diff(grid_edges))`` is the fraction of samples inside the
    grid (1 when the grid covers them all). Bins are half-open ``[a, b)`` except the
    last, which includes its right edge (as :func:`numpy.histogram`).

    ``samples`` may be a numpy array or a torch tensor of shape ``(n,)`` or ``(n, 1)``
    (e.g. ``G(z)`` for the 1-D toy); the result is a numpy array (a histogram has no
    useful gradient, so none is kept).
    """
    s = _samples_1d(samples)
    edges = _as_array(grid_edges, "grid_edges")
    if edges.ndim != 1 or edges.size < 2:
        raise DataError(f"grid_edges must be 1-D with at least 2 edges, got shape {edges.shape}")
    widths = np.diff(edges)
    if np.any(widths <= 0):
        raise DataError("grid_edges must be strictly increasing")
    counts, _ = np.histogram(s, bins=edges)
    return counts / (s.size * widths)


def jsd_from_samples(
    samples: Any,
    pdf: Callable[[np.ndarray], np.ndarray],
    grid: Any,
    *,
    method: str = "kde",
    bandwidth: float | str | None = None,
) -> float:
    """Estimate ``JSD(p_data || p_g)`` from samples of G and the known data density.

    ``grid`` is a strictly increasing 1-D array of points covering the data. Each
    point owns the cell of :func:`quadrature_weights`; the cell masses of both
    distributions are compared, plus one extra "outside the grid" cell holding
    whatever mass falls beyond it (so a generator that puts samples far from the
    data is penalised, not ignored):

    * ``p_data`` cell mass = ``pdf(x) * width``;
    * ``p_g`` cell mass = Gaussian KDE of the samples at ``x`` times ``width``
      (``method="kde"``, :class:`scipy.stats.gaussian_kde`, ``bandwidth`` is its
      ``bw_method``, default Scott's rule), or the fraction of samples in the cell
      (``method="histogram"``).

    The result is the JSD of these discrete distributions: a consistent estimate as
    the grid is refined and the sample grows, and by the data-processing inequality
    at most the JSD of the two continuous densities (up to estimation error).
    """
    s = _samples_1d(samples)
    x = _as_array(grid, "grid")
    w = quadrature_weights(x)
    if method not in ("kde", "histogram"):
        raise DataError(f"method must be 'kde' or 'histogram', got {method!r}")

    p_cell = _as_array(pdf(x), "pdf(grid)")
    if p_cell.shape != x.shape:
        raise DataError(f"pdf(grid) must have shape {x.shape}, got {p_cell.shape}")
    _check_nonnegative(p_cell, "pdf(grid)")
    p_cell = p_cell * w
    if p_cell.sum() > 1.05:
        raise DataError(f"pdf integrates to {p_cell.sum():.4g} > 1 on the grid; is it a normalised density?")
    if p_cell.sum() <= 0:
        raise DataError("pdf is zero everywhere on the grid; the grid misses the data")

    if method == "kde":
        if s.size < 2 or np.ptp(s) == 0:
            raise DataError("a Gaussian KDE needs at least 2 distinct samples; use method='histogram'")
        from scipy.stats import gaussian_kde

        q_cell = gaussian_kde(s, bw_method=bandwidth)(x) * w
    else:
        edges = np.concatenate([[x[0] - 0.5 * w[0]], x[:-1] + 0.5 * np.diff(x), [x[-1] + 0.5 * w[-1]]])
        q_cell = histogram_density(s, edges) * np.diff(edges)

    def with_outside(cells: np.ndarray) -> np.ndarray:
        inside = float(cells.sum())
        full = np.append(cells, max(1.0 - inside, 0.0))
        return full / full.sum()

    return js_divergence(with_outside(p_cell), with_outside(q_cell))
