"""Which device to compute on: one rule for training, the metrics, the report and the CLI.

``"auto"`` (or None) means: the device of the first non-CPU tensor given, else CUDA, else
Apple's MPS where the work can run there, else the CPU. An explicit name must be available
here; otherwise the error says so and what to use instead.
"""

from __future__ import annotations

from typing import Any

import torch

from advnets.errors import ConfigError

__all__ = ["describe_device", "resolve_device"]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(
    device: str | torch.device | None = None,
    *tensors: Any,
    option: str = "--device",
    float64: bool = False,
) -> torch.device:
    """The torch device for ``device``: None or ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``
    or a :class:`torch.device`.

    Args:
        device: what the user asked for; None and ``"auto"`` choose (see the module docstring).
        tensors: inputs already placed somewhere: with ``"auto"``, the first one on a GPU decides.
        option: the option that named ``device``, for the messages.
        float64: the work needs float64, which MPS lacks: ``"auto"`` never chooses MPS then.

    Raises:
        ConfigError: ``device`` is not a device name, or names a device this machine does not have.
    """
    if device is None or device == "auto":
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device.type != "cpu":
                return t.device
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available() and not float64:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"{option} {device}: expected auto, cpu, cuda or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option} {device}: no CUDA device is available here; use {option} cpu or auto")
    if dev.type == "mps" and not _mps_available():
        raise ConfigError(f"{option} {device}: MPS is not available here; use {option} cpu or auto")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{option} {device}: expected auto, cpu, cuda or mps")
    return dev


def describe_device(device: torch.device) -> str:
    """``device`` for a reader: ``cuda (NVIDIA H100 80GB HBM3)``, ``cpu``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
