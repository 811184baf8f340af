"""Feature extractors by name, and an on-disk cache of the real splits' features.

Metrics such as FD, KID and precision/recall compare *features* of images. An
extractor is chosen by a name (the ``--features`` option):

* ``digits``: the shipped digit network (:mod:`advnets.evaluate.digit_features`),
  128 features; the default for grey 28×28 images and 8×8 digits;
* ``inception``: Inception-v3's 2048 pool features, as FID uses them, through
  torch-fidelity's ``FeatureExtractorInceptionV3`` ("inception-v3-compat", the
  weights of the original TensorFlow FID); for RGB data. It needs torch-fidelity
  (with a torchvision that imports beside this torch) and its weights, fetched
  from GitHub on first use into ``$TORCH_HOME``; without either it fails with
  one line saying so;
* ``file:PATH``: a TorchScript module the user brings (``torch.jit.save``), or
  a ``torch.export`` program saved as ``.pt2`` (with a dynamic batch dimension);
  it is called on float32 ``N×C×H×W`` images in [0, 1] and must return ``N×d``.

Each extractor has an ``identity`` (a SHA-256 of its weights or its file) so
that cached features are reused only for the same network. :class:`FeatureCache`
keeps features of real splits as safetensors files named by the (images
fingerprint, extractor identity) pair and written atomically.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advnets.errors import ConfigError, DataError
from advnets.evaluate import digit_features as _digits
from advnets.evaluate.inputs import as_images
from advnets.io import atomic_write_bytes, write_failure

__all__ = [
    "EXTRACTORS",
    "FeatureCache",
    "FeatureExtractor",
    "default_extractor",
    "get_extractor",
    "images_fingerprint",
]

EXTRACTORS = ("digits", "inception", "file:PATH")
_BATCH = 500


@dataclass(frozen=True)
class FeatureExtractor:
    """A named function from images (float ``N×C×H×W`` in [0, 1]) to float32 ``N×d`` features."""

    name: str
    identity: str  # SHA-256 of the weights or file: what the cache keys on
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: Any) -> torch.Tensor:
        x = as_images(images, "images")
        feats = torch.cat([self.fn(x[i : i + _BATCH]).detach().float().cpu() for i in range(0, len(x), _BATCH)])
        if feats.ndim != 2 or len(feats) != len(x):
            raise DataError(f"--features {self.name}: returned shape {tuple(feats.shape)} for {len(x)} images")
        return feats


def images_fingerprint(images: Any) -> str:
    """SHA-256 over dtype, shape and bytes of an image array (as advnets.evaluate.classifier.dataset_fingerprint)."""
    a = as_images(images, "images").cpu().contiguous()
    h = hashlib.sha256(f"{a.dtype}:{tuple(a.shape)};".encode())
    h.update(a.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- the extractors


def _digit_extractor(device: str | torch.device) -> FeatureExtractor:
    model = _digits.load_digit_network().to(device)
    return FeatureExtractor(
        "digits", _digits.SHA256, lambda x: _digits.digit_features(x, model, device=device, batch_size=_BATCH)
    )


def _inception_extractor(device: str | torch.device) -> FeatureExtractor:
    need = (
        "--features inception needs torch-fidelity (pip install torch-fidelity, with a torchvision built for "
        "this torch) and Inception-v3 weights it downloads on first use into $TORCH_HOME"
    )
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision failing to load its operators
        raise ConfigError(f"{need}; it cannot be imported here ({type(e).__name__}: {_first_line(e)})") from None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).to(device).eval()
    except Exception as e:  # no network: URLError / OSError / RuntimeError from the download
        raise ConfigError(f"{need}; loading the weights failed ({type(e).__name__}: {_first_line(e)})") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DataError(
                f"--features inception: expected N x 3 x H x W (or grey N x 1 x H x W), got {tuple(x.shape)}"
            )
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        with torch.no_grad():  # torch-fidelity takes uint8 pixels and resizes to 299x299 itself
            return net((x.clamp(0, 1) * 255).round().to(torch.uint8).to(device))[0]

    return FeatureExtractor("inception", "torch-fidelity:inception-v3-compat:2048", run)


def _file_extractor(path: Path, device: str | torch.device) -> FeatureExtractor:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"--features file:{path}: cannot read it ({e.strerror or e})") from None
    try:
        if path.suffix == ".pt2":  # torch.export's format, TorchScript's successor
            module = torch.export.load(str(path)).module().to(device)
        else:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its files still load
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        raise DataError(
            f"--features file:{path}: not a TorchScript module or torch.export program ({_first_line(e)}); "
            "save one with torch.jit.save or torch.export.save (.pt2)"
        ) from None

    def run(x: torch.Tensor) -> torch.Tensor:
        try:
            with torch.no_grad():
                out = module(x.float().to(device))
        except Exception as e:  # a module built for other inputs
            raise DataError(
                f"--features file:{path}: failed on images of shape {tuple(x.shape)} ({_first_line(e)})"
            ) from None
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != len(x):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise DataError(f"--features file:{path}: expected N x d features for {len(x)} images, got {got}")
        return out

    return FeatureExtractor(f"file:{path}", hashlib.sha256(data).hexdigest(), run)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def get_extractor(spec: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """The extractor named ``spec``: ``digits``, ``inception`` or ``file:PATH`` (see the module docstring).

    Raises:
        ConfigError: an unknown name, or ``inception`` where torch-fidelity or its weights are missing.
        DataError: a ``file:`` path that is missing or not TorchScript.
    """
    if spec == "digits":
        return _digit_extractor(device)
    if spec == "inception":
        return _inception_extractor(device)
    if isinstance(spec, str) and spec.startswith("file:") and len(spec) > 5:
        return _file_extractor(Path(spec[5:]), device)
    raise ConfigError(f"--features {spec!r}: expected one of {', '.join(EXTRACTORS)}")


def default_extractor(image_shape: tuple[int, ...]) -> str:
    """``digits`` for grey 28×28 or 8×8 images, ``inception`` for RGB; else a ConfigError asking for file:PATH."""
    shape = tuple(int(s) for s in image_shape)
    if shape in ((1, 28, 28), (28, 28), (784,), (1, 8, 8), (8, 8), (64,)):
        return "digits"
    if len(shape) == 3 and shape[0] == 3:
        return "inception"
    raise ConfigError(
        f"no default feature network for images of shape {shape}: choose --features inception (RGB) or file:PATH"
    )


# --------------------------------------------------------------------------- the cache


class FeatureCache:
    """Features of real image sets on disk, keyed by (images fingerprint, extractor identity).

    ``cache_dir=None`` disables caching. Files are
    ``features-<extractor>-<key>.safetensors`` holding one ``features`` tensor
    and, as metadata, the full fingerprint and identity (checked on load); a file
    that cannot be read or does not match is recomputed with a warning.
    """

    def __init__(self, cache_dir: str | Path | None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        if self.dir is not None and self.dir.exists() and not self.dir.is_dir():
            raise DataError(f"feature cache {self.dir} is a file; expected a directory")

    def path(self, extractor: FeatureExtractor, fingerprint: str) -> Path | None:
        if self.dir is None:
            return None
        slug = re.sub(r"[^A-Za-z0-9]+", "_", extractor.name.split(":")[0])
        key = hashlib.sha256(f"{fingerprint}:{extractor.identity}".encode()).hexdigest()[:24]
        return self.dir / f"features-{slug}-{key}.safetensors"

    def features(self, extractor: FeatureExtractor, images: Any) -> tuple[torch.Tensor, bool]:
        """``(features, from_cache)`` for ``images``: read from the cache, or computed and stored."""
        from safetensors.torch import load, save

        fingerprint = images_fingerprint(images)
        path = self.path(extractor, fingerprint)
        meta = {"images_sha256": fingerprint, "extractor": extractor.identity}
        if path is not None and path.is_file():
            try:
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as f:
                    stored = f.metadata() or {}
                if all(stored.get(k) == v for k, v in meta.items()):
                    return load(path.read_bytes())["features"], True
            except Exception as e:  # a truncated or foreign file: recompute
                warnings.warn(f"{path}: unreadable feature cache ({_first_line(e)}); recomputing", stacklevel=2)
        feats = extractor(images)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, save({"features": feats.contiguous()}, metadata=meta))
            except OSError as e:
                raise DataError(
                    write_failure(e.filename or path, e, "the feature cache", "another --data-dir or $ADVNETS_DATA")
                ) from e
        return feats, False
