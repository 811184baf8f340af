"""How Q×M distance work is cut into blocks that fit a memory budget.

The distance kernels of :mod:`advnets.evaluate.distances` (and the Parzen window and nearest
neighbours built on them) work on blocks of ``query_chunk × reference_chunk`` elements. The
functions here choose those sizes from a budget in bytes, and whether a converted reference set
is small enough to be cached once rather than converted again on every pass. They are
re-exported by :mod:`advnets.evaluate.distances`, where they are documented.
"""

from __future__ import annotations

import numpy as np
import torch

from advnets.errors import DataError

__all__ = ["DEFAULT_CACHE_BYTES", "DEFAULT_MAX_BYTES", "chunk_shape", "padded_width", "plan_chunks"]

#: Default budget, in bytes, for one block of distances and its buffers.
DEFAULT_MAX_BYTES = 64 * 2**20
#: Converted reference sets at most this large are converted once and cached.
DEFAULT_CACHE_BYTES = 256 * 2**20


def padded_width(d: int) -> int:
    """Columns of the augmented matrices: d features + 1 bias column, rounded up to 8."""
    return -(-(d + 1) // 8) * 8


def _even_split(n: int, most: int) -> int:
    """The smallest chunk size ≤ ``most`` that splits ``n`` into as few chunks as ``most``."""
    most = max(1, min(int(most), n))
    pieces = -(-n // most)
    return -(-n // pieces)


def chunk_shape(
    n_queries: int,
    n_reference: int,
    itemsize: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    buffers: int = 1,
    reference_row_bytes: int = 0,
    query_chunk: int | None = None,
    reference_chunk: int | None = None,
) -> tuple[int, int]:
    """Choose ``(query_chunk, reference_chunk)`` for a memory budget.

    ``buffers`` blocks of ``query_chunk × reference_chunk`` elements of
    ``itemsize`` bytes must fit in ``max_bytes``. With ``reference_row_bytes``
    (the size of one converted reference row, when reference chunks are
    converted on the fly rather than cached) a reference chunk also takes at
    most a quarter of ``max_bytes``. Explicit sizes are honoured (clipped to the
    set sizes). By default the reference chunk is as large as the budget allows
    with 256 query rows, and the query chunk takes the rest; chunks are evened
    out so that the last one is not a small remainder.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
        raise DataError(f"max_bytes: expected a positive number of bytes, got {max_bytes!r}")
    for arg, val in (("chunk_size", query_chunk), ("reference_chunk_size", reference_chunk)):
        if val is not None and (not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1):
            raise DataError(f"{arg}: expected a positive integer or None, got {val!r}")
    budget = max(1, int(max_bytes) // (itemsize * buffers))  # elements per block
    if reference_chunk is None:
        rows = query_chunk if query_chunk is not None else min(256, n_queries)
        most = budget // max(1, int(rows))
        if reference_row_bytes > 0:
            most = min(most, int(max_bytes) // (4 * reference_row_bytes))
        reference_chunk = _even_split(n_reference, max(1, most))
    reference_chunk = int(min(reference_chunk, n_reference))
    if query_chunk is None:
        query_chunk = _even_split(n_queries, max(1, budget // reference_chunk))
    query_chunk = int(min(query_chunk, n_queries))
    return query_chunk, reference_chunk


def plan_chunks(
    n_queries: int,
    n_reference: int,
    d: int,
    dtype: torch.dtype,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    buffers: int = 1,
    query_chunk: int | None = None,
    reference_chunk: int | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    cache_single_pass: bool = True,
) -> tuple[int, int, int]:
    """``(query_chunk, reference_chunk, cache_bytes)`` for a :class:`ReferenceSet`.

    A converted reference set of at most ``cache_bytes`` is cached, and then
    its chunks are not limited by their own size; otherwise reference chunks
    are converted on the fly into a reused buffer limited to ``max_bytes / 4``.
    With ``cache_single_pass=False`` nothing is cached when a single query chunk
    (one pass over the reference) suffices. The returned ``cache_bytes`` is 0
    when nothing is to be cached.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    row = padded_width(d) * itemsize + (d * 8 if dtype != torch.float64 else 0)
    kw = dict(buffers=buffers, query_chunk=query_chunk, reference_chunk=reference_chunk)
    if n_reference * row <= cache_bytes:
        qc, rc = chunk_shape(n_queries, n_reference, itemsize, max_bytes, **kw)
        if cache_single_pass or qc < n_queries:
            return qc, rc, cache_bytes
    qc, rc = chunk_shape(n_queries, n_reference, itemsize, max_bytes, reference_row_bytes=row, **kw)
    cache = cache_bytes if (qc < n_queries and n_reference * row <= cache_bytes) else 0
    return qc, rc, cache
