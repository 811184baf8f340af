"""Gaussian Parzen-window log-likelihood, the evaluation of the paper's Table 1.

A Gaussian Parzen window with bandwidth σ is fitted to M samples μ_j of the
generator, and a point x ∈ R^d is scored by

    log p̂(x) = log (1/M) Σ_j N(x; μ_j, σ²I)
             = logsumexp_j(−‖x − μ_j‖² / (2σ²)) − log M − (d/2)·log(2πσ²).

The reference protocol (the authors' code): 10,000 samples; σ chosen from
``numpy.logspace(-1, 0, 10)`` by the mean log-likelihood of 1,000 validation
images; then the mean over the 10,000 test images is reported with its standard
error std/√N (NumPy's ``std``, i.e. ddof=0).

Implementation. The squared distances do not depend on σ, so they are computed
once per (query, sample) block with a matrix product (see
:mod:`advnets.evaluate.distances`) and consumed by a streaming log-sum-exp for
every candidate σ at once: per query we keep the running minimum squared
distance (the log-sum-exp maximum is the same sample for every σ) and, per σ,
the running sum of ``exp(−(‖x−μ_j‖² − min)/(2σ²))``, rescaled whenever the
minimum decreases. Only the per-query minimum needs the ‖x‖² term, so the
blocks hold the scores ``x·μ_j − ‖μ_j‖²/2 = (‖x‖² − ‖x − μ_j‖²)/2`` and the
minimum squared distance ``‖x‖² − 2·max_j score`` is clamped at 0. Per block
and σ that is one fused multiply-add pass, an in-place ``exp`` and a row sum.
Nothing of size Q×M is ever held: the working memory is about ``max_bytes``
(two blocks, for scores and exponentials) plus the converted samples.

The default precision is float64 (agreement with a direct float64 evaluation to
~1e-12 relative). ``dtype=torch.float32`` is a faster mode whose error grows
like float32 round-off times ‖x‖²/σ²: about 1e-4 absolute on 64-d digits and
5e-4 on 784-d data in [0, 1] at σ = 0.1. TF32 is never used.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from advnets.devices import resolve_device
from advnets.errors import DataError
from advnets.evaluate.distances import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_MAX_BYTES,
    ReferenceSet,
    check_dtype,
    no_tf32,
    plan_chunks,
    prepare,
    scores,
)

__all__ = [
    "DEFAULT_SIGMAS",
    "check_unit_range",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "select_sigma",
    "warn_if_not_unit_range",
]

#: The reference protocol's σ grid: ``numpy.logspace(-1, 0, 10)``.
DEFAULT_SIGMAS = np.logspace(-1, 0, 10)

# Exponents are clamped at these floors before ``exp``: exp(−700) ≈ 1e−304 and
# exp(−80) ≈ 2e−35 are still normal numbers in float64 / float32, which avoids the
# underflow/subnormal slow path of ``exp`` (several times slower on CPU), and a term
# that small changes a sum that is ≥ 1 by less than M·1e−304 (float64) or M·2e−35.
_EXP_FLOOR = {torch.float64: -700.0, torch.float32: -80.0}


# --------------------------------------------------------------------------- validation


def _check_sigmas(sigmas: Any, name: str = "sigmas") -> list[float]:
    """Validate a scalar or 1-D sequence of bandwidths; return them as floats."""
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.detach().cpu().numpy()
    try:
        arr = np.asarray(sigmas, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected positive finite numbers, got {sigmas!r}") from exc
    if arr.ndim > 1:
        raise DataError(f"{name}: expected a scalar or a 1-D sequence, got shape {arr.shape}")
    arr = np.atleast_1d(arr)
    if arr.size == 0:
        raise DataError(f"{name}: expected at least one bandwidth, got an empty sequence")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise DataError(f"{name}: expected positive finite bandwidths σ > 0, got {arr[bad][0]!r}")
    return [float(s) for s in arr]


def _check_sigma(sigma: Any) -> float:
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.detach().cpu().numpy()
    if np.ndim(sigma) != 0:
        raise DataError(f"sigma: expected a single positive number, got shape {np.shape(sigma)}")
    return _check_sigmas(sigma, "sigma")[0]


def _check_pair(queries: Any, samples: Any, qname: str) -> tuple[torch.Tensor, torch.Tensor]:
    return prepare(queries, samples, (qname, "samples"))


def check_unit_range(x: Any) -> bool:
    """True when every value of ``x`` lies in [0, 1] (the paper's pixel scale)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(lo >= 0) and bool(hi <= 1)


def warn_if_not_unit_range(x: Any, name: str, d: int | None = None) -> bool:
    """Warn (``UserWarning``) when ``x`` is not in [0, 1]; return whether it is.

    Parzen log-likelihoods are not scale free: scaling data, samples and σ by s
    shifts every score by −d·log(s), and the fixed σ grid selects differently,
    so scores are comparable with the paper's only for data in [0, 1].
    """
    if check_unit_range(x):
        return True
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    dim = d if d is not None else (math.prod(t.shape[1:]) if t.ndim > 1 else 1)
    warnings.warn(
        f"{name}: values lie in [{float(t.min()):.4g}, {float(t.max()):.4g}], not [0, 1]. "
        f"Parzen log-likelihoods depend on the data scale (scaling data, samples and σ by s "
        f"shifts every score by −d·log(s), d = {dim}); the paper's numbers assume pixels "
        f"scaled to [0, 1].",
        UserWarning,
        stacklevel=3,
    )
    return False


# --------------------------------------------------------------------------- core


def _log_likelihoods(
    queries: torch.Tensor,
    samples: torch.Tensor,
    sigmas: list[float],
    *,
    dtype: torch.dtype,
    device: Any,
    chunk_size: int | None,
    sample_chunk_size: int | None,
    max_bytes: int,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: bool = False,
    desc: str = "Parzen",
) -> torch.Tensor:
    """log p̂ for every σ in ``sigmas`` and every query: an (S, Q) float64 tensor.

    ``queries`` and ``samples`` are validated N×d tensors with equal d.
    """
    dtype = check_dtype(dtype)
    dev = resolve_device(device, queries, samples)
    n_q, d = queries.shape
    m = samples.shape[0]
    qc, rc, cache = plan_chunks(
        n_q,
        m,
        d,
        dtype,
        max_bytes,
        buffers=2,
        query_chunk=chunk_size,
        reference_chunk=sample_chunk_size,
        cache_bytes=cache_bytes,
    )
    ref = ReferenceSet(samples, dtype=dtype, device=dev, chunk=rc, cache_bytes=cache)

    sig = torch.tensor(sigmas, dtype=torch.float64, device=dev)
    inv2s2 = 1.0 / (2.0 * sig * sig)  # c_k = 1 / (2σ_k²)
    consts = -math.log(m) - 0.5 * d * torch.log(2.0 * math.pi * sig * sig)  # (S,)
    cs = [1.0 / (2.0 * s * s) for s in sigmas]

    out = torch.empty((len(sigmas), n_q), dtype=torch.float64, device=dev)
    block = torch.empty((qc, rc), dtype=dtype, device=dev)
    expo = torch.empty((qc, rc), dtype=dtype, device=dev)
    qbufs = ref.query_buffers(qc)
    floor = _EXP_FLOOR[dtype]

    with no_tf32(), tqdm(total=n_q, desc=desc, unit="pt", disable=not progress, leave=False) as bar:
        for q0 in range(0, n_q, qc):
            q1 = min(q0 + qc, n_q)
            n = q1 - q0
            x_aug, x_sq = ref.load_queries(queries[q0:q1], qbufs)
            acc, run_max = _streaming_sums(x_aug, ref, block[:n], expo[:n], cs, inv2s2, floor)
            dmin = (x_sq - 2.0 * run_max.to(torch.float64)).clamp_(min=0)  # min_j ‖x − μ_j‖²
            out[:, q0:q1] = -inv2s2.unsqueeze(1) * dmin.unsqueeze(0) + torch.log(acc) + consts.unsqueeze(1)
            bar.update(n)
    return out


def _streaming_sums(
    x_aug: torch.Tensor,
    ref: ReferenceSet,
    block: torch.Tensor,
    expo: torch.Tensor,
    cs: list[float],
    inv2s2: torch.Tensor,
    floor: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One query batch against every sample chunk: the per-σ sums and the running max score.

    Returns ``(acc, run_max)``: ``acc[k, i] = Σ_j exp(2c_k·s_ij − 2c_k·max_j s_ij)`` (float64,
    (S, n)) and ``run_max[i] = max_j s_ij`` with ``s_ij = x_i·μ_j − ‖μ_j‖²/2``. ``block`` and
    ``expo`` are (n, chunk) working buffers of the compute dtype.
    """
    n = x_aug.shape[0]
    # Blocks hold the scores s_j = x·μ_j − ‖μ_j‖²/2 = (‖x‖² − ‖x − μ_j‖²)/2, so
    # −‖x − μ_j‖²/(2σ²) = c·(2 s_j) − c·‖x‖² with c = 1/(2σ²).
    run_max: torch.Tensor | None = None  # running max_j s_j
    acc = torch.zeros((len(cs), n), dtype=torch.float64, device=block.device)
    for _, _, y_aug, _ in ref.chunks():
        blk = block[:, : y_aug.shape[0]]
        scores(x_aug, y_aug, out=blk)
        cmax = blk.amax(dim=1)
        if run_max is None:
            run_max = cmax
        else:
            new_max = torch.maximum(run_max, cmax)
            rise = (new_max - run_max).to(torch.float64)  # ≥ 0
            acc.mul_(torch.exp(-2.0 * inv2s2.unsqueeze(1) * rise.unsqueeze(0)))
            run_max = new_max
        e = expo[:, : y_aug.shape[0]]
        col = run_max.unsqueeze(1)
        for k, c in enumerate(cs):
            # e_j = exp(−(‖x−μ_j‖² − min_j‖x−μ_j‖²)/(2σ²)) = exp(2c·s_j − 2c·max s),
            # formed in one pass, exponentiated in place, then summed.
            torch.add(col * (-2.0 * c), blk, alpha=2.0 * c, out=e)
            e.clamp_(min=floor).exp_()
            acc[k] += e.sum(dim=1)  # float32 sums (≤ M terms in (0, 1]) suffice
    assert run_max is not None
    return acc, run_max


# --------------------------------------------------------------------------- public API


def parzen_log_likelihood(
    queries: Any,
    samples: Any,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    chunk_size: int | None = None,
    sample_chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = False,
) -> torch.Tensor:
    """Per-query Parzen-window log-likelihood under the samples (a float64 CPU tensor).

    ``log p̂(x) = logsumexp_j(−‖x − μ_j‖²/(2σ²)) − log M − (d/2)·log(2πσ²)``.

    Args:
        queries: N×d or N×H×W[×C] array/tensor of points to score (flattened).
        samples: M×d (or image-shaped) samples μ_j of the model.
        sigma: the bandwidth σ > 0.
        dtype: ``torch.float64`` (default, exact to ~1e-12 relative) or
            ``torch.float32`` (faster; error ~ float32 round-off × ‖x‖²/σ²).
        device: where to compute; default CUDA when available, else CPU.
        chunk_size: queries per batch (default: from ``max_bytes``).
        sample_chunk_size: samples per block (default: all, if they fit ``max_bytes``).
        max_bytes: budget for the two working blocks of distances/exponentials.
        progress: show a tqdm progress bar over query batches.

    Raises:
        DataError: on a dimension mismatch, an empty set, NaN/inf values or σ ≤ 0.
    """
    s = _check_sigma(sigma)
    q, smp = _check_pair(queries, samples, "queries")
    ll = _log_likelihoods(
        q,
        smp,
        [s],
        dtype=dtype,
        device=device,
        chunk_size=chunk_size,
        sample_chunk_size=sample_chunk_size,
        max_bytes=max_bytes,
        progress=progress,
        desc="Parzen",
    )
    return ll[0].cpu()


def select_sigma(
    valid: Any,
    samples: Any,
    sigmas: Any = DEFAULT_SIGMAS,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    chunk_size: int | None = None,
    sample_chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = False,
) -> dict[str, Any]:
    """Choose σ by the mean validation log-likelihood (the reference protocol).

    The validation-to-sample distances are computed once, block by block, and
    every candidate σ is scored from the same block (a streaming log-sum-exp per
    σ), so the cost is one distance computation however many σ are tried.

    Returns a dict: ``sigma`` (the best σ; the first one on exact ties),
    ``index`` (its position in ``sigmas``), ``sigmas`` (list), ``valid_means``
    (list, mean validation log-likelihood per σ), ``n_valid``.
    """
    sig = _check_sigmas(sigmas)
    v, smp = _check_pair(valid, samples, "valid")
    ll = _log_likelihoods(
        v,
        smp,
        sig,
        dtype=dtype,
        device=device,
        chunk_size=chunk_size,
        sample_chunk_size=sample_chunk_size,
        max_bytes=max_bytes,
        progress=progress,
        desc="Parzen σ selection",
    )
    means = ll.mean(dim=1).cpu().numpy()
    best = int(np.argmax(means))
    return {
        "sigma": sig[best],
        "index": best,
        "sigmas": sig,
        "valid_means": [float(x) for x in means],
        "n_valid": int(v.shape[0]),
    }


def parzen_evaluate(
    test: Any,
    samples: Any,
    valid: Any = None,
    sigmas: Any = DEFAULT_SIGMAS,
    sigma: float | None = None,
    return_per_point: bool = False,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    chunk_size: int | None = None,
    sample_chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = False,
    check_range: bool = True,
) -> dict[str, Any]:
    """The paper's Parzen-window evaluation: choose σ on ``valid``, score ``test``.

    With ``sigma=None`` (default) σ is chosen from ``sigmas`` (default
    ``numpy.logspace(-1, 0, 10)``) by :func:`select_sigma` on ``valid``, which is
    then required. With an explicit ``sigma`` no selection is done (if ``valid``
    is also given its mean at that σ is reported).

    Returns a plain dict:
        ``mean``: mean test log-likelihood;
        ``se``: its standard error ``std/√N`` with ``std`` the population
        standard deviation (ddof=0, as ``numpy.std`` in the reference code);
        ``sigma``: the σ used; ``sigmas`` / ``valid_means``: the candidate σ and
        their validation means (lists; empty without ``valid``);
        ``n`` (N test points), ``m`` (M samples), ``d`` (dimension);
        ``per_point``: float64 NumPy array of per-test-point values, only with
        ``return_per_point=True``.

    Scores depend on the data scale; with ``check_range`` a ``UserWarning`` is
    issued when test, valid or samples are not in [0, 1].
    """
    t, smp = _check_pair(test, samples, "test")
    v = None
    if valid is not None:
        v, _ = _check_pair(valid, smp, "valid")
    kw = dict(
        dtype=dtype,
        device=device,
        chunk_size=chunk_size,
        sample_chunk_size=sample_chunk_size,
        max_bytes=max_bytes,
        progress=progress,
    )
    if check_range:
        d = t.shape[1]
        warn_if_not_unit_range(t, "test", d)
        warn_if_not_unit_range(smp, "samples", d)
        if v is not None:
            warn_if_not_unit_range(v, "valid", d)
    s, grid, vmeans = _choose_sigma(v, smp, sigma, sigmas, kw)
    ll = _log_likelihoods(t, smp, [s], desc="Parzen test", **kw)[0].cpu().numpy()
    n = ll.shape[0]
    res: dict[str, Any] = {
        "mean": float(ll.mean()),
        "se": float(ll.std() / math.sqrt(n)),
        "sigma": float(s),
        "sigmas": [float(x) for x in grid],
        "valid_means": vmeans,
        "n": int(n),
        "m": int(smp.shape[0]),
        "d": int(t.shape[1]),
    }
    if return_per_point:
        res["per_point"] = ll
    return res


def _choose_sigma(
    v: torch.Tensor | None, smp: torch.Tensor, sigma: Any, sigmas: Any, kw: dict[str, Any]
) -> tuple[float, list[float], list[float]]:
    """:func:`parzen_evaluate`'s σ: ``(σ, candidate σs, their validation means)``.

    Selected on ``v`` when ``sigma`` is None (``v`` is then required), else ``sigma`` itself,
    with its validation mean when ``v`` is given. ``kw`` holds the compute keywords.
    """
    if sigma is None:
        if v is None:
            raise DataError(
                "valid: expected a validation set to choose σ from sigmas (or pass sigma=... explicitly), got None"
            )
        sel = select_sigma(v, smp, sigmas, **kw)
        return sel["sigma"], sel["sigmas"], sel["valid_means"]
    s = _check_sigma(sigma)
    if v is None:
        return s, [], []
    vll = _log_likelihoods(v, smp, [s], desc="Parzen valid", **kw)
    return s, [s], [float(vll.mean())]
