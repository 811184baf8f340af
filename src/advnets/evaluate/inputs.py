"""The one place that turns what a user passes to a metric into what the metric computes on.

Two shapes of input reach the metrics: *images* (``N x C x H x W`` floats in [0, 1], or ``N x d``
rows of pixels), which the feature networks, the classifier and the metrics table take as a
tensor, and *rows* (``N x d`` numbers: features, flattened images, 2-D points), which the
closed-form statistics (Fréchet distance, KID, precision/recall, diversity, mode coverage) take
as a float64 NumPy array. Both check what every metric needs and raise
:class:`~advnets.errors.DataError` naming the input (``name``) and what was expected, so one
mistake gives one message whichever metric meets it first. (The Parzen and nearest-neighbour
engine, :func:`advnets.evaluate.distances.as_matrix`, keeps its own: it leaves the dtype alone and
avoids copies, converting block by block, which matters at 60,000 x 784.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from advnets.errors import DataError

__all__ = ["as_images", "as_rows"]


def _describe(x: Any) -> str:
    return f"{type(x).__name__} of shape {tuple(x.shape)}, {x.dtype}" if hasattr(x, "shape") else type(x).__name__


def as_images(x: Any, name: str) -> torch.Tensor:
    """``x`` (a tensor or NumPy array of ``N >= 1`` images, any shape ``N x ...``) as a detached floating-point
    tensor on its device, unchanged otherwise.

    Raises:
        DataError: ``x`` is not a tensor or array, not floating point, has fewer than 2 dimensions or no
            rows, or holds NaN or infinity.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"{name}: expected a non-empty array of N images of floating-point pixels in [0, 1], got {_describe(x)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contain NaN or infinite values (did the generator diverge?)")
    return x.detach()


def as_rows(x: Any, name: str, *, min_rows: int = 1, flatten: bool = True, finite: bool = True) -> np.ndarray:
    """``x`` (array, tensor or nested lists) as a float64 ``N x d`` NumPy array.

    Args:
        x: ``N x d`` numbers, or with ``flatten`` also images ``N x ...`` (flattened to rows).
        name: what ``x`` is, for the messages (``"real features"``, ``"samples"``).
        min_rows: the fewest rows the caller can work with.
        flatten: accept ``N x ...`` and flatten it; False: exactly 2-D.
        finite: refuse NaN and infinity; False leaves them in, for a caller that counts them itself
            (mode coverage counts a non-finite sample as one of low quality).

    Raises:
        DataError: not numbers, the wrong number of dimensions, fewer than ``min_rows`` rows, rows of size
            0, or (with ``finite``) NaN/infinity: the message names how many rows and the first.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected an array of numbers, got {type(x).__name__}") from e
    if a.ndim < 2 or (not flatten and a.ndim != 2):
        shapes = "N x d or N x C x H x W" if flatten else "N x d"
        raise DataError(f"{name}: expected shape {shapes}, got {a.shape}")
    a = a.reshape(a.shape[0], int(np.prod(a.shape[1:])))  # -1 is ambiguous for 0 rows
    if a.shape[0] < min_rows:
        raise DataError(f"{name} has {a.shape[0]} rows; need at least {min_rows}")
    if a.shape[1] == 0:
        raise DataError(f"{name} has rows of size 0")
    bad = ~np.isfinite(a).all(axis=1)
    if finite and bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{name}: {rows.size} row(s) hold NaN or infinity (first: row {rows[0]}); expected finite values "
            "(did the generator diverge?)"
        )
    return a
