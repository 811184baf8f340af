"""Exact, chunked squared Euclidean distances through matrix products.

Every evaluation in this package (the Parzen window of the paper's Table 1 and
the nearest training examples of its Figure 2) needs the squared distances
between many query points and many reference points. They are computed as

    ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖²

so that the O(Q·M·d) work is one matrix product per block, while the remaining
operations are O(Q·M). The ‖μ‖² term is folded into that product by augmenting
the rows (reference ``[μ, −‖μ‖²/2]``, query ``[x, 1]``), which yields the
*scores* ``x·μ − ‖μ‖²/2 = (‖x‖² − ‖x − μ‖²)/2`` without an extra pass over the
block; see :class:`ReferenceSet`. To keep the expansion accurate:

* the default precision is float64; a float32 "fast" mode is available;
* both sets are first shifted by the mean of the reference set (distances are
  shift invariant, and centred vectors have smaller norms, so the cancellation
  in the expansion loses less precision); the shift is done in float64;
* on CUDA, TF32 matrix products are switched off for the duration of the call
  (:func:`no_tf32`), since TF32 keeps only 10 mantissa bits;
* squared distances are clamped at 0 (rounding can make the expansion slightly
  negative).

Work is chunked over both queries and references, so that each block of
distances and its companion buffers fit in ``max_bytes`` (buffers are reused
from block to block). A converted reference set of at most ``cache_bytes`` is
converted (and centred) once and cached; otherwise its chunks are converted
again on every pass into a reused buffer, so memory stays bounded even for
large uint8 image sets. Computation runs on CUDA or CPU tensors alike.

Inputs may be NumPy arrays or tensors of shape ``N×d`` or ``N×H×W[×C]``; images
are flattened to ``N×d``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advnets.devices import resolve_device
from advnets.errors import DataError
from advnets.evaluate.chunks import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_MAX_BYTES,
    chunk_shape,
    padded_width,
    plan_chunks,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_CACHE_BYTES",
    "DistanceBlock",
    "ReferenceSet",
    "as_matrix",
    "check_dtype",
    "chunk_shape",
    "iter_sq_distances",
    "no_tf32",
    "pairwise_sq_distances",
    "plan_chunks",
    "prepare",
    "scores",
    "sq_distances",
    "sq_norms",
]

_FLOAT_DTYPES = (torch.float64, torch.float32)


# --------------------------------------------------------------------------- input handling


def as_matrix(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` as a 2-D tensor ``N×d`` (images are flattened), validated.

    Accepts NumPy arrays, tensors and nested sequences. Raises
    :class:`~advnets.errors.DataError` naming ``name`` when the array has fewer
    than 2 dimensions, no rows or no features, a non-real dtype, or contains NaN
    or infinite values. NumPy arrays are wrapped without copying where possible;
    the dtype is left as it is (conversion happens chunk by chunk later).
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise DataError(f"{name}: expected an array of shape N×d, got {type(x).__name__}") from exc
        if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
            raise DataError(f"{name}: expected a real-valued numeric array, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64 if arr.itemsize > 4 else np.float32)
        elif arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.int8, np.int16, np.int32, np.int64):
            arr = arr.astype(np.int64)
        if not arr.flags.writeable or any(st < 0 for st in arr.strides):
            arr = np.ascontiguousarray(arr).copy()
        t = torch.from_numpy(arr)
    if t.is_complex() or t.dtype == torch.bool:
        raise DataError(f"{name}: expected a real-valued numeric array, got dtype {t.dtype}")
    if t.ndim < 2:
        raise DataError(f"{name}: expected an array of shape N×d or N×H×W[×C], got shape {tuple(t.shape)}")
    n = t.shape[0]
    d = math.prod(t.shape[1:])
    if n == 0:
        raise DataError(f"{name}: expected at least one point, got an empty set (shape {tuple(t.shape)})")
    if d == 0:
        raise DataError(f"{name}: expected at least one feature per point, got shape {tuple(t.shape)}")
    t = t.reshape(n, d)
    if t.is_floating_point() and not bool(torch.isfinite(t.sum())):
        # A NaN/inf anywhere makes the sum non-finite (one read pass, no copy); an
        # overflowing sum of huge finite values is told apart by the exact scan.
        rows = torch.nonzero(~torch.isfinite(t).all(dim=1)).flatten()
        if rows.numel():
            raise DataError(
                f"{name}: expected finite values, found NaN or infinity in {rows.numel()} "
                f"row(s) (first at row {int(rows[0])})"
            )
    return t


def check_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return ``dtype`` if it is float64 or float32, else raise DataError."""
    if dtype not in _FLOAT_DTYPES:
        raise DataError(f"dtype: expected torch.float64 or torch.float32, got {dtype}")
    return dtype


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Switch off TF32 matrix products (CUDA) for the duration of the block.

    TF32 rounds float32 matrix-product inputs to 10 mantissa bits, which would
    make the ‖x‖² − 2x·μ + ‖μ‖² expansion far less accurate than float32.
    The previous settings are restored on exit.
    """
    matmul = torch.backends.cuda.matmul
    old_matmul = matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    try:
        matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        matmul.allow_tf32 = old_matmul
        torch.backends.cudnn.allow_tf32 = old_cudnn


# --------------------------------------------------------------------------- block kernels


def sq_norms(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Row-wise squared norms ``‖x_i‖²`` (accumulated in ``dtype``; no Q×d temporary)."""
    return torch.linalg.vector_norm(x, dim=1, dtype=dtype).square_()


