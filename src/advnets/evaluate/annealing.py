"""Where a later learning-rate drop would lead: the annealed level against the epochs trained before it (issue 15).

The reference code (github.com/goodfeli/adversarial, mnist.yaml) divides the learning rate by 1.000004 per
minibatch and never stops, so its rate reaches 0.01 only after ~1,150 epochs of MNIST. Training that long is out
of reach on a CPU; instead, checkpoints of the paper's recipe taken at epochs 100-400 were continued at 0.01
(benchmarks/RESULTS.md, "The learning rate"), and the validation log-likelihood each reached (its *annealed
level*) grows with the epochs trained before the drop, by less for each doubling. :func:`fit_annealed_level`
fits that relation with one of two models and :meth:`LevelFit.predict` extrapolates it, with the standard error
of the extrapolation:

- ``"log-linear"``: ``level(E) = a + b * log2(E)``, the same gain for every doubling of E (no ceiling);
- ``"power-law"``: ``level(E) = L - c * (E / 100) ** -alpha`` (c, alpha > 0), each doubling gaining
  ``2 ** -alpha`` times the one before, rising to the ceiling L.

The first assumes the gains do not shrink, the second fits how fast they do; near the points they agree, far from
them they part, which is why both are reported.

:func:`plateau_fit` answers the question for one validation curve: where it is heading (a saturating
exponential fitted to its later points) and its recent slope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from advnets.errors import AdvnetsError

__all__ = ["MODELS", "LevelFit", "fit_annealed_level", "plateau_fit"]

MODELS = ("log-linear", "power-law")


def _log_linear(epochs: np.ndarray, a: float, b: float) -> np.ndarray:
    return a + b * np.log2(epochs)


def _log_linear_jacobian(epochs: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.stack([np.ones_like(epochs), np.log2(epochs)], axis=-1)


def _power_law(epochs: np.ndarray, ceiling: float, c: float, alpha: float) -> np.ndarray:
    return ceiling - c * (epochs / 100.0) ** -alpha


def _power_law_jacobian(epochs: np.ndarray, ceiling: float, c: float, alpha: float) -> np.ndarray:
    u = (epochs / 100.0) ** -alpha
    return np.stack([np.ones_like(epochs), -u, c * u * np.log(epochs / 100.0)], axis=-1)


_FORMS = {
    "log-linear": (_log_linear, _log_linear_jacobian, ("a", "b")),
    "power-law": (_power_law, _power_law_jacobian, ("ceiling", "c", "alpha")),
}


@dataclass(frozen=True)
class LevelFit:
    """A fitted annealed level. ``params``: the model's parameters by name (nats; alpha has none);
    ``cov``: their covariance (scaled by the residual variance, as scipy.optimize.curve_fit returns it);
    ``residual_sd``: the root mean square of the residuals (nats); ``n_points``: the points fitted."""

    model: str
    params: dict[str, float]
    cov: np.ndarray
    residual_sd: float
    n_points: int

    def predict(self, epochs) -> tuple[np.ndarray, np.ndarray]:
        """The level at ``epochs`` (any shape, epochs > 0) and its standard error by the delta method
        (sqrt(J cov J^T), J the model's gradient in its parameters), both in nats. The error is the fit's
        alone: it does not include the chance that neither model holds that far out."""
        f, jac, _ = _FORMS[self.model]
        e = np.asarray(epochs, dtype=np.float64)
        theta = list(self.params.values())
        j = jac(e, *theta)
        var = np.einsum("...i,ij,...j->...", j, self.cov, j)
        return f(e, *theta), np.sqrt(np.maximum(var, 0.0))


def fit_annealed_level(epochs, levels, model: str) -> LevelFit:
    """Fit ``model`` (one of :data:`MODELS`) to annealed levels (nats) against the epochs trained before the
    drop, by least squares (scipy.optimize.curve_fit, float64).

    Args:
        epochs: shape (N,), the epoch each probe's drop started from; > 0.
        levels: shape (N,), the validation log-likelihood each reached after the drop (nats).
        model: ``"log-linear"`` or ``"power-law"`` (see the module docstring).

    Raises:
        AdvnetsError: an unknown model, shapes that differ, a non-positive or non-finite epoch or level, fewer
            points than the model's parameters plus one (no residual left to estimate the error from), fewer
            distinct epochs than parameters, or a fit that does not converge or leaves a parameter undetermined.
    """
    from scipy.optimize import curve_fit

    if model not in _FORMS:
        raise AdvnetsError(f"model {model!r}: expected one of {', '.join(MODELS)}")
    f, _, names = _FORMS[model]
    e = np.asarray(epochs, dtype=np.float64)
    y = np.asarray(levels, dtype=np.float64)
    if e.shape != y.shape or e.ndim != 1:
        raise AdvnetsError(f"epochs {e.shape} and levels {y.shape}: expected two 1-d arrays of the same length")
    if not (np.isfinite(e).all() and np.isfinite(y).all() and (e > 0).all()):
        raise AdvnetsError("epochs must be finite and > 0, levels finite")
    if len(e) < len(names) + 1:
        raise AdvnetsError(f"{model}: {len(e)} points; at least {len(names) + 1} are needed to fit it with an error")
    if len(np.unique(e)) < len(names):
        raise AdvnetsError(f"{model}: the points have {len(np.unique(e))} distinct epochs; it needs {len(names)}")
    if model == "log-linear":
        p0, bounds = (float(y.mean()), 10.0), (-np.inf, np.inf)
    else:
        p0 = (float(y.max()) + 20.0, max(float(np.ptp(y)), 1.0) + 20.0, 0.5)
        bounds = ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 10.0])
    try:
        params, cov = curve_fit(f, e, y, p0=p0, bounds=bounds, maxfev=50000)
    except (RuntimeError, ValueError) as err:
        raise AdvnetsError(f"{model}: the fit did not converge ({err})") from err
    if not np.isfinite(cov).all():  # curve_fit's sign that the points do not determine every parameter
        raise AdvnetsError(f"{model}: these points do not determine its parameters (infinite covariance)")
    residual_sd = float(np.sqrt(np.mean((y - f(e, *params)) ** 2)))
    return LevelFit(model, dict(zip(names, map(float, params), strict=True)), cov, residual_sd, len(e))


def plateau_fit(curve: list[dict[str, Any]], from_epoch: float = 100.0, slope_window: float = 50.0) -> dict[str, Any]:
    """Where a validation curve is heading, from its points at epoch >= ``from_epoch``.

    Fits ``LL(e) = asymptote - A * exp(-(e - e0) / tau)`` (e0: the first fitted epoch; A >= 0, tau > 0) by
    least squares (scipy.optimize.curve_fit), and the straight-line slope of the points in the last
    ``slope_window`` epochs. The asymptote is an extrapolation: it is marked ``identified`` only when the fit
    converged and ``tau`` is shorter than the fitted span, i.e. the curve has visibly bent; otherwise the
    curve is still close to a straight line and only the slope says anything.

    Args:
        curve: :func:`advnets.evaluate.table1.validation_curve`'s entries (``epoch``, ``valid_ll``), any order.
        from_epoch: fit only from here on (early training follows another course).
        slope_window: the recent stretch the slope is measured over, in epochs.

    Returns:
        ``n_points``, ``first_epoch``, ``last_epoch``, ``slope_per_50`` (nats per 50 epochs; None with fewer
        than 2 points in the window), ``asymptote`` and ``asymptote_se`` (nats, from the fit's covariance),
        ``amplitude`` (A, nats), ``tau`` (epochs), ``identified``; the last five are None / False with fewer
        than 4 points or no convergence.
    """
    from scipy.optimize import curve_fit

    pts = sorted((float(e["epoch"]), float(e["valid_ll"])) for e in curve if e["epoch"] >= from_epoch)
    out: dict[str, Any] = {"n_points": len(pts), "first_epoch": None, "last_epoch": None, "slope_per_50": None}
    out.update(asymptote=None, asymptote_se=None, amplitude=None, tau=None, identified=False)
    if not pts:
        return out
    e, ll = (np.array(v) for v in zip(*pts, strict=True))
    out.update(first_epoch=float(e[0]), last_epoch=float(e[-1]))
    recent = e >= e[-1] - slope_window
    if recent.sum() >= 2 and np.ptp(e[recent]) > 0:
        out["slope_per_50"] = float(np.polyfit(e[recent], ll[recent], 1)[0] * 50)
    span = float(e[-1] - e[0])
    if len(pts) < 4 or span <= 0:
        return out

    def model(x, asymptote, a, tau):
        return asymptote - a * np.exp(-(x - e[0]) / tau)

    start = (float(ll.max()) + 10.0, max(float(ll.max() - ll[0]), 1.0) + 10.0, span / 2)
    bounds = ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 100.0 * span])
    try:
        params, cov = curve_fit(model, e, ll, p0=start, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):  # no convergence: leave the asymptote unknown
        return out
    se = float(np.sqrt(cov[0, 0])) if np.isfinite(cov[0, 0]) else None
    out.update(asymptote=float(params[0]), asymptote_se=se, amplitude=float(params[1]), tau=float(params[2]))
    out["identified"] = bool(se is not None and params[2] < span)
    return out
