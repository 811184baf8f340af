"""Exact nearest-neighbour search, for the paper's Figure 2 memorisation check.

Figure 2 shows, next to generated samples, their nearest training examples, to
show that the generator did not copy its training set. :func:`nearest_neighbors`
finds, for every query, the reference row at the smallest Euclidean distance;
:func:`memorization_stats` compares how close generated samples and held-out
real images come to the training set.

Search is exhaustive and exact, chunked over queries and references with
bounded memory, and uses matrix products (see :mod:`advnets.evaluate.distances`).
For each block, one product gives the scores ``s_ij = x_i·y_j − ‖y_j‖²/2``
(= (‖x_i‖² − ‖x_i − y_j‖²)/2, so the largest score is the nearest reference).
Rounding makes the computed scores inexact, so instead of trusting the arg-max
every reference whose score could, within a rigorous round-off bound, be the
largest is kept as a *candidate*:

    |ŝ_ij − s_ij| ≤ (d + 4)·u·(‖x_i‖ + ‖y_j‖)² ≤ a_i + b_j,
    a_i = 2(d + 4)·u·‖x_i‖²,   b_j = 2(d + 4)·u·‖y_j‖²

(u the unit round-off of the product dtype; a worst-case bound covering the
dot product, the norms, the subtractions and, in float32 mode, rounding the
inputs; typical errors are ~√d times smaller). With
``L_i = max_j (ŝ_ij − b_j)``, the true nearest j* satisfies
``ŝ_ij* + b_j* ≥ L_i − 2a_i``; the threshold only grows as reference chunks
stream in, so candidates can be collected on the fly. The
candidates (in float64 usually just the arg-max, plus exact duplicates) are
then *re-ranked exactly*: their distances are recomputed in float64 from
explicit differences ``x − y`` of the original rows and the smallest wins, ties
going to the lowest reference index. The result is therefore exact (the same
as brute force with explicit differences) in both float64 and the faster
float32 mode; float32 only yields more candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from advnets.devices import resolve_device
from advnets.evaluate.distances import (
    DEFAULT_MAX_BYTES,
    check_dtype,
    chunk_shape,
    no_tf32,
    prepare,
    sq_norms,
)

__all__ = [
    "MEMORIZATION_RATIO",
    "distance_summary",
    "memorization_stats",
    "memorization_verdict",
    "nearest_neighbors",
]

# A ratio of medians (samples / held-out) below this reads as possible memorisation: samples
# twice as close to the training set as unseen real images are.
MEMORIZATION_RATIO = 0.5


def nearest_neighbors(
    queries: Any,
    reference: Any,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    chunk_size: int | None = None,
    reference_chunk_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of, and Euclidean distance to, each query's nearest reference row.

    Args:
        queries: Q×d or Q×H×W[×C] array/tensor (flattened).
        reference: M×d or image-shaped reference set (e.g. the training set).
        dtype: precision of the block products, ``torch.float64`` (default) or
            ``torch.float32`` (faster). Both give exact results (see the module
            docstring): the candidates are re-ranked in float64.
        device: where to compute; default CUDA when available, else CPU.
        chunk_size: queries per batch (default: from ``max_bytes``).
        reference_chunk_size: reference rows per block (default: from ``max_bytes``).
        max_bytes: budget for the working blocks (two score blocks, a converted
            reference chunk and the exact re-ranking batches).
        progress: tqdm progress bar over query batches.

    Returns:
        ``(indices, distances)``: CPU tensors of shape (Q,), int64 and float64;
        distances are Euclidean (not squared), from explicit differences in
        float64. Among references at exactly the same distance the lowest index
        is returned (as ``numpy.argmin`` over brute-force distances would).

    Raises:
        DataError: dimension mismatch, empty set, NaN/inf values, bad options.
    """
    dtype = check_dtype(dtype)
    q, r = prepare(queries, reference, ("queries", "reference"))
    dev = resolve_device(device, q, r)
    n_q, d = q.shape
    m = r.shape[0]
    itemsize = torch.empty((), dtype=dtype).element_size()
    qc, rc = chunk_shape(
        n_q,
        m,
        itemsize,
        max_bytes,
        buffers=2,
        query_chunk=chunk_size,
        reference_chunk=reference_chunk_size,
        reference_row_bytes=d * itemsize,
    )
    eps = torch.finfo(dtype).eps  # 2u
    kappa = (d + 4) * eps  # 2(d + 4)·u
    # Reference chunks already in the compute dtype on the device are used in place;
    # others are converted into one reused buffer.
    in_place = r.dtype == dtype and r.device == dev
    ybuf = None if in_place else torch.empty((rc, d), dtype=dtype, device=dev)
    xbuf = torch.empty((qc, d), dtype=dtype, device=dev)
    block = torch.empty((qc, rc), dtype=dtype, device=dev)
    bound = torch.empty((qc, rc), dtype=dtype, device=dev)
    norms: dict[int, torch.Tensor] = {}  # chunk start → ‖y_j‖² (compute dtype)
    out_idx = torch.empty(n_q, dtype=torch.int64)
    out_dist = torch.empty(n_q, dtype=torch.float64)

    with no_tf32(), tqdm(total=n_q, desc="nearest neighbours", unit="pt", disable=not progress, leave=False) as bar:
        for q0 in range(0, n_q, qc):
            q1 = min(q0 + qc, n_q)
            n = q1 - q0
            x = xbuf[:n]
            x.copy_(q[q0:q1])
            i, j = _candidates(x, r, rc, kappa, norms, ybuf, block, bound)
            idx, dist = _rerank(q[q0:q1], r, i, j, n, dev, max_bytes)
            out_idx[q0:q1] = idx.cpu()
            out_dist[q0:q1] = dist.cpu()
            bar.update(n)
    return out_idx, out_dist


