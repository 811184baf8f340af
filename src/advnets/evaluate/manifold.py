"""k-nearest-neighbour manifold metrics: precision, recall, density and coverage.

Each set is taken as a union of balls: around every real feature r_i a ball
whose radius ρ_k(r_i) is the distance to its k-th nearest *other* real feature,
and likewise around every generated feature g_j.

* precision (Kynkäänniemi et al., 2019, eq. 1-2; k = 3): the fraction of
  generated features inside some real ball, ``mean_j 1[∃i: ‖g_j − r_i‖ < ρ_k(r_i)]``;
* recall (ibid.; k = 3): the fraction of real features inside some generated
  ball, ``mean_i 1[∃j: ‖r_i − g_j‖ < ρ_k(g_j)]``;
* density (Naeem et al., 2020, eq. 5; k = 5): how many real balls contain each
  generated feature, ``1/(kM) Σ_j Σ_i 1[‖g_j − r_i‖ < ρ_k(r_i)]`` (1 when the
  generated set looks like the real one; unbounded above);
* coverage (ibid., eq. 6; k = 5): the fraction of real balls that contain at
  least one generated feature, ``mean_i 1[min_j ‖r_i − g_j‖ < ρ_k(r_i)]``.

The definitions, strict inequalities and the radius convention (the (k+1)-th
smallest distance with the point itself counted) are those of ``prdc``
(clovaai/generative-evaluation-prdc, the reference implementation of Naeem et
al.), which this module is tested against on identical features.

Why not call ``prdc``: it holds three full distance matrices (real×real,
generated×generated, real×generated), 3 × 50,000² float64 numbers = 60 GB at
50k samples. Here the distances are streamed in blocks of ``max_bytes``
(default 64 MiB) through :func:`advnets.evaluate.distances.iter_sq_distances`
(exact matrix-product expansion, centred, float64 by default), so memory stays
bounded; squared distances are compared with squared radii. See
benchmarks/metrics.py for time and memory against prdc.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from advnets.errors import DataError, TooFewSamples
from advnets.evaluate.distances import DEFAULT_MAX_BYTES, iter_sq_distances
from advnets.evaluate.inputs import as_rows

__all__ = ["DEFAULT_K_DC", "DEFAULT_K_PR", "kth_neighbour_sq_distances", "manifold_metrics"]

#: k for precision/recall (Kynkäänniemi et al., 2019) and for density/coverage (Naeem et al., 2020).
DEFAULT_K_PR = 3
DEFAULT_K_DC = 5


def kth_neighbour_sq_distances(
    x: torch.Tensor, ks: tuple[int, ...], *, dtype: torch.dtype = torch.float64, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[int, torch.Tensor]:
    """For each k in ``ks``: the squared distance of every row of ``x`` to its k-th nearest other row.

    That is the (k+1)-th smallest squared distance with the row itself (at 0)
    counted, as prdc's radii. Returns float64 CPU tensors of shape (N,).
    """
    n = len(x)
    top = max(ks) + 1
    out = {k: torch.empty(n, dtype=torch.float64) for k in ks}
    best: torch.Tensor | None = None
    for blk in iter_sq_distances(x, x, dtype=dtype, device="cpu", max_bytes=max_bytes):
        t = blk.values.topk(min(top, blk.values.shape[1]), dim=1, largest=False).values
        best = t.clone() if blk.r0 == 0 else torch.cat([best, t], dim=1).topk(top, dim=1, largest=False).values
        if blk.r1 == n:  # the last reference chunk of this query chunk
            for k in ks:
                out[k][blk.q0 : blk.q1] = best[:, k].double()
    return out


def manifold_metrics(
    real_features: Any,
    generated_features: Any,
    *,
    k: int = DEFAULT_K_PR,
    k_dc: int = DEFAULT_K_DC,
    dtype: torch.dtype = torch.float64,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Precision and recall (k-NN radii with ``k``) and density and coverage (with ``k_dc``).

    Args:
        real_features: ``N_r×d`` array or tensor.
        generated_features: ``N_g×d`` array or tensor.
        k: neighbours for precision/recall (default 3, Kynkäänniemi et al.).
        k_dc: neighbours for density/coverage (default 5, Naeem et al.).
        dtype: precision of the distance products (float64 default; float32 faster).
        max_bytes: memory budget of one block of distances.

    Returns:
        ``{"precision", "recall", "density", "coverage", "k", "k_dc", "n_real", "n_generated", "dim"}``.

    Raises:
        DataError: shapes, NaN / infinite values, or a set with at most ``k`` (or ``k_dc``) rows.
    """
    r = torch.from_numpy(as_rows(real_features, "real features", flatten=False))
    g = torch.from_numpy(as_rows(generated_features, "generated features", flatten=False))
    if r.shape[1] != g.shape[1]:
        raise DataError(f"generated features have dimension {g.shape[1]} but real features have {r.shape[1]}")
    for name, v in (("k", k), ("k_dc", k_dc)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise DataError(f"precision/recall/density/coverage: {name} must be a positive integer, got {v!r}")
    # The generated set first: a caller scoring at equal N (evaluate_table) cuts the real set to the sample
    # count, so when both are too small it is the samples that are.
    for name, x, need in (("generated", g, k), ("real", r, max(k, k_dc))):
        if len(x) <= need:
            raise TooFewSamples(f"{name} features: {len(x)} rows; the k-NN radii need more than {need}")
    real_r = kth_neighbour_sq_distances(r, (k, k_dc), dtype=dtype, max_bytes=max_bytes)
    rr_pr, rr_dc = real_r[k], real_r[k_dc]
    rg = kth_neighbour_sq_distances(g, (k,), dtype=dtype, max_bytes=max_bytes)[k]

    in_real = torch.zeros(len(g), dtype=torch.bool)  # precision: g_j in some real ball (k)
    density = torch.zeros(len(g), dtype=torch.float64)  # real balls (k_dc) holding g_j
    in_gen = torch.zeros(len(r), dtype=torch.bool)  # recall: r_i in some generated ball
    nearest_g = torch.full((len(r),), float("inf"), dtype=torch.float64)  # coverage: min_j ‖r_i − g_j‖²
    for blk in iter_sq_distances(r, g, dtype=dtype, device="cpu", max_bytes=max_bytes):
        d2 = blk.values.double()  # real rows q0:q1 × generated columns r0:r1
        rows, cols = slice(blk.q0, blk.q1), slice(blk.r0, blk.r1)
        in_real[cols] |= (d2 < rr_pr[rows, None]).any(dim=0)
        density[cols] += (d2 < rr_dc[rows, None]).sum(dim=0)
        in_gen[rows] |= (d2 < rg[None, cols]).any(dim=1)
        nearest_g[rows] = torch.minimum(nearest_g[rows], d2.amin(dim=1))
    return {
        "precision": float(in_real.double().mean()),
        "recall": float(in_gen.double().mean()),
        "density": float(density.mean() / k_dc),
        "coverage": float((nearest_g < rr_dc).double().mean()),
        "k": int(k),
        "k_dc": int(k_dc),
        "n_real": len(r),
        "n_generated": len(g),
        "dim": int(r.shape[1]),
    }