def sq_distances(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    x_sq: torch.Tensor | None = None,
    y_sq: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One block of squared distances ``‖x_i − y_j‖²`` (``x``: Q×d, ``y``: M×d).

    ``x`` and ``y`` must share a floating dtype and device. Computed as
    ``‖x_i‖² − 2 x_i·y_j + ‖y_j‖²`` (one ``addmm`` and one fused add) and
    clamped at 0. No centring or chunking: see :func:`iter_sq_distances`.
    """
    if x_sq is None:
        x_sq = sq_norms(x)
    if y_sq is None:
        y_sq = sq_norms(y)
    if out is None:
        out = torch.empty((x.shape[0], y.shape[0]), dtype=x.dtype, device=x.device)
    with no_tf32():
        torch.addmm(y_sq.to(x.dtype).unsqueeze(0), x, y.T, beta=1, alpha=-2, out=out)
    out.add_(x_sq.to(x.dtype).unsqueeze(1))
    return out.clamp_(min=0)


# --------------------------------------------------------------------------- reference set


class ReferenceSet:
    """A reference (sample / training) set prepared for block score products.

    Rows are shifted by the float64 mean of the reference (``center=True``),
    converted to the compute ``dtype`` and *augmented*: reference row j becomes
    ``[y_j, −‖y_j‖²/2, 0…]`` and a query row ``[x_i, 1, 0…]`` (zero padding to a
    multiple of 8 columns), so that one plain matrix product gives the *scores*

        S_ij = x_i·y_j − ‖y_j‖²/2,   with   ‖x_i − y_j‖² = ‖x_i‖² − 2 S_ij,

    without a separate pass to add the ‖y_j‖² bias (as ``addmm`` would, by
    first copying it into the output block). The score's arg-max over j is the
    nearest reference; ``‖x_i‖²`` is a constant per query row.

    Converted chunks are cached when their total size is at most ``cache_bytes``,
    else converted again on every pass (bounded memory for large sets).
    """

    def __init__(
        self,
        reference: torch.Tensor,
        *,
        dtype: torch.dtype,
        device: torch.device,
        chunk: int,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        center: bool = True,
    ) -> None:
        self.source = reference
        self.dtype = check_dtype(dtype)
        self.device = device
        self.n, self.d = reference.shape
        self.width = padded_width(self.d)
        self.chunk = max(1, min(int(chunk), self.n))
        self.bounds = [(s, min(s + self.chunk, self.n)) for s in range(0, self.n, self.chunk)]
        if center:
            total = torch.zeros(self.d, dtype=torch.float64, device=device)
            for s, e in self.bounds:
                total += reference[s:e].to(device=device).sum(dim=0, dtype=torch.float64)
            self.shift: torch.Tensor | None = total / self.n
        else:
            self.shift = None
        itemsize = torch.empty((), dtype=dtype).element_size()
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._bufs: tuple[torch.Tensor, torch.Tensor | None] | None = None
        if self.n * self.width * itemsize <= cache_bytes:
            self._cache = [self._convert(s, e) for s, e in self.bounds]

    # queries ---------------------------------------------------------------

    def query_buffers(self, rows: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Buffers for up to ``rows`` queries: (augmented, float64 staging or None)."""
        aug = torch.zeros((rows, self.width), dtype=self.dtype, device=self.device)
        aug[:, self.d] = 1
        stage = None
        if self.dtype != torch.float64:
            stage = torch.empty((rows, self.d), dtype=torch.float64, device=self.device)
        return aug, stage

    def load_queries(
        self,
        x: torch.Tensor,
        buffers: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert a query chunk: ``(augmented rows, ‖x_i‖² in float64)``.

        The shift is applied in float64 before any rounding to float32, and
        ``‖x_i‖²`` is taken from the values actually used in the product.
        ``buffers`` (from :meth:`query_buffers`) are reused to avoid fresh
        allocations for every chunk.
        """
        n = x.shape[0]
        aug, stage = buffers if buffers is not None else self.query_buffers(n)
        aug = aug[:n]
        feat = aug[:, : self.d]
        if stage is None:  # float64: shift straight into the augmented buffer
            tgt = feat
        else:
            tgt = stage[:n]
        if self.shift is not None and x.dtype == torch.float64 and x.device == tgt.device:
            torch.sub(x, self.shift, out=tgt)
        else:
            tgt.copy_(x)
            if self.shift is not None:
                tgt.sub_(self.shift)
        if stage is not None:
            feat.copy_(tgt)
        return aug, sq_norms(feat, torch.float64)

    # reference -------------------------------------------------------------

    def _convert(
        self, s: int, e: int, bufs: tuple[torch.Tensor, torch.Tensor | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented rows ``s:e`` (into ``bufs`` when given) and their float64 ‖y‖²."""
        aug, x_sq = self.load_queries(self.source[s:e], bufs)
        aug[:, self.d] = (-0.5 * x_sq).to(self.dtype)
        return aug, x_sq

    def chunks(self) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """Yield ``(start, stop, augmented rows, ‖y_j‖² in float64)`` per chunk."""
        for k, (s, e) in enumerate(self.bounds):
            if self._cache is not None:
                aug, y_sq = self._cache[k]
            else:  # convert again, into buffers reused from chunk to chunk
                if self._bufs is None:
                    self._bufs = self.query_buffers(self.chunk)
                aug, y_sq = self._convert(s, e, self._bufs)
            yield s, e, aug, y_sq


def scores(x_aug: torch.Tensor, y_aug: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Score block ``S_ij = x_i·y_j − ‖y_j‖²/2`` from augmented rows (one matmul)."""
    return torch.mm(x_aug, y_aug.T, out=out)


@dataclass
class DistanceBlock:
    """One block of a distance computation: rows ``q0:q1`` × columns ``r0:r1``.

    ``values`` is a view into a buffer that is reused for the next block; copy
    it if it must outlive the iteration step. It holds squared distances
    (``form="sq"``) or scores ``x·y − ‖y‖²/2`` (``form="score"``); in both
    cases ``‖x − y‖² = query_sq − 2·score``. ``query_sq`` is float64.
    """

    q0: int
    q1: int
    r0: int
    r1: int
    values: torch.Tensor
    query_sq: torch.Tensor


def prepare(
    queries: Any,
    reference: Any,
    names: tuple[str, str] = ("queries", "reference"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and flatten a query set and a reference set with equal dimension."""
    q = as_matrix(queries, names[0])
    r = as_matrix(reference, names[1])
    if q.shape[1] != r.shape[1]:
        raise DataError(
            f"{names[0]}: expected {r.shape[1]} features per point to match {names[1]} "
            f"(shape {tuple(np.shape(reference))}), got {q.shape[1]} "
            f"(shape {tuple(np.shape(queries))})"
        )
    return q, r


def iter_sq_distances(
    queries: Any,
    reference: Any,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    query_chunk: int | None = None,
    reference_chunk: int | None = None,
    form: str = "sq",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> Iterator[DistanceBlock]:
    """Yield the squared distance matrix block by block (query-chunk major).

    For each query chunk, all reference chunks are visited in order before the
    next query chunk starts. The working block is about ``max_bytes``.
    ``form="sq"`` yields squared distances clamped at 0; ``form="score"`` yields
    the scores ``x·y − ‖y‖²/2`` (a cheaper, row-wise monotone decreasing
    transform of the distances; see :class:`DistanceBlock`).
    """
    if form not in ("sq", "score"):
        raise DataError(f"form: expected 'sq' or 'score', got {form!r}")
    dtype = check_dtype(dtype)
    q, r = prepare(queries, reference)
    dev = resolve_device(device, q, r)
    qc, rc, cache = plan_chunks(
        q.shape[0],
        r.shape[0],
        q.shape[1],
        dtype,
        max_bytes,
        query_chunk=query_chunk,
        reference_chunk=reference_chunk,
        cache_bytes=cache_bytes,
        cache_single_pass=False,
    )
    ref = ReferenceSet(r, dtype=dtype, device=dev, chunk=rc, cache_bytes=cache)
    qbufs = ref.query_buffers(qc)
    buf = torch.empty((qc, rc), dtype=dtype, device=dev)
    for q0 in range(0, q.shape[0], qc):
        q1 = min(q0 + qc, q.shape[0])
        x_aug, x_sq = ref.load_queries(q[q0:q1], qbufs)
        col = x_sq.to(dtype).unsqueeze(1)
        for r0, r1, y_aug, _ in ref.chunks():
            out = buf[: q1 - q0, : r1 - r0]
            with no_tf32():  # only around the product: the generator may be suspended
                scores(x_aug, y_aug, out=out)
            if form == "sq":
                torch.add(col, out, alpha=-2, out=out).clamp_(min=0)
            yield DistanceBlock(q0, q1, r0, r1, out, x_sq)


def pairwise_sq_distances(
    queries: Any,
    reference: Any,
    *,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    query_chunk: int | None = None,
    reference_chunk: int | None = None,
) -> torch.Tensor:
    """The full Q×M matrix of squared distances (clamped at 0), on the compute device.

    The result itself is Q×M; ``max_bytes`` only bounds the working blocks. Use
    :func:`iter_sq_distances` to stream when Q×M does not fit in memory.
    """
    q, r = prepare(queries, reference)
    out = None
    for blk in iter_sq_distances(
        q, r, dtype=dtype, device=device, max_bytes=max_bytes, query_chunk=query_chunk, reference_chunk=reference_chunk
    ):
        if out is None:
            out = torch.empty((q.shape[0], r.shape[0]), dtype=blk.values.dtype, device=blk.values.device)
        out[blk.q0 : blk.q1, blk.r0 : blk.r1] = blk.values
    assert out is not None
    return out
