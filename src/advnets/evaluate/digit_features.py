"""The shipped digit feature network: fixed features for comparing generators of digits.

Inception-v3 features (FID's) mean little on 28×28 grey digits, and a digit
classifier that each user trains gives numbers nobody else can reproduce. So
advnets ships one network, trained once on the full MNIST training split by
``scripts/train_digit_features.py`` and pinned here by the SHA-256 of its
weights: every installation scores the same image with the same features.

* Architecture: :class:`advnets.evaluate.classifier.DigitClassifier` over
  1×28×28 (3×3 convolutions with 16 then 32 channels, ReLU, 2×2 max-pooling,
  a 128-unit ReLU layer, 10 logits), trained by that module's
  :func:`~advnets.evaluate.classifier.train_digit_classifier` (Adam, one-cycle
  learning rate to 3e-3, minibatches of 64, seed 0) for :data:`EPOCHS` epochs on
  the 60,000 MNIST training images.
* Features: the :data:`FEATURE_DIM` = 128 activations of the penultimate
  (ReLU) layer, in float32.
* Input: :func:`preprocess_digits` turns 1×28×28 images, 8×8 digits (e.g.
  scikit-learn's) or flat rows of either into N×1×28×28 float32 in [0, 1].
* Accuracy: 99.29 % on the 10,000 MNIST test images; 82.7 % on the 179 test
  images of scikit-learn's 8×8 digits (another dataset, resized); 100 % on the
  embedded MNIST test split, which holds MNIST *training* digits. The weights
  file has 828,400 bytes; the script reproduces it byte for byte (measured: two
  runs, same SHA-256) in 5-8 minutes on one CPU thread.

Determinism: the network runs in eval mode in float32. On the CPU the same
image gives the same features to float round-off (the convolution kernels that
oneDNN picks can differ between CPUs, so bitwise equality is not promised);
GPUs agree to float tolerance as well (about 1e-5 relative), not bit for bit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from advnets.errors import DataError
from advnets.evaluate.classifier import DigitClassifier

__all__ = [
    "EPOCHS",
    "FEATURE_DIM",
    "IMAGE_SHAPE",
    "SHA256",
    "TEST_ACCURACY",
    "WEIGHTS_FILE",
    "build_digit_network",
    "digit_features",
    "load_digit_network",
    "preprocess_digits",
]

#: The shipped weights (inside the package: hatchling packs every file under src/advnets).
WEIGHTS_FILE = Path(__file__).resolve().parents[1] / "assets" / "digit_features.safetensors"
#: SHA-256 of :data:`WEIGHTS_FILE`, printed by scripts/train_digit_features.py.
SHA256 = "484457d7c60244475296ea37d72a850e5549852e114ed2c751cedc28c4a3f968"
#: Accuracy on the 10,000 MNIST test images (t10k), printed by the training script.
TEST_ACCURACY = 0.9929
#: Passes over the 60,000 training images.
EPOCHS = 3
#: Input shape (C, H, W) and feature dimension (the penultimate layer).
IMAGE_SHAPE = (1, 28, 28)
FEATURE_DIM = 128
# 8×8 digits fill their frame; MNIST digits were size-normalised into a 20×20 box
# centred in 28×28 (LeCun et al., 1998), so 8×8 digits are resized to 20×20 and padded by 4.
_BOX = 20
_PAD = (28 - _BOX) // 2
_BATCH = 1000


def build_digit_network() -> DigitClassifier:
    """An untrained network of the shipped architecture (1×28×28 in, 10 logits out)."""
    return DigitClassifier(IMAGE_SHAPE, 10)


def preprocess_digits(images: Any, name: str = "images") -> torch.Tensor:
    """Images in [0, 1] as the network's float32 ``N×1×28×28`` input.

    Accepted: ``N×1×28×28``, ``N×28×28`` or ``N×784`` (used as they are), and
    ``N×1×8×8``, ``N×8×8`` or ``N×64`` (8×8 digits such as scikit-learn's):
    these are resized bicubically (``torch.nn.functional.interpolate``,
    ``mode="bicubic"``, ``align_corners=False``, no antialiasing) to 20×20,
    clamped to [0, 1] and zero-padded by 4 pixels on each side: the layout of
    MNIST's size-normalised, centred digits.

    Raises:
        DataError: another shape, a non-floating dtype, or NaN / infinite values.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{name} must be a tensor or NumPy array, got {type(images).__name__}")
    x = images.detach()
    if not x.is_floating_point():
        raise DataError(f"{name} must hold floating-point pixels in [0, 1], got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{name} have shape {tuple(x.shape)}; expected N >= 1 images")
    per_image = int(np.prod(x.shape[1:]))
    side = {784: 28, 64: 8}.get(per_image)
    if side is None or x.ndim > 4 or (x.ndim == 4 and x.shape[1] != 1):
        raise DataError(
            f"{name} have shape {tuple(x.shape)}; the digit features expect grey 28x28 or 8x8 images "
            "(N x 1 x H x W, N x H x W or N x H*W) with pixels in [0, 1]"
        )
    x = x.float().reshape(len(x), 1, side, side)
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contain NaN or infinite values (did the generator diverge?)")
    if side == 8:
        # Bicubic overshoots [0, 1] at edges: clamp. Measured on all 1,797 8x8 digits (the shipped
        # network's accuracy): 20x20 bicubic + pad 82.0 %, 20x20 bilinear + pad 77.2 %, straight to
        # 28x28 bilinear 63.7 % (the digit then fills the frame, unlike any MNIST digit).
        x = F.interpolate(x, size=(_BOX, _BOX), mode="bicubic", align_corners=False).clamp_(0, 1)
        x = F.pad(x, (_PAD,) * 4)
    return x


def load_digit_network(path: str | Path | None = None, sha256: str | None = SHA256) -> DigitClassifier:
    """The shipped network in eval mode, after checking the SHA-256 of its weights.

    Args:
        path: the weights file (default: the shipped :data:`WEIGHTS_FILE`).
        sha256: the expected digest (default: the pinned :data:`SHA256`); None
            skips the check (for the training script only).

    Raises:
        DataError: the file is missing, does not match the pinned SHA-256, or
            does not hold the architecture's tensors.
    """
    from safetensors.torch import load as load_safetensors

    path = Path(path) if path is not None else WEIGHTS_FILE
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the digit feature network ({e.strerror or e}); reinstall advnets") from e
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise DataError(
            f"{path}: SHA-256 {digest} does not match the pinned {sha256}; the digit feature network "
            "is damaged or replaced (reinstall advnets)"
        )
    model = build_digit_network()
    try:
        model.load_state_dict(load_safetensors(data))
    except Exception as e:  # truncated header, wrong keys or shapes
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not the digit feature network's weights ({first})") from e
    return model.eval()


@torch.no_grad()
def digit_features(
    images: Any,
    model: DigitClassifier | None = None,
    *,
    batch_size: int = _BATCH,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Penultimate-layer features of the shipped network: an ``N×128`` float32 CPU tensor.

    ``images`` as accepted by :func:`preprocess_digits`; ``model`` defaults to
    :func:`load_digit_network` (pass it in to avoid re-reading the file).
    """
    x = preprocess_digits(images)
    net = (model if model is not None else load_digit_network()).to(device).eval()
    body = net.net[:-1]  # everything up to and including the 128-unit ReLU
    return torch.cat([body(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