def _candidates(
    x: torch.Tensor,
    r: torch.Tensor,
    rc: int,
    kappa: float,
    norms: dict[int, torch.Tensor],
    ybuf: torch.Tensor | None,
    block: torch.Tensor,
    bound: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, reference index) pairs that may be the nearest, for one batch ``x`` of queries.

    Streams ``r`` in chunks of ``rc`` rows and keeps every pair whose score, within the
    round-off bound of the module docstring (``kappa`` = 2(d + 4)·u), may be its row's
    largest. ``norms`` caches ‖y_j‖² per chunk start across batches; ``ybuf`` (None when
    ``r`` is used in place), ``block`` and ``bound`` are reused working buffers.
    """
    n = x.shape[0]
    m = r.shape[0]
    dtype, dev = x.dtype, x.device
    eps = torch.finfo(dtype).eps  # 2u
    a = kappa * sq_norms(x).to(torch.float64)  # a_i
    lmax = torch.full((n,), -float("inf"), dtype=dtype, device=dev)  # L_i
    rows, cols, ups = [], [], []
    for r0 in range(0, m, rc):
        r1 = min(r0 + rc, m)
        w = r1 - r0
        if ybuf is None:  # r is already in the compute dtype on the device
            y = r[r0:r1]
        else:
            y = ybuf[:w]
            y.copy_(r[r0:r1])
        if r0 not in norms:
            norms[r0] = sq_norms(y)
        y_sq = norms[r0]
        b = kappa * y_sq
        blk = torch.mm(x, y.T, out=block[:n, :w])  # x·y
        tmp = bound[:n, :w]
        # ŝ − b = x·y − (‖y‖²/2 + b): its row max raises L
        torch.sub(blk, (0.5 * y_sq + b).unsqueeze(0), out=tmp)
        lmax = torch.maximum(lmax, tmp.amax(dim=1))
        # ŝ + b = x·y − (‖y‖²/2 − b) ≥ L − 2a: may be the nearest
        torch.sub(blk, (0.5 * y_sq - b).unsqueeze(0), out=tmp)
        thr64 = lmax.to(torch.float64) - 2.0 * a
        thr = (thr64 - eps * thr64.abs()).to(dtype)  # round down, never up
        i, j = torch.nonzero(tmp >= thr.unsqueeze(1), as_tuple=True)
        rows.append(i)
        cols.append(j + r0)
        ups.append(tmp[i, j])
    i = torch.cat(rows)
    j = torch.cat(cols)
    up = torch.cat(ups).to(torch.float64)
    keep = up >= (lmax.to(torch.float64) - 2.0 * a)[i]  # the final threshold
    return i[keep], j[keep]


def _rerank(
    x: torch.Tensor,
    r: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    n: int,
    dev: torch.device,
    max_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact float64 distances for candidate pairs; per row the nearest, lowest index on ties."""
    d = x.shape[1]
    d2 = torch.empty(rows.numel(), dtype=torch.float64, device=dev)
    step = max(1, int(max_bytes) // (2 * d * 8))
    for s in range(0, rows.numel(), step):
        e = min(s + step, rows.numel())
        xr = x[rows[s:e].to(x.device)].to(device=dev, dtype=torch.float64)
        yr = r[cols[s:e].to(r.device)].to(device=dev, dtype=torch.float64)
        d2[s:e] = sq_norms(xr.sub_(yr))
    best = torch.full((n,), float("inf"), dtype=torch.float64, device=dev)
    best.scatter_reduce_(0, rows, d2, reduce="amin")
    at_best = d2 == best[rows]
    idx = torch.full((n,), r.shape[0], dtype=torch.int64, device=dev)
    idx.scatter_reduce_(0, rows[at_best], cols[at_best], reduce="amin")
    assert bool((idx < r.shape[0]).all()), "every query has a candidate"
    return idx, best.sqrt()


def distance_summary(dist: Any) -> dict[str, float]:
    """mean, median, min, max, 5th/25th/75th/95th percentiles and count of distances."""
    a = np.asarray(dist.cpu() if isinstance(dist, torch.Tensor) else dist, dtype=np.float64)
    p5, p25, med, p75, p95 = np.percentile(a, [5, 25, 50, 75, 95])
    return {
        "mean": float(a.mean()),
        "median": float(med),
        "p5": float(p5),
        "p25": float(p25),
        "p75": float(p75),
        "p95": float(p95),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def memorization_stats(
    samples: Any,
    train: Any,
    heldout: Any,
    **kwargs: Any,
) -> dict[str, Any]:
    """Compare nearest-training-example distances of samples and of held-out data.

    For the generated ``samples`` and for ``heldout`` real images (not in
    ``train``), finds each point's nearest ``train`` example
    (:func:`nearest_neighbors`; keyword arguments are passed on) and summarises
    the Euclidean distances (:func:`distance_summary`).

    Returns a dict with ``samples`` and ``heldout`` summaries, ``ratio`` =
    median sample distance / median held-out distance, and
    ``frac_below_heldout_p5`` = fraction of samples closer to the training set
    than 95% of held-out images. A ratio far below 1 (samples much closer to
    training examples than real unseen images are) is a sign of memorisation;
    exact copies of training images give 0. ``ratio`` is ``inf`` (or ``nan``
    when both medians are 0) if the held-out median is 0.
    """
    s, tr = prepare(samples, train, ("samples", "train"))
    h, _ = prepare(heldout, tr, ("heldout", "train"))
    _, ds = nearest_neighbors(s, tr, **kwargs)
    _, dh = nearest_neighbors(h, tr, **kwargs)
    ss, hs = distance_summary(ds), distance_summary(dh)
    if hs["median"] > 0:
        ratio = ss["median"] / hs["median"]
    else:
        ratio = float("nan") if ss["median"] == 0 else float("inf")
    return {
        "samples": ss,
        "heldout": hs,
        "ratio": float(ratio),
        "frac_below_heldout_p5": float((ds.numpy() < hs["p5"]).mean()),
    }


def memorization_verdict(ratio: float) -> str:
    """The one-line reading of :func:`memorization_stats`' ``ratio`` (Figure 2's check), as
    ``advnets sample --nearest`` prints it and ``advnets report`` writes it."""
    if ratio < MEMORIZATION_RATIO:
        return "samples sit much closer to training images than unseen data do: possible memorisation"
    return "no sign of memorisation"
