"""How a metric computes, apart from what it computes: one options object for every metric.

The Parzen estimator, the nearest-neighbour search and the feature metrics all take the same
compute settings (precision, device, the block sizes of the distance engine, a progress bar).
Passing them one by one through the protocol, Table 1's scoring, the shipped-model check and the
CLI wrote the same six keywords in four places; :class:`MetricOptions` carries them instead
(StyleGAN2-ADA's ``metrics.metric_utils.MetricOptions`` plays the same part). None of them changes
a result beyond float round-off: float32 trades accuracy for speed (see
:func:`advnets.evaluate.parzen.parzen_log_likelihood`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from advnets.evaluate.distances import DEFAULT_MAX_BYTES, check_dtype

__all__ = ["MetricOptions"]


@dataclass(frozen=True)
class MetricOptions:
    """Compute settings shared by every metric.

    Attributes:
        dtype: ``torch.float64`` (exact to ~1e-12 relative; the default) or ``torch.float32``.
        device: where to compute; None chooses (:func:`advnets.devices.resolve_device`).
        chunk_size: query rows per block of the distance engine (None: from ``max_bytes``).
        sample_chunk_size: reference rows per block (None: from ``max_bytes``).
        max_bytes: the memory one block of distances may take, in bytes.
        progress: show progress bars on stderr.
    """

    dtype: torch.dtype = torch.float64
    device: str | torch.device | None = None
    chunk_size: int | None = None
    sample_chunk_size: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    progress: bool = False

    def __post_init__(self) -> None:
        check_dtype(self.dtype)

    @property
    def dtype_name(self) -> str:
        """``"float64"`` or ``"float32"``: how records and caches spell the precision."""
        return str(self.dtype).removeprefix("torch.")

    def kwargs(self, progress: bool | None = None) -> dict[str, Any]:
        """The keywords of :func:`~advnets.evaluate.parzen.parzen_evaluate`,
        :func:`~advnets.evaluate.parzen.select_sigma` and the distance functions (``progress``
        overrides the bar for one call)."""
        return {
            "dtype": self.dtype,
            "device": self.device,
            "chunk_size": self.chunk_size,
            "sample_chunk_size": self.sample_chunk_size,
            "max_bytes": self.max_bytes,
            "progress": self.progress if progress is None else progress,
        }
